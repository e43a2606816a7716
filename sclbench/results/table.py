"""Tables of results next to the paper's numbers: rich (terminal), markdown (README) or csv.

Always generated from the result records, never edited by hand: one row per (task, split,
checkpoint) with the task's main metrics, the paper's number beside each metric that has one, and the
delta (ours - paper, in points).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from sclbench.results.paper import PaperNumber, canonical_split, paper_index
from sclbench.results.record import ResultRecord

Format = Literal["rich", "markdown", "csv"]
FORMATS: tuple[str, ...] = ("rich", "markdown", "csv")

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
    return [m for m in wanted if isinstance(metrics.get(m), (int, float))]


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

    def delta(self, metric: str) -> float | None:
        if metric not in self.paper or metric not in self.metrics:
            return None
        return self.metrics[metric] - self.paper[metric].value


def build_table(records: Iterable[ResultRecord], paper: list[PaperNumber] | None = None) -> list[TableRow]:
    """One row per (task, split, checkpoint); the newest record wins when a key appears twice."""
    index = paper_index(paper)
    newest: dict[tuple[str, str, str], ResultRecord] = {}
    for rec in records:
        if rec.key not in newest or rec.created_at >= newest[rec.key].created_at:
            newest[rec.key] = rec
    rows = []
    for key in sorted(newest):
        rec = newest[key]
        zero_shot = bool(rec.protocol.get("zero_shot", False))
        numbers = index.get((rec.task.lower(), canonical_split(rec.task, rec.split), zero_shot), {})
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
            )
        )
    return rows


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _grid(rows: list[TableRow]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Per task: (task, header, cells). Metrics with a paper number get 'paper' and 'Δ' columns."""
    out = []
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
            line = [r.split, r.checkpoint, r.scorer, r.protocol]
            for m in metrics:
                line.append(_fmt(r.metrics.get(m)))
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
    notes = paper_sources(rows)
    if notes:
        lines += ["", "Paper numbers:", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def render_csv(rows: list[TableRow]) -> str:
    """Long format, full precision: one line per (record, metric)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["task", "split", "checkpoint", "scorer", "protocol", "metric", "value", "paper", "delta", "paper_source"])
    for r in rows:
        for m, v in r.metrics.items():
            p = r.paper.get(m)
            delta = r.delta(m)
            writer.writerow([r.task, r.split, r.checkpoint, r.scorer, r.protocol, m, repr(v),
                             "" if p is None else repr(p.value), "" if delta is None else repr(delta),
                             "" if p is None else p.source])  # fmt: skip
    return buf.getvalue()


def rich_tables(rows: list[TableRow]) -> list[Any]:
    """rich Tables, one per task; the paper's number and the delta sit under each value (narrow)."""
    from rich.table import Table

    tables = []
    for task in sorted({r.task for r in rows}):
        group = [r for r in rows if r.task == task]
        metrics: list[str] = []
        for r in group:
            metrics += [m for m in r.metrics if m not in metrics]
        table = Table(title=task, title_justify="left", show_lines=True, caption="(paper), Δ = ours - paper")
        # split / checkpoint / scorer / protocol stacked in one column keeps the table narrow.
        table.add_column("run", no_wrap=True, overflow="ellipsis", max_width=32)
        for m in metrics:
            table.add_column(m, justify="right", min_width=6)
        for r in group:
            cells = ["\n".join(x for x in (r.split, r.checkpoint, f"[dim]{r.scorer}[/]", r.protocol) if x)]
            for m in metrics:
                cell = _fmt(r.metrics.get(m))
                delta = r.delta(m)
                if delta is not None:
                    colour = "green" if delta >= 0 else "red"
                    cell += f"\n[dim]({r.paper[m].value:.2f})[/]\n[{colour}]{delta:+.2f}[/]"
                cells.append(cell)
            table.add_row(*cells)
        tables.append(table)
    return tables


def render(rows: list[TableRow], fmt: Format = "markdown", width: int = 200) -> str:
    """The table as text in the given format (rich is rendered without colour codes)."""
    if fmt == "markdown":
        return render_markdown(rows)
    if fmt == "csv":
        return render_csv(rows)
    if fmt == "rich":
        from rich.console import Console

        console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
        for table in rich_tables(rows):
            console.print(table)
        for note in paper_sources(rows):
            console.print(f"paper: {note}", markup=False)
        return console.file.getvalue()  # type: ignore[attr-defined]
    raise ValueError(f"unknown table format {fmt!r}; choose one of {', '.join(FORMATS)}")
