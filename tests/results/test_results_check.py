"""The drift check: tolerances, missing records, scorer changes, bootstrap CI, CLI exit codes."""

import numpy as np
import pytest

from sclbench.cli import main
from sclbench.errors import ConfigError, DataError
from sclbench.results import ResultRecord, check, paired_bootstrap


def nlvr2(acc: float, correct: list[int] | None = None, scorer: str = "nlvr2-official") -> tuple[ResultRecord, list]:
    rec = ResultRecord("nlvr2", "dev", {"accuracy": acc, "consistency": 50.0}, scorer, checkpoint={"name": "demo"})
    preds = None
    if correct is not None:
        preds = [{"id": f"dev-{i}-0-0", "scores": {"accuracy": c}} for i, c in enumerate(correct)]
    return rec, preds


def save(root, rec_preds):
    rec, preds = rec_preds
    rec.save(root, predictions=preds)
    return root


def test_identical_passes(tmp_path):
    base = save(tmp_path / "base", nlvr2(80.0))
    now = save(tmp_path / "now", nlvr2(80.0))
    report = check(now, base, tolerance=0)
    assert report.passed and {r.status for r in report.rows} == {"ok"}


def test_tolerances(tmp_path):
    base = save(tmp_path / "base", nlvr2(80.0))
    now = save(tmp_path / "now", nlvr2(80.5))
    assert check(now, base).passed  # exactly 0.5 points: within the default tolerance
    assert not check(now, base, tolerance=0.4).passed
    report = check(now, base, tolerance=0.4, per_metric_tolerance={"acc*": 1.0})
    assert report.passed and report.rows[0].tolerance == 1.0
    with pytest.raises(ConfigError):
        check(now, base, tolerance=-1)


def test_missing_record_metric_and_scorer_change(tmp_path):
    base = save(tmp_path / "base", nlvr2(80.0))
    rec, _ = nlvr2(80.0, scorer="my-own-scorer")
    del rec.metrics["consistency"]
    rec.metrics["new_metric"] = 1.0
    now = save(tmp_path / "now", (rec, None))
    report = check(now, base)
    status = {r.metric: r.status for r in report.rows}
    assert status == {"(scorer)": "changed", "accuracy": "ok", "consistency": "missing", "new_metric": "new"}
    assert not report.passed
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check(empty, base).rows[0].status == "missing"
    with pytest.raises(DataError, match="no result records"):
        check(base, empty)


def test_records_match_by_key_when_not_both_folders(tmp_path):
    base_rec, _ = nlvr2(80.0)
    now = save(tmp_path / "now", nlvr2(81.0))
    report = check(now, [base_rec], tolerance=0.5)
    assert [r.status for r in report.rows] == ["drift", "ok"]
    assert report.rows[0].delta == pytest.approx(1.0)


def test_bootstrap_ci_is_seeded_and_flags_real_changes(tmp_path):
    rng = np.random.default_rng(0)
    before = (rng.random(400) < 0.7).astype(int)
    after = before.copy()
    after[:40] = 1  # 40 answers fixed at once: a real improvement
    a = paired_bootstrap(after, before, n_resamples=500, seed=1)
    assert a == paired_bootstrap(after, before, n_resamples=500, seed=1)
    assert a != paired_bootstrap(after, before, n_resamples=500, seed=2)
    base = save(tmp_path / "base", nlvr2(100 * before.mean(), before.tolist()))
    now = save(tmp_path / "now", nlvr2(100 * after.mean(), after.tolist()))
    row = check(now, base, tolerance=20, n_resamples=500, seed=1).rows[0]
    assert row.status == "ok" and row.beyond_noise
    assert row.ci == check(now, base, tolerance=20, n_resamples=500, seed=1).rows[0].ci
    assert row.ci[0] <= row.delta <= row.ci[1]
    same = check(base, base, n_resamples=500).rows[0]
    assert same.ci == (0.0, 0.0) and same.beyond_noise is False


def test_cli_exit_codes(tmp_path, capsys):
    base = save(tmp_path / "base", nlvr2(80.0))
    now = save(tmp_path / "now", nlvr2(81.0))
    assert main(["check", str(base), "--baseline", str(base), "--tolerance", "0"]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(["check", str(now), "--baseline", str(base)]) == 1
    assert "DRIFT" in capsys.readouterr().out
    assert main(["check", str(now), "--baseline", str(base), "--metric-tolerance", "accuracy=1.5"]) == 0
    assert main(["check", str(now), "--baseline", str(base), "-m", "accuracy"]) == 2
    assert main(["check", str(tmp_path / "nowhere"), "--baseline", str(base)]) == 2
    (now / "nlvr2" / "bad.json").write_text("{")
    assert main(["check", str(now), "--baseline", str(base)]) == 2
    assert "bad.json" in capsys.readouterr().err
