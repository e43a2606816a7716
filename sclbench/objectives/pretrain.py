"""The pre-training loss: MLM + ITM + 0.5 ITC + SCL completion (MGSC + 0.2 MLTC), image or video.

The official step re-encodes text and image in every objective (six full passes). Here the full
text and the full image/clip are encoded once and shared by ITC, ITM, MLM and the completion passes;
only the masked views are encoded again. The loss is the same sum; what differs is that the shared
passes see one dropout sample instead of several.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from sclbench.data.masking import MaskSpec
from sclbench.model import SCLModel
from sclbench.objectives.completion import CompletionConfig, completion_losses
from sclbench.objectives.itc import itc_loss
from sclbench.objectives.itm import itm_loss
from sclbench.objectives.losses import check_gather_grad
from sclbench.objectives.mlm import mlm_loss

OBJECTIVES = ("mlm", "itm", "itc", "mgsc", "mltc")


@dataclass
class PretrainConfig:
    objectives: tuple[str, ...] = OBJECTIVES
    mlm_prob: float = 0.15
    con_weight: float = 0.5
    completion: CompletionConfig = field(default_factory=CompletionConfig)
    # card key train.gather_grad: "official" (local-slice gradient, official per-term gathering) or
    # "exact" (full-batch gradient, every contrastive term gathered); see objectives/losses.py.
    gather_grad: str = "official"

    def __post_init__(self) -> None:
        unknown = set(self.objectives) - set(OBJECTIVES)
        if unknown:
            from sclbench.errors import ConfigError

            raise ConfigError(f"unknown objective(s) {sorted(unknown)}; choose from {', '.join(OBJECTIVES)}")
        if "mltc" in self.objectives and "mgsc" not in self.objectives:
            from sclbench.errors import ConfigError

            raise ConfigError("mltc runs inside the completion passes: enable mgsc too")
        self.completion.local = "mltc" in self.objectives
        self.completion.gather_grad = check_gather_grad(self.gather_grad)


def step_generator(ctx: Any, device: torch.device) -> torch.Generator:
    """The trainer's per-step generator (a function of seed, step, rank: exact resume, distinct
    ranks); a fixed-seed one when called outside the trainer."""
    if ctx is not None and hasattr(ctx, "generator"):
        return ctx.generator(11, device=device)
    return torch.Generator(device=device).manual_seed(0)


class PretrainObjective:
    """Callable `(model, batch, ctx) -> (loss, logs)` for the trainer."""

    def __init__(self, cfg: PretrainConfig, spec: MaskSpec):
        self.cfg, self.spec = cfg, spec

    def __call__(self, model: SCLModel, batch: dict[str, Any], ctx: Any = None) -> tuple[torch.Tensor, dict]:
        ids, masks, images = batch["text_ids"], batch["text_masks"], batch["images"]
        gen = step_generator(ctx, ids.device)
        on = set(self.cfg.objectives)
        text = model.encode_text(ids, masks)
        vision = model.encode_vision(images)
        total = text.new_zeros(())
        logs: dict[str, torch.Tensor] = {}
        if "itc" in on:
            loss, log = itc_loss(model, text, vision, self.cfg.con_weight, self.cfg.gather_grad)
            total, logs = total + loss, {**logs, **log}
        if "itm" in on:
            loss, log = itm_loss(model, text, masks, vision, batch["neg_images"], gen)
            total, logs = total + loss, {**logs, **log}
        if "mlm" in on:
            loss, log = mlm_loss(model, ids, masks, vision, self.spec, self.cfg.mlm_prob, gen)
            total, logs = total + loss, {**logs, **log}
        if "mgsc" in on:
            loss, log = completion_losses(
                model, ids, masks, images, text, vision, self.spec.mask_id, self.cfg.completion, gen
            )
            total, logs = total + loss, {**logs, **log}
        logs["loss"] = total.detach()  # every log a device tensor: the trainer reads them per log interval
        return total, logs
