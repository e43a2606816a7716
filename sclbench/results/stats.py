"""How much to trust each number of a record: 95% bootstrap interval and p-value against chance.

Both come from the per-sample predictions saved beside the record (`scores: {metric: 0..1}` per
sample, or the ground truth's 0-based `rank` for retrieval, which gives recall at any K). A metric
without per-sample data gets neither, never a made-up one.

Samples that share a unit (the `unit` key of each prediction: the image of a VQA question or of a
caption, the video, the NLVR2 sentence; named by the record's `protocol["cluster_unit"]`) are resampled
together (`sclbench.metrics.cluster`); a prediction without `unit` is a unit of its own, so records
written before units existed get the sample bootstrap they always had.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from sclbench.metrics.chance import bootstrap_interval, chance_level, p_value_vs_chance, recall_k
from sclbench.metrics.cluster import cluster_codes, n_clusters
from sclbench.results.record import ResultRecord

# Query kinds by metric prefix: image->text retrieval queries images (ids "image/<i>" or "video/<i>").
_QUERY = {"tr": ("image/", "video/"), "v2t": ("video/", "image/"), "ir": ("text/",), "t2v": ("text/",)}


@dataclass(frozen=True)
class NumberStats:
    metric: str
    value: float
    n: int | None = None  # per-sample scores behind the interval
    ci: tuple[float, float] | None = None
    chance: float | None = None
    p_value: float | None = None  # one-sided, vs chance
    # What was resampled: `unit` is the record's protocol["cluster_unit"] ("image", "video", "sentence")
    # when the predictions carry units, None when each sample was its own unit; `clusters` counts the
    # units (= n without units). A renderer shows e.g. "95% CI over 1,000 images".
    unit: str | None = None
    clusters: int | None = None

    def significant(self, alpha: float = 0.01) -> bool | None:
        return None if self.p_value is None else self.p_value < alpha

    @property
    def clustered(self) -> bool:
        """True when samples shared units (fewer units than samples): the interval is wider for it."""
        return self.clusters is not None and self.n is not None and self.clusters < self.n


class SampleScore(NamedTuple):
    id: Any  # the prediction's `id` as stored (None when it has none)
    value: float  # 0..1
    unit: str | None  # the shared unit, None = a unit of its own


def unit_of(prediction: Mapping[str, Any]) -> str | None:
    """The prediction's shared unit as a text (None when absent or empty: a unit of its own)."""
    unit = prediction.get("unit")
    if unit is None or unit == "":
        return None
    return unit if isinstance(unit, str) else str(unit)


def _type_slug(answer_type: Any) -> str | None:
    """An answer type as it appears in a metric name (`yes/no` -> `yes_no`), as metrics.vqa names them."""
    return None if answer_type is None else re.sub(r"[^0-9a-z]+", "_", str(answer_type).lower())


def sample_scores(predictions: list[dict[str, Any]] | None, metric: str) -> list[SampleScore] | None:
    """(id, score 0..1, unit) of each sample scored on `metric`: from stored scores; for VQA's
    `accuracy_<answer type>`, the `accuracy` of the questions of that `answer_type`; for recall@K, from
    stored ranks. None when the predictions do not score it."""
    if not predictions:
        return None
    stored = [
        SampleScore(p.get("id"), float(p["scores"][metric]), unit_of(p))
        for p in predictions
        if metric in (p.get("scores") or {})
    ]
    if stored:
        return stored
    if metric.startswith("accuracy_"):  # VQA's accuracy per answer type: the questions of that type
        kind = metric[len("accuracy_") :]
        typed = [
            SampleScore(p.get("id"), float(p["scores"]["accuracy"]), unit_of(p))
            for p in predictions
            if "accuracy" in (p.get("scores") or {}) and _type_slug(p.get("answer_type")) == kind
        ]
        return typed or None
    k, prefix = recall_k(metric), metric.split("_", 1)[0]
    if k is None or prefix not in _QUERY:
        return None
    kinds = _QUERY[prefix]
    hits = [
        SampleScore(p.get("id"), float(p["rank"] < k), unit_of(p))
        for p in predictions
        if isinstance(p.get("rank"), int) and str(p.get("id", "")).startswith(kinds)
    ]
    return hits or None


def per_sample(predictions: list[dict[str, Any]] | None, metric: str) -> list[float] | None:
    """Per-sample scores (0..1) of `metric`, from stored scores or, for recall@K, from stored ranks."""
    scored = sample_scores(predictions, metric)
    return [s.value for s in scored] if scored else None


def number_stats(
    record: ResultRecord, metric: str, predictions: list[dict[str, Any]] | None = None, seed: int = 0
) -> NumberStats:
    """Interval and p-value of one metric of a record (predictions read from disk unless given), both
    resampling the shared units the predictions name."""
    value = float(record.metrics[metric])
    chance = chance_level(record.task, metric, record.protocol)
    if predictions is None:
        try:
            predictions = record.read_predictions()
        except Exception:  # a record whose predictions file is gone still renders, without intervals
            predictions = None
    scored = sample_scores(predictions, metric)
    values = [s.value for s in scored] if scored else None
    if not values or abs(100.0 * sum(values) / len(values) - value) > 1e-6 * max(1.0, abs(value)):
        # The per-sample scores do not add up to the reported number (a subset, another definition):
        # no interval rather than one about something else.
        return NumberStats(metric, value, chance=chance)
    units = [s.unit for s in scored]
    has_units = any(u is not None for u in units)
    clusters = n_clusters(cluster_codes(units))
    ci = bootstrap_interval(values, seed=seed, units=units)
    p = p_value_vs_chance(values, chance, seed=seed, units=units) if chance is not None else None
    unit = (str(record.protocol.get("cluster_unit") or "unit")) if has_units else None
    return NumberStats(metric, value, len(values), ci, chance, p, unit, clusters)


def record_stats(record: ResultRecord, metrics: list[str] | None = None, seed: int = 0) -> dict[str, NumberStats]:
    try:
        predictions = record.read_predictions()
    except Exception:
        predictions = None
    names = metrics if metrics is not None else [m for m, v in record.metrics.items() if isinstance(v, (int, float))]
    return {m: number_stats(record, m, predictions or [], seed) for m in names if m in record.metrics}


def format_p(p: float | None) -> str:
    if p is None:
        return ""
    return "<1e-4" if p < 1e-4 else f"{p:.2g}" if p < 0.01 else f"{p:.2f}"
