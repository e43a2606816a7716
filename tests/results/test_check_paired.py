"""sclbench check between two evaluations of the same model that differ on purpose (bf16 vs fp32):
expected protocol changes, the values of changed protocol keys, and per-sample change counts."""

from sclbench.results import ResultRecord, check


def vqa(acc: list[float], precision: str, k: int = 1) -> tuple[ResultRecord, list]:
    rec = ResultRecord(
        "vqa",
        "minival",
        {"accuracy": 100 * sum(acc) / len(acc)},
        "vqaEval-official",
        protocol={"role": "test", "precision": precision, "k": k},
        checkpoint={"name": "demo"},
    )
    return rec, [{"id": i, "scores": {"accuracy": a}} for i, a in enumerate(acc)]


def save(root, rec_preds):
    rec, preds = rec_preds
    rec.save(root, predictions=preds)
    return root


def test_precision_change_fails_unless_expected_and_names_both_values(tmp_path):
    base = save(tmp_path / "fp32", vqa([1.0, 0.3, 0.0, 1.0], "fp32"))
    now = save(tmp_path / "bf16", vqa([1.0, 0.3, 0.0, 1.0], "bf16"))
    plain = check(now, base)
    row = plain.rows[0]
    assert (row.metric, row.status) == ("(protocol)", "changed") and not plain.passed
    assert row.note == "precision: 'fp32' -> 'bf16'"
    expected = check(now, base, expected_protocol=["precision"])
    assert expected.passed
    assert (expected.rows[0].status, expected.rows[0].note) == ("ok", "expected precision: 'fp32' -> 'bf16'")


def test_an_unexpected_protocol_change_still_fails(tmp_path):
    base = save(tmp_path / "fp32", vqa([1.0, 0.0], "fp32", k=1))
    now = save(tmp_path / "bf16", vqa([1.0, 0.0], "bf16", k=2))
    report = check(now, base, expected_protocol=["precision"])
    assert not report.passed
    assert [(r.status, r.note) for r in report.rows if r.metric == "(protocol)"] == [("changed", "k: 1 -> 2")]


def test_rows_count_paired_and_changed_samples(tmp_path):
    base = save(tmp_path / "fp32", vqa([1.0, 0.3, 0.0, 1.0, 0.6], "fp32"))
    now = save(tmp_path / "bf16", vqa([1.0, 0.6, 0.0, 0.0, 0.6], "bf16"))
    row = next(
        r for r in check(now, base, tolerance=50, expected_protocol=["precision"]).rows if r.metric == "accuracy"
    )
    assert (row.paired, row.changed_samples) == (5, 2)
    assert row.ci is not None and row.ci[0] <= row.delta <= row.ci[1]
    as_json = check(now, base, tolerance=50, expected_protocol=["precision"]).to_dict()["rows"]
    assert {"paired": 5, "changed_samples": 2}.items() <= as_json[-1].items()
    same = next(r for r in check(base, base).rows if r.metric == "accuracy")
    assert (same.paired, same.changed_samples, same.ci) == (5, 0, (0.0, 0.0))


def test_cli_expect_protocol(tmp_path):
    from sclbench.cli import main

    base = save(tmp_path / "fp32", vqa([1.0, 0.3, 0.0, 1.0], "fp32"))
    now = save(tmp_path / "bf16", vqa([1.0, 0.3, 0.0, 1.0], "bf16"))
    assert main(["check", str(now), "--baseline", str(base)]) == 1
    assert main(["check", str(now), "--baseline", str(base), "--expect-protocol", "precision"]) == 0
