"""`sclbench compare A B`: a thin wrapper around sclbench.app.compare that formats its result."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from sclbench.cli._params import INPUT_PATH, NON_NEGATIVE, OUTPUT_FILE, SEED
from sclbench.errors import ConfigError

FORMATS = ("rich", "json")


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _ids(ids: list[Any], preview: int) -> str:
    shown = ", ".join(str(i) for i in ids[:preview])
    more = len(ids) - min(preview, len(ids))
    return shown + (f", ... (+{more}; --json FILE lists all)" if more else "")


def _print_rich(report: Any, preview: int) -> None:
    from rich.console import Console
    from rich.table import Table

    from sclbench.app.compare import format_p

    # Logs (CI) are not terminals: room for the table instead of eliding every cell to 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 160)
    for c in report.comparisons:
        pct = int(round(c.confidence * 100))
        table = Table(title=f"{c.task} {c.split}: A = {c.a}, B = {c.b}", title_justify="left")
        for name in ("metric", "A", "B", "B - A", f"{pct}% CI", "p", "MDE", "A>B", "B>A", "paired", "units"):
            table.add_column(name, justify="left" if name in ("metric", f"{pct}% CI") else "right")
        for m in c.metrics.values():
            ci = "" if m.ci is None else f"[{m.ci[0]:+.2f}, {m.ci[1]:+.2f}]"
            p = format_p(m.p_value)
            if m.beyond_noise:
                p = f"[bold]{p}[/]"
            units = "" if m.clusters is None else f"{m.clusters} {c.unit}s" if c.unit else str(m.clusters)
            table.add_row(
                m.metric, _num(m.a), _num(m.b), _num(m.difference, signed=True), ci, p, _num(m.mde),
                str(len(m.flipped_a_to_b)) if m.paired else "", str(len(m.flipped_b_to_a)) if m.paired else "",
                str(m.paired) if m.paired else "", units,
            )  # fmt: skip
        console.print(table)
        for m in c.metrics.values():
            for ids, what in ((m.flipped_a_to_b, "A right -> B wrong"), (m.flipped_b_to_a, "A wrong -> B right")):
                if ids and preview:
                    console.print(f"  {m.metric}: {what} ({len(ids)}): {_ids(ids, preview)}", markup=False)
        notes: dict[str, list[str]] = {}
        for m in c.metrics.values():
            if m.note:
                notes.setdefault(m.note, []).append(m.metric)
        for note, names in notes.items():
            console.print(f"  {', '.join(names)}: {note}", markup=False)
        if c.scorer_change:
            console.print(f"  scorer differs: {c.scorer_change[0]} -> {c.scorer_change[1]}", markup=False)
        if c.protocol_changes:
            changes = ", ".join(f"{k}: {v[0]!r} -> {v[1]!r}" for k, v in c.protocol_changes.items())
            console.print(f"  protocol differs: {changes}", markup=False)
        for names, side in ((c.metrics_only_a, "A"), (c.metrics_only_b, "B")):
            if names:
                console.print(f"  only in {side}: {', '.join(names)}", markup=False)
    console.print(
        "A>B: samples A got right and B wrong (graded scores: B scored lower), B>A the reverse; p: two-sided, "
        "cluster bootstrap over the units; MDE: the smallest difference this test set detects (alpha 0.05, "
        "power 0.8).",
        markup=False,
    )
    for listing, side in ((report.only_in_a, "A"), (report.only_in_b, "B")):
        for line in listing:
            console.print(f"not compared, only in {side}: {line}", markup=False)


def compare(
    a: Path = typer.Argument(..., help="A: a result record (.json) or a results folder (the reference).", **INPUT_PATH),
    b: Path = typer.Argument(..., help="B: a result record or a results folder (the candidate).", **INPUT_PATH),
    fmt: str = typer.Option("rich", "--format", "-f", help="rich (terminal tables) or json (everything, stdout)."),
    json_out: Path | None = typer.Option(
        None, "--json", help="Also write everything as JSON here (every flipped sample id).", **OUTPUT_FILE
    ),
    resamples: int = typer.Option(
        10_000, "--bootstrap", help="Cluster bootstrap resamples (interval and p-value).", min=1, max=1_000_000
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap.", **SEED),
    preview: int = typer.Option(
        5, "--preview", help="Flipped sample ids shown per metric and direction on the terminal.", **NON_NEGATIVE
    ),
) -> None:
    """Per metric: B - A with its clustered interval and p-value, the samples that flipped, the MDE."""
    from sclbench.app.compare import compare_paths

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    report = compare_paths(a, b, resamples, seed)
    if json_out is not None:
        from sclbench.common.io import atomic_write

        atomic_write(json_out, report.to_json())
    if fmt == "json":
        typer.echo(report.to_json(), nl=False)
    else:
        _print_rich(report, preview)
        if json_out is not None:
            typer.echo(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    """Add the `compare` verb to the main app."""
    app.command("compare")(compare)
