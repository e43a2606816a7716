"""AdamW with the official SCL parameter groups (reference §5.2, `scl_utils.set_schedule`).

The official code sorts `named_parameters()` into six groups by SUBSTRING rules:

    {decay (wd), no-decay (wd=0)} x {base lr, lr*lr_mult_head (heads, not cross-modal),
                                     lr*lr_mult_cross_modal (cross-modal, not heads)}

`param_groups(..., fixed_groups=False)` (the default) reproduces those rules exactly, quirks
included, so that a fine-tune here matches the official recipe. `fixed_groups=True` is our fix of the
quirks listed in §5.2 / §8.21:

* every parameter with fewer than 2 dimensions (biases, all LayerNorm weights including CLIP's
  `ln_*`, `class_embedding`, `cl_temp`) is excluded from weight decay — the official substring list
  misses CLIP's `ln_` names and the LayerNorms inside the `Sequential` heads/projections;
* the contrastive projections (`vision_proj`, `language_proj`) and `rank_output` count as heads
  (the official code leaves them at the base lr; a commented alternative listed the projections).

Parameters with `requires_grad=False` (e.g. the frozen `itm_score` of retrieval fine-tuning) are left
out, as in the official code.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

NO_DECAY = [
    "bias",
    "LayerNorm.bias",
    "LayerNorm.weight",
    "norm.bias",
    "norm.weight",
    "norm1.bias",
    "norm1.weight",
    "norm2.bias",
    "norm2.weight",
]
HEAD_NAMES = ["vqa_classifier", "nlvr2_classifier", "snli_classifier", "mlm_score", "itm_score"]
CROSS_MODAL_NAMES = ["cross_modal"]
# Our fix (fixed_groups=True): heads that the official list forgot.
EXTRA_HEAD_NAMES = ["vision_proj", "language_proj", "rank_output"]

# Group order is the official one: decay-base, nodecay-base, decay-head, nodecay-head,
# decay-cross, nodecay-cross.
GROUP_NAMES = ("decay", "no_decay", "decay_head", "no_decay_head", "decay_cross_modal", "no_decay_cross_modal")


def _matches(name: str, patterns: list[str]) -> bool:
    return any(p in name for p in patterns)


def group_of(name: str, param: torch.Tensor, fixed_groups: bool = False) -> str:
    """Which of GROUP_NAMES the parameter `name` belongs to."""
    heads = HEAD_NAMES + EXTRA_HEAD_NAMES if fixed_groups else HEAD_NAMES
    no_decay = _matches(name, NO_DECAY) or (fixed_groups and param.ndim < 2)
    is_head = _matches(name, heads)
    is_cross = _matches(name, CROSS_MODAL_NAMES)
    # A name matching both head and cross-modal lists lands in no group in the official code; no
    # SCL parameter does, so we fail loudly rather than silently dropping it from the optimizer.
    if is_head and is_cross:
        raise ValueError(f"parameter {name!r} matches both head and cross-modal rules")
    kind = "_head" if is_head else "_cross_modal" if is_cross else ""
    return ("no_decay" if no_decay else "decay") + kind


def param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.01,
    lr_mult_head: float = 1.0,
    lr_mult_cross_modal: float = 1.0,
    fixed_groups: bool = False,
) -> list[dict[str, Any]]:
    """The six optimizer groups (empty ones dropped), each with `name`, `params`, `lr`, `weight_decay`
    and `param_names` (kept for reports and tests; torch ignores unknown keys)."""
    lrs = {"": lr, "_head": lr * lr_mult_head, "_cross_modal": lr * lr_mult_cross_modal}
    groups = {
        g: {
            "name": g,
            "params": [],
            "param_names": [],
            "weight_decay": 0.0 if g.startswith("no_decay") else weight_decay,
            "lr": lrs[g.removeprefix("no_decay").removeprefix("decay")],
        }
        for g in GROUP_NAMES
    }
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        group = groups[group_of(name, param, fixed_groups)]
        group["params"].append(param)
        group["param_names"].append(name)
    return [g for g in groups.values() if g["params"]]


def build_optimizer(model: nn.Module, cfg: Any, fused: bool = False) -> torch.optim.AdamW:
    """AdamW (decoupled weight decay, betas (0.9, 0.98), eps 1e-8) over `param_groups`.

    `cfg` needs `lr`, `weight_decay`, `lr_mult_head`, `lr_mult_cross_modal` and optionally
    `fixed_groups` (a TrainConfig does). `fused`: torch's fused kernel (one launch per step for all
    parameters; the trainer asks for it on CUDA); the same update up to float rounding, whereas the
    default multi-tensor (foreach) path launches a few kernels per parameter group.
    """
    groups = param_groups(
        model,
        cfg.lr,
        cfg.weight_decay,
        cfg.lr_mult_head,
        cfg.lr_mult_cross_modal,
        fixed_groups=getattr(cfg, "fixed_groups", False),
    )
    return torch.optim.AdamW(
        groups,
        lr=cfg.lr,
        betas=(0.9, 0.98),
        eps=1e-8,
        weight_decay=cfg.weight_decay,
        **({"fused": True} if fused else {}),
    )
