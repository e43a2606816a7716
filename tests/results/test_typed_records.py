"""Records and the drift check can never pass by accident: a record field of the wrong kind is an
error naming the file and field (never a record or metric silently skipped by `table` or `check`), a
NaN/inf metric fails the check and shows in the table, and no tolerance input lets a drift beyond a
finite tolerance pass (NaN, inf, negative, text, bool tolerances refused in the API and the CLI)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sclbench.cli import main
from sclbench.errors import ConfigError, DataError
from sclbench.results import ResultRecord, build_table, check, collect, render
from sclbench.results.check import _exceeds, check_tolerances

BUDGET = settings(max_examples=80, deadline=None, derandomize=True)


def record(acc: float = 80.0, **metrics) -> ResultRecord:
    return ResultRecord(
        "nlvr2", "dev", {"accuracy": acc, "consistency": 50.0, **metrics}, "nlvr2-official", checkpoint={"name": "demo"}
    )


def saved(root, rec: ResultRecord):
    rec.save(root)
    return root


def record_file(root) -> object:
    return next(p for p in root.rglob("*.json") if ".history" not in p.parts)


def rewrite(root, **fields):
    path = record_file(root)
    data = json.loads(path.read_text())
    for key, value in fields.items():
        if key.startswith("metrics."):
            data["metrics"][key.split(".", 1)[1]] = value
        else:
            data[key] = value
    path.write_text(json.dumps(data))
    return path


# ---- record fields of the wrong kind ----------------------------------------------------------------
BAD_METRICS = ["81.0", "abc", None, True, False, [81.0], {"v": 81.0}, ""]


@pytest.mark.parametrize("value", BAD_METRICS, ids=repr)
def test_a_non_number_metric_is_an_error_in_table_and_check(tmp_path, value):
    base = saved(tmp_path / "base", record())
    now = saved(tmp_path / "now", record())
    path = rewrite(now, **{"metrics.accuracy": value})
    for run in (lambda: collect(now), lambda: check(now, base), lambda: build_table(collect(now))):
        with pytest.raises(DataError) as info:
            run()
        assert str(path) in str(info.value) and "accuracy" in str(info.value)
    # the baseline side too: a check never skips a metric it cannot read
    path = rewrite(base, **{"metrics.consistency": value})
    with pytest.raises(DataError, match="consistency"):
        check(saved(tmp_path / "now2", record()), base)
    assert main(["check", str(now), "--baseline", str(base)]) == 2
    assert main(["table", str(now)]) == 2


@pytest.mark.parametrize(
    "field, value",
    [
        ("task", 5),
        ("task", ""),
        ("split", None),
        ("scorer", ["x"]),
        ("metrics", [80.0]),
        ("metrics", "80"),
        ("protocol", "two-stage"),
        ("protocol", [1]),
        ("config", 3),
        ("checkpoint", "demo"),
        ("versions", []),
        ("extra", "x"),
        ("world_size", "1"),
        ("world_size", 0),
        ("world_size", 1.5),
        ("wall_time_s", "fast"),
        ("wall_time_s", -1),
        ("throughput", True),
        ("seed", "0"),
        ("seed", 0.5),
        ("created_at", 20240101),
        ("notes", None),
        ("git_commit", 123),
        ("device", ["cpu"]),
        ("predictions_file", "../../etc/passwd"),
        ("predictions_file", "/abs/path.jsonl"),
        ("predictions_file", ""),
        ("predictions_sha256", 7),
        ("data_fingerprint", {"a": 1}),
    ],
)
def test_a_field_of_the_wrong_kind_names_file_and_field(tmp_path, field, value):
    now = saved(tmp_path / "now", record())
    path = rewrite(now, **{field: value})
    with pytest.raises(DataError) as info:
        collect(now)
    assert str(path) in str(info.value) and field in str(info.value), str(info.value)


def test_metric_names_must_be_texts_in_records_built_in_code(tmp_path):
    rec = record()
    rec.metrics["accuracy"] = "81"
    with pytest.raises(DataError, match="accuracy"):
        build_table([rec])
    report = check([rec], [record()])
    assert not report.passed and any("not a number" in r.note for r in report.rows)


# ---- NaN and inf metrics: never a pass, always shown ------------------------------------------------
@pytest.mark.parametrize(
    "base_value, now_value",
    [
        (80.0, math.nan),
        (math.nan, 80.0),
        (math.nan, math.nan),
        (80.0, math.inf),
        (math.inf, math.inf),
        (-math.inf, 80.0),
    ],
)
def test_non_finite_metrics_fail_the_check(tmp_path, base_value, now_value):
    base = saved(tmp_path / "base", record(base_value))
    now = saved(tmp_path / "now", record(now_value))
    report = check(now, base, tolerance=1000)
    assert not report.passed
    row = next(r for r in report.rows if r.metric == "accuracy")
    assert row.status == "drift" and row.note
    assert main(["check", str(now), "--baseline", str(base), "--tolerance", "1000"]) == 1


def test_a_nan_metric_shows_in_the_table(tmp_path):
    now = saved(tmp_path / "now", record(math.nan))
    rows = build_table(collect(now))
    assert "accuracy" in rows[0].metrics
    assert "NaN" in render(rows, "markdown") and "nan" in render(rows, "csv")


# ---- tolerances ----------------------------------------------------------------------------------------
BAD_TOLERANCES = [math.nan, math.inf, -math.inf, -1.0, -1e-12, "0.5", True, False, None, [0.5]]


@pytest.mark.parametrize("tolerance", BAD_TOLERANCES, ids=repr)
def test_bad_tolerances_are_refused_in_the_api(tmp_path, tolerance):
    base = saved(tmp_path / "base", record(80.0))
    now = saved(tmp_path / "now", record(130.0))  # +50 points
    with pytest.raises(ConfigError, match="tolerance"):
        check(now, base, tolerance=tolerance)
    with pytest.raises(ConfigError, match="tolerance of accuracy"):
        check(now, base, per_metric_tolerance={"accuracy": tolerance})
    with pytest.raises(ConfigError, match="tolerance of acc"):
        check(now, base, per_metric_tolerance={"acc*": tolerance})


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "Infinity", "-1", "1e999"])
def test_bad_tolerances_are_refused_by_the_cli(tmp_path, capsys, text):
    base = saved(tmp_path / "base", record(80.0))
    now = saved(tmp_path / "now", record(130.0))
    assert main(["check", str(now), "--baseline", str(base), "--tolerance", text]) == 2
    assert main(["check", str(now), "--baseline", str(base), "-m", f"accuracy={text}"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "PASS" not in err


@pytest.mark.parametrize(
    "option, value",
    [
        ("n_resamples", 0),
        ("n_resamples", 2.5),
        ("confidence", 1.0),
        ("confidence", math.nan),
        ("confidence", 0),
        ("seed", "0"),
    ],
)
def test_other_check_options_are_typed(tmp_path, option, value):
    base = saved(tmp_path / "base", record(80.0))
    with pytest.raises(ConfigError, match=option):
        check(base, base, **{option: value})


def test_a_fifty_point_drift_never_passes(tmp_path):
    base = saved(tmp_path / "base", record(30.0))
    now = saved(tmp_path / "now", record(80.0))
    for tolerance in (0, 0.5, 1, 10, 49.99):
        assert not check(now, base, tolerance=tolerance).passed
    assert check(now, base, tolerance=50).passed  # exactly the tolerance: within


finite_tolerances = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@BUDGET
@given(
    tolerance=finite_tolerances,
    excess=st.floats(min_value=1e-6, max_value=1e6),
    sign=st.sampled_from([1, -1]),
    base=st.floats(min_value=-1e3, max_value=1e3),
)
def test_any_change_beyond_a_finite_tolerance_fails(tolerance, excess, sign, base):
    """|delta| > t (by more than the 1e-9 float slack) fails, for every finite t >= 0 and baseline."""
    now = base + sign * (tolerance + excess + 1e-6)
    delta = now - base
    if abs(delta) <= tolerance + 1e-9:  # float rounding ate the excess (huge baseline, tiny excess)
        return
    report = check([record(now)], [record(base)], tolerance=tolerance)
    assert not report.passed
    report = check([record(now)], [record(base)], tolerance=1e9, per_metric_tolerance={"accuracy": tolerance})
    assert not report.passed


@BUDGET
@given(tolerance=st.one_of(st.floats(), st.integers(-10, 10), st.text(max_size=4), st.booleans(), st.none()))
def test_any_tolerance_is_finite_non_negative_or_refused(tolerance):
    try:
        default, _ = check_tolerances(tolerance, None)
    except ConfigError:
        ok = (
            isinstance(tolerance, (int, float))
            and not isinstance(tolerance, bool)
            and math.isfinite(tolerance)
            and tolerance >= 0
        )
        assert not ok
    else:
        assert math.isfinite(default) and default >= 0


@BUDGET
@given(delta=st.floats(allow_nan=True, allow_infinity=True), tolerance=finite_tolerances)
def test_exceeds_fails_when_in_doubt(delta, tolerance):
    if math.isnan(delta) or math.isinf(delta):
        assert _exceeds(delta, tolerance)
    else:
        assert _exceeds(delta, tolerance) == (abs(delta) > tolerance + 1e-9 if tolerance else delta != 0)
