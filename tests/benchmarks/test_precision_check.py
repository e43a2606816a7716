"""benchmarks/precision_check.py: the bf16 rule, its binomial bound, and the per-sample comparison of
two evaluations (without running the demo: records are written here)."""

import math

import pytest

from benchmarks.precision_check import bf16_tolerance, binomial_upper, prediction_changes, summary_rows
from sclbench.results import ResultRecord, check


def test_binomial_upper_bound_is_clopper_pearson():
    assert binomial_upper(0, 100) == pytest.approx(1 - 0.05 ** (1 / 100), abs=1e-9)  # closed form for k = 0
    assert binomial_upper(3, 460) == pytest.approx(0.016769, abs=1e-5)  # scipy beta.ppf(0.95, 4, 457)
    assert binomial_upper(5, 5) == 1.0


def test_bf16_tolerance_shrinks_with_the_number_of_samples():
    assert bf16_tolerance(1000) == pytest.approx(0.5 + 196 * math.sqrt(0.02 / 1000))
    assert bf16_tolerance(20) > 100 / 20 > bf16_tolerance(5000) - 0.5  # one flip passes on 20, not 0.4 pts at 5k
    assert bf16_tolerance(5000, fp32_tolerance=0.0) < 0.4


def retrieval(root, ranks_img, ranks_txt, precision):
    metrics = {
        "tr_r1": 100 * sum(r < 1 for r in ranks_img) / len(ranks_img),
        "ir_r1": 100 * sum(r < 1 for r in ranks_txt) / len(ranks_txt),
    }
    metrics["tr_r10"] = metrics["tr_r1"]
    preds = [{"id": f"image/{i}", "rank": r, "scores": {"tr_r1": float(r < 1)}} for i, r in enumerate(ranks_img)]
    preds += [{"id": f"text/{i}", "rank": r, "scores": {"ir_r1": float(r < 1)}} for i, r in enumerate(ranks_txt)]
    rec = ResultRecord(
        "f30k", "test", metrics, "recall-gt_last", protocol={"precision": precision}, checkpoint={"name": "demo-scl"}
    )
    rec.save(root, predictions=preds)
    return ResultRecord.load(rec.source)


def test_summary_rows_and_prediction_changes(tmp_path):
    a = retrieval(tmp_path / "fp32", [0, 0, 3, 1], [0, 2, 0, 0, 5, 0, 0, 1], "fp32")
    b = retrieval(tmp_path / "bf16", [0, 1, 3, 1], [0, 2, 0, 0, 6, 0, 0, 1], "bf16")
    changes = prediction_changes(a, b)
    assert changes["samples"] == 12 and changes["outcome_changed"] == 1 and changes["changed"] == {"rank": 2}
    report = check(tmp_path / "bf16", tmp_path / "fp32", expected_protocol=["precision"]).to_dict()
    rows = {r["metric"]: r for r in summary_rows(report, {"f30k": a})}
    assert rows["tr_r1"]["delta"] == -25.0 and rows["tr_r1"]["n"] == 4 and rows["tr_r1"]["changed_samples"] == 1
    assert rows["tr_r10"]["n"] == 4  # no per-sample scores: N of the same direction's R@1
    # One flip in 4 samples is 25 points: beyond the rule's 14.36 for N = 4 (a 2% flip rate rarely flips one of 4).
    assert rows["tr_r1"]["bf16_tolerance"] == round(bf16_tolerance(4), 2)
    assert rows["tr_r1"]["within_bf16_tolerance"] is False
    assert rows["ir_r1"]["delta"] == 0 and rows["ir_r1"]["n"] == 8 and rows["ir_r1"]["within_bf16_tolerance"]
