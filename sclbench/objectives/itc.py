"""Image-text contrastive loss (official "con"): unimodal CLS features, learnable temperature."""

from __future__ import annotations

import torch

from sclbench.model import SCLModel
from sclbench.model.scl import VisionFeatures
from sclbench.objectives.losses import gather, gathered_term_scale, norm_softmax_loss, normalize


def itc_loss(
    model: SCLModel,
    text_embeds: torch.Tensor,
    vision: VisionFeatures,
    weight: float = 0.5,
    gather_grad: str = "official",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """weight x NormSoftmax(cos(text, image) / cl_temp) over the batch gathered from all ranks.

    Negatives are the other samples of the global (all-rank) micro-batch in both modes, as in the
    official `compute_con` and the retrieval `compute_irtr` contrastive term; `gather_grad` picks the
    official local-slice gradient (at the official 8-process weight by default) or the exact full-batch
    one (losses.py).
    """
    text, image = model.contrastive_features(text_embeds, vision)
    text, image = gather(normalize(text), gather_grad), gather(normalize(image), gather_grad)
    loss = norm_softmax_loss(text @ image.t(), model.cl_temp)
    logs = {"itc_loss": loss.detach(), "cl_temp": model.cl_temp.detach()}  # device tensors: no sync per step
    return weight * gathered_term_scale(gather_grad) * loss, logs
