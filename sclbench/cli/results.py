"""`sclbench table` and `sclbench check`: thin wrappers around `sclbench.results`."""

from __future__ import annotations

from pathlib import Path

import typer

from sclbench.cli._click import ClickException
from sclbench.cli._params import INPUT_PATH, OUTPUT_FILE, SEED, finite_float, parse_finite
from sclbench.errors import ConfigError, DataError


class DriftFound(ClickException):
    """Exit code 1 with a one-line summary. A ClickException rather than typer.Exit because the app
    runs with standalone_mode=False, where click turns Exit into a return value that `main` drops."""

    exit_code = 1


def table(
    # Not checked here: the library's "does not exist" says to run `sclbench eval` first.
    results_dir: Path = typer.Argument(Path("results"), help="Folder of result records (searched recursively)."),
    fmt: str = typer.Option("rich", "--format", "-f", help="rich (terminal), markdown, csv, html (one page) or json."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write the table to this file instead of the screen.", **OUTPUT_FILE
    ),
    baseline: Path | None = typer.Option(
        None, "--baseline", "-b", help="html: show the drift status against these baseline records.", **INPUT_PATH
    ),
    intervals: bool = typer.Option(
        True, "--intervals/--no-intervals", help="95% bootstrap interval (and p vs chance) from the saved predictions."
    ),
    layout: str | None = typer.Option(
        None,
        "--layout",
        help="paper: one row per checkpoint, a column per task's main metric, published numbers as rows; "
        "runs: one row per (task, split, checkpoint) with every main metric; both (default; csv: runs).",
    ),
    browse: str | None = typer.Option(
        None,
        "--browse",
        help="html/json: link each reproduced number to its page in a `sclbench browse` site (URL or path "
        "relative to the page).",
    ),
    all_recalls: bool = typer.Option(
        False, "--all-recalls", help="Leaderboard: R@1, R@5 and R@10 per retrieval direction (default R@1)."
    ),
) -> None:
    """Render every result next to the published numbers (generated, never hand-edited)."""
    from sclbench.app.results import FORMATS, check_layout, print_rich, render_table, table_rows, write_table

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    layout = check_layout(fmt, layout)
    if baseline is not None and fmt != "html":
        raise ConfigError("--baseline is shown by --format html only (use `sclbench check` for the drift table)")
    if baseline is not None and layout == "paper":
        raise ConfigError("--baseline is shown with --layout both or runs (the drift table is per run)")
    if baseline is not None and not baseline.exists():
        raise DataError(f"baseline path {baseline} does not exist")
    if browse is not None:
        if fmt not in ("html", "json"):
            raise ConfigError("--browse links are made by --format html or json only")
        if not browse.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in browse):
            raise ConfigError(f"--browse needs a URL or a folder path, got {browse!r}")
    rows = table_rows(results_dir, intervals)
    options = {"layout": layout, "recalls": (1, 5, 10) if all_recalls else (1,)}
    if fmt == "html":
        options.update(results_dir=results_dir, baseline=baseline)
    if browse is not None:
        options["browse"] = browse
    if out is not None:
        write_table(out, rows, fmt, **options)
        typer.echo(f"wrote {len(rows)} rows to {out}")
    elif fmt == "rich":
        print_rich(rows, **options)
    else:
        typer.echo(render_table(rows, fmt, **options), nl=False)


def _parse_tolerances(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--metric-tolerance expects NAME=POINTS (e.g. ir_r1=1.0), got {item!r}")
        try:  # a NaN tolerance would pass every drift (every comparison with NaN is false)
            out[name.strip()] = parse_finite(value, "POINTS", minimum=0.0)
        except ValueError:
            raise ConfigError(
                f"--metric-tolerance {item!r}: POINTS must be a finite number >= 0 (e.g. ir_r1=1.0)"
            ) from None
    return out


def check(
    results: Path = typer.Argument(..., help="Folder (or file) of result records to check.", **INPUT_PATH),
    baseline: Path = typer.Option(..., "--baseline", "-b", help="Folder (or file) of baseline records.", **INPUT_PATH),
    tolerance: float = typer.Option(
        0.5, "--tolerance", "-t", help="Allowed |change| in points; 0 = exact.", parser=finite_float(0.0)
    ),
    metric_tolerance: list[str] = typer.Option(
        [], "--metric-tolerance", "-m", help="Per-metric tolerance NAME=POINTS (glob names allowed); repeatable."
    ),
    # At least one resample (the interval is a quantile of them); a million already takes minutes.
    resamples: int = typer.Option(
        1000, "--bootstrap", help="Paired bootstrap resamples when predictions exist.", min=1, max=1_000_000
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap.", **SEED),
    expect_protocol: list[str] = typer.Option(
        [],
        "--expect-protocol",
        help="A protocol key meant to differ (e.g. precision for bf16 vs fp32): listed, not failed; repeatable.",
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the report as JSON here.", **OUTPUT_FILE),
) -> None:
    """Compare results with a baseline; exit 1 when a metric drifts beyond its tolerance."""
    from sclbench.app.results import check as run_check

    report = run_check(
        results,
        baseline,
        tolerance,
        _parse_tolerances(metric_tolerance),
        resamples,
        seed,
        expected_protocol=expect_protocol,
        json_out=json_out,
    )
    if not report.passed:
        raise DriftFound(report.summary())


def register(app: typer.Typer) -> None:
    """Add the `table` and `check` verbs to the main app."""
    app.command("table")(table)
    app.command("check")(check)
