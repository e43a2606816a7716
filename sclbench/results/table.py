"""Tables of results next to the paper's numbers: rich (terminal), markdown (README) or csv; html in html.py,
the choice between them in renderers.py.

Always generated from the result records, never edited by hand: one row per (task, split,
checkpoint) with the task's main metrics, the paper's number beside each metric that has one, and the
delta (ours - paper, in points). Two rules keep a table from misleading:
- a record made on synthetic data (`sclbench data synth`, the demo) is labelled "synthetic" and never
  set beside a paper number: a delta between a toy benchmark and Flickr30K means nothing;
- long protocol descriptions go to numbered footnotes, so the columns stay readable.
Each number can carry its 95% bootstrap interval (from the per-sample predictions, `with_stats`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sclbench.errors import DataError
from sclbench.results.paper import (
    PaperNumber,
    canonical_split,
    checkpoint_registry,
    model_family,
    paper_index_by_model,
    paper_numbers,
    same_weights,
)
from sclbench.results.record import ResultRecord, is_metric_value
from sclbench.results.stats import NumberStats, record_stats

PROTOCOL_INLINE = 28  # longer protocol descriptions become footnotes
SYNTHETIC_NOTE = "made on generated data, never compared with the paper's numbers"

_IMAGE_RETRIEVAL = ("tr_r1", "tr_r5", "tr_r10", "ir_r1", "ir_r5", "ir_r10", "r_mean")
_VIDEO_RETRIEVAL = ("t2v_r1", "t2v_r5", "t2v_r10", "t2v_medr", "v2t_r1", "v2t_r5", "v2t_r10", "v2t_medr")


def main_metrics(metrics: dict[str, Any]) -> list[str]:
    """The metrics worth a column, chosen from what the record holds (so new tasks just work)."""
    if "tr_r1" in metrics:
        wanted: Iterable[str] = _IMAGE_RETRIEVAL
    elif "t2v_r1" in metrics:
        wanted = _VIDEO_RETRIEVAL
    elif "consistency" in metrics:
        wanted = ("accuracy", "consistency")
    elif "accuracy" in metrics:
        wanted = ["accuracy", *sorted(k for k in metrics if k.startswith("accuracy_"))]
    else:
        wanted = sorted(metrics)
    return [m for m in wanted if is_metric_value(metrics.get(m))]


def is_synthetic(record: ResultRecord) -> bool:
    """Whether the record was made on generated data.

    The evaluation writes `extra.synthetic_data` (the marker `sclbench.data.synthetic` leaves in every
    generated data root). Records from before the marker existed are recognised by the demo's
    checkpoint names (`demo-<variant>`), which only `sclbench demo` writes.
    """
    unknown = record.extra.get("unknown_fields") or {}
    if record.extra.get("synthetic_data") or record.protocol.get("synthetic_data") or unknown.get("synthetic_data"):
        return True
    return record.checkpoint_name.startswith("demo-")


def protocol_label(protocol: dict[str, Any]) -> str:
    """Compact description of the non-default protocol choices, e.g. 'mode=two-stage, k=128'."""
    parts = []
    for key, value in sorted(protocol.items()):
        if value is True:
            parts.append(key.replace("_", "-"))
        elif value not in (None, False, "", {}, []):
            parts.append(f"{key}={value}")
    return ", ".join(parts)


@dataclass
class TableRow:
    task: str
    split: str
    checkpoint: str
    scorer: str
    protocol: str
    metrics: dict[str, float]  # main metrics, in display order
    paper: dict[str, PaperNumber] = field(default_factory=dict)
    source: str = ""  # the record file
    synthetic: bool = False  # made on generated data: never compared with the paper
    stats: dict[str, NumberStats] = field(default_factory=dict)  # interval and p-value per metric
    record: ResultRecord | None = field(default=None, repr=False)
    model: str = "scl"  # whose published numbers it is set beside (paper.model_family)
    zero_shot: bool = False  # zero-shot rows meet zero-shot paper numbers only

    def ci(self, metric: str) -> tuple[float, float] | None:
        st = self.stats.get(metric)
        return st.ci if st else None

    def delta(self, metric: str) -> float | None:
        if metric not in self.paper or metric not in self.metrics:
            return None
        return self.metrics[metric] - self.paper[metric].value


class TableRows(list):  # type: ignore[type-arg]
    """build_table's rows, remembering the published numbers they were matched against: the
    leaderboard sets those models' own rows beside them (also models with no record of their own)."""

    def __init__(self, rows: Iterable[TableRow] = (), published: Iterable[PaperNumber] = ()) -> None:
        super().__init__(rows)
        self.published: list[PaperNumber] = list(published)


def build_table(
    records: Iterable[ResultRecord], paper: list[PaperNumber] | None = None, with_stats: bool = False
) -> TableRows:
    """One row per (task, split, checkpoint); the newest record wins when a key appears twice.

    paper: the published numbers (default: every model's, from the cards); a record meets those of its
    own model family only (`paper.model_family`: SCL's for SCL checkpoints, METER's for METER's...),
    and of its own weights where the card's block names them (`paper.same_weights`).
    with_stats: also compute each number's bootstrap interval and p-value vs chance (reads predictions).
    """
    published = paper_numbers(model=None) if paper is None else list(paper)
    index = paper_index_by_model(published)
    newest: dict[tuple[str, str, str], ResultRecord] = {}
    for rec in records:
        _check_metrics(rec)
        if rec.key not in newest or rec.created_at >= newest[rec.key].created_at:
            newest[rec.key] = rec
    registry = checkpoint_registry() if newest else {}
    rows = TableRows(published=published)
    for key in sorted(newest):
        rec = newest[key]
        zero_shot = bool(rec.protocol.get("zero_shot", False))
        synthetic = is_synthetic(rec)
        family = model_family(rec.checkpoint, registry)
        where = (family, rec.task.lower(), canonical_split(rec.task, rec.split), zero_shot)
        numbers = {} if synthetic else index.get(where, {})
        numbers = {m: p for m, p in numbers.items() if same_weights(p, rec.checkpoint, registry)}
        names = main_metrics(rec.metrics)
        names += [m for m in numbers if m in rec.metrics and m not in names]
        rows.append(
            TableRow(
                task=rec.task,
                split=rec.split,
                checkpoint=rec.checkpoint_name,
                scorer=rec.scorer,
                protocol=protocol_label(rec.protocol),
                metrics={m: float(rec.metrics[m]) for m in names},
                paper={m: numbers[m] for m in names if m in numbers},
                source=str(rec.source or ""),
                synthetic=synthetic,
                stats=record_stats(rec, names) if with_stats else {},
                record=rec,
                model=family,
                zero_shot=zero_shot,
            )
        )
    return rows


def _check_metrics(rec: ResultRecord) -> None:
    """Every metric of a record is a number (NaN included: shown as NaN), else an error naming the
    record: a table that silently left a number out would misreport the run."""
    for metric, value in rec.metrics.items():
        if not is_metric_value(value):
            where = rec.source or f"{rec.task} {rec.split} {rec.checkpoint_name}"
            raise DataError(f"result record {where}: metric {metric!r} needs a number, got {value!r}")


def protocol_notes(rows: list[TableRow]) -> dict[str, int]:
    """Footnote number of every protocol description too long to sit in a column."""
    notes: dict[str, int] = {}
    for r in rows:
        if len(r.protocol) > PROTOCOL_INLINE and r.protocol not in notes:
            notes[r.protocol] = len(notes) + 1
    return notes


def protocol_cell(row: TableRow, notes: dict[str, int]) -> str:
    return f"see [{notes[row.protocol]}]" if row.protocol in notes else row.protocol


def run_label(row: TableRow) -> str:
    return f"{row.checkpoint} (synthetic)" if row.synthetic else row.checkpoint


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    if math.isnan(value):
        return "NaN"  # shown, never left blank: a blank cell reads as "not evaluated"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _value(row: TableRow, metric: str) -> str:
    """The number, with its 95% interval when known: `35.00 [15.0, 55.0]`."""
    cell = _fmt(row.metrics.get(metric))
    ci = row.ci(metric)
    return f"{cell} [{ci[0]:.1f}, {ci[1]:.1f}]" if cell and ci else cell


def _grid(rows: list[TableRow]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Per task: (task, header, cells). Metrics with a paper number get 'paper' and 'Δ' columns."""
    out = []
    notes = protocol_notes(rows)
    for task in sorted({r.task for r in rows}):
        group = [r for r in rows if r.task == task]
        metrics: list[str] = []
        for r in group:
            metrics += [m for m in r.metrics if m not in metrics]
        with_paper = {m for r in group for m in r.paper}
        header = ["split", "checkpoint", "scorer", "protocol"]
        for m in metrics:
            header += [m, f"{m} paper", f"{m} Δ"] if m in with_paper else [m]
        cells = []
        for r in group:
            line = [r.split, run_label(r), r.scorer, protocol_cell(r, notes)]
            for m in metrics:
                line.append(_value(r, m))
                if m in with_paper:
                    line += [_fmt(r.paper[m].value) if m in r.paper else "", _fmt(r.delta(m), signed=True)]
            cells.append(line)
        out.append((task, header, cells))
    return out


def paper_sources(rows: list[TableRow]) -> list[str]:
    seen: dict[str, list[str]] = {}
    for r in rows:
        for m, p in r.paper.items():
            seen.setdefault(p.source + ("" if p.verified else " (unverified)"), []).append(f"{r.task} {r.split} {m}")
    return [f"{', '.join(dict.fromkeys(where))}: {src}" for src, where in seen.items()]


def render_markdown(rows: list[TableRow]) -> str:
    lines = ["# sclbench results", "", "_Generated by `sclbench table` from the result records; do not edit by hand._"]
    for task, header, cells in _grid(rows):
        lines += ["", f"## {task}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in cells]
    if any(r.synthetic for r in rows):
        lines += ["", f"(synthetic): {SYNTHETIC_NOTE}."]
    if any(r.stats for r in rows):
        lines += ["", "[a, b]: 95% bootstrap interval over the split's samples."]
    notes = protocol_notes(rows)
    if notes:
        lines += ["", "Protocols:", *[f"{i}. {text}" for text, i in notes.items()]]
    sources = paper_sources(rows)
    if sources:
        lines += ["", "Paper numbers:", *[f"- {n}" for n in sources]]
    return "\n".join(lines) + "\n"


def render_csv(rows: list[TableRow]) -> str:
    """Long format, full precision: one line per (record, metric)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    # New columns go last, so readers of the older layout keep working.
    writer.writerow(
        [
            "task",
            "split",
            "checkpoint",
            "scorer",
            "protocol",
            "metric",
            "value",
            "paper",
            "delta",
            "paper_source",
            "synthetic",
            "ci_low",
            "ci_high",
            "chance",
            "p_value",
        ]
    )
    opt = lambda v: "" if v is None else repr(v)  # noqa: E731
    for r in rows:
        for m, v in r.metrics.items():
            p, st = r.paper.get(m), r.stats.get(m)
            ci = st.ci if st and st.ci else (None, None)
            writer.writerow([r.task, r.split, r.checkpoint, r.scorer, r.protocol, m, repr(v),
                             "" if p is None else repr(p.value), opt(r.delta(m)), "" if p is None else p.source,
                             str(r.synthetic).lower(), opt(ci[0]), opt(ci[1]), opt(st.chance if st else None),
                             opt(st.p_value if st else None)])  # fmt: skip
    return buf.getvalue()


def rich_tables(rows: list[TableRow]) -> list[Any]:
    """rich Tables, one per task; the paper's number and the delta sit under each value (narrow)."""
    from rich.table import Table

    tables = []
    notes = protocol_notes(rows)
    for task in sorted({r.task for r in rows}):
        group = [r for r in rows if r.task == task]
        metrics: list[str] = []
        for r in group:
            metrics += [m for m in r.metrics if m not in metrics]
        caption = "(paper), Δ = ours - paper" if any(r.paper for r in group) else ""
        if any(r.synthetic for r in group):
            caption = "; ".join(x for x in (caption, f"(synthetic): {SYNTHETIC_NOTE}") if x)
        table = Table(title=task, title_justify="left", show_lines=True, caption=caption or None)
        # split / checkpoint / scorer / protocol stacked in one column keeps the table narrow.
        table.add_column("run", no_wrap=True, overflow="ellipsis", max_width=32)
        for m in metrics:
            table.add_column(m, justify="right", min_width=6)
        for r in group:
            cells = ["\n".join(x for x in (r.split, run_label(r), f"[dim]{r.scorer}[/]", protocol_cell(r, notes)) if x)]
            for m in metrics:
                cell = _fmt(r.metrics.get(m))
                ci = r.ci(m)
                if cell and ci:
                    cell += f"\n[dim]\\[{ci[0]:.1f}, {ci[1]:.1f}][/]"
                delta = r.delta(m)
                if delta is not None:
                    colour = "green" if delta >= 0 else "red"
                    cell += f"\n[dim]({r.paper[m].value:.2f})[/]\n[{colour}]{delta:+.2f}[/]"
                cells.append(cell)
            table.add_row(*cells)
        tables.append(table)
    return tables


def footnotes(rows: list[TableRow]) -> list[str]:
    """Plain-text notes printed under the rich tables: protocols, then the paper's sources."""
    return [f"[{i}] protocol: {text}" for text, i in protocol_notes(rows).items()] + [
        f"paper: {n}" for n in paper_sources(rows)
    ]
