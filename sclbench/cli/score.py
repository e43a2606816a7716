"""`sclbench score`: parse options, call sclbench.app.score, print the metrics."""

from __future__ import annotations

from pathlib import Path

import typer

from sclbench.cli._params import INPUT_DIR, INPUT_FILE, OUTPUT_DIR, utf8_text
from sclbench.cli.jobs import DATA_ROOT_HELP, TASK_HELP, _print_metrics, _text

PREDICTIONS_HELP = (
    "the prediction file: VQA EvalAI result .json, NLVR2 identifier,prediction .csv, retrieval score matrix "
    ".npz or ranked lists .json (README: Scoring prediction files)"
)


def score(
    task: str = typer.Argument(..., help=TASK_HELP),
    overrides: list[str] | None = typer.Argument(
        None, help="card overrides KEY=VALUE, the ones the predictions were made with (e.g. data.minival_images=4)"
    ),
    predictions: Path = typer.Option(..., "--predictions", help=PREDICTIONS_HELP, **INPUT_FILE),
    data_root: Path | None = typer.Option(None, "--data-root", help=DATA_ROOT_HELP, **INPUT_DIR),
    split: str = typer.Option("test", "--split", help="val or test: the split the predictions are for"),
    results: Path = typer.Option(Path("results"), "--results", help="where result records are written", **OUTPUT_DIR),
    name: str | None = typer.Option(
        None, "--name", help="name of the row in tables (default: the file's stem)", parser=utf8_text
    ),
    ties: str = typer.Option("gt_last", "--ties", help="retrieval tie rule: gt_last, gt_first, index"),
    allow_missing: bool = typer.Option(
        False,
        "--allow-missing",
        help="VQA / NLVR2: score questions or statements the file leaves out as wrong (counted in the record) "
        "instead of refusing the file",
    ),
) -> None:
    """Score predictions made elsewhere with the official scorer; write a result record like `eval` does."""
    from sclbench.app.score import score as run

    record, path, notes = run(
        task,
        predictions,
        split,
        _text(data_root),
        results,
        overrides=overrides,
        name=name,
        ties=ties,
        allow_missing=allow_missing,
    )
    for note in notes:
        typer.echo(f"note: {note}")
    typer.echo(f"scored {predictions} ({record.protocol['scored_from']['format']})")
    _print_metrics(f"{task} / {split} ({record.scorer})", record.metrics, path)


def register(app: typer.Typer) -> None:
    app.command("score")(score)
