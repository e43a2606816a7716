"""`sclbench compare A B` on constructed records: exact flips and ids, identical runs, pairing by id,
clustered intervals, folders of several tasks, mismatched inputs as one clear error, the CLI end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sclbench.app.compare import compare_paths, compare_records
from sclbench.cli import main
from sclbench.errors import DataError
from sclbench.metrics.cluster import cluster_codes, clustered_se
from sclbench.results import ResultRecord


def record(task="nlvr2", split="test1", name="a", metric="accuracy", protocol=None):
    return ResultRecord(task, split, {}, f"{task}-official", protocol=dict(protocol or {}), checkpoint={"name": name})


def scored(values, ids=None, units=None, metric="accuracy"):
    ids = ids if ids is not None else [f"q{i}" for i in range(len(values))]
    preds = []
    for i, v in enumerate(values):
        p = {"id": ids[i], "scores": {metric: float(v)}}
        if units is not None and units[i] is not None:
            p["unit"] = units[i]
        preds.append(p)
    return preds


def saved(root, values, name="a", task="nlvr2", split="test1", ids=None, units=None, extra_metrics=None, **kw):
    rec = record(task, split, name, protocol=kw.get("protocol"))
    rec.metrics["accuracy"] = 100.0 * float(np.mean(values))
    rec.metrics.update(extra_metrics or {})
    preds = scored(values, ids, units)
    return rec, rec.save(root, predictions=preds)


def test_known_flips_are_counted_and_named_exactly(tmp_path):
    a, _ = saved(tmp_path / "A", [1, 1, 0, 0, 1, 0, 1], name="base")
    b, _ = saved(tmp_path / "B", [1, 0, 1, 0, 0, 0, 1], name="cand")
    m = compare_records(a, b, resamples=500).metrics["accuracy"]
    assert m.flipped_a_to_b == ["q1", "q4"]  # A right -> B wrong, in the samples' order
    assert m.flipped_b_to_a == ["q2"]
    assert m.paired == 7 and m.only_a == m.only_b == 0 and m.clusters == 7
    assert m.difference == pytest.approx(100.0 * (3 - 4) / 7)
    assert m.difference == pytest.approx(m.b - m.a)
    assert m.ci[0] <= m.difference <= m.ci[1]
    assert 0.0 < m.p_value <= 1.0 and m.mde > 0


def test_identical_records_give_zero_difference_no_flips_and_p_one(tmp_path):
    values = [1, 0, 1, 1, 0, 0.5]
    a, _ = saved(tmp_path / "A", values, units=["s1", "s1", "s2", "s2", "s3", None])
    b, _ = saved(tmp_path / "B", values, name="b", units=["s1", "s1", "s2", "s2", "s3", None])
    c = compare_records(a, b)
    m = c.metrics["accuracy"]
    assert (m.difference, m.flipped_a_to_b, m.flipped_b_to_a, m.p_value, m.ci) == (0.0, [], [], 1.0, (0.0, 0.0))
    assert m.mde is None and m.se == 0.0 and m.clusters == 4
    assert c.protocol_changes == {} and c.scorer_change is None


def test_samples_are_paired_by_id_whatever_their_order(tmp_path):
    ids = [f"image/{i}" for i in range(6)]
    a, _ = saved(tmp_path / "A", [1, 0, 1, 0, 1, 1], ids=ids)
    # B in another order, one sample A lacks, one of A's missing.
    b_ids = ["image/5", "image/3", "image/0", "image/9", "image/1", "image/2"]
    b, _ = saved(tmp_path / "B", [0, 1, 1, 1, 1, 1], name="b", ids=b_ids)
    m = compare_records(a, b, resamples=200).metrics["accuracy"]
    assert m.paired == 5 and m.only_a == 1 and m.only_b == 1 and "left out" in m.note
    assert m.flipped_a_to_b == ["image/5"] and m.flipped_b_to_a == ["image/1", "image/3"]
    assert m.difference == pytest.approx(100.0 * (4 - 3) / 5)  # over the paired samples


def test_integer_ids_stay_integers_and_graded_scores_flip_by_direction(tmp_path):
    a, _ = saved(tmp_path / "A", [1.0, 0.6, 0.3, 0.0], ids=[181, 182, 183, 184], task="vqa", split="val")
    b, _ = saved(tmp_path / "B", [1.0, 0.9, 0.0, 0.0], ids=[181, 182, 183, 184], task="vqa", split="val", name="b")
    m = compare_records(a, b, resamples=100).metrics["accuracy"]
    assert m.flipped_a_to_b == [183] and m.flipped_b_to_a == [182]


def shared_image_gains(seed=1, images=40, per=5):
    """B gains on whole images (every question of an image flips together)."""
    rng = np.random.default_rng(seed)
    base, now, units = [], [], []
    for image in range(images):
        gain = rng.random() < 0.4
        for _ in range(per):
            x = float(rng.random() < 0.5)
            base.append(x)
            now.append(1.0 if gain else x)
            units.append(f"image/{image}")
    return base, now, units


def test_clustered_interval_and_p_value_of_the_difference_respect_shared_units(tmp_path):
    base, now, units = shared_image_gains()
    a, _ = saved(tmp_path / "A", base, units=units, protocol={"cluster_unit": "image"})
    b, _ = saved(tmp_path / "B", now, name="b", units=units, protocol={"cluster_unit": "image"})
    a0, _ = saved(tmp_path / "A0", base)
    b0, _ = saved(tmp_path / "B0", now, name="b")
    clustered = compare_records(a, b, resamples=2000)
    naive = compare_records(a0, b0, resamples=2000).metrics["accuracy"]
    m = clustered.metrics["accuracy"]
    assert clustered.unit == "image" and m.clusters == 40 and naive.clusters == 200
    assert m.difference == pytest.approx(naive.difference)
    assert m.ci[0] < naive.ci[0] and m.ci[1] > naive.ci[1]
    assert m.p_value >= naive.p_value and m.se > naive.se and m.mde > naive.mde
    # MDE = (z_0.975 + z_0.8) * clustered SE of the paired differences.
    diff = np.array(now) - np.array(base)
    assert m.mde == pytest.approx(100 * 2.8016 * clustered_se(diff, cluster_codes(units)), rel=1e-4)
    assert compare_records(a, b, resamples=2000).metrics["accuracy"] == m  # seeded: the same numbers
    # The unit comes from either side: B written before units existed still pairs A's units.
    mixed = compare_records(a, b0, resamples=2000).metrics["accuracy"]
    assert mixed.clusters == 40 and mixed.ci == m.ci


def test_a_clear_improvement_is_beyond_noise_and_an_even_trade_is_not(tmp_path):
    rng = np.random.default_rng(0)
    base = (rng.random(400) < 0.5).astype(float)
    better = np.where(rng.random(400) < 0.3, 1.0, base)
    a, _ = saved(tmp_path / "A", base)
    b, _ = saved(tmp_path / "B", better, name="b")
    m = compare_records(a, b, resamples=2000).metrics["accuracy"]
    assert m.p_value < 0.01 and m.ci[0] > 0 and m.beyond_noise
    swapped = base.copy()  # an even trade: three samples lost, three others won
    swapped[np.flatnonzero(base == 1)[:3]] = 0.0
    swapped[np.flatnonzero(base == 0)[:3]] = 1.0
    c, _ = saved(tmp_path / "C", swapped, name="c")
    even = compare_records(a, c, resamples=2000).metrics["accuracy"]
    assert even.difference == 0.0 and even.p_value == 1.0 and even.ci[0] < 0 < even.ci[1]
    assert len(even.flipped_a_to_b) == len(even.flipped_b_to_a) == 3 and not even.beyond_noise


def test_retrieval_recall_from_ranks_and_metrics_without_samples(tmp_path):
    def rec(ranks, name):
        r = ResultRecord("f30k", "test", {}, "recall-gt_last", checkpoint={"name": name})
        r.metrics["ir_r1"] = 100.0 * float(np.mean([k < 1 for k in ranks]))
        r.metrics["ir_r5"] = 100.0 * float(np.mean([k < 5 for k in ranks]))
        r.metrics["rsum"] = r.metrics["ir_r1"] + r.metrics["ir_r5"]
        preds = [{"id": f"text/{t}", "rank": k, "unit": f"image/{t // 5}"} for t, k in enumerate(ranks)]
        r.save(tmp_path / name, predictions=preds)
        return r

    a = rec([0, 3, 7, 0, 1, 0, 9, 2, 0, 0], "a")
    b = rec([1, 0, 2, 0, 0, 6, 0, 2, 0, 0], "b")
    c = compare_records(a, b, resamples=300)
    assert c.metrics["ir_r1"].flipped_a_to_b == ["text/0", "text/5"]
    assert c.metrics["ir_r1"].flipped_b_to_a == ["text/1", "text/4", "text/6"]
    assert c.metrics["ir_r5"].flipped_a_to_b == ["text/5"] and c.metrics["ir_r5"].flipped_b_to_a == ["text/2", "text/6"]
    assert c.metrics["ir_r1"].clusters == 2
    rsum = c.metrics["rsum"]
    assert rsum.difference == pytest.approx(b.metrics["rsum"] - a.metrics["rsum"]) and rsum.ci is None
    assert "no per-sample scores" in rsum.note


def test_vqa_accuracy_per_answer_type_is_paired_over_its_questions(tmp_path):
    types = ["yes/no", "number", "yes/no", "other", "yes/no"]

    def rec(values, name):
        r = ResultRecord("vqa", "val", {}, "vqaEval-official", checkpoint={"name": name})
        r.metrics["accuracy"] = 100 * float(np.mean(values))
        yes_no = [v for v, t in zip(values, types) if t == "yes/no"]
        r.metrics["accuracy_yes_no"] = 100 * float(np.mean(yes_no))
        preds = [{"id": i, "answer_type": t, "scores": {"accuracy": v}} for i, (v, t) in enumerate(zip(values, types))]
        r.save(tmp_path / name, predictions=preds)
        return r

    c = compare_records(rec([1, 0, 1, 0.3, 0], "a"), rec([0, 1, 1, 0.3, 1], "b"), resamples=200)
    yes_no = c.metrics["accuracy_yes_no"]
    assert yes_no.paired == 3 and yes_no.flipped_a_to_b == [0] and yes_no.flipped_b_to_a == [4]


def test_folders_are_matched_by_task_and_split(tmp_path):
    for side, tasks in (("A", [("nlvr2", "test1"), ("vqa", "val"), ("f30k", "test")]), ("B", [("nlvr2", "test1"),
                        ("vqa", "val"), ("coco", "test"), ("f30k", "val")])):  # fmt: skip
        for task, split in tasks:
            saved(tmp_path / side, [1, 0, 1], name=f"ckpt-{side}", task=task, split=split)
    report = compare_paths(tmp_path / "A", tmp_path / "B", resamples=100)
    assert [(c.task, c.split) for c in report.comparisons] == [("nlvr2", "test1"), ("vqa", "val")]
    assert all((c.a, c.b) == ("ckpt-A", "ckpt-B") for c in report.comparisons)
    assert [line.split(" ")[0] for line in report.only_in_a] == ["f30k/test"]
    assert [line.split(" ")[0] for line in report.only_in_b] == ["coco/test", "f30k/val"]
    data = json.loads(report.to_json())
    assert data["comparisons"][0]["metrics"]["accuracy"]["flipped_a_to_b"] == []
    # A record file against a folder: the folder's record of that task and split.
    one = compare_paths(tmp_path / "A" / "vqa" / "vqa_val_ckpt-A.json", tmp_path / "B", resamples=100)
    assert [(c.task, c.split) for c in one.comparisons] == [("vqa", "val")] and len(one.only_in_b) == 3


@pytest.mark.parametrize(
    "case",
    ["other task", "other split", "nothing shared", "two of a kind", "not a record", "empty folder", "missing"],
)
def test_mismatched_inputs_are_one_clear_error(tmp_path, case):
    _, a = saved(tmp_path / "A", [1, 0, 1], task="nlvr2", split="test1")
    b_task, b_split = {"other task": ("vqa", "test1"), "other split": ("nlvr2", "dev")}.get(case, ("nlvr2", "test1"))
    _, b = saved(tmp_path / "B", [1, 1, 1], name="b", task=b_task, split=b_split)
    if case == "nothing shared":
        a, b = a.parent.parent, tmp_path / "B"
        saved(tmp_path / "B", [1], name="b2", task="coco", split="test")
        b.joinpath("nlvr2").joinpath("nlvr2_test1_b.json").unlink()
    if case == "two of a kind":
        saved(tmp_path / "B", [0, 0, 1], name="b2")
        b = tmp_path / "B"
    if case == "not a record":
        b = tmp_path / "other.json"
        b.write_text('{"hello": 1}')
    if case == "empty folder":
        b = tmp_path / "empty"
        b.mkdir()
    if case == "missing":
        b = tmp_path / "nowhere"
    with pytest.raises(DataError) as err:
        compare_paths(a, b, resamples=10)
    message = str(err.value)
    assert "\n" not in message and len(message) < 600
    expected = {
        "other task": "same task and split",
        "other split": "same task and split",
        "nothing shared": "share no task and split",
        "two of a kind": "two records of nlvr2/test1",
        "not a record": "not an sclbench result record",
        "empty folder": "holds no result records",
        "missing": "does not exist",
    }[case]
    assert expected in message


def test_a_repeated_sample_id_cannot_be_paired(tmp_path):
    a, _ = saved(tmp_path / "A", [1, 0, 1], ids=["x", "y", "x"])
    b, _ = saved(tmp_path / "B", [1, 0, 1], name="b")
    with pytest.raises(DataError, match="'x' twice"):
        compare_records(a, b)


def flip_pair(tmp_path, n_flips=8):
    values_a = [1.0] * n_flips + [0.0, 1.0]
    values_b = [0.0] * n_flips + [1.0, 1.0]
    _, a = saved(tmp_path / "A", values_a, name="base")
    _, b = saved(tmp_path / "B", values_b, name="cand")
    return a, b


def test_cli_prints_a_table_with_a_preview_and_writes_every_id(tmp_path, capsys):
    a, b = flip_pair(tmp_path)
    out = tmp_path / "cmp.json"
    assert main(["compare", str(a), str(b), "--json", str(out), "--preview", "3", "--bootstrap", "200"]) == 0
    text = capsys.readouterr().out
    assert "nlvr2 test1: A = base, B = cand" in text and "accuracy" in text
    assert "A right -> B wrong (8): q0, q1, q2, ... (+5; --json FILE lists all)" in text
    assert "A wrong -> B right (1): q8" in text
    data = json.loads(out.read_text())
    metric = data["comparisons"][0]["metrics"]["accuracy"]
    assert metric["flipped_a_to_b"] == [f"q{i}" for i in range(8)] and metric["flipped_a_to_b_count"] == 8
    assert metric["flipped_b_to_a"] == ["q8"]


def test_cli_json_format_on_stdout(tmp_path, capsys):
    a, b = flip_pair(tmp_path, n_flips=12)
    assert main(["compare", str(a.parent.parent), str(b.parent.parent), "--format", "json", "--bootstrap", "50"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["comparisons"][0]["metrics"]["accuracy"]["flipped_a_to_b"]) == 12


@pytest.mark.parametrize(
    "argv",
    [
        ["--format", "xml"],
        ["--bootstrap", "0"],
        ["--bootstrap", "nan"],
        ["--seed", "-1"],
        ["--preview", "-2"],
        ["--json", "{dir}"],
    ],
)
def test_cli_bad_options_are_one_error_line(tmp_path, capsys, argv):
    a, b = flip_pair(tmp_path)
    argv = [x.format(dir=tmp_path) for x in argv]
    assert main(["compare", str(a), str(b), *argv]) == 2
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if line.lower().startswith("error")]) == 1
    assert "Traceback" not in err


def test_cli_mismatched_or_missing_inputs_are_one_error_line(tmp_path, capsys):
    _, a = saved(tmp_path / "A", [1, 0], task="nlvr2", split="test1")
    _, b = saved(tmp_path / "B", [1, 0], task="vqa", split="val", name="b")
    for argv in ([str(a), str(b)], [str(a), str(tmp_path / "missing.json")]):
        assert main(["compare", *argv]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), err


def test_non_finite_numbers_are_reported_not_compared_and_json_stays_strict(tmp_path):
    a, _ = saved(tmp_path / "A", [1, 0], extra_metrics={"consistency": float("nan")}, protocol={"k": float("inf")})
    b, _ = saved(tmp_path / "B", [1, 1], name="b", extra_metrics={"consistency": 50.0}, protocol={"k": 3})
    report = compare_paths(a.source, b.source, resamples=50)
    m = report.comparisons[0].metrics["consistency"]
    assert (m.a, m.b, m.difference, m.note) == (None, 50.0, None, "not a finite number on A")
    data = json.loads(report.to_json())  # strict: NaN / inf become null
    assert data["comparisons"][0]["protocol_changes"] == {"k": [None, 3]}


@pytest.mark.slow  # two interpreters importing sclbench: ~30 s on a busy 2-core machine
def test_console_script_end_to_end(tmp_path):
    a, b = flip_pair(tmp_path, n_flips=2)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SCLBENCH_NO_PROGRESS": "1"}
    run = [sys.executable, "-m", "sclbench", "compare", str(a), str(b), "--format", "json", "--bootstrap", "100"]
    proc = subprocess.run(run, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    metric = json.loads(proc.stdout)["comparisons"][0]["metrics"]["accuracy"]
    assert (metric["flipped_a_to_b"], metric["flipped_b_to_a"]) == (["q0", "q1"], ["q2"])
    bad = subprocess.run([*run[:5], str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
