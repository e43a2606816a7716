"""`sclbench data ...`: generate the synthetic mini-benchmark, check a data layout."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)


@app.command()
def synth(out: Path = typer.Argument(..., help="Folder to write the mini-benchmark into."),
          seed: int = typer.Option(0, help="Random seed; the same seed writes the same bytes."),
          scale: float = typer.Option(1.0, help="Multiply every split size by this.")) -> None:
    """Write a synthetic mini-benchmark in the published layouts of all six tasks (+ arrow, tokenizer)."""
    from sclbench.data.synthetic import generate

    generate(out, seed=seed, scale=scale)
    typer.echo(f"wrote the synthetic benchmark (seed {seed}, scale {scale}) to {out}")


@app.command()
def check(task: str = typer.Argument(..., help="vqa, nlvr2, f30k, coco, msrvtt, lsmdc or pretrain."),
          root: Path = typer.Option(..., "--root", help="The task's data folder.")) -> None:
    """Report what a data layout is missing; exit code 1 when something required is missing."""
    from sclbench.data.check import check_layout

    report = check_layout(task, root)
    typer.echo(report.render())
    if not report.ok:
        raise typer.Exit(1)
