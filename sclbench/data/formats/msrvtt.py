"""MSRVTT, 9k train / 1k-A (JSFusion) test, in both published layouts.

json layout (Frozen-in-Time): annotation/MSR_VTT.json (`annotations`: image_id = video id, caption),
  high-quality/structured-symlinks/{train,val}_list_jsfusion.txt (one video id per line) and
  .../jsfusion_val_caption_idx.pkl (video id -> index of its one test caption).
csv layout (CLIP4Clip): MSRVTT_train.9k.csv (column video_id; captions from MSR_VTT.json or
  MSRVTT_data.json `sentences`) and MSRVTT_JSFUSION_test.csv (key, vid_key, video_id, sentence).
Videos: <root>/{videos/all,MSRVTT_Videos,videos}/<id>.mp4. Each file may also sit directly in <root>.
Never mix the 1k-A test with the "full" 2,990-video split.

Training captions per video (`captions`, card key `data.captions`):
  first  one caption per video, its first in the caption file: what the official `MsrvttDataset`
         keeps (`metadata[idx][0]` after grouping the captions by video). The default.
  all    every caption of the video (~20), each a training pair: CLIP4Clip's protocol.
The test split is one caption per video in both (the JSFusion caption), as the 1k-A protocol fixes.
"""

from __future__ import annotations

import numbers
from collections import defaultdict
from pathlib import Path

from sclbench.common.safe_pickle import load_plain
from sclbench.data.formats._io import (
    expect_dict,
    field,
    find_dir,
    find_file,
    load_json,
    media_ok,
    not_empty,
    read_csv_table,
    text_lines,
    unique,
)
from sclbench.data.records import SkipCounter, VideoRecord
from sclbench.errors import DataError

LISTS = "high-quality/structured-symlinks/"
VIDEO_DIRS = ["videos/all", "MSRVTT_Videos", "videos"]
SPLITS = ("train", "test")
CAPTION_PROTOCOLS = ("first", "all")
DEFAULT_CAPTIONS = "first"  # the official dataset's choice


def caption_protocol(captions: str = DEFAULT_CAPTIONS) -> dict[str, str]:
    """What a run record says about MSRVTT's captions (the card's `data.captions`, checked)."""
    if captions not in CAPTION_PROTOCOLS:
        raise DataError(f"MSRVTT captions must be one of {CAPTION_PROTOCOLS}, not {captions!r}")
    return {
        "train_captions": captions,
        "train_captions_source": "official MsrvttDataset (first caption per video)"
        if captions == "first"
        else "CLIP4Clip (all captions per video)",
        "test": "1k-A JSFusion, one caption per video",
    }


def _find(root: Path, name: str, what: str) -> Path:
    return find_file(root, [name, LISTS + name, "annotation/" + name, "msrvtt_data/" + name], what)


def detect_layout(root: Path) -> str:
    for name in ("train_list_jsfusion.txt", "val_list_jsfusion.txt"):
        if any((root / d / name).is_file() for d in ("", LISTS)):
            return "json"
    if any((root / d / "MSRVTT_JSFUSION_test.csv").is_file() for d in ("", "msrvtt_data")):
        return "csv"
    raise DataError(
        f"{root} holds neither *_list_jsfusion.txt nor MSRVTT_JSFUSION_test.csv; "
        "download the MSRVTT split files (see `sclbench data check msrvtt`)"
    )


def caption_file(root: Path) -> Path:
    try:
        return _find(root, "MSR_VTT.json", "MSRVTT captions MSR_VTT.json")
    except DataError:
        return _find(root, "MSRVTT_data.json", "MSRVTT captions MSR_VTT.json or MSRVTT_data.json")


def captions_by_video(root: Path) -> tuple[Path, dict[str, list[str]]]:
    """(caption file, video id -> captions in file order), from MSR_VTT.json or MSRVTT_data.json."""
    path = caption_file(root)
    doc = expect_dict(load_json(path), path, "top level")
    key, vid = ("annotations", "image_id") if "annotations" in doc else ("sentences", "video_id")
    entries = doc.get(key)
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected an 'annotations' (MSR_VTT.json) or 'sentences' (MSRVTT_data.json) list")
    not_empty(entries, path, "captions")
    caps: dict[str, list[str]] = defaultdict(list)
    for i, entry in enumerate(entries):
        where = f"{key}[{i}]"
        caps[field(entry, vid, path, where, str)].append(field(entry, "caption", path, where, str))
    return path, caps


def _read_list(path: Path) -> list[tuple[int, str]]:
    """(line, video id) of a split list; a video listed twice is refused."""
    ids, seen = [], {}
    for lineno, line in text_lines(path):
        vid = line.strip()
        if vid:
            unique(vid, seen, path, f"line {lineno}", "video id")
            ids.append((lineno, vid))
    if not ids:
        raise DataError(f"{path}: the split list is empty; re-download it")
    return ids


def _read_caption_index(pkl: Path, listed: list[tuple[int, str]], list_path: Path) -> dict[str, int]:
    """The JSFusion caption index, joined both ways with the test list."""
    # A pickle is code: the safe loader rebuilds only data (a dict, or the pandas Series some copies
    # hold, as a dict) and refuses any other global, naming it.
    index = load_plain(pkl, "caption index", hint="the MSRVTT_JSFUSION_test.csv layout needs no pickle")
    if not isinstance(index, dict):
        raise DataError(f"{pkl}: expected a mapping video id -> caption index, got {type(index).__name__}")
    ids = {vid for _, vid in listed}
    extra = sorted(str(k) for k in index if k not in ids)
    if extra:
        raise DataError(
            f"{pkl}: caption index for video(s) not in {list_path}: {extra[:5]}; the two files "
            "come from different releases: re-download both"
        )
    for lineno, vid in listed:
        value = index.get(vid)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):  # numpy ints count
            raise DataError(f"{list_path}, line {lineno}: test video {vid} has no integer caption index in {pkl}")
    return {vid: int(index[vid]) for _, vid in listed}


def _with_captions(listed, list_path: Path, caps_path: Path, caps: dict[str, list[str]]):
    for lineno, vid in listed:
        if not caps.get(vid):
            raise DataError(
                f"{list_path}, line {lineno}: video {vid} has no caption in {caps_path}; the "
                "split list and the caption file do not match: re-download both"
            )
        yield lineno, vid, caps[vid]


def video_dir(root: Path) -> Path:
    return find_dir(root, VIDEO_DIRS) or root / VIDEO_DIRS[0]


def read_msrvtt(
    root: str | Path,
    split: str,
    *,
    layout: str = "auto",
    captions: str = DEFAULT_CAPTIONS,
    skip: SkipCounter | None = None,
) -> list[VideoRecord]:
    """train: one record per video (`captions`: its first or all captions); test: 1k-A, one caption each."""
    if split not in SPLITS:
        raise DataError(f"unknown MSRVTT split {split!r}; use train or test (the 1k-A JSFusion test)")
    caption_protocol(captions)
    if layout not in ("auto", "json", "csv"):
        raise DataError(f"MSRVTT layout must be auto, json or csv, not {layout!r}")
    root = Path(root)
    layout = detect_layout(root) if layout == "auto" else layout
    videos = video_dir(root)
    pairs: list[tuple[str, list[str], str]] = []  # (video, captions, where it was listed)
    if split == "train":
        if layout == "json":
            list_path = _find(root, "train_list_jsfusion.txt", "MSRVTT train_list_jsfusion.txt")
            listed = _read_list(list_path)
        else:
            list_path = _find(root, "MSRVTT_train.9k.csv", "MSRVTT_train.9k.csv")
            listed, seen = [], {}
            for lineno, row in read_csv_table(list_path, ("video_id",)):
                unique(row["video_id"], seen, list_path, f"line {lineno}", "video id")
                listed.append((lineno, row["video_id"]))
        caps_path, caps = captions_by_video(root)
        for lineno, vid, texts in _with_captions(listed, list_path, caps_path, caps):
            pairs.append((vid, list(texts) if captions == "all" else [texts[0]], f"{list_path}, line {lineno}"))
    elif layout == "json":
        list_path = _find(root, "val_list_jsfusion.txt", "MSRVTT val_list_jsfusion.txt")
        listed = _read_list(list_path)
        pkl = _find(root, "jsfusion_val_caption_idx.pkl", "MSRVTT jsfusion_val_caption_idx.pkl")
        index = _read_caption_index(pkl, listed, list_path)
        caps_path, caps = captions_by_video(root)
        for lineno, vid, texts in _with_captions(listed, list_path, caps_path, caps):
            if not 0 <= index[vid] < len(texts):
                raise DataError(
                    f"{pkl}: caption index {index[vid]} of test video {vid} ({list_path}, line "
                    f"{lineno}) is outside its {len(texts)} captions in {caps_path}"
                )
            pairs.append((vid, [texts[index[vid]]], f"{list_path}, line {lineno}"))
    else:
        path = _find(root, "MSRVTT_JSFUSION_test.csv", "MSRVTT_JSFUSION_test.csv")
        seen: dict = {}
        for lineno, row in read_csv_table(path, ("video_id", "sentence")):
            unique(row["video_id"], seen, path, f"line {lineno}", "video id")
            pairs.append((row["video_id"], [row["sentence"]], f"{path}, line {lineno}"))
    records = []
    for vid, texts, listed_at in pairs:
        path = videos / f"{vid}.mp4"
        if media_ok(path, skip, "video", listed_in=listed_at):
            records.append(VideoRecord(path, vid, texts, split))
    return records
