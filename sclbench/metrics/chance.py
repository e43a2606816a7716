"""Chance levels and how surprising a score is under them.

`chance_level` is the expected value of a metric for a scorer that answers or ranks uniformly at
random, computed from what a result's protocol says about the split (numbers of images and texts,
the VQA chance accuracy the task measured on its answer vocabulary). `p_value_vs_chance` says how
likely a random scorer is to do at least as well as the per-sample scores observed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


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


def p_value_vs_chance(values: Sequence[float], chance: float, resamples: int = 10_000, seed: int = 0) -> float:
    """One-sided p-value of "the scorer is no better than chance" from per-sample scores in [0, 1].

    0/1 scores (recall hits, NLVR2 correctness): exact binomial test, each query independent under a
    random scorer. Graded scores (VQA's 0, 0.3, ... 1): bootstrap test, the sample shifted so its mean
    is the chance level, p = share of resampled means at least the observed one (floor 1/(B+1)).

    Examples:
        Three hits out of three when chance is 50%: the exact binomial p-value is 0.5 ** 3.

        >>> round(p_value_vs_chance([1, 1, 1], chance=50.0), 4)
        0.125
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no per-sample scores")
    p0 = chance / 100.0
    if np.all((x == 0.0) | (x == 1.0)):
        return binomial_tail(int(x.sum()), int(x.size), p0)
    rng = np.random.default_rng(seed)
    shifted = x - x.mean() + p0
    means = shifted[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    return float((1 + np.sum(means >= x.mean())) / (resamples + 1))


def bootstrap_interval(
    values: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-sample scores, in percent.

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
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1) * 100.0
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))
