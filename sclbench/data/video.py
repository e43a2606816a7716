"""Reading clips: decord for video files, PIL for 1-fps frame folders; frame index sampling.

Sampling (official `base_video_dataset.py`, scl-official.md §4.5):
- "uniform" (evaluation): F indices linspace(0, n-1, F) truncated to int — identical to the official.
- "random" (training): F+1 integer boundaries over [0, n]; one frame drawn uniformly in each segment.
  The official draws from range(start, end-1), excluding each segment's last frame and crashing on a
  one-frame segment (then silently using another sample); we draw from the whole segment and, when a
  clip has fewer frames than F, repeat frames instead of failing.
Frame folders are sampled like videos (the official always used uniform sampling for them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sclbench.errors import DataError

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


def sample_frame_indices(num_frames_total: int, num_frames: int, mode: str = "uniform",
                         generator: torch.Generator | None = None) -> list[int]:
    """`num_frames` indices into a clip of `num_frames_total` frames (repeats if the clip is short)."""
    n, f = num_frames_total, num_frames
    if n < 1:
        raise ValueError("a clip needs at least one frame")
    if mode == "uniform":
        return np.linspace(0, n - 1, f).astype(int).tolist()
    if mode == "random":
        bounds = np.linspace(0, n, f + 1).astype(int)
        draws = torch.rand(f, generator=generator).numpy()
        out = []
        for start, end, u in zip(bounds[:-1], bounds[1:], draws):
            width = max(int(end - start), 1)  # an empty segment (n < F) takes its start frame
            out.append(min(int(start + u * width), n - 1))
        return out
    raise ValueError(f"unknown frame sampling mode {mode!r}; use 'uniform' or 'random'")


def list_frames(folder: Path) -> list[Path]:
    frames = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not frames:
        raise DataError(f"frame folder {folder} holds no .jpg/.png frames; re-extract the clip")
    return frames


def count_frames(clip: str | Path) -> int:
    clip = Path(clip)
    if clip.is_dir():
        return len(list_frames(clip))
    return len(_open_video(clip))


def _open_video(path: Path):
    import decord

    if not path.is_file():
        raise DataError(f"missing video {path}; restore it or pass the skip option to leave it out")
    try:
        reader = decord.VideoReader(str(path), num_threads=1)
    except Exception as err:  # decord raises its own DECORDError (and RuntimeError) on bad input
        raise DataError(f"corrupt video {path}: {str(err).splitlines()[0][:200]}; re-download or "
                        "re-encode it, or pass the skip option") from None
    if len(reader) == 0:
        raise DataError(f"video {path} has no frames; re-download or re-encode it")
    return reader


def read_clip(clip: str | Path, num_frames: int, mode: str = "uniform",
              generator: torch.Generator | None = None) -> list[Image.Image]:
    """`num_frames` RGB frames of a video file or a frame folder, as PIL images."""
    clip = Path(clip)
    if clip.is_dir():
        frames = list_frames(clip)
        idx = sample_frame_indices(len(frames), num_frames, mode, generator)
        out = []
        for i in idx:
            try:
                with Image.open(frames[i]) as img:
                    out.append(img.convert("RGB"))
            except OSError as err:
                raise DataError(f"corrupt frame {frames[i]}: {err}; re-extract the clip") from None
        return out
    reader = _open_video(clip)
    idx = sample_frame_indices(len(reader), num_frames, mode, generator)
    try:
        array = reader.get_batch(idx).asnumpy()
    except Exception as err:
        raise DataError(f"corrupt video {clip}: cannot decode frames {idx} ({str(err)[:200]})") from None
    return [Image.fromarray(a) for a in array]
