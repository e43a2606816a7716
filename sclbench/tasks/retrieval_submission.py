"""The retrieval score file: what `eval --submission DIR` writes for F30K, COCO, MSRVTT and LSMDC, and
what `sclbench score` reads back.

`DIR/<task>_scores_<published split>.npz` (numpy's savez, readable with allow_pickle=False) holds
- `i2t`: float32 [n_media, n_texts], the scores each image/video query ranks the captions by;
- `t2i`: float32 [n_media, n_texts], the scores each caption query ranks the images/videos by (the same
  layout, transposed from the query's view); the two differ only in two-stage mode, where each
  direction has its own candidates;
- `media_ids`: unicode [n_media], the image_id / video_id of each row.
Rows are the split's images/videos in record order, columns its captions in caption order
(`data.datasets.caption_index`); -inf marks a pair that was not a candidate.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sclbench.common.io import atomic_write
from sclbench.errors import SCLBenchError


def score_file_name(task: str, published_split: str) -> str:
    return f"{task}_scores_{published_split}.npz"


def write_score_file(task: str, published_split: str, arrays: dict[str, Any], out_dir: str | Path) -> Path:
    """Write the score file from an evaluation's `arrays` (`i2t`, `t2i` [n_media, n_texts], `media_ids`)."""
    missing = [name for name in ("i2t", "t2i", "media_ids") if name not in arrays]
    if missing:
        raise SCLBenchError(f"{task}: the evaluation kept no {', '.join(missing)}: no score file can be written")
    i2t, t2i = (_matrix(arrays[name]) for name in ("i2t", "t2i"))
    media_ids = np.array([str(m) for m in arrays["media_ids"]], dtype=str)
    if i2t.shape != t2i.shape or i2t.shape[0] != len(media_ids):
        raise SCLBenchError(f"{task}: score matrices {i2t.shape} / {t2i.shape} do not match {len(media_ids)} media ids")
    buffer = io.BytesIO()
    np.savez(buffer, i2t=i2t, t2i=t2i, media_ids=media_ids)
    return atomic_write(Path(out_dir) / score_file_name(task, published_split), buffer.getvalue())


def _matrix(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().float().cpu().numpy()
    return np.ascontiguousarray(np.asarray(values, dtype=np.float32))
