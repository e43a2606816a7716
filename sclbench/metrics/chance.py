"""Chance levels and how surprising a score is under them.

`chance_level` is the expected value of a metric for a scorer that answers or ranks uniformly at
random, computed from what a result's protocol says about the split (numbers of images and texts,
the VQA chance accuracy the task measured on its answer vocabulary). `p_value_vs_chance` says how
likely a random scorer is to do at least as well as the per-sample scores observed.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from sclbench.metrics.cluster import ClusterTotals, cluster_codes, n_clusters, percentile_interval, resampled_means


def recall_k(metric: str) -> int | None:
    """K of a recall metric name (`tr_r5` -> 5), None for anything else (medr, r_mean, accuracy).

    Examples:
        >>> recall_k("tr_r5")
        5
        >>> recall_k("t2v_medr") is None
        True
    """
    head, sep, tail = metric.rpartition("_r")
    return int(tail) if sep and head and tail.isdigit() else None


def chance_level(task: str, metric: str, protocol: Mapping[str, Any]) -> float | None:
    """Expected value (percent) of `metric` for a uniformly random scorer; None when unknown.

    Examples:
        >>> chance_level("nlvr2", "accuracy", {})
        50.0

        A text query finds its one image among 4 within the top 1 with probability 1/4:

        >>> chance_level("f30k", "ir_r1", {"num_images": 4, "num_texts": 20})
        25.0

        An image query with 2 of 4 captions: 1 - C(2, 1) / C(4, 1) = 1/2 that the top one is its own:

        >>> chance_level("f30k", "tr_r1", {"num_images": 2, "num_texts": 4})
        50.0
    """
    if task == "nlvr2" and metric == "accuracy":
        return 50.0  # true/false
    if task == "vqa":
        return protocol.get("chance_accuracy") if metric == "accuracy" else None
    k = recall_k(metric)
    n_visual, n_text = protocol.get("num_images"), protocol.get("num_texts")
    if k is None or not n_visual or not n_text:
        return None
    if metric.startswith(("ir_", "t2v_")):  # text query: its one image/video among n_visual
        return 100.0 * min(k, n_visual) / n_visual
    # image/video query: any of its `per` captions among n_text within the top k
    per = n_text // n_visual
    if k >= n_text:
        return 100.0
    return 100.0 * (1.0 - math.comb(n_text - per, k) / math.comb(n_text, k))


def binomial_tail(successes: int, trials: int, p: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, p), exact (log-space sums).

    Examples:
        >>> round(binomial_tail(1, 3, 0.5), 4)  # 1 - P(X = 0) = 1 - 1/8
        0.875
        >>> binomial_tail(0, 3, 0.5)
        1.0
    """
    if successes <= 0:
        return 1.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    logs = [
        math.lgamma(trials + 1)
        - math.lgamma(i + 1)
        - math.lgamma(trials - i + 1)
        + i * math.log(p)
        + (trials - i) * math.log1p(-p)
        for i in range(successes, trials + 1)
    ]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def p_value_vs_chance(
    values: Sequence[float],
    chance: float,
    resamples: int = 10_000,
    seed: int = 0,
    units: Sequence[Hashable | None] | None = None,
) -> float:
    """One-sided p-value of "the scorer is no better than chance" from per-sample scores in [0, 1].

    `units`: the shared unit of each sample (an image, a video, a sentence; None = a unit of its own).
    0/1 scores (recall hits, NLVR2 correctness) whose units are all distinct: exact binomial test, each
    query independent. Anything else (graded scores such as VQA's 0, 0.3, ... 1, or samples sharing
    units): cluster bootstrap test (`sclbench.metrics.cluster`): the scores shifted so their mean is the
    chance level, whole units resampled, p = share of resampled means at least the observed one
    (floor 1/(B+1)); 1.0 from a single unit (no replication, no evidence). Without units this is the
    sample bootstrap, as before.

    Examples:
        Three hits out of three when chance is 50%: the exact binomial p-value is 0.5 ** 3.

        >>> round(p_value_vs_chance([1, 1, 1], chance=50.0), 4)
        0.125

        The same three hits on one image are one draw, not three: no evidence beyond chance.

        >>> p_value_vs_chance([1, 1, 1], chance=50.0, units=["image/7"] * 3)
        1.0
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no per-sample scores")
    p0 = chance / 100.0
    codes = cluster_codes(units, n=x.size)
    if n_clusters(codes) == x.size and np.all((x == 0.0) | (x == 1.0)):
        return binomial_tail(int(x.sum()), int(x.size), p0)
    if n_clusters(codes) < 2:  # one unit: every resample is the same draw, which says nothing about noise
        return 1.0
    shifted = ClusterTotals.of(x - x.mean() + p0, codes)
    means = resampled_means(shifted, resamples, seed)
    return float((1 + np.sum(means >= x.mean())) / (resamples + 1))


def bootstrap_interval(
    values: Sequence[float],
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    units: Sequence[Hashable | None] | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-sample scores, in percent.

    `units`: the shared unit of each sample (None = a unit of its own): whole units are resampled
    (`sclbench.metrics.cluster`). Without units, or with all units distinct, it is the sample bootstrap.

    Examples:
        >>> bootstrap_interval([1.0, 1.0, 1.0])  # every resample has mean 1
        (100.0, 100.0)
        >>> low, high = bootstrap_interval([0, 1, 0, 1], resamples=200)
        >>> 0.0 <= low <= 50.0 <= high <= 100.0
        True
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no per-sample scores")
    totals = ClusterTotals.of(x, cluster_codes(units, n=x.size))
    return percentile_interval(resampled_means(totals, resamples, seed), confidence)
