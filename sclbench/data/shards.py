"""Webdataset shards in img2dataset's layout: write them from any corpus sclbench reads, read them back.

A shard is a plain tar; one sample is the members sharing a KEY:
  KEY.jpg (or .png/.webp: the image file's bytes, verbatim) or KEY.mp4 (the clip's bytes),
  KEY.txt (the first caption) and KEY.json ({"key", "id", "caption", "captions": [...]}).
img2dataset writes KEY.jpg + KEY.txt + KEY.json with one "caption"; sclbench adds "captions" so a
COCO image keeps its five captions (and its digest) in one sample instead of five copies.

`index.json` beside the shards lists each shard with its sample and caption-pair counts: streaming
needs them to give every rank the same number of batches per epoch. Shards written by img2dataset
have no index; their `*_stats.json` ("successes") or a scan of the tars stands in.

Reading goes through the `webdataset` library (tar parsing and a seeded shuffle buffer). Shards are
split by *slot* = rank x dataloader worker: slot s of S reads shards s, s+S, ... of the epoch's
seeded shard order, so slots are disjoint and the split is explicit (no reliance on the global
torch.distributed state, which workers and tests do not have).
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sclbench.common.io import atomic_write
from sclbench.data.formats._io import field, load_json, not_empty, parse_json
from sclbench.data.records import CaptionRecord, ImageSource, VideoRecord
from sclbench.errors import DataError

INDEX_NAME = "index.json"
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
VIDEO_EXTENSIONS = ("mp4", "webm", "avi", "mkv")
_MAGIC = {b"\x89PNG": "png", b"RIFF": "webp"}


@dataclass(frozen=True)
class ShardInfo:
    url: str  # a path (or any URL webdataset opens)
    samples: int  # images/clips
    pairs: int  # (image, caption) pairs: training samples


@dataclass(frozen=True)
class ShardIndex:
    corpus: str
    kind: str  # "image" or "video"
    shards: tuple[ShardInfo, ...]

    @property
    def pairs(self) -> int:
        return sum(s.pairs for s in self.shards)

    @property
    def samples(self) -> int:
        return sum(s.samples for s in self.shards)


# ---- writing ------------------------------------------------------------------------------------
def _image_extension(data: bytes) -> str:
    return next((ext for magic, ext in _MAGIC.items() if data.startswith(magic)), "jpg")


def _tar_writer(fileobj):
    import webdataset as wds

    # Fixed mtime and owner: the same corpus always writes the same bytes.
    return wds.TarWriter(fileobj, encoder=False, mtime=0.0, user="sclbench", group="sclbench")


def write_shards(
    records: list[CaptionRecord | VideoRecord],
    out_dir: str | Path,
    corpus: str,
    shard_size: int = 1000,
    prefix: str | None = None,
) -> ShardIndex:
    """Write `records` (one reader's output) as shards `<prefix>-000000.tar`, ... + index.json."""
    if shard_size < 1:
        raise DataError(f"shard size {shard_size}: use at least 1 sample per shard")
    if not records:
        raise DataError(f"corpus {corpus!r} holds no samples to shard; check --data-root")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prefix = prefix or corpus
    kind = "video" if isinstance(records[0], VideoRecord) else "image"
    shards: list[ShardInfo] = []
    for start in range(0, len(records), shard_size):
        chunk = records[start : start + shard_size]
        name = f"{prefix}-{len(shards):06d}.tar"
        samples = [_sample(record, f"{start + offset:09d}") for offset, record in enumerate(chunk)]

        def write(fh, samples=samples) -> None:
            writer = _tar_writer(fh)
            for sample in samples:
                writer.write(sample)
            writer.close()  # ends the tar; the file itself is closed (and renamed) by atomic_write

        atomic_write(out / name, write)  # a reader never sees a half-written shard
        shards.append(ShardInfo(name, len(chunk), sum(len(r.captions) for r in chunk)))
    doc = {
        "corpus": corpus,
        "kind": kind,
        "format": "webdataset (img2dataset layout)",
        "samples": sum(s.samples for s in shards),
        "pairs": sum(s.pairs for s in shards),
        "shards": [{"url": s.url, "samples": s.samples, "pairs": s.pairs} for s in shards],
    }
    atomic_write(out / INDEX_NAME, json.dumps(doc, indent=1) + "\n")  # names relative: the folder can move
    return read_index(out)


def _sample(record: CaptionRecord | VideoRecord, key: str) -> dict[str, bytes | str]:
    if not record.captions:
        raise DataError(f"record {record!r:.80} has no caption; a shard sample needs one")
    meta = {"key": key, "caption": record.captions[0], "captions": list(record.captions)}
    sample: dict[str, bytes | str] = {"__key__": key}
    if isinstance(record, VideoRecord):
        meta["id"] = record.video_id
        try:
            sample[Path(record.video).suffix.lstrip(".").lower() or "mp4"] = Path(record.video).read_bytes()
        except (IsADirectoryError, OSError) as err:
            raise DataError(
                f"cannot shard clip {record.video}: {getattr(err, 'strerror', err)} (frame "
                "folders cannot be sharded; only video files)"
            ) from None
    else:
        meta["id"] = record.image_id
        data = record.image.read_bytes()
        sample[_image_extension(data)] = data
    sample["txt"] = record.captions[0].encode("utf-8")
    sample["json"] = json.dumps(meta, ensure_ascii=False).encode("utf-8")
    return sample


# ---- the index ----------------------------------------------------------------------------------
def read_index(folder: str | Path, corpus: str | None = None) -> ShardIndex:
    """The shards under `folder`: index.json (sclbench), else img2dataset stats, else a scan."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(
            f"shard folder {folder} not found; write it with `sclbench data shard CORPUS "
            f"--data-root DIR --out {folder}`"
        )
    path = folder / INDEX_NAME
    if path.is_file():
        return _parse_index(path, folder, corpus)
    tars = sorted(folder.glob("*.tar"))
    if not tars:
        raise DataError(f"{folder} holds no *.tar shards and no {INDEX_NAME}")
    infos, kind = [], "image"
    for tar in tars:
        counts = _scan(tar)
        kind = counts[2] or kind
        infos.append(ShardInfo(str(tar), counts[0], counts[1]))
    return ShardIndex(corpus or folder.name, kind, tuple(infos))


def _parse_index(path: Path, folder: Path, corpus: str | None) -> ShardIndex:
    """index.json, checked: its counts are what every read of the shards is held to."""
    doc = load_json(path)  # exact: a repeated key, BOM or empty file is named
    redo = "delete it and re-run `sclbench data shard`"
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if kind not in ("image", "video") or not isinstance(doc.get("shards"), list):
        raise DataError(
            f"{path}: not a shard index (expected an object with 'kind' image|video and a 'shards' list); {redo}"
        )
    not_empty(doc["shards"], path, "shards")
    shards = []
    for i, entry in enumerate(doc["shards"]):
        where = f"shards[{i}]"
        url = field(entry, "url", path, where, str)
        counts = [field(entry, key, path, where, int) for key in ("samples", "pairs")]
        if counts[0] < 1 or counts[1] < counts[0]:
            raise DataError(
                f"{path}, {where}: {counts[0]} samples and {counts[1]} caption pairs (a shard holds at "
                f"least one sample, each with a caption); {redo}"
            )
        shard = folder / url
        if not shard.is_file():
            raise DataError(
                f"{path}, {where}: shard {shard} is missing (the folder was copied only in part); copy it, or {redo}"
            )
        shards.append(ShardInfo(str(shard), *counts))
    return ShardIndex(doc.get("corpus", corpus or folder.name), doc["kind"], tuple(shards))


def check_shards(folder: str | Path) -> ShardIndex:
    """Read every shard of `folder` through (tar structure, captions) and hold it to the index:
    what `sclbench data check` does for a shard folder. Returns the index."""
    index = read_index(folder)
    for info in index.shards:
        for raw in shard_samples([info.url], {info.url: info.samples}):
            captions_of(raw, info.url)
            media_key(raw, info.url)
    return index


def _scan(tar: Path) -> tuple[int, int, str | None]:
    """(samples, pairs, kind) of one shard, read through (img2dataset shards carry no pair counts)."""
    samples = pairs = 0
    kind = None
    for raw in iter_raw([str(tar)]):
        samples += 1
        pairs += len(captions_of(raw, str(tar)))
        kind = kind or ("video" if media_key(raw, str(tar))[0] in VIDEO_EXTENSIONS else "image")
    return samples, pairs, kind


# ---- reading ------------------------------------------------------------------------------------
def shard_samples(urls: list[str], expected: dict[str, int] | None = None) -> Iterator[dict]:
    """Raw samples ({"__key__", "__url__", "jpg": bytes, "txt": bytes, ...}) of `urls`, shard by shard.

    A shard that cannot be read to its end (cut short inside a member, not a tar, unreadable) is one
    DataError naming it; a shard that ends cleanly but holds another number of samples than its index
    says (`expected`: url -> samples; a tar cut at a member boundary reads as a shorter valid tar) is
    one too, raised when its end is reached: never silently fewer samples.
    """
    import webdataset as wds

    for url in urls:
        count = 0
        try:
            for raw in wds.DataPipeline(wds.SimpleShardList([url]), wds.tarfile_to_samples()):
                count += 1
                yield raw
        except DataError:
            raise
        except Exception as err:  # noqa: BLE001  (tarfile.ReadError, OSError, EOFError...: a damaged shard)
            reason = next((str(a) for a in getattr(err, "args", ()) if isinstance(a, str)), type(err).__name__)
            raise DataError(
                f"shard {url} cannot be read after {count} samples ({type(err).__name__}: "
                f"{reason[:120]}): it is cut short or damaged; copy it again or re-write the shards"
            ) from None
        if expected is not None and url in expected and count != expected[url]:
            raise DataError(
                f"shard {url} holds {count} samples but its {INDEX_NAME} says {expected[url]}: it "
                "is cut short or was replaced; copy it again or re-write the shards"
            )


def iter_raw(urls: list[str], expected: dict[str, int] | None = None) -> Iterator[dict]:
    """Raw samples of `urls`, in order (see shard_samples)."""
    return shard_samples(urls, expected)


def _pairs(samples: Iterator[dict]) -> Iterator[dict]:
    """One item per (sample, caption): the training unit, as the file readers' per-caption items."""
    for raw in samples:
        for c, caption in enumerate(captions_of(raw, raw.get("__url__", "shard"))):
            yield {**raw, "__caption__": caption, "__pair__": c}


def shuffled_pairs(urls: list[str], buffer: int, seed: int, expected: dict[str, int] | None = None) -> Iterator[dict]:
    """(sample, caption) items of `urls` through webdataset's shuffle buffer (seeded generator), so
    the captions of one image do not arrive side by side. buffer <= 1: file order. Each shard is held
    to `expected` (url -> samples, from the index): see shard_samples."""
    import webdataset as wds

    stages = [lambda: shard_samples(urls, expected), _pairs]
    if buffer > 1:
        stages.append(wds.shuffle(buffer, initial=buffer, rng=random.Random(seed)))
    return iter(wds.DataPipeline(*stages))


def slot_shards(urls: list[str], slot: int, slots: int, seed: int, epoch: int, shuffle: bool = True) -> list[str]:
    """The shards slot `slot` of `slots` reads in `epoch`: every slot sees the same seeded order."""
    if len(urls) < slots:
        raise DataError(
            f"{len(urls)} shards cannot be split over {slots} readers (ranks x dataloader "
            f"workers): re-write the corpus with a smaller --shard-size (at least {slots} shards)"
        )
    order = list(urls)
    if shuffle:
        random.Random(f"shards/{seed}/{epoch}").shuffle(order)
    return order[slot::slots]


def media_key(raw: dict, where: str) -> tuple[str, bytes]:
    for ext in (*IMAGE_EXTENSIONS, *VIDEO_EXTENSIONS):
        if ext in raw:
            return ext, raw[ext]
    raise DataError(
        f"{where}: sample {raw.get('__key__')!r} has no image or video member (expected KEY.jpg/.png/.webp or KEY.mp4)"
    )


def captions_of(raw: dict, where: str) -> list[str]:
    """The sample's captions: json "captions" (sclbench), json "caption" (img2dataset), else txt."""
    member = f"{where}, member {raw.get('__key__')}"
    if "json" in raw:
        meta = parse_json(_member_text(raw["json"], f"{member}.json"), Path(f"{member}.json"))
        if not isinstance(meta, dict):
            raise DataError(f"{member}.json: expected a JSON object, got {type(meta).__name__}")
        if isinstance(meta.get("captions"), list) and meta["captions"]:
            return [str(c) for c in meta["captions"]]
        if isinstance(meta.get("caption"), str) and meta["caption"]:
            return [meta["caption"]]
    if "txt" in raw:
        text = _member_text(raw["txt"], f"{member}.txt").strip()
        if text:
            return [text]
    raise DataError(f"{where}: sample {raw.get('__key__')!r} has no caption (KEY.txt or KEY.json)")


def _member_text(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8-sig")  # a BOM some tools write is not part of the caption
    except UnicodeDecodeError as err:
        raise DataError(f"{where}: bytes that are not UTF-8 ({err.reason}); re-write the shards") from None


def image_source(raw: dict) -> ImageSource:
    return ImageSource(data=media_key(raw, raw.get("__url__", "shard"))[1])


def read_pairs(folder: str | Path) -> list[tuple[str, str]]:
    """Every (image/clip SHA-256, caption) pair of a shard folder, in shard order (tests, checks)."""
    import hashlib

    out = []
    for info in read_index(folder).shards:
        for raw in iter_raw([info.url], {info.url: info.samples}):
            digest = hashlib.sha256(media_key(raw, info.url)[1]).hexdigest()
            out.extend((digest, c) for c in captions_of(raw, info.url))
    return out


def clip_file(raw: dict) -> io.BytesIO:
    return io.BytesIO(media_key(raw, raw.get("__url__", "shard"))[1])


# ---- any layout sclbench reads, as records to shard ----------------------------------------------
SHARDABLE = ("coco", "f30k", "vg", "sbu", "cc3m", "webvid")


def corpus_records(
    corpus: str,
    root: str | Path,
    split: str = "train",
    layout: str = "files",
    meta: str = "webvid_train.tsv",
    videos: str = "videos",
) -> list[CaptionRecord | VideoRecord]:
    """Records of one corpus in its published layout (`files`) or as ViLT arrow tables (`arrow`:
    coco/f30k `<dataset>_caption_karpathy_<split>.arrow`). COCO split train includes restval."""
    from sclbench.data.formats import arrow, karpathy
    from sclbench.data.formats import pretrain as fmt

    root = Path(root)
    if corpus not in SHARDABLE:
        raise DataError(f"unknown corpus {corpus!r}; choose one of {', '.join(SHARDABLE)}")
    if layout == "arrow":
        if corpus not in ("coco", "f30k"):
            raise DataError(f"--format arrow reads the ViLT caption tables of coco and f30k, not {corpus}")
        splits = ["train", "restval"] if corpus == "coco" and split == "train" else [split]
        return [
            r
            for s in splits
            if (s == split or arrow.caption_table(root, corpus, s).is_file())
            for r in arrow.read_caption_arrow(root, corpus, s)
        ]
    if layout != "files":
        raise DataError(f"layout {layout!r}: choose files (the published layout) or arrow (ViLT tables)")
    if corpus in ("coco", "f30k"):
        return karpathy.read_karpathy(root, corpus, split)
    if corpus == "vg":
        return fmt.read_vg(root)
    if corpus == "sbu":
        return fmt.read_sbu(root)
    if corpus == "cc3m":
        return fmt.read_cc3m(root, split)
    return fmt.read_webvid(root / meta, root / videos, split=split)
