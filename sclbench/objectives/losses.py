"""Shared pieces of the contrastive objectives: NormSoftmax (InfoNCE both ways) and gathering.

`gather_grad` (card key `train.gather_grad`) says how a gathered loss's gradient reaches each rank,
and so how much a gathered term weighs against the local ones (MLM, ITM, the retrieval rank loss):
  "official" (default): the official `AllGather_multi` backward (only this rank's loss, only its own
      rows; after DDP's mean a gathered term weighs 1/world of its card weight) and the official
      per-term gathering (completion.py), with every gathered term scaled by world / 8: its weight is
      then card weight / 8 at ANY world size, as in the official 8 processes x 16 samples. What
      cannot be reproduced on fewer processes: the negatives per step (16 x world instead of 128).
  "local_slice": the bare official backward, no rescaling: the official weights only at 8
      processes; on one process the gathered terms weigh 8x more relative to MLM/ITM.
  "exact": the gradient of the full-batch loss, as one process with the whole batch would get, and
      every contrastive term gathers its negatives from all ranks (gathered terms at card weight).
`balance.py` states the resulting per-term weights and negatives of a run (recorded with it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sclbench.engine.distributed import all_gather_with_grad, world_size
from sclbench.objectives.balance import check_gather_grad, term_scale

_GATHER = {"official": "official", "local_slice": "official", "exact": "exact"}  # -> engine gather mode


def norm_softmax_loss(sim: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE with the diagonal as positives: -mean_i log softmax_j(S/t)[i,i] - mean_j ... .

    The SUM of the two directions, as the official `NormSoftmaxLoss` (Frozen-in-Time) computes it.
    """
    logits = sim / temperature
    target = torch.arange(sim.shape[0], device=sim.device)
    return F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)


def masked_norm_softmax_loss(sim: torch.Tensor, valid: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    """`norm_softmax_loss` over the rows/columns where `valid` (Bool[N]) holds, in static shapes.

    Equal (up to float summation order) to `norm_softmax_loss(sim[valid][:, valid], t)`, without
    boolean indexing: that needs the count on the host (a device sync) and breaks a compiled graph.
    Invalid columns are filled with the dtype's lowest value (exp gives exactly 0 in the softmax of a
    valid row); invalid rows weigh 0. No valid entry: 0, with the graph kept.
    """
    logits = sim / temperature
    pair = valid[:, None] & valid[None, :]
    logits = logits.masked_fill(~pair, torch.finfo(logits.dtype).min)
    target = torch.arange(sim.shape[0], device=sim.device)
    weight = valid.to(torch.float32)
    count = weight.sum().clamp(min=1.0)
    rows = F.cross_entropy(logits, target, reduction="none")
    cols = F.cross_entropy(logits.t(), target, reduction="none")
    return ((rows.float() * weight).sum() + (cols.float() * weight).sum()) / count


def normalize(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise over the channel (last) axis, floored at 1e-8 like the official code.

    The official video SCL normalised [B, F, D] features over the frame axis (dim 1): a bug that
    turns image features into sign vectors (scl-official.md §3.4). Channels are always the last axis.
    """
    return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-8)


def gathered_term_scale(mode: str, world: int | None = None) -> float:
    """The factor on a gathered term's loss: world / 8 under "official" (the official weight at any world
    size, see above), 1 otherwise; `world` defaults to this run's process count."""
    return term_scale(mode, world_size() if world is None else int(world))


def gather(x: torch.Tensor, mode: str = "official") -> torch.Tensor:
    """Concatenate a tensor from every rank along dim 0; its gradient follows `mode` (see above)."""
    return all_gather_with_grad(x, _GATHER[check_gather_grad(mode)])
