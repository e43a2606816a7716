"""`sclbench browse`: a thin wrapper around sclbench.app.browse."""

from __future__ import annotations

from pathlib import Path

import typer

from sclbench.cli._params import INPUT_DIR, INPUT_PATH, NON_NEGATIVE, OUTPUT_DIR


def browse(
    results: Path = typer.Argument(..., help="Folder (or file) of result records.", **INPUT_PATH),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the site into (SITE/index.html).", **OUTPUT_DIR),
    compare: Path | None = typer.Option(
        None,
        "--compare",
        help="A second folder (or file) of records: pages show both runs and the flips.",
        **INPUT_PATH,
    ),
    data_root: Path | None = typer.Option(
        None,
        "--data-root",
        help="The data the records were evaluated on: a folder with one folder per task (as `sclbench data "
        "synth` writes) or one task's data folder.",
        **INPUT_DIR,
    ),
    media: bool = typer.Option(True, "--media/--no-media", help="Show pictures and texts (needs the data)."),
    max_samples: int = typer.Option(
        2000, "--max-samples", help="Cards per page, failures first; 0 = every sample.", **NON_NEGATIVE
    ),
    frames: int = typer.Option(4, "--frames", help="Frames shown per video clip.", min=1, max=16),
) -> None:
    """Write a static site of sample cards per record (opens from disk: no server, no network)."""
    from sclbench.app.browse import browse as write_site

    summary = write_site(results, out, compare, data_root, media, max_samples, frames)
    for page in summary.pages:
        line = f"{page.page}: {page.shown} of {page.samples} samples"
        if page.flips is not None:
            line += f"; {len(page.flips.a_right_b_wrong)} scored higher by A, {len(page.flips.b_right_a_wrong)} by B"
        typer.echo(line)
    if compare is not None:
        typer.echo(
            f"A = {results}, B = {compare} (a sample right in one run and wrong in the other scores higher there)"
        )
    typer.echo(
        f"wrote {len(summary.pages)} page(s) to {summary.out / 'index.html'} "
        f"(thumbnails: {summary.thumbnails_made} made, {summary.thumbnails_reused} reused)"
    )


def register(app: typer.Typer) -> None:
    app.command("browse")(browse)
