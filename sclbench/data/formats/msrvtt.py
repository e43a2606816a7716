"""MSRVTT, 9k train / 1k-A (JSFusion) test, in both published layouts.

json layout (Frozen-in-Time): annotation/MSR_VTT.json (`annotations`: image_id = video id, caption),
  high-quality/structured-symlinks/{train,val}_list_jsfusion.txt (one video id per line) and
  .../jsfusion_val_caption_idx.pkl (video id -> index of its one test caption).
csv layout (CLIP4Clip): MSRVTT_train.9k.csv (column video_id; captions from MSR_VTT.json or
  MSRVTT_data.json `sentences`) and MSRVTT_JSFUSION_test.csv (key, vid_key, video_id, sentence).
Videos: <root>/{videos/all,MSRVTT_Videos,videos}/<id>.mp4. Each file may also sit directly in <root>.
Never mix the 1k-A test with the "full" 2,990-video split.
"""

from __future__ import annotations

import csv
import pickle
from collections import defaultdict
from pathlib import Path

from sclbench.data.formats._io import find_dir, find_file, load_json, media_ok
from sclbench.data.records import SkipCounter, VideoRecord
from sclbench.errors import DataError

LISTS = "high-quality/structured-symlinks/"
VIDEO_DIRS = ["videos/all", "MSRVTT_Videos", "videos"]
SPLITS = ("train", "test")


def _find(root: Path, name: str, what: str) -> Path:
    return find_file(root, [name, LISTS + name, "annotation/" + name, "msrvtt_data/" + name], what)


def detect_layout(root: Path) -> str:
    for name in ("train_list_jsfusion.txt", "val_list_jsfusion.txt"):
        if any((root / d / name).is_file() for d in ("", LISTS)):
            return "json"
    if any((root / d / "MSRVTT_JSFUSION_test.csv").is_file() for d in ("", "msrvtt_data")):
        return "csv"
    raise DataError(f"{root} holds neither *_list_jsfusion.txt nor MSRVTT_JSFUSION_test.csv; "
                    "download the MSRVTT split files (see `sclbench data check msrvtt`)")


def captions_by_video(root: Path) -> dict[str, list[str]]:
    """Video id -> captions in file order, from MSR_VTT.json or MSRVTT_data.json."""
    try:
        path = _find(root, "MSR_VTT.json", "MSRVTT captions MSR_VTT.json")
    except DataError:
        path = _find(root, "MSRVTT_data.json", "MSRVTT captions MSR_VTT.json or MSRVTT_data.json")
    doc = load_json(path)
    key, vid = ("annotations", "image_id") if "annotations" in doc else ("sentences", "video_id")
    if not isinstance(doc.get(key), list):
        raise DataError(f"{path}: expected an 'annotations' or 'sentences' list")
    caps: dict[str, list[str]] = defaultdict(list)
    for i, entry in enumerate(doc[key]):
        if not isinstance(entry, dict) or not isinstance(entry.get(vid), str) \
                or not isinstance(entry.get("caption"), str):
            raise DataError(f"{path}, {key}[{i}]: expected an object with string {vid!r} and 'caption'")
        caps[entry[vid]].append(entry["caption"])
    return caps


def _read_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: header lacks column(s) {missing}; expected {list(columns)}")
        rows = []
        for lineno, row in enumerate(reader, 2):
            if any(row.get(c) in (None, "") for c in columns):
                raise DataError(f"{path}, line {lineno}: empty or missing value in {list(columns)}")
            rows.append((lineno, row))
    return rows


def video_dir(root: Path) -> Path:
    return find_dir(root, VIDEO_DIRS) or root / VIDEO_DIRS[0]


def read_msrvtt(root: str | Path, split: str, *, layout: str = "auto",
                skip: SkipCounter | None = None) -> list[VideoRecord]:
    """train: one record per video with all its captions; test: 1k-A, one caption per video."""
    if split not in SPLITS:
        raise DataError(f"unknown MSRVTT split {split!r}; use train or test (the 1k-A JSFusion test)")
    root = Path(root)
    layout = detect_layout(root) if layout == "auto" else layout
    videos = video_dir(root)
    pairs: list[tuple[str, list[str]]] = []
    if split == "train":
        if layout == "json":
            ids = _read_list(_find(root, "train_list_jsfusion.txt", "MSRVTT train_list_jsfusion.txt"))
        else:
            path = _find(root, "MSRVTT_train.9k.csv", "MSRVTT_train.9k.csv")
            ids = [row["video_id"] for _, row in _read_csv(path, ("video_id",))]
        caps = captions_by_video(root)
        for vid in ids:
            if not caps.get(vid):
                raise DataError(f"MSRVTT train video {vid} has no caption in the caption file")
            pairs.append((vid, caps[vid]))
    elif layout == "json":
        ids = _read_list(_find(root, "val_list_jsfusion.txt", "MSRVTT val_list_jsfusion.txt"))
        pkl = _find(root, "jsfusion_val_caption_idx.pkl", "MSRVTT jsfusion_val_caption_idx.pkl")
        try:
            with open(pkl, "rb") as f:
                index = pickle.load(f)
        except Exception as err:  # any unpickling failure means a broken download
            raise DataError(f"cannot read {pkl}: {err}; re-download it") from None
        caps = captions_by_video(root)
        for vid in ids:
            if vid not in index or not 0 <= int(index[vid]) < len(caps.get(vid, [])):
                raise DataError(f"{pkl}: no valid caption index for test video {vid}")
            pairs.append((vid, [caps[vid][int(index[vid])]]))
    else:
        path = _find(root, "MSRVTT_JSFUSION_test.csv", "MSRVTT_JSFUSION_test.csv")
        pairs = [(row["video_id"], [row["sentence"]])
                 for _, row in _read_csv(path, ("video_id", "sentence"))]
    records = []
    for vid, captions in pairs:
        path = videos / f"{vid}.mp4"
        if media_ok(path, skip, "video"):
            records.append(VideoRecord(path, vid, captions, split))
    return records
