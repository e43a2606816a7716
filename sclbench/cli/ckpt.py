"""`sclbench ckpt list|fetch|inspect|convert`: the registry, downloads, and checkpoints between formats."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sclbench.cli._params import COUNT, INPUT_PATH, OUTPUT_PATH

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="print machine-readable JSON")) -> None:
    """Registered checkpoints and encoder initialisations: aliases, source, cache status (offline)."""
    from sclbench.app.catalog import print_registry
    from sclbench.app.checkpoints import registry_rows

    rows = registry_rows()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        print_registry(rows)


@app.command()
def fetch(name: str = typer.Argument(..., help="a registered name (`sclbench ckpt list`)")) -> None:
    """Download a registered checkpoint into the cache and verify its sha256 (recorded on first download)."""
    from sclbench.app.checkpoints import fetch as run

    resolved = run(name)
    typer.echo(f"{resolved.name}: {resolved.path} (sha256 {resolved.sha256})")


@app.command()
def inspect(
    path: Path = typer.Argument(
        ..., help="an official .ckpt, a state-dict file, or an sclbench directory", **INPUT_PATH
    ),
    as_json: bool = typer.Option(False, "--json", help="print machine-readable JSON"),
) -> None:
    """Format, step, task heads, stored config and parameter counts of a checkpoint."""
    from rich.console import Console
    from rich.table import Table

    from sclbench.app.checkpoints import inspect as inspect_checkpoint

    info = inspect_checkpoint(path)
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    table = Table(title=str(path), show_header=False)
    for key, value in info.items():
        if key in ("parameters", "config", "path"):
            continue
        table.add_row(key, str(value))
    for group, n in info["parameters"].items():
        table.add_row(f"params: {group}", f"{n:,}")
    for key, value in (info.get("config") or {}).items():
        table.add_row(f"config: {key}", str(value))
    Console().print(table)


@app.command()
def convert(
    path: Path = typer.Argument(..., help="checkpoint to convert", **INPUT_PATH),
    out: Path = typer.Argument(
        ..., help="output: a directory (sclbench format) or a .ckpt file (official format)", **OUTPUT_PATH
    ),
    task: str = typer.Option("pretrain", "--task", help="model task whose heads/sizes the model is built for"),
    image_size: int | None = typer.Option(
        None, "--image-size", help="resize the position table to this resolution", **COUNT
    ),
    preset: str = typer.Option("base", "--preset", help="base (official sizes) or tiny"),
    tokenizer: str | None = typer.Option(None, "--tokenizer", help="tokenizer to save beside the weights"),
    trust_pickle: bool = typer.Option(
        False, "--trust-pickle", help="allow arbitrary pickled objects (only for files you trust)"
    ),
) -> None:
    """Official .ckpt -> sclbench directory, or sclbench directory -> official .ckpt."""
    from sclbench.app.checkpoints import convert as run

    run(
        path,
        out,
        task=task,
        image_size=image_size,
        preset=preset,
        tokenizer=tokenizer,
        trust_pickle=trust_pickle,
        say=typer.echo,
    )
