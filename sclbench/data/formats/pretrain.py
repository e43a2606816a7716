"""Pre-training caption corpora: COCO (Karpathy), Visual Genome, SBU, CC3M, WebVid-style video lists.

Layouts:
  coco    see formats/karpathy.py (train + restval)
  vg      <root>/annotations/region_descriptions.json (or <root>/region_descriptions.json): a list of
          {"id": image id, "regions": [{"phrase": ...}, ...]}; images <root>/images/VG_100K{,_2}/<id>.jpg
  sbu     <root>/annot.json: a list of [image path relative to <root>/images_train/, caption]
  cc3m    <root>/<split>_annot.json: [image path relative to <root>/images_<split>/, caption] pairs
          (ViLT), or <root>/<split>.tsv: caption <TAB> image path relative to <root>, no header
  webvid  a CSV/TSV of (caption, video path) without header (Region_Learner meta files), or the
          official WebVid CSV with header videoid,name,page_dir (video <video_root>/<page_dir>/<videoid>.mp4)

Captions are de-duplicated per image by default (`dedup_captions`): the official caption datasets do
it for every corpus (`remove_duplicate=True`); it matters for VG, whose region phrases repeat.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sclbench.data.formats._io import (
    dedup,
    expect_dict,
    field,
    find_file,
    load_json,
    media_ok,
    not_empty,
    read_csv_table,
    read_text,
    text_lines,
    unique,
)
from sclbench.data.formats.karpathy import read_karpathy
from sclbench.data.records import CaptionRecord, ImageSource, SkipCounter, VideoRecord
from sclbench.errors import DataError


def read_coco_pretrain(
    root: str | Path, *, dedup_captions: bool = True, skip: SkipCounter | None = None
) -> list[CaptionRecord]:
    return read_karpathy(root, "coco", "train", coco_train_with_restval=True, dedup_captions=dedup_captions, skip=skip)


def read_vg(root: str | Path, *, dedup_captions: bool = True, skip: SkipCounter | None = None) -> list[CaptionRecord]:
    """One record per image with its region phrases; ids unique; an image without regions is left out
    (VG has a few, and the official table has no row for them)."""
    root = Path(root)
    path = find_file(
        root,
        ["annotations/region_descriptions.json", "region_descriptions.json"],
        "Visual Genome region_descriptions.json",
    )
    doc = load_json(path)
    if not isinstance(doc, list):
        raise DataError(f"{path}: expected a list of images with regions")
    not_empty(doc, path, "images")
    records, seen = [], {}
    for i, entry in enumerate(doc):
        where = f"entry {i}"
        expect_dict(entry, path, where)
        regions = field(entry, "regions", path, where, list)
        phrases = [field(r, "phrase", path, f"{where} region {j}", str) for j, r in enumerate(regions)]
        # the published file says "id"; some re-exports say "image_id"
        image_id = field(entry, "id" if "id" in entry else "image_id", path, where, (int, str))
        unique(str(image_id), seen, path, where, "image id")
        candidates = [root / "images" / d / f"{image_id}.jpg" for d in ("VG_100K", "VG_100K_2")]
        image = next((c for c in candidates if c.exists()), candidates[0])
        if phrases and media_ok(image, skip, listed_in=f"{path}, {where}"):
            records.append(
                CaptionRecord(
                    ImageSource(path=image), str(image_id), dedup(phrases) if dedup_captions else phrases, "train"
                )
            )
    return records


def _pairs(path: Path) -> list[tuple[str, str]]:
    doc = load_json(path)
    if not isinstance(doc, list):
        raise DataError(f"{path}: expected a list of [image path, caption] pairs")
    if not doc:
        raise DataError(f"{path}: the list of [image path, caption] pairs is empty; re-download it")
    for i, pair in enumerate(doc):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise DataError(f"{path}, entry {i}: expected [image path, caption], got {pair!r:.80}")
    return [tuple(p) for p in doc]


def _caption_records(pairs, base: Path, split: str, skip, source: Path) -> list[CaptionRecord]:
    records = []
    for i, (rel, caption) in enumerate(pairs):
        image = base / rel
        if media_ok(image, skip, listed_in=f"{source}, entry {i}"):
            records.append(CaptionRecord(ImageSource(path=image), rel, [caption], split))
    return records


def read_sbu(root: str | Path, *, skip: SkipCounter | None = None) -> list[CaptionRecord]:
    root = Path(root)
    path = find_file(root, ["annot.json"], "SBU annot.json")
    return _caption_records(_pairs(path), root / "images_train", "train", skip, path)


def read_cc3m(root: str | Path, split: str = "train", *, skip: SkipCounter | None = None) -> list[CaptionRecord]:
    root = Path(root)
    if (root / f"{split}_annot.json").is_file():
        annot = root / f"{split}_annot.json"
        return _caption_records(_pairs(annot), root / f"images_{split}", split, skip, annot)
    path = find_file(root, [f"{split}_annot.json", f"{split}.tsv"], f"CC3M {split} annotations")
    pairs = []
    for lineno, line in text_lines(path):  # no header, two fields: read by line for exact line numbers
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise DataError(f"{path}, line {lineno}: expected caption<TAB>image path")
        pairs.append((parts[1], parts[0]))
    if not pairs:
        raise DataError(f"{path}: no caption<TAB>image path line; re-download the file")
    return _caption_records(pairs, root, split, skip, path)


def read_webvid(
    meta: str | Path, video_root: str | Path | None = None, *, split: str = "train", skip: SkipCounter | None = None
) -> list[VideoRecord]:
    """Videos with one caption each; paths are relative to `video_root` (default: the meta file's folder)."""
    meta = Path(meta)
    video_root = Path(video_root) if video_root is not None else meta.parent
    if not meta.is_file():
        raise DataError(f"WebVid meta file {meta} not found")
    delimiter = "\t" if meta.suffix == ".tsv" else ","
    text = read_text(meta)
    header = next(csv.reader(io.StringIO(text.split("\n", 1)[0]), delimiter=delimiter), [])
    records = []
    if {"videoid", "name", "page_dir"} <= set(header):
        # the official CSV: a header, quoted captions with commas; pandas reads it and names bad rows
        items = [
            (row["name"], f"{row['page_dir']}/{row['videoid']}.mp4", lineno)
            for lineno, row in read_csv_table(meta, ("videoid", "name", "page_dir"), sep=delimiter)
        ]
    else:
        items = []
        try:
            rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
        except csv.Error as err:
            raise DataError(f"{meta}: malformed {'TSV' if delimiter == chr(9) else 'CSV'} ({err})") from None
        for lineno, r in enumerate(rows, 1):
            if not any(x.strip() for x in r):
                continue
            if len(r) < 2 or not r[0].strip() or not r[1].strip():
                raise DataError(f"{meta}, line {lineno}: expected caption{delimiter!r}video path")
            items.append((r[0], r[1], lineno))
    if not items:
        raise DataError(f"{meta}: no video listed; re-download the meta file")
    for caption, rel, lineno in items:
        path = video_root / rel
        if media_ok(path, skip, "video", listed_in=f"{meta}, line {lineno}"):
            records.append(VideoRecord(path, Path(rel).stem, [caption], split))
    return records
