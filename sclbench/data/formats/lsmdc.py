"""LSMDC (movie description), text-video retrieval splits.

Annotations (tab-separated, no header: clip id, start_aligned, end_aligned, start_extracted,
end_extracted, sentence): LSMDC16_annos_training.csv (train), LSMDC16_annos_val.csv (val),
LSMDC16_challenge_1000_publictect.csv (test, the 1,000-clip public test).
Clips: 1-fps frame folders <root>/frames_1fps/<clip>/<clip>_{idx:06d}.jpg (1-based), or video files
<root>/videos/<movie>/<clip>.{mp4,avi} or <root>/videos/<clip>.{mp4,avi}, where <movie> is the clip id
without its trailing `_<timestamps>` part.

Captions per clip (`captions`, card key `data.captions`): `first` keeps the first sentence of each clip
id, as the official `LsmdcDataset` does in every split (`if clip_id not in video_id_list`); `all`
keeps every sentence (a clip id repeats in the training file). The 1,000-clip test has one each.
The files have no header and a fixed six-field contract, so they are read line by line (each
error names its line), not through pandas.
"""

from __future__ import annotations

from pathlib import Path

from sclbench.data.formats._io import find_file, media_ok, text_lines
from sclbench.data.records import SkipCounter, VideoRecord
from sclbench.errors import DataError

FILES = {
    "train": "LSMDC16_annos_training.csv",
    "val": "LSMDC16_annos_val.csv",
    "test": "LSMDC16_challenge_1000_publictect.csv",
}
# Two clips the official code hard-excludes (broken in the released frames); kept out by default.
EXCLUDED = ("0010_Frau_Ohne_Gewissen_00.07.27.289-00.07.28.932", "0001_American_Beauty_00.47.41.233-00.47.44.273")
FRAMES_DIR = "frames_1fps"
CAPTION_PROTOCOLS = ("first", "all")
DEFAULT_CAPTIONS = "first"  # the official dataset's choice
VIDEOS_DIR = "videos"


def annotation_file(root: Path, split: str) -> Path:
    return find_file(root, [FILES[split], f"annotations/{FILES[split]}"], f"LSMDC {split} file {FILES[split]}")


def movie_of(clip: str) -> str:
    return clip.rsplit("_", 1)[0]


def clip_path(root: Path, clip: str, media: str = "auto") -> Path:
    """Where the clip lives; with media="auto", a frame folder wins over a video file."""
    root = Path(root)
    frames = root / FRAMES_DIR / clip
    if media == "frames" or (media == "auto" and frames.is_dir()):
        return frames
    for folder in (root / VIDEOS_DIR / movie_of(clip), root / VIDEOS_DIR):
        for ext in (".mp4", ".avi"):
            if (folder / (clip + ext)).is_file():
                return folder / (clip + ext)
    return frames if media == "auto" else root / VIDEOS_DIR / movie_of(clip) / (clip + ".mp4")


def read_lsmdc(
    root: str | Path,
    split: str,
    *,
    media: str = "auto",
    exclude: tuple[str, ...] = EXCLUDED,
    captions: str = DEFAULT_CAPTIONS,
    skip: SkipCounter | None = None,
) -> list[VideoRecord]:
    """One record per clip id (first appearance order), its first or all captions in file order."""
    if split not in FILES:
        raise DataError(f"unknown LSMDC split {split!r}; use one of {sorted(FILES)}")
    if media not in ("auto", "frames", "video"):
        raise DataError(f"LSMDC media must be auto, frames or video, not {media!r}")
    if captions not in CAPTION_PROTOCOLS:
        raise DataError(f"LSMDC captions must be one of {CAPTION_PROTOCOLS}, not {captions!r}")
    root = Path(root)
    path = annotation_file(root, split)
    by_clip: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    for lineno, line in text_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 6 or not parts[0].strip() or not parts[5].strip():
            raise DataError(
                f"{path}, line {lineno}: expected 6 tab-separated fields (clip id, four "
                f"timestamps, sentence), got {len(parts)}"
                + ("" if len(parts) < 6 else " with an empty clip id or sentence")
            )
        by_clip.setdefault(parts[0].strip(), []).append("\t".join(parts[5:]).strip())
        first_line.setdefault(parts[0].strip(), lineno)
    if not by_clip:
        raise DataError(f"{path}: no annotation line; re-download the file")
    records = []
    for clip, caps in by_clip.items():
        caps = caps if captions == "all" else caps[:1]
        if clip in exclude:
            continue
        where = clip_path(root, clip, media)
        if media_ok(where, skip, "video", listed_in=f"{path}, line {first_line[clip]}"):
            records.append(VideoRecord(where, clip, caps, split))
    return records
