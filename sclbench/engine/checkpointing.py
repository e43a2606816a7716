"""Training checkpoints that make a killed run resume to the same result.

Layout under `out_dir`:
    checkpoints/step-00000120.pt   full training state (model, optimizer, scheduler, grad scaler,
                                   every rank's RNG states, step / epoch / batch position, best
                                   metric, configs); the last `keep_last` are kept
    best/                          the model selected on the validation metric, exported with
                                   `save_pretrained` (loadable by `SCLModel.from_pretrained`)

Every write goes through `sclbench.common.io.atomic_write` (a temporary name, fsync, os.replace), so a
SIGKILL at any moment leaves either the previous or the new file, never a torn one, and a full disk
raises one clear error with the previous checkpoints untouched.
Checkpoints hold tensors and plain containers only (the numpy generator state as a tensor), so they are
read by the one safe loader (`sclbench.common.safe_pickle`): a planted `step-*.pt` that pickles a
callable is refused by name, never run. `--trust-pickle` reads an older or foreign file you trust.
"""

from __future__ import annotations

import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sclbench.common.io import atomic_write
from sclbench.common.safe_pickle import load_torch, short_reason
from sclbench.errors import CheckpointError

CKPT_DIR = "checkpoints"
BEST_DIR = "best"
_NAME = re.compile(r"^step-(\d+)\.pt$")
RESUME_HINT = (
    "if this run folder and the file are yours (a checkpoint of an older sclbench), pass --trust-pickle "
    "to resume from it (it can run code); otherwise delete it or choose another --out"
)


@dataclass
class TrainState:
    """Where the run stands. `batch_in_epoch` counts the optimizer steps (global batches) already
    taken in `epoch`, i.e. where the sampler restarts."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    best_epoch: int | None = None  # the epoch counter at best_step (a checkpoint without it: None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- RNG --------------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """This process's python, numpy, torch (CPU) and CUDA generator states, as tensors and plain
    containers (what the safe loader reads back)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    npy = state["numpy"]
    if isinstance(npy, dict):
        keys = np.asarray(npy["keys"].numpy(), dtype=np.uint32)
        npy = (npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    np.random.set_state(npy)  # a dict as saved above, or the tuple of a checkpoint read with --trust-pickle
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- files ------------------------------------------------------------------------------------------
def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete checkpoints in `out_dir`, oldest first."""
    folder = Path(out_dir) / CKPT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest(out_dir: str | Path) -> Path | None:
    """The newest checkpoint in `out_dir`, or None."""
    ckpts = list_checkpoints(out_dir)
    return ckpts[-1] if ckpts else None


def save_checkpoint(out_dir: str | Path, payload: dict[str, Any], step: int, keep_last: int | None = 3) -> Path:
    """Write `payload` as checkpoints/step-N.pt atomically; then keep only the newest `keep_last`."""
    folder = Path(out_dir) / CKPT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{step:08d}.pt"
    atomic_write(path, lambda fh: torch.save(payload, fh))
    # Older ones go only once the new one is complete: a kill or a full disk above keeps them all.
    if keep_last:
        for old in list_checkpoints(out_dir)[:-keep_last]:
            old.unlink(missing_ok=True)
    return path


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", trust_pickle: bool = False
) -> dict[str, Any]:
    """A training checkpoint through the safe loader; refused globals and damaged files name the file."""
    try:
        payload = load_torch(
            path, "training checkpoint", trust=trust_pickle, map_location=map_location, hint=RESUME_HINT
        )
    except CheckpointError:
        raise
    except Exception as err:  # truncated or damaged: anything from OSError to RuntimeError or EOFError
        raise CheckpointError(
            f"cannot read training checkpoint {path}: {short_reason(err)}; the file is damaged: "
            "delete it to resume from the one before, or choose another --out"
        ) from None
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"{path} is not a training checkpoint of sclbench (it holds a "
            f"{type(payload).__name__}); remove it from the run folder's checkpoints/"
        )
    return payload


# ---- full training state ----------------------------------------------------------------------------
def training_payload(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    state: TrainState,
    rng_states: list[dict[str, Any]],
    config: dict[str, Any],
) -> dict[str, Any]:
    """Everything `restore` needs. `rng_states` holds one entry per rank (see Trainer)."""
    model_config = getattr(model, "config", None)
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_states,
        "state": state.to_dict(),
        "config": config,
        "model_config": model_config.to_dict() if hasattr(model_config, "to_dict") else None,
    }


def restore(
    payload: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    rank: int = 0,
) -> TrainState:
    """Load a `training_payload` into live objects; set this rank's RNG states; return the TrainState.

    With a different world size than the saved run, ranks without a saved RNG state take rank 0's
    (the run continues correctly but is no longer bit-identical to an uninterrupted one)."""
    missing = [k for k in ("model", "optimizer", "scheduler", "rng", "state") if k not in payload]
    if missing:
        raise CheckpointError(
            f"the training checkpoint lacks {', '.join(missing)}: it was not written by sclbench's "
            "trainer; remove it from the run folder's checkpoints/ or choose another --out"
        )
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    if scaler is not None and payload.get("scaler") is not None:
        scaler.load_state_dict(payload["scaler"])
    rngs = payload["rng"]
    set_rng_state(rngs[rank] if rank < len(rngs) else rngs[0])
    return TrainState(**payload["state"])


def recover_best(out_dir: str | Path) -> None:
    """Undo an `export_best` killed between its two renames (best/ moved aside, new one not in place)."""
    out_dir = Path(out_dir)
    final, old = out_dir / BEST_DIR, out_dir / f".{BEST_DIR}.old"
    if old.is_dir() and not final.exists():
        old.rename(final)


def export_best(model: Any, out_dir: str | Path, meta: dict[str, Any]) -> Path:
    """Export `model` with `save_pretrained` into out_dir/best, replacing the previous best only once
    the new export is complete."""
    out_dir = Path(out_dir)
    recover_best(out_dir)
    final, tmp, old = out_dir / BEST_DIR, out_dir / f".{BEST_DIR}.tmp", out_dir / f".{BEST_DIR}.old"
    for stale in (tmp, old):
        shutil.rmtree(stale, ignore_errors=True)
    model.save_pretrained(tmp, meta=meta)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final
