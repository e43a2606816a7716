"""Image-text retrieval recall (Flickr30K, COCO) with a documented, deterministic tie rule.

Ranks are 0-based: the number of candidates placed before the best ground truth. R@K is the percent
of queries with rank < K. Text retrieval (image query) uses the best rank among the image's captions;
image retrieval (text query) the rank of its one image.

Ties are where re-implementations silently disagree (numpy's argsort order for equal scores is not
stable across versions), so the rule is explicit:

* ``"gt_last"`` (default, conservative): candidates tied with the best ground truth rank before it;
* ``"gt_first"``: the ground truth ranks before every candidate it ties with (optimistic);
* ``"index"``: a stable sort by score, ties in candidate index order.

Only the best ground-truth score matters, so a rank is "how many candidates score higher" plus a
tie term: counting in chunks of queries keeps memory at O(chunk x candidates), never a full argsort.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from sclbench.metrics._common import MetricInputError

Ties = Literal["gt_last", "gt_first", "index"]
TIE_RULES: tuple[str, ...] = ("gt_last", "gt_first", "index")

# About 64 MiB of float32 per chunk of the score matrix (plus a few boolean masks of the same shape).
_CHUNK_ELEMENTS = 1 << 24


def as_scores(scores: Any, name: str = "scores") -> torch.Tensor:
    """A 2-D floating tensor without NaN; half precision is widened (exactly, so ties survive).

    Examples:
        >>> as_scores([[1, 2], [3, 4]]).tolist()  # integers become float64
        [[1.0, 2.0], [3.0, 4.0]]
        >>> str(as_scores(torch.ones(2, 2, dtype=torch.float16)).dtype)
        'torch.float32'
    """
    s = torch.as_tensor(scores)
    if s.dim() != 2:
        raise MetricInputError(f"{name} must be a 2-D score matrix, got shape {tuple(s.shape)}")
    if not s.is_floating_point():
        s = s.double()
    elif s.dtype in (torch.float16, torch.bfloat16):
        s = s.float()
    if torch.isnan(s).any():
        raise MetricInputError(f"{name} contains NaN scores; ranks would be meaningless")
    return s


def _positive_pairs(positives: Any, n_queries: int, n_candidates: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(query, candidate) index pairs from one index per query or a list of indices per query."""
    if len(positives) != n_queries:
        raise MetricInputError(f"{name} has {len(positives)} entries for {n_queries} queries")
    rows: list[int] = []
    cols: list[int] = []
    for q, pos in enumerate(positives):
        items = [pos] if np.ndim(pos) == 0 else list(pos)
        if not items:
            raise MetricInputError(f"{name}[{q}] has no ground truth")
        rows.extend([q] * len(items))
        cols.extend(int(c) for c in items)
    r, c = torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)
    if c.numel() and (int(c.min()) < 0 or int(c.max()) >= n_candidates):
        raise MetricInputError(f"{name} refers to a candidate outside 0..{n_candidates - 1}")
    return r, c


def gt_ranks(scores: Any, positives: Any, ties: Ties = "gt_last", chunk_size: int | None = None) -> np.ndarray:
    """0-based rank of the best ground truth for each query (row) of `scores` [queries, candidates].

    positives: per query, one candidate index or a sequence of them.

    Examples:
        Query 1's ground truth (candidate 0) ties with candidate 1 and is beaten by candidate 2:

        >>> scores = [[0.9, 0.1, 0.5], [0.2, 0.2, 0.7]]
        >>> [gt_ranks(scores, [0, 0], ties=rule).tolist() for rule in ("gt_last", "gt_first", "index")]
        [[0, 2], [0, 1], [0, 1]]
    """
    if ties not in TIE_RULES:
        raise MetricInputError(f"unknown tie rule {ties!r}; choose one of {', '.join(TIE_RULES)}")
    s = as_scores(scores)
    n_q, n_c = s.shape
    rows, cols = _positive_pairs(positives, n_q, n_c, "ground truth")
    rows, cols = rows.to(s.device), cols.to(s.device)
    # Everything about the ground truths comes from the (query, candidate) pairs alone, so the dense
    # pass over the matrix is a single comparison per element.
    vals = s[rows, cols]
    best = torch.full((n_q,), -torch.inf, dtype=s.dtype, device=s.device).scatter_reduce(0, rows, vals, "amax")
    at_best = vals == best[rows]
    # Ground truths holding the best score (they tie with each other, never push each other back) ...
    n_best = torch.bincount(rows[at_best], minlength=n_q)
    # ... and the first of them in index order, for the "index" rule.
    first = torch.full((n_q,), n_c, dtype=torch.long, device=s.device)
    first = first.scatter_reduce(0, rows[at_best], cols[at_best], "amin")
    step = chunk_size or max(1, _CHUNK_ELEMENTS // max(n_c, 1))
    cand = torch.arange(n_c, device=s.device)
    out = torch.empty(n_q, dtype=torch.long, device=s.device)
    for start in range(0, n_q, step):
        sub = s[start : start + step]
        end = start + sub.shape[0]
        b = best[start:end, None]
        if ties == "gt_last":  # every candidate scoring >= best, except the tied ground truths
            rank = (sub >= b).sum(dim=1) - n_best[start:end]
        elif ties == "gt_first":
            rank = (sub > b).sum(dim=1)
        else:  # stable sort: higher scores, then equal scores at a smaller index
            rank = (sub > b).sum(dim=1) + ((sub == b) & (cand < first[start:end, None])).sum(dim=1)
        out[start:end] = rank
    return out.cpu().numpy()


def recall_at(ranks: np.ndarray, k: int) -> float:
    """Percent of queries whose (0-based) rank is below k.

    Examples:
        >>> recall_at(np.array([0, 3, 0, 9]), 1)
        50.0
        >>> recall_at(np.array([0, 3, 0, 9]), 5)
        75.0
    """
    return 100.0 * float(np.mean(np.asarray(ranks) < k))


def _links(txt2img: Sequence[int] | None, img2txt: Sequence[Sequence[int]] | None, n_img: int, n_txt: int):
    """Both directions of the caption <-> image map, derived from whichever is given, checked."""
    if txt2img is None and img2txt is None:
        raise MetricInputError("give txt2img or img2txt (which image each caption belongs to)")
    if txt2img is None:
        t2i = [-1] * n_txt
        for i, caps in enumerate(img2txt):  # type: ignore[arg-type]
            for c in caps:
                t2i[int(c)] = i
        txt2img = t2i
    t2i_list = [int(i) for i in txt2img]
    if len(t2i_list) != n_txt or any(not 0 <= i < n_img for i in t2i_list):
        raise MetricInputError(f"txt2img must give an image index in 0..{n_img - 1} for each of {n_txt} captions")
    if img2txt is None:
        grouped: list[list[int]] = [[] for _ in range(n_img)]
        for c, i in enumerate(t2i_list):
            grouped[i].append(c)
        img2txt = grouped
    if len(img2txt) != n_img:
        raise MetricInputError(f"img2txt has {len(img2txt)} entries for {n_img} images")
    for i, caps in enumerate(img2txt):
        if any(t2i_list[int(c)] != i for c in caps):
            raise MetricInputError(f"img2txt[{i}] lists a caption that txt2img assigns to another image")
    return t2i_list, [list(map(int, caps)) for caps in img2txt]


def retrieval_ranks(
    scores_i2t: Any,
    scores_t2i: Any | None = None,
    txt2img: Sequence[int] | None = None,
    img2txt: Sequence[Sequence[int]] | None = None,
    ties: Ties = "gt_last",
    chunk_size: int | None = None,
) -> dict[str, np.ndarray]:
    """Per-query 0-based ranks: ``{"tr": [n_images], "ir": [n_captions]}``.

    scores_i2t: [n_images, n_captions]; scores_t2i: [n_captions, n_images] (defaults to the transpose,
    pass it when the two directions are scored differently).

    Examples:
        Two images with two captions each; caption 1 scores its own image (0.1) below image 1 (0.2):

        >>> scores = [[0.9, 0.1, 0.3, 0.2], [0.4, 0.2, 0.8, 0.7]]
        >>> ranks = retrieval_ranks(scores, txt2img=[0, 0, 1, 1])
        >>> {direction: r.tolist() for direction, r in ranks.items()}
        {'tr': [0, 0], 'ir': [0, 1, 0, 0]}
    """
    s_i2t = as_scores(scores_i2t, "scores_i2t")
    s_t2i = s_i2t.T if scores_t2i is None else as_scores(scores_t2i, "scores_t2i")
    n_img, n_txt = s_i2t.shape
    if tuple(s_t2i.shape) != (n_txt, n_img):
        raise MetricInputError(f"scores_t2i has shape {tuple(s_t2i.shape)}, expected {(n_txt, n_img)}")
    t2i, i2t = _links(txt2img, img2txt, n_img, n_txt)
    return {
        "tr": gt_ranks(s_i2t, i2t, ties, chunk_size),
        "ir": gt_ranks(s_t2i, t2i, ties, chunk_size),
    }


def recall_metrics(ranks: dict[str, np.ndarray], ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """`tr_r{k}`, `ir_r{k}`, `r_mean` (mean of all of them, ALBEF/BLIP) and `rsum`, in percent.

    Examples:
        >>> recall_metrics({"tr": np.array([0, 0]), "ir": np.array([0, 1, 0, 0])}, ks=(1,))
        {'tr_r1': 100.0, 'ir_r1': 75.0, 'r_mean': 87.5, 'rsum': 175.0}
    """
    out = {f"{d}_r{k}": recall_at(ranks[d], k) for d in ("tr", "ir") for k in ks}
    values = list(out.values())
    out["r_mean"] = sum(values) / len(values)
    out["rsum"] = sum(values)
    return out


def retrieval_recall(
    scores_i2t: Any,
    scores_t2i: Any | None = None,
    txt2img: Sequence[int] | None = None,
    img2txt: Sequence[Sequence[int]] | None = None,
    ks: Sequence[int] = (1, 5, 10),
    ties: Ties = "gt_last",
    chunk_size: int | None = None,
) -> dict[str, float]:
    """Image-text retrieval R@K both ways, in percent: tr_r1.., ir_r1.., r_mean, rsum.

    Examples:
        Image 1 scores caption 0 (0.6) above its own caption 1 (0.4), so text retrieval R@1 is 1/2;
        each caption still scores its own image highest, so image retrieval R@1 is 2/2.

        >>> retrieval_recall([[0.9, 0.2], [0.6, 0.4]], txt2img=[0, 1], ks=(1,))
        {'tr_r1': 50.0, 'ir_r1': 100.0, 'r_mean': 75.0, 'rsum': 150.0}
    """
    return recall_metrics(retrieval_ranks(scores_i2t, scores_t2i, txt2img, img2txt, ties, chunk_size), ks)
