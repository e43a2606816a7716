"""`sclbench ckpt inspect|convert`: look inside checkpoints and move them between formats."""

from __future__ import annotations

import json
from pathlib import Path

from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True)


@app.command()
def inspect(
    path: Path = typer.Argument(..., help="an official .ckpt, a state-dict file, or an sclbench directory"),
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
    path: Path = typer.Argument(..., help="checkpoint to convert"),
    out: Path = typer.Argument(..., help="output: a directory (sclbench format) or a .ckpt file (official format)"),
    task: str = typer.Option("pretrain", help="task whose heads/sizes the model is built for"),
    image_size: Optional[int] = typer.Option(None, help="resize the position table to this resolution"),
    preset: str = typer.Option("base", help="base (official sizes) or tiny"),
    trust_pickle: bool = typer.Option(
        False, "--trust-pickle", help="allow arbitrary pickled objects (only for files you trust)"
    ),
) -> None:
    """Official .ckpt -> sclbench directory, or sclbench directory -> official .ckpt."""
    from sclbench.model import SCLConfig, SCLModel
    from sclbench.model.checkpoint import export_official, extract_state_dict, load_into, read_checkpoint

    if path.is_dir():
        model = SCLModel.from_pretrained(path)
        if out.suffix not in (".ckpt", ".pt", ".pth"):
            raise typer.BadParameter("converting an sclbench directory writes an official .ckpt: name OUT *.ckpt")
        export_official(model, out)
        typer.echo(f"wrote official-format checkpoint {out}")
        return
    config = SCLConfig.preset(preset, task)
    if image_size:
        config.image_size = image_size
    sd = extract_state_dict(read_checkpoint(path, trust_pickle=trust_pickle), str(path))
    if "vision_transformer.visual.temporal_embed" in sd:
        config.use_temporal_embed = True
    model = SCLModel(config)
    report = load_into(model, sd, str(path))
    typer.echo(report.summary())
    model.save_pretrained(out, meta={"converted_from": str(path), "task": task})
    typer.echo(f"wrote {out}")
