"""Tables that do not mislead: synthetic records never meet paper numbers, long protocols become
footnotes, numbers carry intervals and p-values computed from the saved per-sample predictions."""

import csv
import io
import json

import pytest

from sclbench.metrics.chance import binomial_tail, bootstrap_interval, chance_level, p_value_vs_chance
from sclbench.results import ResultRecord, build_table, render
from sclbench.results.baseline import replace_baseline
from sclbench.results.paper import PaperNumber
from sclbench.results.table import PROTOCOL_INLINE, is_synthetic

PAPER = [PaperNumber("f30k", "test", "tr_r1", 95.9, "paper table 2", True)]
PROTOCOL = {"mode": "two-stage", "k": 128, "fusion": "itm", "num_images": 20, "num_texts": 100, "ties": "gt_last"}


def f30k_record(name: str, synthetic: bool, hits: int = 7) -> tuple[ResultRecord, list[dict]]:
    preds = [
        {"id": f"image/{i}", "rank": 0 if i < hits else 9, "scores": {"tr_r1": float(i < hits)}} for i in range(20)
    ]
    rec = ResultRecord(
        "f30k",
        "test",
        {"tr_r1": 100.0 * hits / 20},
        "recall-gt_last",
        protocol=dict(PROTOCOL),
        checkpoint={"name": name},
        extra={"synthetic_data": {"synthetic": True}} if synthetic else {},
    )
    return rec, preds


def test_synthetic_record_is_labelled_and_never_compared_with_the_paper(tmp_path):
    real, _ = f30k_record("scl-f30k", synthetic=False)
    synth, _ = f30k_record("my-run", synthetic=True)
    rows = {r.checkpoint: r for r in build_table([real, synth], paper=PAPER)}
    assert rows["scl-f30k"].paper and rows["scl-f30k"].delta("tr_r1") == pytest.approx(35.0 - 95.9)
    assert rows["my-run"].synthetic and not rows["my-run"].paper and rows["my-run"].delta("tr_r1") is None
    md = render(list(rows.values()), "markdown")
    synth_line = next(line for line in md.splitlines() if "my-run" in line)
    assert "(synthetic)" in synth_line and "95.90" not in synth_line and "-60.90" not in synth_line
    assert "never compared" in md


def test_legacy_demo_records_count_as_synthetic():
    rec, _ = f30k_record("demo-scl", synthetic=False)
    assert is_synthetic(rec)
    assert not is_synthetic(f30k_record("scl-f30k", synthetic=False)[0])


def test_long_protocol_goes_to_a_footnote():
    rec, _ = f30k_record("scl-f30k", synthetic=False)
    md = render(build_table([rec], paper=PAPER), "markdown")
    row = next(line for line in md.splitlines() if "scl-f30k" in line)
    assert "see [1]" in row and "two-stage" not in row
    assert "1. " in md and "mode=two-stage" in md.split("Protocols:")[1]
    short, _ = f30k_record("x", synthetic=False)
    short.protocol = {"mode": "exhaustive"}
    assert len("mode=exhaustive") <= PROTOCOL_INLINE
    assert "| mode=exhaustive |" in render(build_table([short], paper=[]), "markdown")


def test_intervals_and_p_values_come_from_the_predictions(tmp_path):
    rec, preds = f30k_record("scl-f30k", synthetic=False, hits=7)
    rec.save(tmp_path, predictions=preds)
    row = build_table([rec], paper=PAPER, with_stats=True)[0]
    st = row.stats["tr_r1"]
    assert st.n == 20 and st.ci[0] < 35.0 < st.ci[1]
    chance = chance_level("f30k", "tr_r1", PROTOCOL)
    assert chance == pytest.approx(5.0)  # 1 - C(95, 1) / C(100, 1)
    assert st.p_value == pytest.approx(binomial_tail(7, 20, 0.05))
    assert st.p_value < 0.01
    assert "[" in render([row], "markdown").split("scl-f30k")[1].splitlines()[0]
    csv_text = render([row], "csv")
    line = next(csv.DictReader(io.StringIO(csv_text)))
    assert float(line["p_value"]) == pytest.approx(st.p_value) and line["synthetic"] == "false"


def test_numbers_whose_predictions_disagree_get_no_interval(tmp_path):
    rec, preds = f30k_record("scl-f30k", synthetic=False, hits=7)
    rec.metrics["tr_r1"] = 50.0  # not what the saved per-sample scores say
    rec.save(tmp_path, predictions=preds)
    st = build_table([rec], paper=[], with_stats=True)[0].stats["tr_r1"]
    assert st.ci is None and st.p_value is None and st.chance == pytest.approx(5.0)


def test_chance_levels_and_tests():
    assert chance_level("nlvr2", "accuracy", {}) == 50.0
    assert chance_level("vqa", "accuracy", {"chance_accuracy": 9.5}) == 9.5
    assert chance_level("msrvtt", "t2v_r5", {"num_images": 20, "num_texts": 20}) == pytest.approx(25.0)
    # image query with 5 captions of 100: 1 - C(95,1)/C(100,1) = 5 %
    assert chance_level("f30k", "tr_r1", {"num_images": 20, "num_texts": 100}) == pytest.approx(5.0)
    assert chance_level("f30k", "r_mean", PROTOCOL) is None
    assert binomial_tail(0, 10, 0.3) == 1.0
    assert binomial_tail(10, 10, 0.5) == pytest.approx(0.5**10)
    assert binomial_tail(44, 80, 0.5) == pytest.approx(
        0.21702, abs=1e-5
    )  # scipy binomtest; the NLVR2 55.0 on 80
    graded = [1.0, 0.9, 0.6, 1.0, 0.3] * 12
    assert p_value_vs_chance(graded, 10.0) < 0.01
    assert p_value_vs_chance([0.1, 0.0, 0.3, 0.0] * 10, 10.0) > 0.05
    lo, hi = bootstrap_interval([0.0, 1.0] * 50)
    assert lo < 50.0 < hi and hi - lo < 25.0


def test_replace_baseline_copies_records_with_predictions(tmp_path):
    rec, preds = f30k_record("demo-scl", synthetic=True)
    rec.save(tmp_path / "fresh", predictions=preds)
    stale, stale_preds = f30k_record("old-run", synthetic=True)  # a record no longer produced, in a subfolder
    stale.save(tmp_path / "base" / "old", predictions=stale_preds)
    assert replace_baseline(tmp_path / "fresh", tmp_path / "base") == 1
    assert not (tmp_path / "base" / "old").exists()
    copied = tmp_path / "base" / "f30k" / "f30k_test_demo-scl.predictions.jsonl"
    assert copied.read_text().count("\n") == 20


# JSON files in a baseline folder (no manifest yet) that are not complete sclbench records: the user's own.
FOREIGN_JSON = {
    "schema only.json": json.dumps({"schema": "sclbench.result/1"}).encode(),  # claims the schema, no task
    "not json.json": b"{unclosed",
    "utf16.json": json.dumps({"a": 1}).encode("utf-16"),
    "random.json": bytes(range(256)),
    "empty.json": b"",
    "repeated.json": b'{"schema": "sclbench.result/1", "task": "f30k", "task": "vqa"}',
    "list.json": b"[1, 2]",
}


def test_replace_baseline_keeps_json_it_did_not_write(tmp_path):
    """Neither deleted (the baseline never deletes what it did not write) nor a reason to stop: it is
    simply not a managed file. A stale record beside them still leaves."""
    rec, preds = f30k_record("demo-scl", synthetic=True)
    rec.save(tmp_path / "fresh", predictions=preds)
    base = tmp_path / "base"
    for name, data in FOREIGN_JSON.items():
        (base / "notes" / name).parent.mkdir(parents=True, exist_ok=True)
        (base / "notes" / name).write_bytes(data)
    stale, _ = f30k_record("old-run", synthetic=True)
    stale.save(base)
    assert replace_baseline(tmp_path / "fresh", base) == 1
    for name, data in FOREIGN_JSON.items():
        assert (base / "notes" / name).read_bytes() == data, name
    assert sorted(p.name for p in (base / "f30k").glob("*.json")) == ["f30k_test_demo-scl.json"]
    manifest = json.loads((base / ".sclbench-baseline.json").read_text())
    assert not any(f.startswith("notes") for f in manifest["files"])


def test_ablation_pairs_samples_by_id(tmp_path):
    from sclbench.app.demo import ablation_comparison
    from sclbench.results import collect

    def nlvr2(name, correct):
        preds = [{"id": f"s{i}", "scores": {"accuracy": float(i in correct)}} for i in range(100)]
        ResultRecord(
            "nlvr2", "test1", {"accuracy": float(len(correct))}, "nlvr2-official", checkpoint={"name": name}
        ).save(tmp_path, predictions=preds)

    nlvr2("demo-scl", set(range(80)))
    nlvr2("demo-no-completion", set(range(50)))
    rows = ablation_comparison(collect(tmp_path))
    assert rows[0]["delta"] == pytest.approx(30.0) and rows[0]["n"] == 100
    assert rows[0]["ci"][0] > 0 and "helps" in rows[0]["verdict"]
    nlvr2("demo-no-completion", set(range(1, 81)))  # same accuracy, different samples
    row = ablation_comparison(collect(tmp_path))[0]
    assert row["delta"] == 0.0 and row["ci"][0] < 0 < row["ci"][1] and row["verdict"] == "no significant difference"
    # 2 discordant samples of 100 (one each way): sd of the difference ~0.14, so detecting a
    # 2-point difference needs ((1.96 + 0.84) * 0.1421 / 0.02)^2 ~ 396 paired samples
    assert row["queries_needed"] == pytest.approx(396, abs=2)


def test_queries_needed_for_a_paired_effect():
    from sclbench.app.demo import queries_needed

    diffs = [1.0, -1.0] * 10 + [0.0] * 80  # 20 % discordant, no net effect
    assert queries_needed(diffs, 2.0) == pytest.approx((2.8**2) * 0.2 / 0.02**2, rel=0.02)
    assert queries_needed([0.0] * 50) is None and queries_needed([1.0]) is None
