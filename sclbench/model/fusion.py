"""Cross-modal fusion: the co-attention layers and poolers of the SCL (METER-style) figure.

Each stream has `num_top_layer` BERT-style cross layers (post-LN, GELU, LayerNorm eps 1e-12):
self-attention over its own tokens, cross-attention from its tokens to the other stream's tokens,
then a feed-forward block. At layer i both streams read the other's output of layer i-1 (computed in
parallel). Parameter names are those of the official `BertCrossLayer` (`attention.self.query`, ...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sclbench.model.config import SCLConfig


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, L] 1/0 key mask -> [B, 1, 1, L] additive mask with -10000 on padding (BERT convention)."""
    return ((1.0 - mask[:, None, None, :].to(dtype)) * -10000.0).to(dtype)


class SelfAttention(nn.Module):
    """`*.self`: query/key/value projections; attention computed with SDPA."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None) -> torch.Tensor:
        return self.attend(self.query(x), self.key(context), self.value(context), context_mask)

    def attend(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, context_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Attention from projected queries [B, Lq, D] to projected keys/values [B, Lk, D] (so that
        keys/values of a context shared by many queries can be projected once, see `fuse_prepared`)."""
        q, k, v = self._split(query), self._split(key), self._split(value)
        # No mask for unpadded keys (image tokens): adding zeros changes nothing, and without a mask
        # SDPA may pick its flash kernels on GPU.
        mask = None if context_mask is None else context_mask.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return out.transpose(1, 2).flatten(2)


class AttentionOutput(nn.Module):
    """`*.output` / `output`: dense, dropout, residual, LayerNorm (post-LN)."""

    def __init__(self, d_in: int, d_out: int, eps: float, dropout: float):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, eps: float, dropout: float):
        super().__init__()
        self.self = SelfAttention(hidden, heads, dropout)
        self.output = AttentionOutput(hidden, hidden, eps, dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(x, context, context_mask), x)

    def forward_projected(
        self,
        x: torch.Tensor,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        context_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """`forward` with the query projection of `x` and the context's key/value projections given
        (each computed once for a text or an image shared by many pairs)."""
        return self.output(self.self.attend(query, key, value, context_mask), x)


class Intermediate(nn.Module):
    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.dense = nn.Linear(hidden, intermediate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class CrossLayer(nn.Module):
    """One co-attention layer of one stream (official name: BertCrossLayer)."""

    def __init__(self, config: SCLConfig):
        super().__init__()
        h, eps, p = config.hidden_size, config.cross_layer_norm_eps, config.drop_rate
        self.attention = Attention(h, config.num_heads, eps, p)
        self.crossattention = Attention(h, config.num_heads, eps, p)
        self.intermediate = Intermediate(h, config.cross_intermediate_size)
        self.output = AttentionOutput(config.cross_intermediate_size, h, eps, p)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, x_mask: torch.Tensor | None, y_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """x: this stream [B, Lx, D]; y: the other stream; masks are additive [B, 1, 1, L] or None."""
        h = self.attention(x, x, x_mask)
        h = self.crossattention(h, y, y_mask)
        return self.output(self.intermediate(h), h)

    def forward_after_self_attention(
        self,
        h: torch.Tensor,
        h_query: torch.Tensor,
        y_key: torch.Tensor,
        y_value: torch.Tensor,
        y_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """The rest of `forward` from this stream's self-attention output `h`, its cross-attention query
        projection and the other stream's key/value projections (the pair-dependent part of a first layer)."""
        h = self.crossattention.forward_projected(h, h_query, y_key, y_value, y_mask)
        return self.output(self.intermediate(h), h)


class Pooler(nn.Module):
    """tanh(dense(mean of the first `n` tokens)): n = 1 for text and images, F frame-CLS for video."""

    def __init__(self, hidden: int):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)

    def forward(self, hidden_states: torch.Tensor, n: int = 1) -> torch.Tensor:
        return torch.tanh(self.dense(hidden_states[:, :n].mean(1)))


def co_attention(
    text_layers: nn.ModuleList,
    image_layers: nn.ModuleList,
    x: torch.Tensor,
    y: torch.Tensor,
    x_mask: torch.Tensor | None,
    y_mask: torch.Tensor | None,
    checkpointing: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the paired text/image layer lists; both streams read the other's previous output."""
    for text_layer, image_layer in zip(text_layers, image_layers):
        if checkpointing and torch.is_grad_enabled():
            ckpt = torch.utils.checkpoint.checkpoint
            x1 = ckpt(text_layer, x, y, x_mask, y_mask, use_reentrant=False)
            y1 = ckpt(image_layer, y, x, y_mask, x_mask, use_reentrant=False)
        else:
            x1 = text_layer(x, y, x_mask, y_mask)
            y1 = image_layer(y, x, y_mask, x_mask)
        x, y = x1, y1
    return x, y
