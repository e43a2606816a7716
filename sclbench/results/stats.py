"""How much to trust each number of a record: 95% bootstrap interval and p-value against chance.

Both come from the per-sample predictions saved beside the record (`scores: {metric: 0..1}` per
sample, or the ground truth's 0-based `rank` for retrieval, which gives recall at any K). A metric
without per-sample data gets neither, never a made-up one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sclbench.metrics.chance import bootstrap_interval, chance_level, p_value_vs_chance, recall_k
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

    def significant(self, alpha: float = 0.01) -> bool | None:
        return None if self.p_value is None else self.p_value < alpha


def per_sample(predictions: list[dict[str, Any]] | None, metric: str) -> list[float] | None:
    """Per-sample scores (0..1) of `metric`, from stored scores or, for recall@K, from stored ranks."""
    if not predictions:
        return None
    stored = [float(p["scores"][metric]) for p in predictions if metric in (p.get("scores") or {})]
    if stored:
        return stored
    k, prefix = recall_k(metric), metric.split("_", 1)[0]
    if k is None or prefix not in _QUERY:
        return None
    kinds = _QUERY[prefix]
    hits = [
        float(p["rank"] < k)
        for p in predictions
        if isinstance(p.get("rank"), int) and str(p.get("id", "")).startswith(kinds)
    ]
    return hits or None


def number_stats(
    record: ResultRecord, metric: str, predictions: list[dict[str, Any]] | None = None, seed: int = 0
) -> NumberStats:
    """Interval and p-value of one metric of a record (predictions read from disk unless given)."""
    value = float(record.metrics[metric])
    chance = chance_level(record.task, metric, record.protocol)
    if predictions is None:
        try:
            predictions = record.read_predictions()
        except Exception:  # a record whose predictions file is gone still renders, without intervals
            predictions = None
    values = per_sample(predictions, metric)
    if not values or abs(100.0 * sum(values) / len(values) - value) > 1e-6 * max(1.0, abs(value)):
        # The per-sample scores do not add up to the reported number (a subset, another definition):
        # no interval rather than one about something else.
        return NumberStats(metric, value, chance=chance)
    ci = bootstrap_interval(values, seed=seed)
    p = p_value_vs_chance(values, chance, seed=seed) if chance is not None else None
    return NumberStats(metric, value, len(values), ci, chance, p)


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
