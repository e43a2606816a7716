"""Video-text retrieval metrics (MSRVTT 1k-A, LSMDC): R@1/5/10, MedR and MeanR, both directions.

`sim` is [num_texts, num_videos]. With one caption per video the ground truth is the diagonal; with
several (`txt2vid`), video->text ranks the best caption of the video. MedR and MeanR use 1-based
ranks. Ties follow the same explicit rule as image retrieval (`sclbench.metrics.retrieval`) — unlike
CLIP4Clip, which counts every tied position as a separate entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sclbench.metrics._common import MetricInputError
from sclbench.metrics.retrieval import Ties, as_scores, gt_ranks, recall_at


def video_retrieval_ranks(
    sim: Any,
    txt2vid: Sequence[int] | None = None,
    ties: Ties = "gt_last",
    chunk_size: int | None = None,
) -> dict[str, np.ndarray]:
    """Per-query 0-based ranks: ``{"t2v": [num_texts], "v2t": [num_videos]}``.

    Examples:
        One caption per video (the diagonal); text 1 scores video 0 (0.6) above its own (0.4):

        >>> ranks = video_retrieval_ranks([[0.9, 0.2], [0.6, 0.4]])
        >>> {direction: r.tolist() for direction, r in ranks.items()}
        {'t2v': [0, 1], 'v2t': [0, 0]}
    """
    s = as_scores(sim, "sim")
    n_txt, n_vid = s.shape
    if txt2vid is None:
        if n_txt != n_vid:
            raise MetricInputError(
                f"sim is {n_txt} texts x {n_vid} videos: without txt2vid it must be square (one caption per video)"
            )
        txt2vid = range(n_txt)
    t2v = [int(v) for v in txt2vid]
    if len(t2v) != n_txt or any(not 0 <= v < n_vid for v in t2v):
        raise MetricInputError(f"txt2vid must give a video index in 0..{n_vid - 1} for each of {n_txt} texts")
    captions: list[list[int]] = [[] for _ in range(n_vid)]
    for t, v in enumerate(t2v):
        captions[v].append(t)
    empty = [v for v, caps in enumerate(captions) if not caps]
    if empty:
        raise MetricInputError(f"{len(empty)} videos have no caption (first: video {empty[0]})")
    return {
        "t2v": gt_ranks(s, t2v, ties, chunk_size),
        "v2t": gt_ranks(s.T, captions, ties, chunk_size),
    }


def rank_metrics(ranks: np.ndarray, prefix: str, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """R@K in percent plus MedR / MeanR on 1-based ranks, named `<prefix>_r1`, `<prefix>_medr`, ...

    Examples:
        0-based ranks 0, 1, 4 are 1-based 1, 2, 5: median 2, mean 8/3.

        >>> metrics = rank_metrics(np.array([0, 1, 4]), "t2v", ks=(1, 5))
        >>> {name: round(value, 4) for name, value in metrics.items()}
        {'t2v_r1': 33.3333, 't2v_r5': 100.0, 't2v_medr': 2.0, 't2v_meanr': 2.6667}
    """
    one_based = np.asarray(ranks) + 1
    out = {f"{prefix}_r{k}": recall_at(ranks, k) for k in ks}
    out[f"{prefix}_medr"] = float(np.median(one_based))
    out[f"{prefix}_meanr"] = float(np.mean(one_based))
    return out


def video_retrieval_metrics(
    sim: Any,
    txt2vid: Sequence[int] | None = None,
    ks: Sequence[int] = (1, 5, 10),
    ties: Ties = "gt_last",
    chunk_size: int | None = None,
) -> dict[str, float]:
    """`t2v_r1.. t2v_medr, t2v_meanr, v2t_r1.. v2t_medr, v2t_meanr` for a [texts, videos] matrix.

    Examples:
        >>> video_retrieval_metrics([[0.9, 0.2], [0.6, 0.4]], ks=(1,))
        {'t2v_r1': 50.0, 't2v_medr': 1.5, 't2v_meanr': 1.5, 'v2t_r1': 100.0, 'v2t_medr': 1.0, 'v2t_meanr': 1.0}
    """
    ranks = video_retrieval_ranks(sim, txt2vid, ties, chunk_size)
    return {**rank_metrics(ranks["t2v"], "t2v", ks), **rank_metrics(ranks["v2t"], "v2t", ks)}
