"""Masked language modelling on the fused text stream (full image)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sclbench.data.masking import MaskSpec, mlm_mask
from sclbench.model import SCLModel
from sclbench.model.scl import VisionFeatures


def mlm_loss(
    model: SCLModel,
    text_ids: torch.Tensor,
    text_masks: torch.Tensor,
    vision: VisionFeatures,
    spec: MaskSpec,
    prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    ids, labels = mlm_mask(text_ids, text_masks, spec, prob, generator)
    out = model.fuse(model.encode_text(ids, text_masks), text_masks, vision)
    # The head reads every position and the loss ignores the unselected ones (labels -100), as the
    # official `compute_mlm` does: static shapes and no host read, where picking the selected tokens
    # first (`feats[labels != -100]`) needs their count on the host, a device sync every step.
    logits = model.mlm_score(out.text_feats)
    selected = labels != -100
    count = selected.sum().clamp(min=1)  # a batch of very short captions can draw no token: loss 0, graph kept
    loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum") / count
    hits = ((logits.detach().argmax(-1) == labels) & selected).sum()
    return loss, {"mlm_loss": loss.detach(), "mlm_acc": hits.float() / count}
