"""The vision stream: a CLIP ViT over frames, as in the SCL figure's image/video encoder.

Input is `[B, F, 3, H, W]` (F = 1 for images; `[B, 3, H, W]` is accepted too). Each frame is cut into
patches and gets its own CLS token; the token sequence is frame-major `[CLS_1, P_1, CLS_2, P_2, ...]`.
In every block the frame-CLS tokens attend over all tokens of all frames (the only path for temporal
information) while patch tokens attend within their own frame. At F = 1 this is plain ViT attention.
The output puts the F frame-CLS tokens first: `[CLS_1..CLS_F, patches of frame 1, frame 2, ...]`.

Two masking modes serve the SCL objectives (see `embed`): "drop" keeps a random subset of patches
(MAE-style; the same subset for every frame of a clip, i.e. tube masking) and "token" replaces a subset
of patch embeddings with the learned `visual_mask_token`. Parameter names mirror the official
`vision_transformer.visual.*` keys (OpenAI CLIP names).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sclbench.model.config import SCLConfig


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 (as CLIP does), returned in the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class FrameAttention(nn.Module):
    """Multi-head attention with `nn.MultiheadAttention`'s parameter names, computed with SDPA.

    Frame-CLS queries see every token of the clip; patch queries see their own frame only.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, F, N, D] (N = 1 CLS + patches of one frame) -> [B, F, N, D]."""
        b, f, n, d = x.shape
        h = self.heads
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        # -> [B, F, heads, N, head_dim]
        q, k, v = (t.reshape(b, f, n, h, d // h).transpose(2, 3) for t in (q, k, v))
        if f == 1:  # one frame: ordinary ViT attention over [CLS, patches]
            out = F.scaled_dot_product_attention(q[:, 0], k[:, 0], v[:, 0]).unsqueeze(1)
        else:
            # Patch queries over the tokens of their own frame.
            out_patch = F.scaled_dot_product_attention(
                q[:, :, :, 1:].flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1)
            ).unflatten(0, (b, f))
            # Frame-CLS queries over all tokens of all frames.
            k_all = k.transpose(1, 2).reshape(b, h, f * n, d // h)
            v_all = v.transpose(1, 2).reshape(b, h, f * n, d // h)
            out_cls = F.scaled_dot_product_attention(q[:, :, :, 0].transpose(1, 2), k_all, v_all)
            out = torch.cat([out_cls.transpose(1, 2).unsqueeze(3), out_patch], dim=3)
        out = out.transpose(2, 3).reshape(b, f, n, d)
        return self.out_proj(out)


class ResidualAttentionBlock(nn.Module):
    """Pre-LN CLIP block: x + attn(ln_1(x)), then x + mlp(ln_2(x)) with QuickGELU."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = FrameAttention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(width * 4, width))]
            )
        )
        self.ln_2 = LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


@dataclass
class VisualTokens:
    """Embedded (pre-transformer) tokens of a batch of clips, with what masking did to them.

    tokens: [B, F, N, D], N = 1 CLS + kept patches per frame.
    ids_mask: [B, P] bool, patches replaced by the mask token ("token" mode), else None.
    ids_keep: [B, K] long, indices of the patches kept ("drop" mode), else None.
    """

    tokens: torch.Tensor
    ids_mask: torch.Tensor | None = None
    ids_keep: torch.Tensor | None = None

    @property
    def num_frames(self) -> int:
        return self.tokens.shape[1]


class VisualTransformer(nn.Module):
    """`vision_transformer.visual`: patch embedding, position/temporal tables, blocks, final LN."""

    def __init__(self, config: SCLConfig):
        super().__init__()
        width, grid = config.vision_width, config.grid_size
        scale = width**-0.5
        self.patch_size = config.patch_size
        self.conv1 = nn.Conv2d(3, width, kernel_size=config.patch_size, stride=config.patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        if config.use_visual_mask_token:
            self.visual_mask_token = nn.Parameter(torch.randn(1, width))
        if config.use_temporal_embed:
            self.temporal_embed = nn.Parameter(scale * torch.randn(1, config.max_frames, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, config.vision_layers, config.vision_heads)
        self.ln_post = LayerNorm(width)

    def embed(
        self,
        images: torch.Tensor,
        mask_mode: str | None = None,
        mask_ratio: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> VisualTokens:
        """Patchify and add position (and temporal) embeddings, optionally masking patches.

        mask_mode None: all patches. "drop": keep `int(P * (1 - ratio))` random patches, the same ones
        in every frame. "token": replace `int(P * ratio)` random patches by `visual_mask_token`
        before the position embedding is added (as the official MLTC pass does).
        """
        images = as_frames(images)
        b, f = images.shape[:2]
        if f > self.max_frames:
            raise ValueError(f"{f} frames given, but the model has temporal embeddings for {self.max_frames}")
        x = self.conv1(images.flatten(0, 1).to(self.conv1.weight.dtype))  # [B*F, D, g, g]
        x = x.flatten(2).transpose(1, 2).unflatten(0, (b, f))  # [B, F, P, D]
        num_patches = x.shape[2]
        if num_patches + 1 != self.positional_embedding.shape[0]:
            raise ValueError(
                f"images give {num_patches} patches but the position table has "
                f"{self.positional_embedding.shape[0] - 1}: resize it with resize_position_table()"
            )
        pos = self.positional_embedding.to(x.dtype).unsqueeze(0).expand(f, -1, -1)  # [F, P+1, D]
        if hasattr(self, "temporal_embed"):
            pos = pos + self.temporal_embed[0, :f, None, :].to(x.dtype)

        ids_mask = ids_keep = None
        if mask_mode == "token":
            n_mask = token_mask_count(num_patches, mask_ratio)
            noise = torch.rand(b, num_patches, device=x.device, generator=generator)
            ids_mask = torch.zeros(b, num_patches, dtype=torch.bool, device=x.device)
            ids_mask.scatter_(1, noise.argsort(dim=1)[:, :n_mask], True)
            x = torch.where(ids_mask[:, None, :, None], self.visual_mask_token.to(x.dtype), x)
        x = x + pos[:, 1:]
        if mask_mode == "drop":
            n_keep = int(num_patches * (1 - mask_ratio))
            noise = torch.rand(b, num_patches, device=x.device, generator=generator)
            ids_keep = noise.argsort(dim=1)[:, :n_keep]
            x = torch.gather(x, 2, ids_keep[:, None, :, None].expand(-1, f, -1, x.shape[-1]))
        elif mask_mode not in (None, "token"):
            raise ValueError(f"unknown mask_mode {mask_mode!r}: use None, 'drop' or 'token'")
        cls = (self.class_embedding.to(x.dtype) + pos[:, :1]).unsqueeze(0).expand(b, -1, -1, -1)
        return VisualTokens(torch.cat([cls, x], dim=2), ids_mask=ids_mask, ids_keep=ids_keep)

    @property
    def max_frames(self) -> int:
        return self.temporal_embed.shape[1] if hasattr(self, "temporal_embed") else 1

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, F, N, D] -> [B, F + F*(N-1), D] with the frame-CLS tokens first."""
        b, f, n, d = tokens.shape
        x = self.ln_post(self.transformer(self.ln_pre(tokens)))
        return torch.cat([x[:, :, 0], x[:, :, 1:].reshape(b, f * (n - 1), d)], dim=1)


class VisionEncoder(nn.Module):
    """`vision_transformer`: holds `visual` so that parameter names match the official checkpoints.

    The official module also holds an MAE decoder that no objective uses; it is not built here and
    its keys are ignored when loading (see checkpoint.py).
    """

    def __init__(self, config: SCLConfig):
        super().__init__()
        self.visual = VisualTransformer(config)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.visual(tokens)


def token_mask_count(num_patches: int, ratio: float) -> int:
    """Patches per frame that "token" masking replaces (the same number in every clip, so that losses
    over the masked patches keep static shapes)."""
    return int(num_patches * ratio)


def as_frames(images: torch.Tensor) -> torch.Tensor:
    """Accept [B, 3, H, W] images or [B, F, 3, H, W] clips; return the 5-D form."""
    if images.dim() == 4:
        return images.unsqueeze(1)
    if images.dim() != 5:
        raise ValueError(f"expected images [B,3,H,W] or clips [B,F,3,H,W], got shape {tuple(images.shape)}")
    return images


def resize_position_table(table: torch.Tensor, image_size: int, patch_size: int) -> torch.Tensor:
    """Bicubically resize a CLIP position table ([N, D] or [1, N, D], CLS row first) to a resolution.

    Same operation as the official `adapt_position_encoding` (bicubic, align_corners=False, no
    antialiasing; the CLS row is kept), done through timm. Equal sizes give the table back unchanged.
    """
    from timm.layers import resample_abs_pos_embed

    squeeze = table.dim() == 2
    posemb = table.unsqueeze(0) if squeeze else table
    old_grid = int(round((posemb.shape[1] - 1) ** 0.5))
    if old_grid * old_grid + 1 != posemb.shape[1]:
        raise ValueError(f"position table with {posemb.shape[1]} rows is not 1 + a square grid")
    new_grid = image_size // patch_size
    if new_grid != old_grid:
        posemb = resample_abs_pos_embed(
            posemb.float(),
            new_size=[new_grid, new_grid],
            old_size=[old_grid, old_grid],
            num_prefix_tokens=1,
            interpolation="bicubic",
            antialias=False,
            verbose=False,
        ).to(table.dtype)
    return posemb[0] if squeeze else posemb
