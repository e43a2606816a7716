"""Webdataset shards: `data shard` round trip, rank x worker split, seeded shuffle, exact resume."""

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from sclbench.cli import main
from sclbench.data import shards as S
from sclbench.data.datasets import CaptionDataset, Visuals
from sclbench.data.records import VideoRecord
from sclbench.data.streaming import Corpus, StreamingBatches
from sclbench.data.transforms import build_transform
from sclbench.errors import DataError

LAYOUTS = [  # (corpus, folder under the synthetic root, --format)
    ("coco", "coco", "files"),
    ("f30k", "f30k", "files"),
    ("coco", "arrow", "arrow"),
    ("vg", "pretrain/vg", "files"),
    ("sbu", "pretrain/sbu", "files"),
    ("cc3m", "pretrain/cc3m", "files"),
    ("webvid", "pretrain/webvid", "files"),
]


def record_pairs(records):
    out = []
    for r in records:
        data = r.video.read_bytes() if isinstance(r, VideoRecord) else r.image.read_bytes()
        out.extend((hashlib.sha256(data).hexdigest(), c) for c in r.captions)
    return out


@pytest.mark.parametrize("corpus,folder,layout", LAYOUTS)
def test_data_shard_reads_back_the_source_pairs(synth_root, tmp_path, corpus, folder, layout):
    out = tmp_path / corpus
    assert (
        main(
            [
                "data",
                "shard",
                corpus,
                "--data-root",
                str(synth_root / folder),
                "--out",
                str(out),
                "--format",
                layout,
                "--shard-size",
                "2",
            ]
        )
        == 0
    )
    source = record_pairs(S.corpus_records(corpus, synth_root / folder, layout=layout))
    assert source and S.read_pairs(out) == source  # same digests, same captions, same order
    index = S.read_index(out)
    assert index.pairs == len(source) and len(index.shards) >= 2
    assert index.kind == ("video" if corpus == "webvid" else "image")


def test_shards_are_reproducible_bytes(synth_root, tmp_path):
    records = S.corpus_records("sbu", synth_root / "pretrain/sbu")
    a, b = S.write_shards(records, tmp_path / "a", "sbu", 2), S.write_shards(records, tmp_path / "b", "sbu", 2)
    for x, y in zip(a.shards, b.shards):
        assert x.url != y.url and Path(x.url).read_bytes() == Path(y.url).read_bytes()


def test_img2dataset_shards_without_index(tmp_path, synth_root):
    """img2dataset's own output: KEY.jpg + KEY.txt + KEY.json {"caption"}, no index.json."""
    import webdataset as wds

    records = S.corpus_records("sbu", synth_root / "pretrain/sbu")[:3]
    with wds.TarWriter(str(tmp_path / "00000.tar"), encoder=False) as w:
        for i, r in enumerate(records):
            w.write(
                {
                    "__key__": f"{i:05d}",
                    "jpg": r.image.read_bytes(),
                    "txt": r.captions[0].encode(),
                    "json": json.dumps({"caption": r.captions[0], "url": "x"}).encode(),
                }
            )
    index = S.read_index(tmp_path)
    assert (index.samples, index.pairs, index.kind) == (3, 3, "image")
    assert S.read_pairs(tmp_path) == record_pairs(records)


def test_errors_name_the_fix(tmp_path):
    with pytest.raises(DataError, match="sclbench data shard"):
        S.read_index(tmp_path / "missing")
    with pytest.raises(DataError, match="smaller --shard-size"):
        S.slot_shards(["a.tar", "b.tar"], 0, 4, seed=0, epoch=0)


def test_data_check_takes_data_root_and_the_old_root(synth_root):
    assert main(["data", "check", "pretrain", "--data-root", str(synth_root / "pretrain")]) == 0
    assert main(["data", "check", "pretrain", "--root", str(synth_root / "pretrain")]) == 0


# ---- streaming -------------------------------------------------------------------------------------
class DigestVisuals:
    """Stand-in for Visuals: the image's SHA-256 prefix as a tensor (identifies the sample)."""

    def __call__(self, source):
        data = source.read_bytes() if hasattr(source, "read_bytes") else open(source, "rb").read()
        return torch.tensor(list(hashlib.sha256(data).digest()[:8]), dtype=torch.float32).view(1, 8)


def digest_of(t):
    return bytes(int(v) for v in t.flatten().tolist()).hex()


@pytest.fixture(scope="module")
def coco_shards(synth_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("coco_shards")
    S.write_shards(S.corpus_records("coco", synth_root / "coco"), out, "coco", shard_size=2)  # 13 shards
    return out


def stream(index_dir, tokenizer, visuals, rank=0, world=1, batch=4, extra=(), **kw):
    corpora = [Corpus("coco", "image", index=S.read_index(index_dir)), *extra]
    return StreamingBatches(
        corpora,
        {"image": visuals, "video": visuals},
        tokenizer,
        16,
        {"image": batch},
        rank=rank,
        world=world,
        shuffle_buffer=8,
        negative_pool=4,
        **kw,
    )


def batches(dataset, workers, epoch=0, start=0):
    dataset.set_epoch(epoch, start)
    return list(DataLoader(dataset, batch_size=None, num_workers=workers))


def test_split_is_disjoint_over_2_ranks_x_2_workers(coco_shards, synth_tokenizer):
    per_slot = {}
    for rank in range(2):
        ds = stream(coco_shards, synth_tokenizer, DigestVisuals(), rank=rank, world=2, batch=2)
        out = batches(ds, workers=2)
        assert len(out) == ds.batches_per_epoch == 125 // (2 * 2)  # the same count on both ranks
        for j, b in enumerate(out):  # the DataLoader takes batch j from worker j % 2
            per_slot.setdefault((rank, j % 2), set()).update(digest_of(x) for x in b["images"])
    slots = list(per_slot.values())
    assert len(slots) == 4 and all(slots)
    for i in range(4):
        for k in range(i + 1, 4):
            assert not slots[i] & slots[k], "two readers got the same image"


def test_shuffle_is_seeded_and_reformed_every_epoch(coco_shards, synth_tokenizer):
    texts = lambda out: [t for b in out for t in b["texts"]]  # noqa: E731
    a = texts(batches(stream(coco_shards, synth_tokenizer, DigestVisuals()), 0))
    b = texts(batches(stream(coco_shards, synth_tokenizer, DigestVisuals()), 0))
    c = texts(batches(stream(coco_shards, synth_tokenizer, DigestVisuals()), 0, epoch=1))
    assert a == b and a != c  # same seed: same order; next epoch: a new order
    # of the same pairs: 31 batches x 4 of the 125 pairs, so at most one pair differs between epochs
    assert len(a) == len(c) == 124 and sum((Counter(a) - Counter(c)).values()) <= 1


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_yields_exactly_the_remaining_batches(coco_shards, synth_root, synth_tokenizer, workers):
    """A run killed after batch 3 of epoch 1 and restarted there gets the same samples, the same
    augmentations and the same negatives as the uninterrupted run — with a file corpus mixed in."""
    visuals = Visuals(build_transform("pretrain_train", 32))
    sbu = CaptionDataset(
        S.corpus_records("sbu", synth_root / "pretrain/sbu"),
        visuals,
        synth_tokenizer,
        16,
        neg_images=True,
        neg_distinct=False,
    )
    make = lambda: stream(coco_shards, synth_tokenizer, visuals, extra=[Corpus("sbu", "image", dataset=sbu)])  # noqa
    full = batches(make(), workers, epoch=1)
    resumed = batches(make(), workers, epoch=1, start=3)
    assert len(resumed) == len(full) - 3
    for x, y in zip(full[3:], resumed):
        assert x["texts"] == y["texts"]
        assert torch.equal(x["images"], y["images"]) and torch.equal(x["neg_images"], y["neg_images"])


def test_shard_negatives_come_from_the_same_corpus(coco_shards, synth_root, synth_tokenizer, tmp_path):
    sbu_dir = tmp_path / "sbu"
    S.write_shards(S.corpus_records("sbu", synth_root / "pretrain/sbu"), sbu_dir, "sbu", shard_size=1)
    sbu = {d for d, _ in S.read_pairs(sbu_dir)}
    coco = {d for d, _ in S.read_pairs(coco_shards)}
    ds = stream(
        coco_shards, synth_tokenizer, DigestVisuals(), extra=[Corpus("sbu", "image", index=S.read_index(sbu_dir))]
    )
    seen = 0
    for b in batches(ds, 0):
        for img, neg in zip(b["images"], b["neg_images"]):
            pos, negative = digest_of(img)[:16], digest_of(neg)[:16]
            home = {d[:16] for d in (sbu if pos in {s[:16] for s in sbu} else coco)}
            assert negative in home
            seen += pos in {s[:16] for s in sbu}
    assert seen > 0  # the mixture did draw from both corpora


def test_video_shards_decode_to_clips(synth_root, synth_tokenizer, tmp_path):
    records = S.corpus_records("webvid", synth_root / "pretrain/webvid")
    S.write_shards(records, tmp_path, "webvid", shard_size=2)
    clips = Visuals(build_transform("pretrain_train", 32), num_frames=4, frame_mode="random")
    ds = StreamingBatches(
        [Corpus("webvid", "video", index=S.read_index(tmp_path))],
        {"video": clips},
        synth_tokenizer,
        16,
        {"video": 2},
        rank=0,
        world=1,
        shuffle_buffer=4,
        negative_pool=2,
    )
    out = batches(ds, 0)
    assert len(out) == 2 and out[0]["images"].shape == out[0]["neg_images"].shape == (2, 4, 3, 32, 32)
    direct = CaptionDataset(records, Visuals(build_transform("eval", 32), num_frames=4), synth_tokenizer, 16)
    ds.visuals = {"video": Visuals(build_transform("eval", 32), num_frames=4)}  # deterministic frames
    streamed = {t: img for b in batches(ds, 0) for t, img in zip(b["texts"], b["images"])}
    compared = 0
    for i in range(len(direct)):
        sample = direct[i]
        if sample["text"] in streamed:  # the same clip bytes decode to the same frames
            assert torch.equal(streamed[sample["text"]], sample["image"])
            compared += 1
    assert compared == 4  # 2 batches x 2 clips of the 5


def test_rank_and_world_are_read_when_iterating(coco_shards, synth_tokenizer, monkeypatch):
    """Built before the trainer starts the process group: torchrun's RANK / WORLD_SIZE stand in."""
    ds = stream(coco_shards, synth_tokenizer, DigestVisuals(), rank=None, world=None)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    explicit = stream(coco_shards, synth_tokenizer, DigestVisuals(), rank=1, world=2)
    assert (ds.rank, ds.world, ds.batches_per_epoch) == (1, 2, 125 // 8)
    assert [b["texts"] for b in batches(ds, 0)] == [b["texts"] for b in batches(explicit, 0)]
