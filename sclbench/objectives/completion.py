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
masked patches), each weighted 0.2. Targets (from the full views) are detached (stop-gradient) and
all features are L2-normalised over channels.

Which terms gather negatives from other ranks follows `gather_grad` (losses.py):
  "official" (default, the official HEAD `compute_scl`): MGSC image CLS and MLTC text tokens are
      gathered with the local-slice gradient; the MGSC text CLS pair is cut from the LOCAL features
      before the gather and MLTC image tokens are never gathered, so both see local negatives only.
      Clips (F > 1) follow the CVPR v1 `compute_scl`, the only official video pre-training, which
      gathers the text CLS pair too.
      Under "official" the gathered terms are scaled by world / 8 (the official weight at any world
      size); "local_slice" is the same without that scaling (losses.py).
  "exact": all four terms gather from every rank with the exact full-batch gradient.

Video: the fused CLS of each frame is completed separately and the loss averaged over frames; the
dropped patches are shared by all frames (tube masking). Differences from the official code, each a
fix of a bug documented in scl-official.md: channel-wise normalisation for video too (§3.4, §8.16);
the temperature is 0.03 (the official MLTC path read an undefined `msm_temp`, §8.4); a term with
no masked token contributes zero instead of being skipped by a NaN check (§8.26). With
gather_grad "exact", image-token negatives are gathered like text-token negatives (§8.19).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sclbench.data.masking import scl_text_mask
from sclbench.model import SCLModel
from sclbench.model.scl import VisionFeatures
from sclbench.model.vision import token_mask_count
from sclbench.objectives.losses import (
    check_gather_grad,
    gather,
    gathered_term_scale,
    masked_norm_softmax_loss,
    norm_softmax_loss,
    normalize,
)


@dataclass
class CompletionConfig:
    image_drop_ratio: float = 0.8  # MGSC: patches dropped from the image
    text_mask_ratio: float = 0.4  # MGSC/MLTC: text tokens replaced by <mask>
    image_token_mask_ratio: float = 0.3  # MLTC: patches replaced by visual_mask_token
    temperature: float = 0.03
    global_weight: float = 1.0  # MGSC's weight in the total (official 1; a named option for tiny models)
    local_weight: float = 0.2
    local: bool = True  # MLTC on (GLSCL) or off (CVPR SCL / MGSC only)
    gather_grad: str = "official"  # "official" | "exact": see the module docstring and losses.py

    def __post_init__(self) -> None:
        check_gather_grad(self.gather_grad)


def _token_nce(
    pred: torch.Tensor,
    target: torch.Tensor,
    selected: torch.Tensor,
    temperature: float,
    gathered: bool,
    mode: str,
    per_row: int | None = None,
) -> torch.Tensor:
    """NSL between predicted and target tokens at the selected positions of the (gathered) batch.

    Static shapes, no host read: each row's selected positions (at most `per_row` of them, None = any
    number) move to the front in position order (a stable sort), the rest are masked out of the loss.
    The same tokens in the same order as `pred[selected]`, so the same loss up to float summation order.
    """
    rows = selected.flatten(0, -2)  # [R, L]: one row per sample (and frame)
    k = rows.shape[1] if per_row is None else max(0, min(per_row, rows.shape[1]))
    order = torch.sort(rows.to(torch.int8), dim=1, descending=True, stable=True).indices[:, :k]
    valid = rows.gather(1, order).flatten()
    index = order[..., None]
    pred, target = (x.flatten(0, -3).gather(1, index.expand(-1, -1, x.shape[-1])).flatten(0, 1) for x in (pred, target))
    if gathered:
        pred, target, valid = gather(pred, mode), gather(target, mode), gather(valid, mode)
    return masked_norm_softmax_loss(normalize(pred) @ normalize(target).t(), valid, temperature)


def text_mask_limit(length: int, ratio: float) -> int:
    """The most positions `scl_text_mask` masks in a row of `length` tokens: int((n-2)*ratio)+1 at
    n = length, never more than the n-2 candidates (it grows with n)."""
    return max(0, min(length - 2, int((length - 2) * ratio) + 1))


def completion_contrast(
    v_hat: torch.Tensor,
    v: torch.Tensor,
    t_hat: torch.Tensor,
    t: torch.Tensor,
    cfg: CompletionConfig,
    text_tokens: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    image_tokens: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The completion losses from the features of the passes (this rank's rows).

    v_hat / v: [B, F, D] masked-view / full-view fused image CLS per frame; t_hat / t: [B, D] fused
    text CLS; text_tokens / image_tokens (MLTC): (pred, target, selected[, per_row]) with the positions
    in dims 1.. of `selected` (bool) and optionally the most positions a row can select (a static
    bound that keeps the token losses small; see `_token_nce`). Targets are detached here; gathering
    follows cfg.gather_grad.
    """
    tau, mode = cfg.temperature, check_gather_grad(cfg.gather_grad)
    exact = mode == "exact"
    scale = gathered_term_scale(mode)  # on the gathered terms only (1 unless "official")
    frames = v_hat.shape[1]
    v_hat, v = gather(normalize(v_hat), mode), gather(normalize(v.detach()), mode)
    loss_img = sum(norm_softmax_loss(v_hat[:, f] @ v[:, f].t(), tau) for f in range(frames)) / frames
    t_hat, t = normalize(t_hat), normalize(t.detach())
    # Official images (HEAD compute_scl): the text CLS pair stays local (cut before the gather).
    # Official video (v1 compute_scl, the only official video pre-training): both pairs gathered.
    text_gathered = exact or frames > 1
    if text_gathered:
        t_hat, t = gather(t_hat, mode), gather(t, mode)
    loss_txt = norm_softmax_loss(t_hat @ t.t(), tau)
    loss = cfg.global_weight * (scale * loss_img + (scale if text_gathered else 1.0) * loss_txt)
    terms = {"mgsc_img_loss": loss_img, "mgsc_txt_loss": loss_txt}
    if text_tokens is not None and image_tokens is not None:
        pred, target, selected, *limit = text_tokens
        loss_tt = _token_nce(pred, target.detach(), selected, tau, True, mode, (limit or [None])[0])
        pred, target, selected, *limit = image_tokens
        loss_it = _token_nce(pred, target.detach(), selected, tau, exact, mode, (limit or [None])[0])
        loss = loss + cfg.local_weight * (loss_it + scale * loss_tt)  # image tokens: as the text CLS
        terms.update(mltc_img_loss=loss_it, mltc_txt_loss=loss_tt)
    return loss, terms


def completion_losses(
    model: SCLModel,
    text_ids: torch.Tensor,
    text_masks: torch.Tensor,
    images: torch.Tensor,
    text_embeds: torch.Tensor,
    vision: VisionFeatures,
    mask_id: int,
    cfg: CompletionConfig,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """MGSC (+ MLTC) loss for one batch. `text_embeds` / `vision` are the full views, already encoded."""
    frames = vision.num_frames
    # a: dropped patches + full text
    dropped = model.encode_vision(images, "drop", cfg.image_drop_ratio, generator)
    out_a = model.fuse(text_embeds, text_masks, dropped)
    # b: full image + masked text
    masked_ids, text_masked_pos = scl_text_mask(text_ids, text_masks, mask_id, cfg.text_mask_ratio, generator)
    out_b = model.fuse(model.encode_text(masked_ids, text_masks), text_masks, vision)

    text_tokens = image_tokens = None
    if cfg.local:
        text_tokens = (
            out_b.text_feats,
            out_a.text_feats,
            text_masked_pos,
            text_mask_limit(text_ids.shape[1], cfg.text_mask_ratio),
        )
        # c: mask-token patches + full text; compare patch tokens with pass b's full-image tokens
        tokened = model.encode_vision(images, "token", cfg.image_token_mask_ratio, generator)
        out_c = model.fuse(text_embeds, text_masks, tokened)
        b = images.shape[0]
        patches = lambda out: out.image_feats[:, frames:].reshape(b, frames, -1, out.image_feats.shape[-1])  # noqa: E731
        selected = tokened.ids_mask[:, None, :].expand(-1, frames, -1)
        image_tokens = (
            patches(out_c),
            patches(out_b),
            selected,
            token_mask_count(selected.shape[-1], cfg.image_token_mask_ratio),
        )
    loss, terms = completion_contrast(
        out_a.frame_cls_feats,
        out_b.frame_cls_feats,
        out_b.cross_text_feat,
        out_a.cross_text_feat,
        cfg,
        text_tokens,
        image_tokens,
    )
    # Detached device tensors: the trainer reads the logs once per log interval (no sync per step).
    logs = {name: value.detach() for name, value in terms.items()}
    logs["scl_loss"] = loss.detach()
    return loss, logs
