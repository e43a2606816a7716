"""`sclbench compare A B`: what changed between two runs, sample by sample, and whether it is noise.

For each metric both records report: the paired difference B - A over the samples both scored (matched
by the prediction's `id`), its cluster bootstrap interval and two-sided p-value (whole units resampled,
the unit being each prediction's `unit`: an image, a video, an NLVR2 sentence; see
`sclbench.metrics.cluster`), the samples that flipped each way with their ids, and the smallest
difference this test set can detect. `compare_records` is pure (records in, data out); the command line
only formats its result, and `sclbench browse --compare` lists the same flipped samples.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sclbench.errors import ConfigError, DataError
from sclbench.metrics.cluster import (
    ClusterTotals,
    cluster_codes,
    clustered_se,
    minimum_detectable_effect,
    n_clusters,
    resampled_means,
)
from sclbench.results.record import ResultRecord, collect, is_metric_value, load
from sclbench.results.stats import SampleScore, format_p, sample_scores

__all__ = ["Comparison", "ComparisonReport", "MetricComparison", "compare_paths", "compare_records", "format_p"]

DEFAULT_RESAMPLES = 10_000  # p-values down to 1e-4; a 200k-question VQA split takes seconds
CONFIDENCE = 0.95


@dataclass
class MetricComparison:
    """One metric of two runs. Points throughout (percent of samples)."""

    metric: str
    a: float | None  # the value each record reports (None: not a finite number)
    b: float | None
    # B - A: the mean per-sample difference over the paired samples when both sides have per-sample
    # scores, else the difference of the reported values (then nothing below is known).
    difference: float | None
    ci: tuple[float, float] | None = None  # cluster bootstrap percentile interval of the difference
    p_value: float | None = None  # two-sided, H0: no difference (cluster bootstrap, centred)
    se: float | None = None  # cluster-robust standard error of the difference
    mde: float | None = None  # minimum detectable effect, alpha 0.05 two-sided, power 0.8
    paired: int = 0  # samples scored by both
    clusters: int | None = None  # units among them (= paired when the predictions carry no units)
    only_a: int = 0  # samples scored by A only (left out of the paired statistics)
    only_b: int = 0
    # Sample ids, in A's order. A 0/1 score (recall hit, NLVR2, exact answer) flips right -> wrong or back;
    # a graded one (VQA's 0 .. 1) counts when it goes down (a_to_b) or up (b_to_a).
    flipped_a_to_b: list[Any] = field(default_factory=list)  # A scored higher: A right -> B wrong
    flipped_b_to_a: list[Any] = field(default_factory=list)  # B scored higher: A wrong -> B right
    note: str = ""

    @property
    def beyond_noise(self) -> bool | None:
        return None if self.p_value is None else self.p_value < 1.0 - CONFIDENCE


@dataclass
class Comparison:
    """Two records of one task and split: A (the reference) and B (the candidate)."""

    task: str
    split: str
    a: str  # checkpoint name of each side
    b: str
    a_source: str | None
    b_source: str | None
    unit: str | None  # protocol["cluster_unit"]: what the intervals resample ("image", "video", "sentence")
    metrics: dict[str, MetricComparison]
    metrics_only_a: list[str] = field(default_factory=list)
    metrics_only_b: list[str] = field(default_factory=list)
    protocol_changes: dict[str, list[Any]] = field(default_factory=dict)  # key: [A's value, B's value]
    scorer_change: list[str] | None = None
    resamples: int = DEFAULT_RESAMPLES
    seed: int = 0
    confidence: float = CONFIDENCE

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name, m in self.metrics.items():
            out["metrics"][name]["flipped_a_to_b_count"] = len(m.flipped_a_to_b)
            out["metrics"][name]["flipped_b_to_a_count"] = len(m.flipped_b_to_a)
        return out


@dataclass
class ComparisonReport:
    """Every task and split both inputs hold, and what only one of them holds."""

    a: str
    b: str
    comparisons: list[Comparison]
    only_in_a: list[str] = field(default_factory=list)  # "task/split (checkpoint): file"
    only_in_b: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "comparisons": [c.to_dict() for c in self.comparisons],
            "only_in_a": self.only_in_a,
            "only_in_b": self.only_in_b,
        }

    def to_json(self) -> str:
        """Strict JSON: a NaN or infinity (say, in a protocol value echoed as changed) becomes null."""
        return (
            json.dumps(_finite_only(self.to_dict()), indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n"
        )


def _finite_only(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_only(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_only(v) for v in value]
    return value


def _finite(value: Any) -> float | None:
    return float(value) if is_metric_value(value) and math.isfinite(float(value)) else None


def _describe(record: ResultRecord) -> str:
    return str(record.source) if record.source is not None else f"{record.task}/{record.split} record"


def _by_id(scored: Sequence[SampleScore], record: ResultRecord, metric: str) -> dict[Any, SampleScore]:
    """{canonical id: score} of the samples that carry an id; a repeated id cannot be paired: an error."""
    out: dict[str, SampleScore] = {}
    for s in scored:
        if s.id is None:
            continue
        # Texts and integers key themselves (fast on 200k questions); anything else by its JSON text.
        key = s.id if type(s.id) in (str, int) else json.dumps(s.id, sort_keys=True)
        if key in out:
            raise DataError(
                f"predictions of {_describe(record)} score sample id {s.id!r} twice on {metric!r}; "
                "each sample needs its own id to be paired (re-run the evaluation)"
            )
        out[key] = s
    return out


def _adds_up(scored: Sequence[SampleScore], reported: float | None) -> bool:
    """Whether the per-sample scores are the reported number (not a subset or another definition)."""
    if reported is None or not scored:
        return False
    return abs(100.0 * sum(s.value for s in scored) / len(scored) - reported) <= 1e-6 * max(1.0, abs(reported))


def _compare_metric(
    metric: str,
    record_a: ResultRecord,
    record_b: ResultRecord,
    preds_a: list[dict[str, Any]] | None,
    preds_b: list[dict[str, Any]] | None,
    resamples: int,
    seed: int,
    confidence: float,
) -> MetricComparison:
    a, b = _finite(record_a.metrics[metric]), _finite(record_b.metrics[metric])
    reported = None if a is None or b is None else b - a
    row = MetricComparison(metric, a, b, reported)
    if reported is None:
        row.note = "not a finite number on " + ("both sides" if a is None and b is None else "A" if a is None else "B")
        return row
    scored_a, scored_b = sample_scores(preds_a, metric), sample_scores(preds_b, metric)
    if not scored_a or not scored_b:
        row.note = "no per-sample scores in " + ("A or B" if not (scored_a or scored_b) else "B" if scored_a else "A")
        return row
    if not (_adds_up(scored_a, a) and _adds_up(scored_b, b)):
        side = "A" if not _adds_up(scored_a, a) else "B"
        row.note = f"per-sample scores of {side} do not add up to its reported value: no paired statistics"
        return row
    ids_a, ids_b = _by_id(scored_a, record_a, metric), _by_id(scored_b, record_b, metric)
    common = [k for k in ids_a if k in ids_b]  # A's order: the split's order
    row.only_a, row.only_b = len(ids_a) - len(common), len(ids_b) - len(common)
    if not common:
        row.note = "no sample id scored by both"
        return row
    va = np.array([ids_a[k].value for k in common])
    vb = np.array([ids_b[k].value for k in common])
    # A sample's unit from B, else from A (a record written before units existed).
    units = [ids_b[k].unit if ids_b[k].unit is not None else ids_a[k].unit for k in common]
    codes = cluster_codes(units)
    diff = vb - va
    row.paired, row.clusters = len(common), n_clusters(codes)
    row.difference = 100.0 * float(diff.mean())
    row.flipped_a_to_b = [ids_a[k].id for k, d in zip(common, diff) if d < 0]
    row.flipped_b_to_a = [ids_a[k].id for k, d in zip(common, diff) if d > 0]
    if row.only_a or row.only_b:
        row.note = f"{row.only_a + row.only_b} samples scored by one side only are left out"
    se = clustered_se(diff, codes)
    row.se = None if se is None else 100.0 * se
    if not diff.any():  # the same score on every sample: nothing varies, nothing to detect against
        row.ci, row.p_value = (0.0, 0.0), 1.0
        return row
    row.mde = minimum_detectable_effect(se)
    if row.clusters < 2:
        row.note = (row.note + "; " if row.note else "") + "one unit: no interval or p-value"
        return row
    means = resampled_means(ClusterTotals.of(diff, codes), resamples, seed)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    row.ci = (100.0 * float(lo), 100.0 * float(hi))
    # Two-sided bootstrap test: the replicates centred on zero (H0), p = share at least as far from
    # zero as the observed mean (floor 1/(B+1)); the tiny slack keeps a replicate equal to it counted.
    observed = float(diff.mean())
    extreme = np.abs(means - observed) >= abs(observed) - 1e-12
    row.p_value = float((1 + np.sum(extreme)) / (resamples + 1))
    return row


def _check_settings(resamples: Any, seed: Any, confidence: Any) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ConfigError(f"resamples needs an integer >= 1, got {resamples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed needs an integer >= 0, got {seed!r}")
    if not (is_metric_value(confidence) and 0.0 < float(confidence) < 1.0):
        raise ConfigError(f"confidence needs a number strictly between 0 and 1, got {confidence!r}")


def compare_records(
    a: ResultRecord,
    b: ResultRecord,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    predictions_a: list[dict[str, Any]] | None = None,
    predictions_b: list[dict[str, Any]] | None = None,
) -> Comparison:
    """B against A, metric by metric (predictions read beside each record unless given).

    Both must be of one task and split (the sample ids name different samples otherwise): a DataError
    says so. Statistics per metric: `MetricComparison`; the minimum detectable effect is
    MDE = (z_0.975 + z_0.8) * SE = 2.80 * SE, SE the cluster-robust standard error of the mean paired
    difference (`sclbench.metrics.cluster.clustered_se`): the true difference a two-sided test at
    alpha 0.05 finds 80% of the time on a test set like this one. It is None when the runs agree on every
    sample (no paired variance to base it on).
    """
    _check_settings(resamples, seed, confidence)
    if (a.task, a.split) != (b.task, b.split):
        raise DataError(
            f"cannot compare {a.task}/{a.split} ({_describe(a)}) with {b.task}/{b.split} ({_describe(b)}): "
            "compare needs two records of the same task and split"
        )
    preds_a = predictions_a if predictions_a is not None else a.read_predictions()
    preds_b = predictions_b if predictions_b is not None else b.read_predictions()
    shared = [m for m in a.metrics if m in b.metrics]
    metrics = {m: _compare_metric(m, a, b, preds_a, preds_b, resamples, seed, confidence) for m in shared}
    keys = sorted(k for k in a.protocol.keys() | b.protocol.keys() if a.protocol.get(k) != b.protocol.get(k))
    return Comparison(
        task=a.task,
        split=a.split,
        a=a.checkpoint_name,
        b=b.checkpoint_name,
        a_source=None if a.source is None else str(a.source),
        b_source=None if b.source is None else str(b.source),
        unit=b.protocol.get("cluster_unit") or a.protocol.get("cluster_unit"),
        metrics=metrics,
        metrics_only_a=[m for m in a.metrics if m not in b.metrics],
        metrics_only_b=[m for m in b.metrics if m not in a.metrics],
        protocol_changes={k: [a.protocol.get(k), b.protocol.get(k)] for k in keys},
        scorer_change=None if a.scorer == b.scorer else [a.scorer, b.scorer],
        resamples=resamples,
        seed=seed,
        confidence=float(confidence),
    )


def _by_task_split(records: list[ResultRecord], side: str, path: Path) -> dict[tuple[str, str], ResultRecord]:
    if not records:
        raise DataError(f"{side} ({path}) holds no result records")
    out: dict[tuple[str, str], ResultRecord] = {}
    for rec in records:
        key = (rec.task, rec.split)
        if key in out:
            raise DataError(
                f"{side} ({path}) has two records of {rec.task}/{rec.split} ({out[key].source} and {rec.source}); "
                "pass the two record files to compare instead"
            )
        out[key] = rec
    return out


def _listing(rec: ResultRecord) -> str:
    return f"{rec.task}/{rec.split} ({rec.checkpoint_name}): {_describe(rec)}"


def compare_paths(
    a: str | Path, b: str | Path, resamples: int = DEFAULT_RESAMPLES, seed: int = 0, confidence: float = CONFIDENCE
) -> ComparisonReport:
    """Compare two record files, or two results folders matched by task and split. Records of a task and
    split that only one side holds are listed; nothing in common is one DataError naming both sides."""
    _check_settings(resamples, seed, confidence)
    a, b = Path(a), Path(b)
    for path, side in ((a, "A"), (b, "B")):
        if not path.exists():
            raise DataError(f"{side}: {path} does not exist (a result record .json or a results folder)")
    if a.is_file() and b.is_file():  # two records: they must be of one task and split
        return ComparisonReport(str(a), str(b), [compare_records(load(a), load(b), resamples, seed, confidence)])
    side_a = _by_task_split(collect(a), "A", a)
    side_b = _by_task_split(collect(b), "B", b)
    shared = [k for k in sorted(side_a) if k in side_b]
    if not shared:
        have_a = ", ".join("/".join(k) for k in sorted(side_a))
        have_b = ", ".join("/".join(k) for k in sorted(side_b))
        raise DataError(f"A ({a}) and B ({b}) share no task and split: A has {have_a}; B has {have_b}")
    comparisons = [compare_records(side_a[k], side_b[k], resamples, seed, confidence) for k in shared]
    return ComparisonReport(
        str(a),
        str(b),
        comparisons,
        only_in_a=[_listing(side_a[k]) for k in sorted(side_a) if k not in side_b],
        only_in_b=[_listing(side_b[k]) for k in sorted(side_b) if k not in side_a],
    )
