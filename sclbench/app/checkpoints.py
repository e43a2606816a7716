"""The `sclbench ckpt` jobs: the registry, downloads, a checkpoint's summary, conversion between formats.

Thin on purpose: the CLI calls these, and they call the model floor (hub, inspect, factory, checkpoint)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sclbench.errors import ConfigError
from sclbench.model import hub
from sclbench.model.checkpoint import CONFIG_NAME, export_official
from sclbench.model.config import SCLConfig
from sclbench.model.factory import create_model
from sclbench.model.inspect import inspect_checkpoint

OFFICIAL_SUFFIXES = (".ckpt", ".pt", ".pth")


def registry_rows() -> list[dict[str, Any]]:
    """Every registered checkpoint and encoder initialisation with its cache status (offline)."""
    return hub.registry_status()


def fetch(name: str) -> hub.ResolvedCheckpoint:
    """Download a registered checkpoint into the cache and verify its sha256."""
    return hub.fetch(name)


def inspect(path: str | Path) -> dict[str, Any]:
    """Format, step, task heads, stored config and parameter counts of a checkpoint."""
    return inspect_checkpoint(path)


def convert(
    path: Path,
    out: Path,
    *,
    task: str = "pretrain",
    image_size: int | None = None,
    preset: str = "base",
    tokenizer: str | None = None,
    trust_pickle: bool = False,
    say: Callable[[str], Any] = print,
) -> None:
    """Official .ckpt -> sclbench directory, or sclbench directory -> official .ckpt; `say` prints progress
    (the key report as soon as the weights are loaded, before the write)."""
    if path.is_dir():
        if out.suffix not in OFFICIAL_SUFFIXES:
            raise ConfigError("converting an sclbench directory writes an official .ckpt: name OUT *.ckpt")
        loaded = create_model(path, task=_own_task(path), require_tokenizer=False)
        export_official(loaded.model, out)
        say(f"wrote official-format checkpoint {out}")
        return
    loaded = create_model(
        path,
        task=task,
        preset=preset,
        tokenizer=tokenizer,
        trust_pickle=trust_pickle,
        model_overrides={"image_size": image_size} if image_size else None,
        require_tokenizer=False,
    )
    say(loaded.report)
    loaded.model.save_pretrained(out, tokenizer=loaded.tokenizer, meta={"converted_from": str(path), "task": task})
    say(
        f"wrote {out}"
        + (
            ""
            if loaded.tokenizer is not None
            else " (no tokenizer travels with this file: pass --tokenizer to save one beside the weights)"
        )
    )


def _own_task(directory: Path) -> str:
    return SCLConfig.load(directory / CONFIG_NAME).task
