"""`sclbench demo` (the embedded default), `sclbench baseline` (explicit drift-baseline updates), `sclbench plot`."""

from __future__ import annotations

from pathlib import Path

import typer

from sclbench.cli._params import COUNT, INPUT_DIR, OUTPUT_DIR, SEED


def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", help="folder for the data, runs and results", **OUTPUT_DIR),
    quick: bool = typer.Option(False, "--quick", help="smaller data and fewer steps (about 3 minutes on 2 CPU cores)"),
    ablation: bool = typer.Option(False, "--ablation", help="also pre-train without MGSC/MLTC and compare"),
    seed: int = typer.Option(0, help="the same seed gives the same numbers", **SEED),
    results: Path | None = typer.Option(None, "--results", help="where records go (default OUT/results)", **OUTPUT_DIR),
    # The environment variable is read here too, so that it is checked like the option (the library
    # reads it only when no count is passed).
    workers: int | None = typer.Option(
        None,
        "--workers",
        envvar="SCLBENCH_DEMO_WORKERS",
        **COUNT,
        help="processes side by side, one thread each (default: CPUs, at most 2); the numbers do not depend on it",
    ),
) -> None:
    """Synthetic mini-benchmark -> tiny SCL pre-training -> a fine-tune per demo card -> leaderboard with chance."""
    from sclbench.app.demo import print_ablation, print_leaderboard, run_demo

    records = run_demo(out, quick=quick, seed=seed, ablation=ablation, results_dir=results, workers=workers)
    print_leaderboard(records)
    if ablation:
        print_ablation(records)


def baseline(
    results: Path = typer.Argument(..., help="fresh result records (e.g. demo_out/results)", **INPUT_DIR),
    to: Path = typer.Option(
        Path("results/demo"), "--to", help="the committed baseline folder to replace", **OUTPUT_DIR
    ),
) -> None:
    """Replace a drift baseline with fresh records: the explicit, reviewable way to accept a change."""
    from sclbench.app.results import replace_baseline

    count = replace_baseline(results, to)
    typer.echo(f"baseline {to}: {count} records from {results}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.command("baseline")(baseline)
    app.command("plot")(plot)


def plot(
    source: Path = typer.Argument(..., help="a run folder (log.jsonl) or a folder of result records", **INPUT_DIR),
    out: Path = typer.Option(Path("plots"), "--out", help="folder for the PNG files", **OUTPUT_DIR),
) -> None:
    """Training curves of a run, or recall@K curves of retrieval records, as PNG files."""
    from sclbench.app.results import plot as run

    typer.echo(f"wrote {run(source, out)}")
