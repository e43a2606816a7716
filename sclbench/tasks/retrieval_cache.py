"""On-disk caches of retrieval evaluation: unimodal features and cross-encoder score chunks.

Both live under `--cache-dir`, named by a key that hashes everything that changes their numbers:
the model's identity (`identity()`: checkpoint digest, hub id, revision; a model with none is never
cached) and preprocessing, task + split, the data fingerprint (annotation files), the media files
(path, size, mtime), the preprocessed texts (token ids of every caption, so tokenizer, text length and
caption edits all change it), frames and the precision; score chunks add mode, k, batch and chunk
sizes, the model's scoring settings and the candidate pairs themselves. A key that differs is another
file: a stale entry is never read.

Score chunks are written (atomically) as they are computed, so a killed evaluation rerun with the same
arguments reuses every finished chunk and computes the rest; chunk boundaries are multiples of the
pair batch, so the reused numbers are bit-identical to a run that was never interrupted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from sclbench.common.io import atomic_write
from sclbench.common.safe_pickle import load_torch
from sclbench.errors import DataError

FORMAT_VERSION = 3  # 3: per-model entry dicts; bump when what a cached file holds changes meaning


def digest(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (tensors hash by dtype, shape and bytes)."""
    h = hashlib.sha256(f"v{FORMAT_VERSION}".encode())
    for part in parts:
        if isinstance(part, torch.Tensor):
            t = part.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def media_fingerprint(media: Sequence[Any]) -> str:
    """Hash of the media list: each path with its size and modification time (contents of images and
    videos are too large to hash per evaluation; a replaced file changes size or mtime)."""
    h = hashlib.sha256()
    for item in media:
        h.update(str(item).encode())
        try:
            st = os.stat(item)
            h.update(f"\0{st.st_size}\0{st.st_mtime_ns}".encode())
        except (TypeError, OSError):  # not a path (in-memory media): the representation is the identity
            pass
        h.update(b"\n")
    return h.hexdigest()[:32]


def save_tensors(path: Path, tensors: dict[str, Any]) -> None:
    atomic_write(path, lambda fh: torch.save(tensors, fh))


def load_tensors(path: Path) -> dict[str, Any] | None:
    """The saved dict, or None when the file is missing or unreadable (a partial file cannot exist:
    writes are atomic, but a damaged file is recomputed rather than trusted). A file that pickles
    anything beyond tensors and plain containers was not written by sclbench: it is refused, naming it
    (DataError), never loaded and never silently overwritten."""
    if not path.is_file():
        return None
    try:
        saved = load_torch(
            path,
            "retrieval cache file",
            error=DataError,
            hint="sclbench never writes such a cache file; delete it (or the whole --cache-dir) and rerun",
        )
    except DataError:
        raise
    except Exception:  # noqa: BLE001 - any damaged cache entry is a miss
        return None
    return saved if isinstance(saved, dict) else None


class ScoreChunks:
    """Score chunk files of one (features, candidate pairs, batching) key: `<dir>/scores-<key>/`."""

    def __init__(self, cache_dir: str | Path | None, key: str, num_chunks: int):
        self.folder = Path(cache_dir) / f"scores-{key}" if cache_dir else None
        self.num_chunks = num_chunks

    def path(self, chunk: int) -> Path | None:
        return None if self.folder is None else self.folder / f"chunk-{chunk:06d}-of-{self.num_chunks:06d}.pt"

    def load(self, chunk: int, expected_len: int) -> torch.Tensor | None:
        path = self.path(chunk)
        saved = load_tensors(path) if path is not None else None
        if saved is None or not isinstance(saved.get("scores"), torch.Tensor) or len(saved["scores"]) != expected_len:
            return None
        return saved["scores"]

    def save(self, chunk: int, scores: torch.Tensor) -> None:
        path = self.path(chunk)
        if path is not None:
            save_tensors(path, {"scores": scores.clone()})
