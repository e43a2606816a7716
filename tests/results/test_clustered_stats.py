"""The record-level numbers resample units: the table's intervals and p-values (results/stats.py) and
`check`'s paired interval, clustered when predictions carry `unit`, unchanged for records without."""

from __future__ import annotations

import numpy as np
import pytest

from sclbench.metrics.chance import binomial_tail, bootstrap_interval, p_value_vs_chance
from sclbench.results import ResultRecord, check, paired_bootstrap
from sclbench.results.stats import number_stats, per_sample, record_stats, sample_scores


def correlated_vqa(images=30, per=4, seed=0):
    """Questions whose score is mostly their image's: (values, units)."""
    rng = np.random.default_rng(seed)
    values, units = [], []
    for image in range(images):
        easy = rng.random() < 0.5
        for _ in range(per):
            values.append(float(easy != (rng.random() < 0.1)))
            units.append(f"image/{image}")
    return values, units


def vqa_record(root, values, units=None, name="run", unit_name="image"):
    rec = ResultRecord(
        "vqa",
        "val",
        {"accuracy": 100.0 * float(np.mean(values))},
        "vqaEval-official",
        protocol={"chance_accuracy": 20.0, **({"cluster_unit": unit_name} if units else {})},
        checkpoint={"name": name},
    )
    preds = [{"id": i, "scores": {"accuracy": v}} for i, v in enumerate(values)]
    for p, u in zip(preds, units or []):
        p["unit"] = u
    rec.save(root, predictions=preds)
    return rec


def test_number_stats_resample_the_unit_the_record_names(tmp_path):
    values, units = correlated_vqa()
    clustered = number_stats(vqa_record(tmp_path / "c", values, units), "accuracy")
    naive = number_stats(vqa_record(tmp_path / "n", values), "accuracy")
    assert (clustered.unit, clustered.clusters, clustered.n, clustered.clustered) == ("image", 30, 120, True)
    assert (naive.unit, naive.clusters, naive.n, naive.clustered) == (None, 120, 120, False)
    assert clustered.ci[0] < naive.ci[0] and clustered.ci[1] > naive.ci[1]
    assert clustered.ci == bootstrap_interval(values, units=units)
    assert naive.ci == bootstrap_interval(values)  # the record without units: what it always was
    # 0/1 scores: the exact binomial only without shared units; the cluster bootstrap otherwise.
    assert naive.p_value == binomial_tail(int(sum(values)), len(values), 0.2)
    assert clustered.p_value == p_value_vs_chance(values, 20.0, units=units) != naive.p_value
    assert clustered.p_value > naive.p_value


def test_a_record_with_units_but_no_unit_name_still_says_it_was_clustered(tmp_path):
    values, units = correlated_vqa(images=5, per=2)
    rec = vqa_record(tmp_path, values, units)
    rec.protocol.pop("cluster_unit")
    st = record_stats(rec)["accuracy"]
    assert st.unit == "unit" and st.clusters == 5


def test_singleton_units_change_nothing(tmp_path):
    values, _ = correlated_vqa(images=20, per=3)
    with_units = number_stats(vqa_record(tmp_path / "u", values, [f"q{i}" for i in range(60)]), "accuracy")
    without = number_stats(vqa_record(tmp_path / "n", values), "accuracy")
    assert (with_units.ci, with_units.p_value, with_units.clusters) == (without.ci, without.p_value, 60)


def test_sample_scores_carry_ids_and_units_and_per_sample_is_unchanged():
    preds = [
        {"id": "text/0", "rank": 0, "unit": "image/3"},
        {"id": "text/1", "rank": 7, "unit": "image/3"},
        {"id": "image/3", "rank": 2},
    ]
    scored = sample_scores(preds, "ir_r5")
    assert [(s.id, s.value, s.unit) for s in scored] == [("text/0", 1.0, "image/3"), ("text/1", 0.0, "image/3")]
    assert per_sample(preds, "ir_r5") == [1.0, 0.0] and per_sample(preds, "tr_r5") == [1.0]
    assert sample_scores(preds, "rsum") is None and sample_scores([], "ir_r1") is None


def test_check_pairs_units_and_reports_them(tmp_path):
    values, units = correlated_vqa(images=40, per=5, seed=3)
    rng = np.random.default_rng(4)
    gains = {u for u in sorted(set(units)) if rng.random() < 0.3}
    improved = [1.0 if u in gains else v for v, u in zip(values, units)]
    base = vqa_record(tmp_path / "base", values, units)
    now = vqa_record(tmp_path / "now", improved, units)
    row = next(r for r in check(tmp_path / "now", tmp_path / "base", tolerance=100).rows if r.metric == "accuracy")
    assert (row.unit, row.clusters, row.paired) == ("image", 40, 200)
    order = sorted(range(len(values)), key=str)  # check pairs the ids sorted as JSON text
    pick = [improved[i] for i in order], [values[i] for i in order]
    assert row.ci == paired_bootstrap(*pick, 1000, 0, units=[units[i] for i in order])
    naive = paired_bootstrap(*pick, 1000, 0)
    assert row.ci[0] < naive[0] and row.ci[1] > naive[1]
    assert base.metrics != now.metrics


def test_check_without_units_is_unchanged(tmp_path):
    values, _ = correlated_vqa(images=10, per=3, seed=5)
    later = values[::-1]
    vqa_record(tmp_path / "base", values)
    vqa_record(tmp_path / "now", later)
    row = next(r for r in check(tmp_path / "now", tmp_path / "base", tolerance=100).rows if r.metric == "accuracy")
    assert (row.unit, row.clusters) == (None, None)
    # The sample bootstrap exactly as before: means of paired differences, resampled one by one.
    diff = np.array(later) - np.array(values)
    order = sorted(range(len(values)), key=str)  # check pairs the ids sorted as JSON text
    d = diff[order]
    rng = np.random.default_rng(0)
    means = d[rng.integers(0, d.size, size=(1000, d.size))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    assert row.ci == pytest.approx((100 * lo, 100 * hi), abs=0) and row.ci == (100.0 * float(lo), 100.0 * float(hi))
