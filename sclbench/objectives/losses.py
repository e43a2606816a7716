"""Shared pieces of the contrastive objectives: NormSoftmax (InfoNCE both ways) and gathering."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sclbench.engine.distributed import all_gather_with_grad


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


def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate a tensor from every rank along dim 0, with gradients flowing back to each rank."""
    return all_gather_with_grad(x)
