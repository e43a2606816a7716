"""Masked language modelling on the fused text stream (full image)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sclbench.data.masking import MaskSpec, mlm_mask
from sclbench.model import SCLModel
from sclbench.model.scl import VisionFeatures


def mlm_loss(model: SCLModel, text_ids: torch.Tensor, text_masks: torch.Tensor, vision: VisionFeatures,
             spec: MaskSpec, prob: float = 0.15, generator: torch.Generator | None = None,
             ) -> tuple[torch.Tensor, dict[str, float]]:
    ids, labels = mlm_mask(text_ids, text_masks, spec, prob, generator)
    out = model.fuse(model.encode_text(ids, text_masks), text_masks, vision)
    selected = labels != -100
    if not selected.any():  # a batch of very short captions can draw no token: zero, graph kept
        return out.text_feats.sum() * 0.0, {"mlm_loss": 0.0, "mlm_acc": 0.0}
    logits = model.mlm_score(out.text_feats[selected])
    loss = F.cross_entropy(logits, labels[selected])
    acc = (logits.argmax(-1) == labels[selected]).float().mean().item()
    return loss, {"mlm_loss": loss.item(), "mlm_acc": acc}
