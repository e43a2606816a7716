"""The embedded default: the quick demo runs end to end, beats chance, and reproduces the committed
baseline `results/demo/` exactly (same seed, same numbers): CI's metric-drift guard.

`$SCLBENCH_DEMO_OUT`: a quick demo already run by the installed wheel (`.ci/run` runs it once, in
`scripts/wheel_smoke.sh`, from the wheel built from this checkout); these tests then check that
output instead of running the demo a second time. Unset, the demo runs here.

A change that moves a demo metric fails here with the drift table. If the change is intended,
accept it explicitly: `sclbench demo --quick --out OUT && sclbench baseline OUT/results --to results/demo`
(the README's "Regenerating the demo baseline" says the same).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sclbench.app.demo import leaderboard, print_leaderboard
from sclbench.cli import main
from sclbench.results import collect

BASELINE = Path(__file__).resolve().parents[1] / "results" / "demo"


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    given = os.environ.get("SCLBENCH_DEMO_OUT")
    if given and (Path(given) / "results").is_dir():
        return Path(given)
    out = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SCLBENCH_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "sclbench", "demo", "--quick", "--out", str(out)], check=True, env=env, timeout=900
    )
    return out


TASKS = {"vqa", "nlvr2", "f30k", "coco", "msrvtt", "lsmdc"}


def assert_every_number_significant(results: Path) -> None:
    """Every shown number, NLVR2 included, has an interval and beats chance at p < 0.01 (one-sided)."""
    rows = leaderboard(collect(results))
    assert {r["task"] for r in rows} == TASKS
    for row in rows:
        assert row["chance"] is not None, row
        assert row["demo-scl"] > row["chance"], f"{row['task']} {row['metric']}: {row['demo-scl']} <= {row['chance']}"
        assert row.get("demo-scl ci") is not None and row.get("demo-scl p") is not None, row
        assert row["demo-scl p"] < 0.01, f"{row['task']} {row['metric']}: p = {row['demo-scl p']:.3g}"


def assert_blind_baselines_beaten(results: Path) -> None:
    """VQA beats the question-only baseline (the most frequent training answer per question) at p < 0.01,
    paired over questions; NLVR2's statements alone score 50 by design; retrieval's blind is chance."""
    rows = {(r["task"], r["metric"]): r for r in leaderboard(collect(results))}
    vqa = rows[("vqa", "accuracy")]
    assert vqa["blind kind"] == "question-only" and vqa["blind"] is not None, vqa
    assert vqa["blind"] > vqa["chance"] + 10, "the question-only baseline should be well above a uniform guess"
    assert vqa["demo-scl"] > vqa["blind"], f"VQA {vqa['demo-scl']:.1f} <= question-only {vqa['blind']:.1f}"
    assert vqa["demo-scl p blind"] < 0.01, f"VQA vs question-only: p = {vqa['demo-scl p blind']:.3g}"
    nlvr2 = rows[("nlvr2", "accuracy")]
    assert nlvr2["blind kind"].startswith("statement-only") and nlvr2["blind"] == 50.0, nlvr2
    for (task, metric), row in rows.items():
        if task not in ("vqa", "nlvr2"):
            assert row["blind"] == row["chance"], (task, metric, row)


@pytest.mark.parametrize("check", [assert_every_number_significant, assert_blind_baselines_beaten])
def test_committed_baseline_holds_the_claims(check):
    """The committed records (what the README's table shows) say what the slow tests below require of
    a fresh run: a baseline regenerated without them holding fails here, in the fast lane."""
    check(BASELINE)


def test_leaderboard_prints_the_blind_baselines(capsys):
    print_leaderboard(collect(BASELINE))
    out = capsys.readouterr().out
    assert "question-only" in out and "statement-only" in out and "= chance" in out


def test_a_record_without_the_question_only_baseline_still_renders(tmp_path, capsys):
    """Records written before the VQA task stored its blind baseline: the column shows '-', no p-value."""
    shutil.copytree(BASELINE, tmp_path / "results")
    path = tmp_path / "results" / "vqa" / "vqa_trainable_val_demo-scl.json"
    record = json.loads(path.read_text())
    del record["protocol"]["question_only_accuracy"]
    path.write_text(json.dumps(record))
    rows = {r["task"]: r for r in leaderboard(collect(tmp_path / "results"))}
    assert rows["vqa"]["blind"] is None and rows["vqa"]["demo-scl p blind"] is None
    assert rows["vqa"]["demo-scl p"] < 0.01  # the rest of the row as before
    print_leaderboard(collect(tmp_path / "results"))
    assert "question-only" in capsys.readouterr().out


@pytest.mark.slow
def test_quick_demo_numbers_are_significant(quick_demo):
    assert_every_number_significant(quick_demo / "results")


@pytest.mark.slow
def test_quick_demo_beats_its_blind_baselines(quick_demo):
    assert_blind_baselines_beaten(quick_demo / "results")


@pytest.mark.slow
def test_quick_demo_matches_committed_baseline(quick_demo, capsys):
    assert BASELINE.is_dir(), "no committed baseline: run `sclbench baseline OUT/results --to results/demo`"
    rc = main(["check", str(quick_demo / "results"), "--baseline", str(BASELINE), "--tolerance", "0"])
    report = capsys.readouterr().out
    assert rc == 0, "demo metrics drifted from results/demo:\n" + report
