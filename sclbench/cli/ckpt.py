"""`sclbench ckpt list|fetch|inspect|convert`: the registry, downloads, and checkpoints between formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from sclbench.cli._params import COUNT, INPUT_PATH, OUTPUT_PATH

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="print machine-readable JSON")) -> None:
    """Registered checkpoints and encoder initialisations: aliases, source, cache status (offline)."""
    from sclbench.app.catalog import print_registry
    from sclbench.model.hub import registry_status

    rows = registry_status()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        print_registry(rows)


@app.command()
def fetch(name: str = typer.Argument(..., help="a registered name (`sclbench ckpt list`)")) -> None:
    """Download a registered checkpoint into the cache and verify its sha256 (recorded on first download)."""
    from sclbench.model.hub import fetch as run

    resolved = run(name)
    typer.echo(f"{resolved.name}: {resolved.path} (sha256 {resolved.sha256})")


@app.command()
def inspect(
    path: Path = typer.Argument(..., help="an official .ckpt, a state-dict file, or an sclbench directory",
                                **INPUT_PATH),
    as_json: bool = typer.Option(False, "--json", help="print machine-readable JSON"),
) -> None:
    """Format, step, task heads, stored config and parameter counts of a checkpoint."""
    from rich.console import Console
    from rich.table import Table

    from sclbench.model.inspect import inspect_checkpoint

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
    out: Path = typer.Argument(..., help="output: a directory (sclbench format) or a .ckpt file (official format)",
                               **OUTPUT_PATH),
    task: str = typer.Option("pretrain", "--task", help="model task whose heads/sizes the model is built for"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="resize the position table to this resolution",
                                             **COUNT),
    preset: str = typer.Option("base", "--preset", help="base (official sizes) or tiny"),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="tokenizer to save beside the weights"),
    trust_pickle: bool = typer.Option(
        False, "--trust-pickle", help="allow arbitrary pickled objects (only for files you trust)"
    ),
) -> None:
    """Official .ckpt -> sclbench directory, or sclbench directory -> official .ckpt."""
    from sclbench.errors import ConfigError
    from sclbench.model.checkpoint import export_official
    from sclbench.model.factory import create_model

    if path.is_dir():
        if out.suffix not in (".ckpt", ".pt", ".pth"):
            raise ConfigError("converting an sclbench directory writes an official .ckpt: name OUT *.ckpt")
        loaded = create_model(path, task=_own_task(path), require_tokenizer=False)
        export_official(loaded.model, out)
        typer.echo(f"wrote official-format checkpoint {out}")
        return
    loaded = create_model(path, task=task, preset=preset, tokenizer=tokenizer, trust_pickle=trust_pickle,
                          model_overrides={"image_size": image_size} if image_size else None,
                          require_tokenizer=False)
    typer.echo(loaded.report)
    loaded.model.save_pretrained(out, tokenizer=loaded.tokenizer, meta={"converted_from": str(path), "task": task})
    typer.echo(f"wrote {out}" + ("" if loaded.tokenizer is not None else " (no tokenizer travels with this file: "
                                 "pass --tokenizer to save one beside the weights)"))


def _own_task(directory: Path) -> str:
    from sclbench.model.checkpoint import CONFIG_NAME
    from sclbench.model.config import SCLConfig

    return SCLConfig.load(directory / CONFIG_NAME).task
