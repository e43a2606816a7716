"""Shared pieces of the metric functions: the input error type and small validators."""

from __future__ import annotations

from collections.abc import Iterable

from sclbench.errors import SCLBenchError


class MetricInputError(SCLBenchError, ValueError):
    """Predictions and ground truth do not fit together (missing, duplicate or unknown ids).

    A `SCLBenchError` so the CLI prints it as one line (it usually comes from a user's prediction
    file), and a `ValueError` so library callers can catch it the ordinary way.
    """


def preview(ids: Iterable[object], limit: int = 5) -> str:
    """A short, readable sample of offending ids for an error message."""
    items = sorted(ids, key=str)
    shown = ", ".join(repr(i) for i in items[:limit])
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return shown + more
