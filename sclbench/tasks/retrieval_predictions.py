"""Per-query retrieval predictions (image and video): the true item's rank, R@K hits, what was retrieved.

Each query (an image/video, or a caption) keeps the ids needed to find its media (`media_id`, the
caption `text`), the shared cluster unit its sample belongs to (`unit`: the image or video, for the
clustered intervals) and `top`: the best `TOP` candidates as [[candidate id, score], ...], best first.
Non-candidates (-inf in two-stage mode) are never listed. The order among equal scores follows the
evaluation's tie rule, so that `top` and `rank` agree: the first ground truth in `top` stands at index
`rank`, and when `top` holds none, `rank >= len(top)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

TOP = 10
_CHUNK_ELEMENTS = 1 << 22  # score elements per block of queries (bounds the sort's temporaries)


def top_candidates(
    scores: torch.Tensor,
    is_truth: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ties: str = "gt_last",
    n: int = TOP,
) -> list[list[tuple[int, float]]]:
    """Per query (row of `scores` [Q, C]) its best `n` finite candidates as (index, score), best first.

    `is_truth(queries [q, 1], candidates [q, w])` says which candidates are a query's ground truth;
    tied scores are ordered by `ties` as `metrics.retrieval.gt_ranks` counts them: "gt_last" puts the
    ground truths after the other candidates they tie with, "gt_first" before, "index" by index."""
    s = torch.as_tensor(scores).float()
    n_q, n_c = s.shape
    keep = min(n, n_c)
    out: list[list[tuple[int, float]]] = []
    if keep == 0:
        return [[] for _ in range(n_q)]
    step = max(1, _CHUNK_ELEMENTS // max(n_c, 1))
    for start in range(0, n_q, step):
        block = s[start : start + step]
        # Every candidate tied with the n-th best can be among the first n once ties are ordered.
        nth = block.topk(keep, dim=1).values[:, -1:]
        width = int((block >= nth).sum(1).max())
        values, index = block.topk(width, dim=1)
        queries = torch.arange(start, start + len(block))[:, None]
        truth = is_truth(queries, index)
        if ties == "gt_last":
            tie_key = truth.long()
        elif ties == "gt_first":
            tie_key = (~truth).long()
        else:
            tie_key = torch.zeros_like(index)
        # Lexicographic order (score descending, tie key, index) by stable sorts, last key first.
        order = index.argsort(dim=1, stable=True)
        order = order.gather(1, tie_key.gather(1, order).argsort(dim=1, stable=True))
        order = order.gather(1, (-values).gather(1, order).argsort(dim=1, stable=True))
        index, values = index.gather(1, order)[:, :keep], values.gather(1, order)[:, :keep]
        for row_index, row_values in zip(index.tolist(), values.tolist()):
            out.append([(c, v) for c, v in zip(row_index, row_values) if v != float("-inf")])
    return out


def query_predictions(
    scored: dict[str, Any],
    ranks: dict[str, Any],
    owner: Sequence[int],
    media_ids: Sequence[str],
    texts: Sequence[str],
    kind: str,
    directions: tuple[str, str],
    ties: str,
) -> tuple[list[dict], list[dict]]:
    """(media-query predictions, caption-query predictions).

    scored: the engine's `i2t` [M, T] (media queries) and `t2i` [T, M] (caption queries); ranks: the
    0-based rank per media query (`ranks["media"]`) and per caption (`ranks["text"]`); owner: each
    caption's media index; kind: "image" or "video"; directions: the score-name prefixes of the media
    and the caption queries (("tr", "ir") for images, ("v2t", "t2v") for videos)."""
    owner_t = torch.as_tensor(list(owner), dtype=torch.long)
    media_top = top_candidates(scored["i2t"], lambda q, c: owner_t[c] == q, ties)
    text_top = top_candidates(scored["t2i"], lambda q, c: c == owner_t[q], ties)
    units = [f"{kind}/{m}" for m in media_ids]
    media_preds = [
        {
            "id": f"{kind}/{i}",
            "rank": int(r),
            "scores": hits(directions[0], r),
            "media_id": str(media_ids[i]),
            "unit": units[i],
            "top": [[f"text/{t}", score] for t, score in media_top[i]],
        }
        for i, r in enumerate(ranks["media"])
    ]
    text_preds = [
        {
            "id": f"text/{t}",
            "rank": int(r),
            "scores": hits(directions[1], r),
            "media_id": str(media_ids[owner[t]]),
            "text": texts[t],
            "unit": units[owner[t]],
            "top": [[f"{kind}/{i}", score] for i, score in text_top[t]],
        }
        for t, r in enumerate(ranks["text"])
    ]
    return media_preds, text_preds


def hits(prefix: str, rank: int) -> dict[str, float]:
    return {f"{prefix}_r{k}": float(rank < k) for k in (1, 5, 10)}
