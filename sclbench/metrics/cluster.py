"""Clustered resampling: intervals and tests that respect samples sharing a unit (an image, a video, a sentence).

VQA questions about one image, the five captions of one Flickr image and the NLVR2 statements written
for one sentence are not independent draws: a model that misreads an image tends to fail every question
about it. Resampling samples one by one then understates the noise (clustered standard errors of up to
~3x the naive ones have been measured on VLM benchmarks). Here the unit is resampled instead: each
bootstrap replicate draws G clusters with replacement out of the G observed and takes the mean over
all the samples of the drawn clusters (the ratio estimator sum of cluster sums / sum of cluster sizes,
which is the metric's own definition: a mean over samples).

A sample without a unit (None) is a cluster of its own, so old records, which carry no units, get
exactly the naive bootstrap: with G = n singleton clusters the replicate draws the same indices from the
same seeded generator and adds the same numbers in the same order.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

# Indices held at once by one resampling batch: bounded memory for 200k-question sets.
_BATCH_ELEMENTS = 4_000_000
# Normal quantiles of the minimum detectable effect: two-sided alpha 0.05 and power 0.8.
Z_ALPHA_05 = 1.959963984540054
Z_POWER_80 = 0.8416212335729143


def cluster_codes(units: Sequence[Hashable | None] | None, n: int | None = None) -> np.ndarray:
    """A cluster number per sample, 0.. in order of first appearance; None (or no units at all) is a
    cluster of its own. Singletons therefore get 0, 1, ..., n-1: the identity.

    Examples:
        >>> cluster_codes(["image/1", "image/2", "image/1", None]).tolist()
        [0, 1, 0, 2]
        >>> cluster_codes(None, n=3).tolist()
        [0, 1, 2]
    """
    if units is None:
        if n is None:
            raise ValueError("cluster_codes needs the units or the number of samples")
        return np.arange(n, dtype=np.int64)
    if n is not None and len(units) != n:
        raise ValueError(f"{len(units)} units for {n} samples")
    seen: dict[Hashable, int] = {}
    codes = np.empty(len(units), dtype=np.int64)
    next_code = 0
    for i, unit in enumerate(units):
        if unit is None:
            codes[i], next_code = next_code, next_code + 1
            continue
        code = seen.get(unit)
        if code is None:
            code = seen[unit] = next_code
            next_code += 1
        codes[i] = code
    return codes


def n_clusters(codes: np.ndarray) -> int:
    """How many clusters `cluster_codes` found.

    Examples:
        >>> n_clusters(cluster_codes(["a", "b", "a"]))
        2
    """
    return int(codes.max()) + 1 if codes.size else 0


@dataclass(frozen=True)
class ClusterTotals:
    """Per-cluster sums of the values and sizes: all a cluster bootstrap of a mean needs."""

    sums: np.ndarray  # float64 [G]
    sizes: np.ndarray  # float64 [G]

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray, codes: np.ndarray) -> ClusterTotals:
        x = np.asarray(values, dtype=np.float64)
        if x.size == 0:
            raise ValueError("no per-sample scores")
        if codes.shape != x.shape:
            raise ValueError(f"{codes.size} cluster codes for {x.size} samples")
        g = n_clusters(codes)
        # bincount adds a singleton's one value to 0.0: exact, so singletons keep their values' bits.
        return cls(np.bincount(codes, weights=x, minlength=g), np.bincount(codes, minlength=g).astype(np.float64))

    @property
    def count(self) -> int:
        return int(self.sums.size)

    @property
    def mean(self) -> float:
        return float(self.sums.sum() / self.sizes.sum())


def resampled_means(totals: ClusterTotals, resamples: int, seed: int) -> np.ndarray:
    """Means (fractions, not percent) of `resamples` cluster bootstrap replicates, seeded.

    Each replicate draws G cluster indices uniformly with replacement (numpy's default_rng(seed)),
    in batches whose draws are the same as one call's: the result does not depend on the batch size.

    Examples:
        Two images, one answered right twice, one wrong twice: a replicate holds 0, 1 or 2 right images.

        >>> totals = ClusterTotals.of([1, 1, 0, 0], cluster_codes(["a", "a", "b", "b"]))
        >>> sorted(set(resampled_means(totals, 200, seed=0).tolist()))
        [0.0, 0.5, 1.0]
    """
    g = totals.count
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    step = max(1, _BATCH_ELEMENTS // g)
    # Clusters of one size (singletons, above all): every replicate holds g * size samples, exactly, so
    # the sizes need no gathering; the same number divides either way, the means keep their bits.
    uniform = bool(np.all(totals.sizes == totals.sizes[0]))
    for start in range(0, resamples, step):
        count = min(step, resamples - start)
        idx = rng.integers(0, g, size=(count, g))
        sizes = g * totals.sizes[0] if uniform else totals.sizes[idx].sum(axis=1)
        means[start : start + count] = totals.sums[idx].sum(axis=1) / sizes
    return means


def percentile_interval(means: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central `confidence` percentile interval of bootstrap means (fractions), in percent.

    Examples:
        >>> [round(v, 6) for v in percentile_interval(np.linspace(0.0, 1.0, 101), 0.9)]
        [5.0, 95.0]
    """
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(means * 100.0, alpha)), float(np.quantile(means * 100.0, 1.0 - alpha))


def clustered_se(values: Sequence[float] | np.ndarray, codes: np.ndarray) -> float | None:
    """Cluster-robust standard error of the mean of `values` (fraction units); None with one cluster.

    SE^2 = G / (G - 1) * sum_g (S_g - n_g * mean)^2 / N^2, with S_g the sum and n_g the size of cluster g,
    N the number of samples and G the number of clusters (the CR1 sandwich estimator of a mean). With
    singleton clusters it is the usual s / sqrt(n), s the sample standard deviation.

    Examples:
        >>> round(clustered_se([0, 1, 0, 1], cluster_codes(None, 4)), 4)  # s = 0.5774, / sqrt(4)
        0.2887
        >>> clustered_se([0, 1], cluster_codes(["a", "a"])) is None
        True
    """
    totals = ClusterTotals.of(values, codes)
    g = totals.count
    if g < 2:
        return None
    n = totals.sizes.sum()
    residual = totals.sums - totals.sizes * totals.mean
    return math.sqrt(g / (g - 1) * float(np.sum(residual**2)) / (n * n))


def minimum_detectable_effect(se: float | None) -> float | None:
    """Smallest true difference (points) that a two-sided test at alpha 0.05 detects with power 0.8:
    MDE = (z_{1 - 0.05/2} + z_{0.8}) * SE = (1.960 + 0.842) * SE = 2.80 * SE, SE in fractions, x 100.

    Examples:
        >>> round(minimum_detectable_effect(0.01), 2)
        2.8
    """
    if se is None or not math.isfinite(se):
        return None
    return 100.0 * (Z_ALPHA_05 + Z_POWER_80) * se
