"""The embedded default: the quick demo runs end to end, beats chance, and reproduces the committed
baseline `results/demo/` exactly (same seed, same numbers): CI's metric-drift guard.

`$SCLBENCH_DEMO_OUT`: a quick demo already run by the installed wheel (`.ci/run` runs it once, in
`scripts/wheel_smoke.sh`, from the wheel built from this checkout); these tests then check that
output instead of running the demo a second time. Unset, the demo runs here.

A change that moves a demo metric fails here with the drift table. If the change is intended,
accept it explicitly: `sclbench demo --quick --out OUT && sclbench baseline OUT/results --to results/demo`.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sclbench.app.demo import leaderboard
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


@pytest.mark.slow
def test_quick_demo_beats_chance_on_every_task(quick_demo):
    records = collect(quick_demo / "results")
    assert {r.task for r in records} == {"vqa", "nlvr2", "f30k", "coco", "msrvtt", "lsmdc"}
    rows = leaderboard(records)
    for row in rows:
        assert row["chance"] is not None, row
        assert row["demo-scl"] > row["chance"], (
            f"{row['task']} {row['metric']}: {row['demo-scl']} <= chance {row['chance']}"
        )


@pytest.mark.slow
def test_quick_demo_numbers_are_significant(quick_demo):
    """Every shown number, NLVR2 included, has an interval and beats chance at p < 0.01 (one-sided)."""
    rows = leaderboard(collect(quick_demo / "results"))
    assert {r["task"] for r in rows} == {"vqa", "nlvr2", "f30k", "coco", "msrvtt", "lsmdc"}
    for row in rows:
        assert row.get("demo-scl ci") is not None and row.get("demo-scl p") is not None, row
        assert row["demo-scl p"] < 0.01, f"{row['task']} {row['metric']}: p = {row['demo-scl p']:.3g}"


@pytest.mark.slow
def test_quick_demo_matches_committed_baseline(quick_demo, capsys):
    assert BASELINE.is_dir(), "no committed baseline: run `sclbench baseline OUT/results --to results/demo`"
    rc = main(["check", str(quick_demo / "results"), "--baseline", str(BASELINE), "--tolerance", "0"])
    report = capsys.readouterr().out
    assert rc == 0, "demo metrics drifted from results/demo:\n" + report
