"""Which parameters a job's loss reaches: the rule that keeps DDP right for every task.

DDP (without `find_unused_parameters`, which walks the autograd graph every step) expects every
trainable parameter to receive a gradient in every step; a task that never touches one (the MLTC
`visual_mask_token` when fine-tuning VQA, NLVR2 or retrieval; the contrastive projections with
`con_weight: 0`) makes the second step fail with "Expected to have finished reduction in the prior
iteration". A hand list of such parameters goes stale with every new head or option, so the trainer
asks the loss itself, once, before it builds the optimizer and DDP:

1. every rank computes the loss of fixed probe micro-batches (its own first micro-batch of epoch 0,
   plus one batch of each kind the dataset says it mixes, e.g. images and clips in pre-training) and
   walks the autograd graph back from each loss to the parameters it reaches (no backward pass: no
   gradient, no optimizer state and no RNG state is touched; the data are seeded per sample);
2. the reached sets are combined over ranks with all-reduce MAX / MIN, so every rank gets the same
   answer: `used` (reached by some probe on some rank) and `always` (reached by every probe);
3. trainable parameters outside `used` are frozen (requires_grad False) for the job: they would get
   no gradient anyway (AdamW skips a parameter whose grad is None, so a 1-process run is unchanged)
   and the official Lightning run (find_unused_parameters True) left them untouched too;
   parameters in `used` but not in `always` vary from batch to batch: DDP then needs
   find_unused_parameters, which the trainer turns on for that job only (and says so).

The probe is deterministic (fixed batches, seeded data, forked RNG) and identical on every rank, so a
resumed run freezes the same parameters and its optimizer groups match the checkpoint's.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from sclbench.engine import distributed as D


@dataclass
class ParameterUse:
    """The probe's verdict, identical on every rank (names as in `model.named_parameters()`)."""

    frozen: list[str] = field(default_factory=list)  # trainable, reached by no probe: frozen now
    varying: list[str] = field(default_factory=list)  # reached by some probes only
    probes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"frozen": list(self.frozen), "varying": list(self.varying), "probes": self.probes}


def reached_parameters(loss: torch.Tensor, params: Iterable[nn.Parameter]) -> set[int]:
    """ids of the `params` whose gradient accumulator lies on the autograd graph of `loss`.

    This is what DDP's unused-parameter search does (from the forward's outputs); walking the graph
    costs no backward pass. Activation checkpointing that re-runs the forward inside the backward
    (reentrant) hides parameters from it: probe with checkpointing off."""
    wanted = {id(p) for p in params}
    found: set[int] = set()
    if loss.grad_fn is None:
        return found
    stack, seen = [loss.grad_fn], {loss.grad_fn}
    while stack:
        node = stack.pop()
        variable = getattr(node, "variable", None)  # AccumulateGrad: a leaf tensor
        if variable is not None and id(variable) in wanted:
            found.add(id(variable))
        for child, _ in node.next_functions:
            if child is not None and child not in seen:
                seen.add(child)
                stack.append(child)
    return found


def probe_parameter_use(
    module: nn.Module,
    model: nn.Module,
    batches: list[Callable[[], Any]],
    run: Callable[[nn.Module, Any], torch.Tensor],
    device: torch.device,
) -> ParameterUse:
    """Run `run(module, batch)` -> loss for each lazily built probe batch (the same number on every
    rank: the losses may run collectives), find the trainable parameters of `model` each loss
    reaches, agree over ranks, freeze the ones no loss reaches and return the verdict."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        return ParameterUse()
    counts = torch.zeros(len(named), dtype=torch.float32)
    py, npy = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    # Forked generators: dropout in the probe must not shift the training run's random stream.
    with torch.random.fork_rng(devices=devices):
        for make in batches:
            loss = run(module, make())
            reached = reached_parameters(loss, (p for _, p in named))
            counts += torch.tensor([float(id(p) in reached) for _, p in named])
            del loss
    random.setstate(py)
    np.random.set_state(npy)
    probes = len(batches) * D.world_size()
    # A mean of small integer counts times the world size is exact in fp32.
    total = (D.all_reduce_mean(counts.to(device)) * D.world_size()).round().cpu()
    frozen = [n for (n, _), c in zip(named, total.tolist()) if c == 0]
    varying = [n for (n, _), c in zip(named, total.tolist()) if 0 < c < probes]
    for name, param in named:
        if name in frozen:
            param.requires_grad_(False)
    return ParameterUse(frozen=frozen, varying=varying, probes=probes)
