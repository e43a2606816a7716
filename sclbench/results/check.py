"""Drift check: compare result records with a baseline, metric by metric, and say what moved.

A record of the baseline must reappear in the results with every metric within tolerance (absolute,
in points), with the same scorer and protocol: a number that silently changes meaning is worse than
one that changes value. When both sides stored per-sample predictions, a seeded paired bootstrap gives
a confidence interval of the change, so a reader can tell a real change from resampling noise. Samples
that share a unit (the predictions' `unit`: an image, a video, a sentence) are resampled together, as
the intervals of the table are (`sclbench.metrics.cluster`); without units it is the sample bootstrap.
"""

from __future__ import annotations

import fnmatch
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sclbench.common.values import finite_non_negative, fraction, positive_int
from sclbench.errors import ConfigError, DataError
from sclbench.metrics.cluster import ClusterTotals, cluster_codes, n_clusters, resampled_means
from sclbench.results.record import ResultRecord, collect, is_metric_value

DEFAULT_TOLERANCE = 0.5  # points: well below a change anyone would cite, above run-to-run jitter
Status = Literal["ok", "drift", "missing", "changed", "new"]
_FAILING = ("drift", "missing", "changed")


@dataclass
class CheckRow:
    record: str
    metric: str
    baseline: float | None
    now: float | None
    tolerance: float | None
    status: Status
    ci: tuple[float, float] | None = None  # bootstrap interval of (now - baseline), points
    note: str = ""
    paired: int | None = None  # samples present on both sides (the bootstrap's population)
    changed_samples: int | None = None  # of those, how many scored differently (0: the same per-sample values)
    unit: str | None = None  # the record's protocol["cluster_unit"] when the samples carried units
    clusters: int | None = None  # units the bootstrap resampled (None: each sample its own)

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.now is None:
            return None
        return self.now - self.baseline

    @property
    def failed(self) -> bool:
        return self.status in _FAILING

    @property
    def beyond_noise(self) -> bool | None:
        """True when the bootstrap interval excludes zero (None without per-sample predictions)."""
        return None if self.ci is None else (self.ci[0] > 0 or self.ci[1] < 0)


@dataclass
class CheckReport:
    rows: list[CheckRow] = field(default_factory=list)
    confidence: float = 0.95

    @property
    def passed(self) -> bool:
        return not any(r.failed for r in self.rows)

    @property
    def failures(self) -> list[CheckRow]:
        return [r for r in self.rows if r.failed]

    def to_dict(self) -> dict[str, Any]:
        rows = [{**r.__dict__, "delta": r.delta, "beyond_noise": r.beyond_noise} for r in self.rows]
        return {"passed": self.passed, "confidence": self.confidence, "rows": rows}

    def summary(self) -> str:
        compared = sum(1 for r in self.rows if r.status != "new")
        if self.passed:
            return f"PASS: {compared} checks within tolerance"
        return f"DRIFT: {len(self.failures)} of {compared} checks failed"

    def print(self, console: Any = None) -> None:
        """A rich table: record, metric, baseline, now, delta, tolerance, status, CI, noise."""
        from rich.console import Console
        from rich.table import Table

        # Logs (CI) are not terminals: give the table room instead of eliding every cell to 80 columns.
        console = console or Console(width=None if sys.stdout.isatty() else 160)
        pct = int(round(self.confidence * 100))
        table = Table(title="sclbench check", title_justify="left")
        for name in ("record", "metric", "baseline", "now", "delta", "tolerance", "status", f"{pct}% CI", "noise?"):
            table.add_column(name, justify="right" if name in ("baseline", "now", "delta", "tolerance") else "left")
        colour = {"ok": "green", "new": "cyan", "drift": "red", "missing": "red", "changed": "red"}
        for r in self.rows:
            ci = "" if r.ci is None else f"[{r.ci[0]:+.2f}, {r.ci[1]:+.2f}]"
            if r.ci is not None and r.clusters is not None:
                ci += f" by {r.clusters} {r.unit or 'unit'}s"
            noise = {None: "", True: "beyond noise", False: "within noise"}[r.beyond_noise]
            status = f"[{colour[r.status]}]{r.status}[/]" + (f" ({r.note})" if r.note else "")
            table.add_row(r.record, r.metric, _num(r.baseline), _num(r.now), _num(r.delta, signed=True),
                          _num(r.tolerance), status, ci, noise)  # fmt: skip
        console.print(table)
        console.print(f"[{'green' if self.passed else 'red'}]{self.summary()}[/]")


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def paired_bootstrap(
    now: Sequence[float],
    base: Sequence[float],
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    units: Sequence[str | None] | None = None,
) -> tuple[float, float]:
    """Percentile interval of mean(now - base) x 100 over paired resamples (points). `units`: the shared
    unit of each pair (None = its own); whole units are resampled. Without units: the sample bootstrap."""
    diff = np.asarray(now, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    n = diff.size
    if n == 0:
        raise ValueError("paired_bootstrap needs at least one sample")
    if not diff.any():
        return (0.0, 0.0)
    means = resampled_means(ClusterTotals.of(diff, cluster_codes(units, n=n)), n_resamples, seed)
    alpha = (1.0 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return (100.0 * float(lo), 100.0 * float(hi))


def _per_sample(record: ResultRecord) -> tuple[dict[str, dict[str, float]], dict[str, str]] | None:
    """({metric: {sample id: value}}, {sample id: unit}) from the predictions file's `scores` and `unit`."""
    preds = record.read_predictions()
    if not preds:
        return None
    out: dict[str, dict[str, float]] = {}
    units: dict[str, str] = {}
    for p in preds:
        scores = p.get("scores")
        if "id" not in p or not isinstance(scores, Mapping):
            continue
        sid = json.dumps(p["id"], sort_keys=True)
        if p.get("unit") not in (None, ""):
            units[sid] = str(p["unit"])
        for metric, value in scores.items():
            if isinstance(value, (int, float)):
                out.setdefault(metric, {})[sid] = float(value)
    return (out, units) if out else None


def _tolerance_for(metric: str, default: float, per_metric: Mapping[str, float]) -> float:
    if metric in per_metric:
        return per_metric[metric]
    for pattern, tol in per_metric.items():  # glob patterns, e.g. "accuracy_*"
        if fnmatch.fnmatchcase(metric, pattern):
            return tol
    return default


def check_tolerances(tolerance: Any, per_metric: Mapping[str, Any] | None) -> tuple[float, dict[str, float]]:
    """The default and per-metric tolerances, each a finite number >= 0 (points), else one ConfigError.
    A NaN tolerance made every comparison false, so a +50-point drift passed: refused here, in the API,
    whatever the caller (CLI, library, CI script)."""
    default = finite_non_negative("tolerance", tolerance)
    if per_metric is None:
        return default, {}
    if not isinstance(per_metric, Mapping):
        raise ConfigError(f"per-metric tolerances need a mapping of metric name -> points, got {per_metric!r}")
    out = {}
    for name, value in per_metric.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"per-metric tolerance: a metric name must be a non-empty text, got {name!r}")
        out[name] = finite_non_negative(f"tolerance of {name}", value)
    return default, out


def _not_a_metric(value: Any, side: str) -> str | None:
    """Why `value` cannot be compared (None when it can, or when it is absent)."""
    if value is None:
        return None
    if not is_metric_value(value):
        return f"{side} value {value!r} is not a number"
    if not np.isfinite(float(value)):
        return f"{side} value is {float(value)}"
    return None


def _as_float(value: Any) -> float | None:
    return float(value) if is_metric_value(value) else None


def _exceeds(delta: float, tolerance: float) -> bool:
    """Whether a change of `delta` points is beyond `tolerance`. Written so that anything not a finite
    in-range comparison (NaN on either side) counts as exceeding: a check must fail when in doubt."""
    if tolerance == 0:
        return delta != 0  # --tolerance 0 means bit-exact
    return not abs(delta) <= tolerance + 1e-9  # 78.72 - 78.22 is 0.5000000000000071 in floats


def _keyed(source: str | Path | Sequence[ResultRecord], by_file: bool, side: str) -> dict[Any, ResultRecord]:
    records = collect(source) if isinstance(source, (str, Path)) else list(source)
    root = Path(source) if isinstance(source, (str, Path)) else None
    out: dict[Any, ResultRecord] = {}
    for rec in records:
        if by_file and root is not None and rec.source is not None and root.is_dir():
            key: Any = rec.source.relative_to(root).as_posix()
        else:
            key = rec.key
        if key in out:
            raise DataError(f"{side} has two records for {key} ({out[key].source} and {rec.source}); keep one")
        out[key] = rec
    return out


def _label(key: Any) -> str:
    return key if isinstance(key, str) else " ".join(key)


def _protocol_rows(
    label: str, base: Mapping[str, Any], now: Mapping[str, Any], expected: Sequence[str]
) -> list[CheckRow]:
    """The (protocol) row: "changed" naming each differing key with both values, or "ok" when only
    `expected` keys differ (the subject of the comparison, e.g. precision for bf16 vs fp32)."""
    keys = sorted(k for k in base.keys() | now.keys() if base.get(k) != now.get(k))
    if not keys:
        return []

    def what(ks: list[str]) -> str:
        return ", ".join(f"{k}: {base.get(k)!r} -> {now.get(k)!r}" for k in ks)

    unexpected = [k for k in keys if k not in expected]
    if not unexpected:
        return [CheckRow(label, "(protocol)", None, None, None, "ok", note=f"expected {what(keys)}")]
    return [CheckRow(label, "(protocol)", None, None, None, "changed", note=what(unexpected))]


def check(
    results: str | Path | Sequence[ResultRecord],
    baseline: str | Path | Sequence[ResultRecord],
    tolerance: float = DEFAULT_TOLERANCE,
    per_metric_tolerance: Mapping[str, float] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    expected_protocol: Sequence[str] = (),
) -> CheckReport:
    """Compare `results` with `baseline` (folders, record files or lists of records).

    Records match by (task, split, checkpoint name), or by relative file path when both sides are
    folders. Fails on: a metric beyond its tolerance (absolute points; 0 = exact), a baseline record
    or metric missing from the results, a changed scorer or protocol. Records and metrics only in the
    results are listed as "new" and do not fail. `expected_protocol` names protocol keys that are
    meant to differ (e.g. ["precision"] to set a bf16 evaluation against its fp32 one): their change
    is listed, with both values, and does not fail.
    """
    tolerance, per_metric = check_tolerances(tolerance, per_metric_tolerance)
    n_resamples = positive_int("n_resamples", n_resamples)
    confidence = fraction("confidence", confidence, open_low=True, open_high=True)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed needs an integer, got {seed!r}")
    both_dirs = all(isinstance(s, (str, Path)) and Path(s).is_dir() for s in (results, baseline))
    base = _keyed(baseline, both_dirs, "baseline")
    now = _keyed(results, both_dirs, "results")
    if not base:
        raise DataError(f"the baseline {baseline if isinstance(baseline, (str, Path)) else ''} holds no result records")
    report = CheckReport(confidence=confidence)
    for key, b in base.items():
        label = _label(key)
        r = now.get(key)
        if r is None:
            report.rows.append(CheckRow(label, "*", None, None, None, "missing", note="no such record in results"))
            continue
        if r.scorer != b.scorer:
            report.rows.append(
                CheckRow(label, "(scorer)", None, None, None, "changed", note=f"{b.scorer} -> {r.scorer}")
            )
        report.rows += _protocol_rows(label, b.protocol, r.protocol, expected_protocol)
        samples = (_per_sample(b), _per_sample(r))
        for metric, b_val in b.metrics.items():
            tol = _tolerance_for(metric, tolerance, per_metric)
            r_val = r.metrics.get(metric)
            bad = _not_a_metric(b_val, "baseline") or _not_a_metric(r_val, "results")
            if r_val is None:
                report.rows.append(CheckRow(label, metric, _as_float(b_val), None, tol, "missing", note=bad or ""))
                continue
            if bad:  # NaN, inf or a non-number on either side: never a pass, whatever the tolerance
                report.rows.append(CheckRow(label, metric, _as_float(b_val), _as_float(r_val), tol, "drift", note=bad))
                continue
            delta = float(r_val) - float(b_val)
            status: Status = "drift" if _exceeds(delta, tol) else "ok"
            row = CheckRow(label, metric, float(b_val), float(r_val), tol, status)
            if samples[0] and samples[1] and metric in samples[0][0] and metric in samples[1][0]:
                # A sample's unit from the results, else from the baseline (one written before units).
                units = {**samples[0][1], **samples[1][1]}
                row.ci, row.note, row.paired, row.changed_samples, row.clusters = _bootstrap_row(
                    samples[0][0][metric], samples[1][0][metric], units, n_resamples, seed, confidence
                )
                if row.clusters is not None:
                    row.unit = str(r.protocol.get("cluster_unit") or b.protocol.get("cluster_unit") or "unit")
            report.rows.append(row)
        for metric in sorted(set(r.metrics) - set(b.metrics)):
            value = r.metrics[metric]
            report.rows.append(
                CheckRow(label, metric, None, _as_float(value), None, "new", note=_not_a_metric(value, "results") or "")
            )
    for key in sorted(set(now) - set(base), key=str):
        report.rows.append(CheckRow(_label(key), "*", None, None, None, "new", note="not in baseline"))
    return report


def _bootstrap_row(
    base: dict[str, float],
    now: dict[str, float],
    units: Mapping[str, str],
    n_resamples: int,
    seed: int,
    confidence: float,
) -> tuple[tuple[float, float] | None, str, int, int, int | None]:
    """(CI, note, paired samples, paired samples whose value differs, units resampled or None)."""
    common = sorted(base.keys() & now.keys())
    if not common:
        return None, "no shared sample ids", 0, 0, None
    pair_units = [units.get(i) for i in common]
    clustered = any(u is not None for u in pair_units)
    ci = paired_bootstrap(
        [now[i] for i in common], [base[i] for i in common], n_resamples, seed, confidence,
        pair_units if clustered else None,
    )  # fmt: skip
    unpaired = len(base.keys() ^ now.keys())
    changed = sum(1 for i in common if now[i] != base[i])
    clusters = n_clusters(cluster_codes(pair_units)) if clustered else None
    note = f"{unpaired} unpaired samples left out of the CI" if unpaired else ""
    return ci, note, len(common), changed, clusters
