"""Learning-rate schedule of the official code (reference §5.2), stepped once per optimizer step.

Linear warm-up 0 -> 1, then either transformers' polynomial decay (power 1 = linear, end lr 0: the
multiplier reaches 0 at the last step) or transformers' cosine-with-warmup. One multiplier scales
every parameter group's OWN initial lr, so base / head / cross-modal ratios hold throughout.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from sclbench.errors import ConfigError


def total_steps(
    max_steps: int | None = None, batches_per_epoch: int = 0, epochs: int = 0, accumulation: int = 1
) -> int:
    """Optimizer steps of a run: `max_steps` if set, else (per-rank micro-batches per epoch x epochs)
    // accumulation, as the official trainer computes it."""
    if max_steps:
        return int(max_steps)
    steps = (batches_per_epoch * epochs) // max(1, accumulation)
    if steps <= 0:
        raise ConfigError(
            "the run has no optimizer step: set max_steps, or max_epochs with a train split "
            "holding at least one global batch"
        )
    return steps


def warmup_steps(warmup: int | float, total: int) -> int:
    """An int is a number of steps; a float is a fraction of `total` (official `int(total * frac)`)."""
    if isinstance(warmup, float):
        if not 0.0 <= warmup <= 1.0:
            raise ConfigError(f"warmup fraction {warmup} must lie in [0, 1] (or give an int number of steps)")
        return int(total * warmup)
    return int(warmup)


def lr_multiplier(step: int, total: int, warmup: int, kind: str = "linear", power: float = 1.0) -> float:
    """The factor applied to each group's initial lr before optimizer step `step` (0-based)."""
    if step < warmup:
        return step / max(1, warmup)
    if kind == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    if kind != "linear":
        raise ConfigError(f"unknown lr schedule {kind!r}; choose 'linear' or 'cosine'")
    if step > total:
        return 0.0
    remaining = 1.0 - (step - warmup) / max(1, total - warmup)
    return remaining**power


def build_scheduler(
    optimizer: torch.optim.Optimizer, total: int, warmup: int | float = 0.1, kind: str = "linear", power: float = 1.0
) -> LambdaLR:
    """A LambdaLR over `optimizer`; `warmup` as in `warmup_steps`."""
    n_warm = warmup_steps(warmup, total)
    return LambdaLR(optimizer, lambda step: lr_multiplier(step, total, n_warm, kind, power))
