"""Image-text matching: half the batch keeps its image, the other half gets a random other image."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sclbench.model import SCLModel
from sclbench.model.scl import VisionFeatures


def itm_loss(
    model: SCLModel,
    text_embeds: torch.Tensor,
    text_masks: torch.Tensor,
    vision: VisionFeatures,
    neg_images: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Exactly floor(B/2) matched pairs in a random order; the rest are paired with `neg_images`.

    The negatives are known without reading the labels: the last B - B//2 entries of the random order,
    sorted (static shape, no host read).
    """
    b = text_embeds.shape[0]
    labels = torch.zeros(b, dtype=torch.long, device=text_embeds.device)
    order = torch.randperm(b, generator=generator, device=generator.device if generator else "cpu")
    order = order.to(labels.device)
    labels[order[: b // 2]] = 1
    negatives = order[b // 2 :].sort().values  # = (labels == 0).nonzero(), in the same ascending order
    embeds = vision.embeds.clone()
    if b - b // 2:
        neg = model.encode_vision(neg_images[negatives.to(neg_images.device)].to(vision.embeds.device))
        embeds[negatives] = neg.embeds.to(embeds.dtype)
    out = model.fuse(text_embeds, text_masks, VisionFeatures(embeds, vision.num_frames))
    logits = model.itm_score(out.cls_feats)
    loss = F.cross_entropy(logits, labels)
    acc = (logits.detach().argmax(-1) == labels).float().mean()
    return loss, {"itm_loss": loss.detach(), "itm_acc": acc}
