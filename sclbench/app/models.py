"""`sclbench eval --model NAME`: models other than SCL/METER checkpoints, through the same protocols.

SCL and METER checkpoints come through `jobs.prepare` (sclbench's own loader, with fine-tuning); any
other model is built by its factory (`adapters.registry`: a built-in adapter or the user's
`package.module:factory`) and evaluated only. Here: building it for a task, and what its record says
about the checkpoint (name, model, digest, source, revision).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sclbench.adapters.interface import EvalModel
from sclbench.adapters.registry import SCL, build_model
from sclbench.engine.utils import seed_everything
from sclbench.model.hub import memo_sha256
from sclbench.tasks.base import Task, get_task


def is_scl(spec: str | None) -> bool:
    return spec in (None, "", SCL)


def prepare_any(
    spec: str,
    task_name: str,
    ckpt: str | None,
    data_root: str | None,
    overrides: list[str] | None = None,
    seed: int = 0,
    limit: int | None = None,
    skip_corrupt: bool = False,
    roles: list[str] | None = None,
) -> tuple[Task, EvalModel]:
    """The task (card + overrides, strict; the data of `roles` checked first) and the model `spec`
    builds for its family (checked against the family's interface)."""
    task = get_task(task_name, overrides, data_root=data_root, seed=seed, skip_corrupt=skip_corrupt)
    task.limit = limit
    if roles:
        task.validate_data(roles)
    seed_everything(seed)  # a factory that initialises weights gets the same ones for the same seed
    return task, build_model(spec, ckpt, task.card.family)


def record_name(spec: str, ckpt: str | None, checkpoint_name: str | None = None) -> str:
    """The record's checkpoint name (its table row): --name, else a local checkpoint's folder or file
    name, else the hub id, else the --model value."""
    if checkpoint_name:
        return checkpoint_name
    if ckpt:
        path = Path(ckpt).expanduser()
        return (path.resolve().name or str(path)) if path.exists() else ckpt
    return spec


def local_digest(path: Path) -> str:
    """sha256 of a local checkpoint: the file's, or for a folder (a saved transformers model) one over
    its top-level files' names and digests (weights, config, processor files)."""
    if path.is_file():
        return memo_sha256(path)
    digest = hashlib.sha256()
    for child in sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{child.name}\0{memo_sha256(child)}\n".encode())
    return digest.hexdigest()


def checkpoint_record(spec: str, ckpt: str | None, model: EvalModel, checkpoint_name: str | None) -> dict[str, Any]:
    """What the record says about a non-SCL model's weights: the row name, the --model value, the sha256
    of a local checkpoint (None for a hub id: its revision identifies it), and the source and revision
    the model reports (`identity()`)."""
    path = Path(ckpt).expanduser() if ckpt else None
    local = path is not None and path.exists()
    identity = model.identity()
    return {
        "name": record_name(spec, ckpt, checkpoint_name),
        "model": spec,
        "path": str(path) if local else None,
        "sha256": local_digest(path) if local else None,
        "source": identity.get("source") or (ckpt if ckpt and not local else None),
        "revision": identity.get("revision"),
    }
