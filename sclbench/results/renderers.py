"""One table, one format: the dispatch between the renderers of table.py (rich, markdown, csv) and html.py.

Apart from both so that neither imports the other: html.py builds on table.py's rows and cells.
"""

from __future__ import annotations

import io
from typing import Any, Literal

from sclbench.results.html import render_html
from sclbench.results.table import TableRow, footnotes, render_csv, render_markdown, rich_tables

Format = Literal["rich", "markdown", "csv", "html"]
FORMATS: tuple[str, ...] = ("rich", "markdown", "csv", "html")


def render(rows: list[TableRow], fmt: Format = "markdown", width: int = 200, **html_options: Any) -> str:
    """The table as text in the given format (rich is rendered without colour codes)."""
    if fmt == "html":
        return render_html(rows, **html_options)
    if fmt == "markdown":
        return render_markdown(rows)
    if fmt == "csv":
        return render_csv(rows)
    if fmt == "rich":
        from rich.console import Console

        console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
        for table in rich_tables(rows):
            console.print(table)
        for note in footnotes(rows):
            console.print(note, markup=False)
        return console.file.getvalue()  # type: ignore[attr-defined]
    raise ValueError(f"unknown table format {fmt!r}; choose one of {', '.join(FORMATS)}")
