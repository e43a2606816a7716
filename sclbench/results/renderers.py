"""One table, one format: the dispatch between the renderers of table.py (rich, markdown, csv), html.py and
the paper-style leaderboard (leaderboard.py), plus the leaderboard's own text forms.

Apart from the others so that none imports another's renderer: html.py and leaderboard.py build on
table.py's rows and cells.

Layouts: `paper` = the leaderboard (one row per checkpoint, one column group per task, published
numbers as rows of their own); `runs` = one row per (task, split, checkpoint) with every main metric,
the paper's number and the delta; `both` = the leaderboard, then the per-run tables. csv holds one
table (`runs` unless asked), json both.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from sclbench.errors import ConfigError
from sclbench.results.html import browse_link, render_html
from sclbench.results.leaderboard import (
    DEFAULT_RECALLS,
    Leaderboard,
    build_leaderboard,
    format_ci,
    format_value,
)
from sclbench.results.paper import PaperNumber
from sclbench.results.table import (
    SYNTHETIC_NOTE,
    TableRow,
    footnotes,
    paper_sources,
    protocol_notes,
    render_csv,
    render_markdown,
    rich_tables,
)

Format = Literal["rich", "markdown", "csv", "html", "json"]
FORMATS: tuple[str, ...] = ("rich", "markdown", "csv", "html", "json")
LAYOUTS: tuple[str, ...] = ("both", "paper", "runs")
PUBLISHED_NOTE = "(paper): the model's published number, from the task cards' `paper:` sections"


def default_layout(fmt: str) -> str:
    return "runs" if fmt == "csv" else "both"


def check_layout(fmt: str, layout: str | None) -> str:
    """The layout to draw (the format's default when None); csv holds one table, so not `both`."""
    layout = layout or default_layout(fmt)
    if layout not in LAYOUTS:
        raise ConfigError(f"--layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    if fmt == "csv" and layout == "both":
        raise ConfigError(
            "--layout both needs a format with sections (rich, markdown, html, json): choose paper or runs"
        )
    return layout


def render(
    rows: list[TableRow],
    fmt: Format = "markdown",
    width: int = 200,
    layout: str | None = None,
    paper: Iterable[PaperNumber] | None = None,
    recalls: Sequence[int] = DEFAULT_RECALLS,
    **html_options: Any,
) -> str:
    """The table as text in the given format (rich is rendered without colour codes).

    paper: the published rows of the leaderboard (default: the numbers build_table matched against).
    recalls: the R@K shown per retrieval direction in the leaderboard.
    """
    layout = check_layout(fmt, layout)
    board = build_leaderboard(rows, paper, recalls) if layout != "runs" else None
    if fmt == "html":
        return render_html(rows, board=board, layout=layout, **html_options)
    if fmt == "json":
        return render_json(rows, board, layout, browse=html_options.get("browse"))
    if fmt == "markdown":
        return render_markdown(rows) if board is None else board_markdown(board, rows if layout == "both" else None)
    if fmt == "csv":
        return render_csv(rows) if board is None else board_csv(board)
    if fmt == "rich":
        from rich.console import Console

        console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
        for renderable in rich_renderables(rows, layout=layout, paper=paper, recalls=recalls):
            console.print(renderable, markup=False) if isinstance(renderable, str) else console.print(renderable)
        return console.file.getvalue()  # type: ignore[attr-defined]
    raise ValueError(f"unknown table format {fmt!r}; choose one of {', '.join(FORMATS)}")


def rich_renderables(
    rows: list[TableRow],
    layout: str | None = None,
    paper: Iterable[PaperNumber] | None = None,
    recalls: Sequence[int] = DEFAULT_RECALLS,
) -> list[Any]:
    """What the terminal shows: rich tables, then the footnotes as plain strings."""
    layout = check_layout("rich", layout)
    out: list[Any] = []
    board = build_leaderboard(rows, paper, recalls) if layout != "runs" else None
    if board is not None:
        out.append(board_rich(board))
    if layout != "paper":
        out += rich_tables(rows)
    notes = footnotes(rows) if layout != "paper" else [f"[{i}] protocol: {t}" for t, i in protocol_notes(rows).items()]
    if board is not None:
        notes += [f"published: {s}" for s in board.published_sources()]
    return out + notes


# ---- the leaderboard as markdown, rich, csv and json ------------------------------------------------------
def _label(row: Any) -> str:
    return f"{row.label} (synthetic)" if row.synthetic else row.label


def board_markdown(board: Leaderboard, runs: list[TableRow] | None = None) -> str:
    """The leaderboard (and, given `runs`, the per-run tables under it) as markdown."""
    # a `|` or a line break in a name would end the cell or the row
    esc = lambda text: " ".join(text.splitlines()).replace("|", "\\|")  # noqa: E731
    header = ["checkpoint", "model"]
    header += [f"{board.group_title(c.group)} {c.metric}" for c in board.columns] + ["protocol"]
    lines = ["# sclbench results", "", "_Generated by `sclbench table` from the result records; do not edit by hand._"]
    lines += ["", "## Leaderboard", "", "| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    for row in board.rows:
        cells = [_label(row), row.model]
        for c in board.columns:
            cell = row.cells.get(c)
            text = format_value(cell.value) if cell else ""
            cells.append(f"{text} {format_ci(cell.ci)}" if cell and cell.ci else text)
        lines.append("| " + " | ".join(esc(x) for x in [*cells, row.protocol]) + " |")
    if any(r.published for r in board.rows):
        lines += ["", PUBLISHED_NOTE + "."]
    if runs is None:
        if any(r.synthetic for r in board.rows):
            lines += ["", f"(synthetic): {SYNTHETIC_NOTE}."]
        if any(c.ci for r in board.rows for c in r.cells.values()):
            lines += ["", "[a, b]: 95% bootstrap interval over the split's samples."]
        if board.notes:
            lines += ["", "Protocols:", *[f"{i}. {text}" for text, i in board.notes.items()]]
    else:  # the per-run tables follow, with the shared notes at their end
        lines += ["", render_markdown(runs).split("\n", 3)[3].rstrip("\n")]
    if board.published_sources():
        lines += ["", "Published rows:", *[f"- {esc(s)}" for s in board.published_sources()]]
    return "\n".join(lines) + "\n"


def board_rich(board: Leaderboard) -> Any:
    from rich.markup import escape
    from rich.table import Table

    caption = [PUBLISHED_NOTE] if any(r.published for r in board.rows) else []
    if any(r.synthetic for r in board.rows):
        caption.append(f"(synthetic): {SYNTHETIC_NOTE}")
    table = Table(title="leaderboard", title_justify="left", caption="; ".join(caption) or None)
    # checkpoint, model and protocol stacked in one column keep the table as narrow as the paper's.
    table.add_column("checkpoint", no_wrap=True, overflow="ellipsis", max_width=32)
    for c in board.columns:
        table.add_column(escape(f"{board.group_title(c.group)}\n{c.metric}"), justify="right", min_width=6)
    for row in board.rows:
        about = [] if row.published else [row.model, row.protocol]
        cells = ["\n".join([escape(_label(row)), *(f"[dim]{escape(x)}[/]" for x in about if x)])]
        for c in board.columns:
            cell = row.cells.get(c)
            text = format_value(cell.value) if cell else ""
            if cell and cell.ci:
                text += f"\n[dim]{escape(format_ci(cell.ci))}[/]"
            cells.append(text)
        table.add_row(*cells, style="italic" if row.published else None)
    return table


def board_csv(board: Leaderboard) -> str:
    """Wide: one line per leaderboard row, per column its value and 95% interval (full precision)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    head = ["checkpoint", "model", "kind"]
    for c in board.columns:
        head += [c.key(), f"{c.key()} ci_low", f"{c.key()} ci_high"]
    writer.writerow([*head, "protocol"])
    for row in board.rows:
        line = [row.label, row.model, row.kind]
        for c in board.columns:
            cell = row.cells.get(c)
            ci = cell.ci if cell else None
            line += [
                "" if cell is None else repr(cell.value),
                *(("", "") if ci is None else (repr(ci[0]), repr(ci[1]))),
            ]
        writer.writerow([*line, row.protocol])
    return buf.getvalue()


def _number(value: float | None) -> float | str | None:
    """JSON has no NaN or infinity: those travel as the strings "NaN", "Infinity", "-Infinity"."""
    if value is None or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def render_json(rows: list[TableRow], board: Leaderboard | None, layout: str, browse: str | None = None) -> str:
    out: dict[str, Any] = {"schema": "sclbench.table/1", "layout": layout}
    if board is not None:
        out["columns"] = [
            {"key": c.key(), "task": c.task, "split": c.split, "zero_shot": c.zero_shot, "metric": c.metric}
            for c in board.columns
        ]
        out["rows"] = []
        for row in board.rows:
            cells = {}
            for c, cell in row.cells.items():
                st = cell.stats
                entry: dict[str, Any] = {"value": _number(cell.value)}  # a paper's value: finite too
                if cell.ci is not None:
                    entry["ci"] = [cell.ci[0], cell.ci[1]]
                if st is not None and st.p_value is not None:
                    entry["p_value"] = st.p_value
                for extra in ("unit", "clusters"):
                    if getattr(st, extra, None) is not None:
                        entry[extra] = getattr(st, extra)
                if cell.delta is not None:
                    entry["delta"] = cell.delta
                if cell.paper is not None:
                    entry["source"], entry["verified"] = cell.paper.source, cell.paper.verified
                if cell.source is not None and cell.source.record is not None:
                    entry["record"] = cell.source.record.relative_path.as_posix()
                    if browse:
                        entry["link"] = browse_link(browse, cell.source.record)
                cells[c.key()] = entry
            out["rows"].append({"label": row.label, "model": row.model, "kind": row.kind, "protocol": row.protocol,
                                "cells": cells})  # fmt: skip
    if layout != "paper":
        out["runs"] = [
            {
                "task": r.task,
                "split": r.split,
                "checkpoint": r.checkpoint,
                "model": r.model,
                "zero_shot": r.zero_shot,
                "synthetic": r.synthetic,
                "scorer": r.scorer,
                "protocol": r.protocol,
                "metrics": {m: _number(v) for m, v in r.metrics.items()},
                "paper": {m: _number(p.value) for m, p in r.paper.items()},
                "ci": {m: list(s.ci) for m, s in r.stats.items() if s.ci is not None},
                "p_value": {m: s.p_value for m, s in r.stats.items() if s.p_value is not None},
            }
            for r in rows
        ]
        out["paper_sources"] = paper_sources(rows)
    return json.dumps(out, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
