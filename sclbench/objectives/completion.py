"""Semantic completion: SCL's own objectives (the paper's contribution).

Three fused passes over the same image-text pair (`a`, `b`, `c` below):
  a: image with 80% of its patches DROPPED        + full text   -> v_hat (fused image CLS), T_a (text tokens)
  b: full image                                   + text with 40% of tokens -> <mask>
                                                                -> t_hat (fused text CLS), v (image CLS),
                                                                   Y_b (image tokens), T_hat (text tokens)
  c: image with 30% of patches -> visual_mask_token + full text -> Y_hat (image tokens)   [MLTC only]

Global completion (MGSC): the masked view's fused CLS must pick out the full view's fused CLS of the
same sample among the batch: NSL(v_hat . v^T) + NSL(t_hat . T_a[:,0]^T), temperature 0.03.
Local completion (MLTC): masked tokens must recover their full-view counterparts:
NSL over text tokens (T_hat vs T_a at the masked positions) and image tokens (Y_hat vs Y_b at the
masked patches), each weighted 0.2. Targets (from the full views) are detached (stop-gradient), all
features are L2-normalised over channels, and negatives are gathered from every rank.

Video: the fused CLS of each frame is completed separately and the loss averaged over frames; the
dropped patches are shared by all frames (tube masking). Differences from the official code, each a
fix of a bug documented in scl-official.md: channel-wise normalisation for video too (§3.4, §8.16);
the temperature is 0.03 (the official MLTC path read an undefined `msm_temp`, §8.4); image-token
negatives are gathered across ranks like text-token negatives (§8.19); a term with no masked token
contributes zero instead of being skipped by a NaN check (§8.26).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sclbench.data.masking import scl_text_mask
from sclbench.model import SCLModel
from sclbench.model.scl import VisionFeatures
from sclbench.objectives.losses import gather, norm_softmax_loss, normalize


@dataclass
class CompletionConfig:
    image_drop_ratio: float = 0.8  # MGSC: patches dropped from the image
    text_mask_ratio: float = 0.4  # MGSC/MLTC: text tokens replaced by <mask>
    image_token_mask_ratio: float = 0.3  # MLTC: patches replaced by visual_mask_token
    temperature: float = 0.03
    local_weight: float = 0.2
    local: bool = True  # MLTC on (GLSCL) or off (CVPR SCL / MGSC only)


def _token_nce(pred: torch.Tensor, target: torch.Tensor, selected: torch.Tensor, temperature: float) -> torch.Tensor:
    """NSL between predicted and target tokens at the selected positions of the gathered batch."""
    pred, target, selected = gather(pred), gather(target), gather(selected)
    p, t = normalize(pred[selected]), normalize(target[selected])
    if p.shape[0] == 0:
        return pred.sum() * 0.0
    return norm_softmax_loss(p @ t.t(), temperature)


def completion_losses(
    model: SCLModel, text_ids: torch.Tensor, text_masks: torch.Tensor, images: torch.Tensor,
    text_embeds: torch.Tensor, vision: VisionFeatures, mask_id: int, cfg: CompletionConfig,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """MGSC (+ MLTC) loss for one batch. `text_embeds` / `vision` are the full views, already encoded."""
    tau = cfg.temperature
    frames = vision.num_frames
    # a: dropped patches + full text
    dropped = model.encode_vision(images, "drop", cfg.image_drop_ratio, generator)
    out_a = model.fuse(text_embeds, text_masks, dropped)
    # b: full image + masked text
    masked_ids, text_masked_pos = scl_text_mask(text_ids, text_masks, mask_id, cfg.text_mask_ratio, generator)
    out_b = model.fuse(model.encode_text(masked_ids, text_masks), text_masks, vision)

    v_hat, v = normalize(out_a.frame_cls_feats), normalize(out_b.frame_cls_feats.detach())
    v_hat, v = gather(v_hat), gather(v)
    loss_img = sum(norm_softmax_loss(v_hat[:, f] @ v[:, f].t(), tau) for f in range(frames)) / frames
    t_hat, t = gather(normalize(out_b.cross_text_feat)), gather(normalize(out_a.cross_text_feat.detach()))
    loss_txt = norm_softmax_loss(t_hat @ t.t(), tau)
    loss = loss_img + loss_txt
    logs = {"mgsc_img_loss": loss_img.item(), "mgsc_txt_loss": loss_txt.item()}

    if cfg.local:
        loss_tt = _token_nce(out_b.text_feats, out_a.text_feats.detach(), text_masked_pos, tau)
        # c: mask-token patches + full text; compare patch tokens with pass b's full-image tokens
        tokened = model.encode_vision(images, "token", cfg.image_token_mask_ratio, generator)
        out_c = model.fuse(text_embeds, text_masks, tokened)
        b = images.shape[0]
        patches = lambda out: out.image_feats[:, frames:].reshape(b, frames, -1, out.image_feats.shape[-1])  # noqa: E731
        selected = tokened.ids_mask[:, None, :].expand(-1, frames, -1)
        loss_it = _token_nce(patches(out_c), patches(out_b).detach(), selected, tau)
        loss = loss + cfg.local_weight * (loss_it + loss_tt)
        logs.update(mltc_img_loss=loss_it.item(), mltc_txt_loss=loss_tt.item())
    logs["scl_loss"] = loss.item()
    return loss, logs
