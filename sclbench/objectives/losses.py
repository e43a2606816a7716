"""Shared pieces of the contrastive objectives: NormSoftmax (InfoNCE both ways) and gathering.

`gather_grad` (card key `train.gather_grad`) says how a gathered loss's gradient reaches each rank:
  "official" (default): the official `AllGather_multi` backward, only this rank's loss and only its
      own rows: after DDP's mean over ranks a gathered term weighs 1/world_size of "exact" relative
      to MLM/ITM, and the terms follow the official HEAD in what they gather (see completion.py).
  "exact": the gradient of the full-batch loss, as one process with the whole batch would get, and
      every contrastive term gathers its negatives from all ranks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sclbench.engine.distributed import GATHER_GRAD_MODES, all_gather_with_grad


def norm_softmax_loss(sim: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE with the diagonal as positives: -mean_i log softmax_j(S/t)[i,i] - mean_j ... .

    The SUM of the two directions, as the official `NormSoftmaxLoss` (Frozen-in-Time) computes it.
    """
    logits = sim / temperature
    target = torch.arange(sim.shape[0], device=sim.device)
    return F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise over the channel (last) axis, floored at 1e-8 like the official code.

    The official video SCL normalised [B, F, D] features over the frame axis (dim 1): a bug that
    turns image features into sign vectors (scl-official.md §3.4). Channels are always the last axis.
    """
    return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-8)


def check_gather_grad(mode: str) -> str:
    if mode not in GATHER_GRAD_MODES:
        from sclbench.errors import ConfigError

        raise ConfigError(f"train.gather_grad: {mode!r} is not a gather mode; use one of {', '.join(GATHER_GRAD_MODES)}")
    return mode


def gather(x: torch.Tensor, mode: str = "official") -> torch.Tensor:
    """Concatenate a tensor from every rank along dim 0; its gradient follows `mode` (see above)."""
    return all_gather_with_grad(x, check_gather_grad(mode))
