"""Clustered resampling on constructed data: wider than the naive interval when outcomes are correlated
within units, bit-for-bit the naive one when every unit is a singleton, seeded and deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from sclbench.metrics.chance import binomial_tail, bootstrap_interval, p_value_vs_chance
from sclbench.metrics.cluster import (
    ClusterTotals,
    cluster_codes,
    clustered_se,
    minimum_detectable_effect,
    n_clusters,
    resampled_means,
)
from sclbench.results.check import paired_bootstrap


def naive_interval(values, confidence=0.95, resamples=2000, seed=0):
    """The sample bootstrap as sclbench computed it before units existed (the reference)."""
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1) * 100.0
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def naive_p_value(values, chance, resamples=10_000, seed=0):
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    shifted = x - x.mean() + chance / 100.0
    means = shifted[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    return float((1 + np.sum(means >= x.mean())) / (resamples + 1))


def correlated(n_units: int, per_unit: int, seed: int = 0, graded: bool = False):
    """Samples whose outcome is mostly their unit's: a unit is 'easy' (all right) or 'hard' (all wrong),
    with a little noise per sample. Returns (values, units)."""
    rng = np.random.default_rng(seed)
    easy = rng.random(n_units) < 0.5
    values, units = [], []
    for u in range(n_units):
        for _ in range(per_unit):
            flip = rng.random() < 0.1
            right = bool(easy[u]) != flip
            values.append((rng.choice([0.6, 0.9, 1.0]) if graded else 1.0) if right else 0.0)
            units.append(f"image/{u}")
    return values, units


@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("per_unit", [2, 5, 10])
def test_clustered_interval_is_wider_when_outcomes_are_correlated_within_units(graded, per_unit):
    values, units = correlated(60, per_unit, seed=per_unit, graded=graded)
    lo_naive, hi_naive = bootstrap_interval(values, seed=3)
    lo, hi = bootstrap_interval(values, seed=3, units=units)
    assert lo < lo_naive and hi > hi_naive, ((lo, hi), (lo_naive, hi_naive))
    # About sqrt(design effect) = sqrt(1 + (m - 1) rho) wider; rho here is well above 0.2.
    assert (hi - lo) / (hi_naive - lo_naive) > np.sqrt(1 + (per_unit - 1) * 0.2)
    assert lo <= 100.0 * np.mean(values) <= hi


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("n", [1, 2, 17, 400])
def test_singleton_units_give_exactly_the_naive_interval(seed, n):
    values = np.random.default_rng(n + seed).choice([0.0, 0.3, 0.6, 0.9, 1.0], size=n).tolist()
    reference = naive_interval(values, seed=seed)
    singletons = [f"image/{i}" for i in range(n)]
    assert bootstrap_interval(values, seed=seed, units=singletons) == reference  # same numbers, bit for bit
    assert bootstrap_interval(values, seed=seed) == reference  # no units at all
    assert bootstrap_interval(values, seed=seed, units=[None] * n) == reference  # units absent per sample
    assert paired_bootstrap(values, [0.5] * n, 300, seed, units=singletons) == paired_bootstrap(
        values, [0.5] * n, 300, seed
    )


def test_singleton_units_give_exactly_the_naive_p_values():
    graded = [1.0, 0.9, 0.6, 1.0, 0.3, 0.0] * 7
    units = [f"q{i}" for i in range(len(graded))]
    assert p_value_vs_chance(graded, 40.0, units=units) == naive_p_value(graded, 40.0)
    assert p_value_vs_chance(graded, 40.0) == naive_p_value(graded, 40.0)
    hits = [1.0] * 9 + [0.0] * 11
    assert p_value_vs_chance(hits, 20.0, units=[str(i) for i in range(20)]) == binomial_tail(9, 20, 0.2)


def test_p_value_vs_chance_resamples_units_when_they_are_shared():
    # 12 of 20 hits, but in pairs of one image each: 10 draws, not 20. The exact binomial of 20
    # independent queries would overstate the evidence; the clustered test says less.
    hits = [1.0, 1.0] * 6 + [0.0, 0.0] * 4
    units = [f"image/{i // 2}" for i in range(20)]
    exact = binomial_tail(12, 20, 0.3)
    clustered = p_value_vs_chance(hits, 30.0, units=units)
    assert clustered != exact and clustered > exact
    assert clustered == p_value_vs_chance(hits, 30.0, units=units)  # seeded
    assert p_value_vs_chance([1.0, 0.0, 1.0], 10.0, units=["a", "a", "a"]) == 1.0  # one unit: no evidence
    # Correlated graded scores: the clustered p-value is larger (less evidence) than the naive one.
    values, units = correlated(15, 4, seed=2, graded=True)
    chance = 100.0 * np.mean(values) - 12.0
    assert p_value_vs_chance(values, chance, units=units) > p_value_vs_chance(values, chance)


def test_deterministic_with_a_seed_and_moved_by_another():
    values, units = correlated(40, 3, seed=5)
    first = bootstrap_interval(values, seed=11, units=units)
    assert first == bootstrap_interval(values, seed=11, units=units)
    assert first != bootstrap_interval(values, seed=12, units=units)
    totals = ClusterTotals.of(values, cluster_codes(units))
    assert np.array_equal(resampled_means(totals, 500, 4), resampled_means(totals, 500, 4))


def test_batches_do_not_change_the_draws(monkeypatch):
    import sclbench.metrics.cluster as cluster

    values, units = correlated(50, 3, seed=9)
    totals = ClusterTotals.of(values, cluster_codes(units))
    whole = resampled_means(totals, 257, 3)
    monkeypatch.setattr(cluster, "_BATCH_ELEMENTS", 50 * 7)  # 7 replicates per batch
    assert np.array_equal(whole, resampled_means(totals, 257, 3))


def test_cluster_codes_follow_first_appearance_and_ignore_label_spelling():
    units = ["b", None, "a", "b", None, "a", "c"]
    assert cluster_codes(units).tolist() == [0, 1, 2, 0, 3, 2, 4]
    renamed = [None if u is None else f"image/{u}" for u in units]
    assert cluster_codes(renamed).tolist() == cluster_codes(units).tolist()
    assert n_clusters(cluster_codes(units)) == 5
    assert cluster_codes([]).tolist() == [] and cluster_codes(None, 0).tolist() == []
    with pytest.raises(ValueError):
        cluster_codes(["a"], n=2)


def test_clustered_standard_error_and_minimum_detectable_effect():
    rng = np.random.default_rng(0)
    x = rng.random(200)
    naive = x.std(ddof=1) / np.sqrt(x.size)
    assert clustered_se(x, cluster_codes(None, x.size)) == pytest.approx(naive, rel=1e-12)
    # Every value copied 4 times into one unit: the same information as 200 samples, not 800.
    copies = np.repeat(x, 4)
    units = np.repeat(np.arange(200), 4).tolist()
    se_clustered = clustered_se(copies, cluster_codes(units))
    se_as_if_independent = clustered_se(copies, cluster_codes(None, copies.size))
    assert se_clustered == pytest.approx(naive, rel=1e-9)
    assert se_clustered / se_as_if_independent == pytest.approx(2.0, rel=0.01)  # sqrt(4)
    assert minimum_detectable_effect(se_clustered) == pytest.approx(100 * 2.8016 * naive, rel=1e-4)
    assert minimum_detectable_effect(None) is None and clustered_se([1.0], cluster_codes(None, 1)) is None


def test_clustered_paired_bootstrap_is_wider_than_the_naive_one():
    # B gains on whole images (all its questions flip together): the clustered interval must be wider.
    rng = np.random.default_rng(1)
    base, now, units = [], [], []
    for image in range(40):
        gain = rng.random() < 0.4
        for _ in range(5):
            a = float(rng.random() < 0.5)
            base.append(a)
            now.append(1.0 if gain else a)
            units.append(f"image/{image}")
    naive = paired_bootstrap(now, base, 2000, 0)
    clustered = paired_bootstrap(now, base, 2000, 0, units=units)
    assert clustered[0] < naive[0] and clustered[1] > naive[1]
    assert paired_bootstrap(base, base, 100, 0, units=units) == (0.0, 0.0)
