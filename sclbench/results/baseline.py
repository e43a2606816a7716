"""Replacing a drift baseline with fresh records: the explicit, reviewable way to accept a change."""

from __future__ import annotations

import shutil
from pathlib import Path

from sclbench.errors import DataError
from sclbench.results.record import collect


def replace_baseline(results: str | Path, to: str | Path) -> int:
    """Copy every record under `results` (with its predictions) into a fresh `to`; returns the count.

    The old folder is removed first, so a record that is no longer produced leaves the baseline too.
    """
    records = collect(results)
    if not records:
        raise DataError(f"no result records under {results} (run `sclbench demo` or `sclbench eval` first)")
    to = Path(to)
    if to.resolve() in [Path(results).resolve(), *Path(results).resolve().parents]:
        raise DataError(f"--to {to} contains the results folder {results}; choose another baseline folder")
    predictions = [r.read_predictions() for r in records]  # read everything before deleting anything
    if to.exists():
        shutil.rmtree(to)
    for record, preds in zip(records, predictions):
        record.save(to, predictions=preds)
    return len(records)
