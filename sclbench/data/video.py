"""Reading clips: decord (or PyAV) for video files, PIL for 1-fps frame folders; frame index sampling.

Sampling (official `base_video_dataset.py`, scl-official.md §4.5):
- "uniform" (evaluation): F indices linspace(0, n-1, F) truncated to int — identical to the official.
- "random" (training, video files): F+1 integer boundaries over [0, n]; in each segment one frame is
  drawn uniformly from range(start, end-1), i.e. the segment's last frame is never drawn, as in the
  official. Where the official crashes (a segment of one or no frame: clips shorter than 2F frames,
  and the sample is silently replaced by a random other one), the segment's start frame is taken.
Frame folders: the official reads them uniformly in training too (LSMDC's 1-fps folders); the LSMDC
card sets `train.frame_mode: uniform` (random is the named option).

Decoding backends (option `SCLBENCH_VIDEO_BACKEND` = auto | decord | pyav; `auto` is the default):
the official code decodes with decord, and so does sclbench where decord imports; where it does not
(no wheel for the platform), PyAV decodes the same clip. Both count every decoded frame of the first
video stream and index frames in decode (presentation) order, so the same indices select the same
frames; pixel values agree within the two libraries' YUV->RGB conversion (a few levels of 255).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sclbench.data.records import decode_rgb
from sclbench.errors import ConfigError, DataError

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


def sample_frame_indices(
    num_frames_total: int, num_frames: int, mode: str = "uniform", generator: torch.Generator | None = None
) -> list[int]:
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
            width = int(end - start) - 1  # official: random.choice(range(start, end - 1))
            out.append(min(int(start + u * width) if width >= 1 else int(start), n - 1))
        return out
    raise ValueError(f"unknown frame sampling mode {mode!r}; use 'uniform' or 'random'")


def list_frames(folder: Path) -> list[Path]:
    try:
        frames = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    except OSError as err:
        raise DataError(f"cannot list frame folder {folder}: {err.strerror}; check its permissions") from None
    if not frames:
        raise DataError(f"frame folder {folder} holds no .jpg/.png frames; re-extract the clip")
    return frames


BACKENDS = ("auto", "decord", "pyav")


@lru_cache(maxsize=1)
def _decord_importable() -> bool:
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


def video_backend(requested: str | None = None) -> str:
    """The decoder to use: `requested`, else $SCLBENCH_VIDEO_BACKEND, else decord if importable, else PyAV."""
    choice = (requested or os.environ.get("SCLBENCH_VIDEO_BACKEND") or "auto").lower()
    if choice not in BACKENDS:
        raise ConfigError(
            f"unknown video backend {choice!r} (SCLBENCH_VIDEO_BACKEND); use one of {', '.join(BACKENDS)}"
        )
    if choice == "auto":
        return "decord" if _decord_importable() else "pyav"
    if choice == "decord" and not _decord_importable():
        raise ConfigError(
            "video backend 'decord' asked for but decord is not installed: `pip install "
            "decord`, or use SCLBENCH_VIDEO_BACKEND=pyav"
        )
    return choice


def count_frames(clip: str | Path, backend: str | None = None) -> int:
    clip = Path(clip)
    if clip.is_dir():
        return len(list_frames(clip))
    _check_file(clip)
    if video_backend(backend) == "decord":
        return len(_open_decord(clip))
    return _pyav_count(clip)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"missing video {path}; restore it or pass the skip option to leave it out")


# decord prefixes its messages with "[hh:mm:ss] /build/path/file.cc:123: " (and may add its C++ stack).
_DECORD_PREFIX = re.compile(r"\[[\d:]+\] \S+:\d+: |Check failed: .* vs\. -?\d+\) ")


def _corrupt(path: Path, err: BaseException, what: str = "") -> DataError:
    """One line naming the file for any decoder failure (truncated, garbage, corrupt mid-stream,
    unsupported codec, no stream): the datasets' skip option catches it like any other bad sample."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reason = _DECORD_PREFIX.sub("", lines[0])[:200] if lines else type(err).__name__
    return DataError(f"corrupt video {path}: {what}{reason}; re-download or re-encode it, or pass the skip option")


def _no_frames(path: Path) -> DataError:
    return DataError(f"video {path} has no frames; re-download or re-encode it, or pass the skip option")


def _open_decord(path: Path):
    import decord

    try:  # decord raises its own DECORDError, RuntimeError, ValueError... on bad input: all a bad file
        reader = decord.VideoReader(str(path), num_threads=1)
        frames = len(reader)
    except Exception as err:  # noqa: BLE001  (any decoder failure is a bad file)
        raise _corrupt(path, err) from None
    if frames <= 0:
        raise _no_frames(path)
    return reader


def _decord_frames(path: Path, num_frames: int, mode: str, generator) -> list[np.ndarray]:
    reader = _open_decord(path)
    idx = sample_frame_indices(len(reader), num_frames, mode, generator)
    try:
        frames = list(reader.get_batch(idx).asnumpy())
    except Exception as err:  # noqa: BLE001
        raise _corrupt(path, err, f"cannot decode frames {idx}: ") from None
    if len(frames) != len(idx) or any(f.ndim != 3 or f.shape[-1] != 3 or 0 in f.shape for f in frames):
        raise DataError(
            f"corrupt video {path}: frames {idx} decoded to {len(frames)} RGB pictures; re-download "
            "or re-encode it, or pass the skip option"
        )
    return frames


def _pyav_decode(path: Path, wanted: set[int] | None):
    """Decode the first video stream in order: (frame count, {index: RGB array} for `wanted`)."""
    import av

    picked: dict[int, np.ndarray] = {}
    count = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path} holds no video stream; re-download or re-encode it, or pass the skip option")
            stream = container.streams.video[0]
            stream.thread_type = "NONE"  # one thread per dataloader worker, like decord's num_threads=1
            for frame in container.decode(stream):
                if wanted is not None and count in wanted:
                    picked[count] = frame.to_ndarray(format="rgb24")
                count += 1
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001  FFmpegError, OSError, ValueError, codec lookups...: all a bad file
        raise _corrupt(path, err) from None
    if count == 0:
        raise _no_frames(path)
    return count, picked


def _pyav_count(path: Path) -> int:
    return _pyav_decode(path, None)[0]


def _pyav_frames(path: Path, num_frames: int, mode: str, generator) -> list[np.ndarray]:
    # Two passes (count, then pick) keep memory to the F chosen frames, never the whole clip.
    idx = sample_frame_indices(_pyav_count(path), num_frames, mode, generator)
    _, picked = _pyav_decode(path, set(idx))
    if len(picked) < len(set(idx)):  # a second decode that ends early: the file changed or is damaged
        raise DataError(
            f"corrupt video {path}: frames {sorted(set(idx) - set(picked))} did not decode; "
            "re-download or re-encode it, or pass the skip option"
        )
    return [picked[i] for i in idx]


def read_clip(
    clip: str | Path,
    num_frames: int,
    mode: str = "uniform",
    generator: torch.Generator | None = None,
    backend: str | None = None,
) -> list[Image.Image]:
    """`num_frames` RGB frames of a video file or a frame folder, as PIL images."""
    clip = Path(clip)
    if clip.is_dir():
        frames = list_frames(clip)
        idx = sample_frame_indices(len(frames), num_frames, mode, generator)
        out = []
        for i in idx:
            try:
                data = frames[i].read_bytes()
            except OSError as err:
                raise DataError(f"cannot read frame {frames[i]}: {err.strerror}; re-extract the clip") from None
            out.append(decode_rgb(data, str(frames[i]), fix="re-extract the clip, or pass the skip option"))
        return out
    _check_file(clip)
    read = _decord_frames if video_backend(backend) == "decord" else _pyav_frames
    return [Image.fromarray(a) for a in read(clip, num_frames, mode, generator)]
