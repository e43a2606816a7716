"""`sclbench score` for retrieval (F30K, COCO, MSRVTT, LSMDC): a score file or ranked lists -> the task's
own metrics and per-sample predictions.

Ids and order (the contract `eval --submission` writes, see `sclbench.data.formats.predictions`): rows /
media are the split's images or videos in record order, named by their image_id / video_id; columns /
texts are its captions in caption order (`caption_index(records)`: the captions of record 0, then of
record 1, ...), named by that 0-based index. The matrices go through the task's `metrics` (the code
`eval` runs on its own matrices), under the `--ties` rule.

Ranked lists become score matrices (list position -> a strictly decreasing score, unlisted candidates
-inf). A query whose ground truth is not in its list then has a rank that is only a lower bound (its
list's length), so a metric is kept only where no such bound enters it (see `exact_metrics`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sclbench.data.datasets import caption_index
from sclbench.data.formats import predictions as files
from sclbench.data.formats.predictions import preview_ids
from sclbench.errors import DataError

TOP = 10  # retrieved candidates kept per query in the predictions (the preamble's `top`)
# Metric prefix -> the query direction it ranks: "media" = an image/video query (i2t lists), "text" = a caption.
DIRECTIONS = {"tr": "media", "v2t": "media", "ir": "text", "t2v": "text"}


def _same_ids(path: Path, given: list, wanted: list, what: str, where: str) -> None:
    """`given` names exactly the `wanted` ids (each once): unknown, missing or repeated ones are refused."""
    counts: dict = {}
    for g in given:
        counts[g] = counts.get(g, 0) + 1
    twice = [g for g, n in counts.items() if n > 1]
    if twice:
        raise DataError(f"{path}: {what} {preview_ids(twice)} occur more than once; each names one query")
    wanted_set = set(wanted)
    unknown = [g for g in counts if g not in wanted_set]
    if unknown:
        raise DataError(
            f"{path}: {len(unknown)} {what} are not in {where} ({preview_ids(unknown)}): the file was made for "
            "another split (or another data root)"
        )
    missing = [w for w in wanted if w not in counts]
    if missing:
        raise DataError(
            f"{path}: {len(missing)} {what} of {where} are missing ({preview_ids(missing)}); every query needs one"
        )


def score_retrieval(
    task: Any, role: str, path: Path, fmt: str, ties: str
) -> tuple[dict[str, float], list[dict[str, Any]], dict[str, Any], list[str]]:
    """(metrics, per-sample predictions, protocol entries, notes) of a retrieval prediction file."""
    published = task.card.get(f"splits.{role}", role)
    where = f"the {task.name} {published} split"
    records = task.split_records(role)
    texts, owner = caption_index(records)
    ids = [task.media_id(r) for r in records]
    kind = task.media_kind
    lists = None
    if fmt == "scores-npz":
        matrices = files.read_score_npz(path, len(records), len(texts))
        _same_ids(path, matrices.media_ids, ids, "media_ids", where)
        row = {m: i for i, m in enumerate(matrices.media_ids)}
        i2t, t2i = matrices.i2t, matrices.t2i
        if matrices.media_ids != ids:  # rows back to record order
            order = np.array([row[m] for m in ids], dtype=np.int64)
            i2t, t2i = i2t[order], t2i[order]
    else:
        lists = files.read_ranked_lists(path)
        i2t, t2i = _list_matrices(path, lists, ids, len(texts), where)
    scored = {"i2t": torch.from_numpy(i2t), "t2i": torch.from_numpy(t2i).T}
    metrics, preds = task.metrics(scored, owner, records, texts, ties)
    protocol: dict[str, Any] = {
        "ties": ties,
        "num_images": len(records),
        "num_texts": len(texts),
        "cluster_unit": kind,
    }
    notes: list[str] = []
    if lists is not None:
        bounds = _unlisted_truths(lists, ids, owner)
        kept = exact_metrics(list(metrics), bounds)
        omitted = [m for m in metrics if m not in kept]
        metrics = {m: v for m, v in metrics.items() if m in kept}
        _from_lists(preds, kept, bounds, lists, ids, kind)
        lengths = {d: [min(map(len, v.values())), max(map(len, v.values()))] for d, v in vars(lists).items()}
        protocol["scored_from"] = {"list_lengths": lengths, "omitted_metrics": omitted}
        if omitted:
            notes.append(
                f"ranked lists stop before some ground truths: left out {', '.join(omitted)} (their ranks are "
                "only lower bounds); longer lists give them"
            )
    return metrics, preds, protocol, notes


def _list_matrices(
    path: Path, lists: files.RankedLists, ids: list[str], n_texts: int, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Score matrices [n_media, n_texts] from ranked lists: position p of a list of n scores n - p."""
    _same_ids(path, list(lists.i2t), ids, "i2t media ids", where)
    _same_ids(path, list(lists.t2i), list(range(n_texts)), "t2i caption indices", where)
    row = {m: i for i, m in enumerate(ids)}
    i2t = np.full((len(ids), n_texts), -np.inf, dtype=np.float32)
    t2i = np.full((len(ids), n_texts), -np.inf, dtype=np.float32)
    for m, ranked in lists.i2t.items():
        outside = [c for c in ranked if not 0 <= c < n_texts]
        if outside:
            raise DataError(
                f"{path}, i2t[{m!r}]: caption indices {preview_ids(outside, 3)} are outside 0..{n_texts - 1} "
                f"({where} has {n_texts} captions)"
            )
        i2t[row[m], ranked] = np.arange(len(ranked), 0, -1, dtype=np.float32)
    for t, ranked in lists.t2i.items():
        unknown = [m for m in ranked if m not in row]
        if unknown:
            raise DataError(f"{path}, t2i['{t}']: media ids {preview_ids(unknown, 3)} are not in {where}")
        t2i[[row[m] for m in ranked], t] = np.arange(len(ranked), 0, -1, dtype=np.float32)
    return i2t, t2i


def _unlisted_truths(lists: files.RankedLists, ids: list[str], owner: list[int]) -> dict[str, dict[int, int]]:
    """Per direction, {query index: its list's length} for the queries whose ground truth is not listed."""
    captions: list[set[int]] = [set() for _ in ids]
    for t, i in enumerate(owner):
        captions[i].add(t)
    media = {i: len(lists.i2t[m]) for i, m in enumerate(ids) if not captions[i] & set(lists.i2t[m])}
    text = {t: len(lists.t2i[t]) for t in range(len(owner)) if ids[owner[t]] not in lists.t2i[t]}
    return {"media": media, "text": text}


def exact_metrics(names: list[str], bounds: dict[str, dict[int, int]]) -> set[str]:
    """The metrics that lower-bounded ranks do not enter: R@K when K <= every such query's list length,
    MedR / MeanR when there is no such query, r_mean / rsum when all their R@K are kept.

    Examples:
        >>> sorted(exact_metrics(["tr_r1", "tr_r5", "ir_r1", "ir_r5", "r_mean"], {"media": {3: 4}, "text": {}}))
        ['ir_r1', 'ir_r5', 'tr_r1']
    """
    kept = set()
    for name in names:
        match = re.fullmatch(r"(tr|ir|t2v|v2t)_(r(\d+)|medr|meanr)", name)
        if match is None:
            continue
        unlisted = bounds[DIRECTIONS[match.group(1)]]
        if match.group(3) is not None:
            exact = all(int(match.group(3)) <= n for n in unlisted.values())
        else:
            exact = not unlisted
        if exact:
            kept.add(name)
    recalls = [n for n in names if re.fullmatch(r"(tr|ir)_r\d+", n)]
    kept |= {n for n in names if n in ("r_mean", "rsum") and all(r in kept for r in recalls)}
    kept |= {n for n in names if not re.fullmatch(r"(tr|ir|t2v|v2t)_(r\d+|medr|meanr)|r_mean|rsum", n)}
    return kept


def _query(pred: dict[str, Any]) -> tuple[str, int]:
    kind, _, index = str(pred["id"]).partition("/")
    return ("text" if kind == "text" else "media"), int(index)


def _from_lists(
    preds: list[dict[str, Any]],
    kept: set[str],
    bounds: dict[str, dict[int, int]],
    lists: files.RankedLists,
    ids: list[str],
    kind: str,
) -> None:
    """Per-sample predictions of ranked lists: `top` is the list's head with no scores (a list has none);
    a query whose ground truth is not listed has no rank (`rank_at_least` its list's length instead);
    only the kept (exact) hits are scored."""
    position = {m: i for i, m in enumerate(ids)}
    for p in preds:
        direction, index = _query(p)
        if direction == "media":
            p["top"] = [[f"text/{c}", None] for c in lists.i2t[ids[index]][:TOP]]
        else:
            p["top"] = [[f"{kind}/{position[m]}", None] for m in lists.t2i[index][:TOP]]
        if index in bounds[direction]:
            p["rank"] = None
            p["rank_at_least"] = bounds[direction][index]
        p["scores"] = {m: v for m, v in (p.get("scores") or {}).items() if m in kept}
