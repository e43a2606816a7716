"""The cross-encoder's `cls_feats` for retrieval pairs, computing only what the score reads.

A pair's score is `rank_output(cat(text_pooler(x[:, 0]), image_pooler(mean(y[:, :F]))))`, where x and
y are the text and image streams after the last co-attention layer (scl-official.md: the poolers read
the first text token and the F frame-CLS tokens). Inside a layer, the output at one query position
depends on every key and value but on no other query position: attention rows, the dense layers,
LayerNorm and the feed-forward block all work position by position. So the last layer runs its
queries, and everything after them, for those 1 + F positions only, while its keys and values still
cover every token. This gives the same numbers as the full layer (tested to 1e-6) and skips the
query projection, attention rows, output projection and feed-forward block for the other L - 1 text and
N - F image positions of that layer (a base model at 384 px has N = 577).

The pair-independent first-layer parts come per distinct text / image (`SCLModel.text_stream_inputs`,
`vision_stream_inputs`); pairs index them here, copying only the fields the pair part reads.
"""

from __future__ import annotations

import torch
from torch import nn

from sclbench.model import SCLModel
from sclbench.model.fusion import co_attention
from sclbench.model.scl import StreamInputs


def _layer_rows(
    layer: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    x_mask: torch.Tensor | None,
    y_mask: torch.Tensor | None,
    rows: int,
) -> torch.Tensor:
    """`CrossLayer.forward(x, y, x_mask, y_mask)[:, :rows]`, without computing the other rows."""
    attention, queries = layer.attention, x[:, :rows]
    h = attention.output(
        attention.self.attend(attention.self.query(queries), attention.self.key(x), attention.self.value(x), x_mask),
        queries,
    )
    h = layer.crossattention(h, y, y_mask)
    return layer.output(layer.intermediate(h), h)


def _pick(t: torch.Tensor | None, of: torch.Tensor, rows: int | None = None) -> torch.Tensor | None:
    """Rows `of` (pair -> distinct item) of a per-item tensor, keeping only its first `rows` positions."""
    if t is None:
        return None
    return (t if rows is None else t[:, :rows])[of]


def fused_cls(
    model: SCLModel,
    text: StreamInputs,
    txt_of: torch.Tensor,
    image: StreamInputs,
    img_of: torch.Tensor,
    num_frames: int,
    readout_only: bool = True,
) -> torch.Tensor:
    """cls_feats [P, 2D] of the pairs (text txt_of[p], image img_of[p]), from the stream inputs of the
    distinct texts and images. `readout_only` False computes every position of the last layer (the
    `SCLModel.fuse_prepared` path), for comparison."""
    text_layers, image_layers = model.cross_modal_text_layers, model.cross_modal_image_layers
    last = len(text_layers) - 1
    # When the first layer is also the last, its pair part is already cut to the read positions.
    rows_t, rows_i = (1, num_frames) if readout_only and last == 0 else (None, None)
    x = text_layers[0].forward_after_self_attention(
        _pick(text.self_out, txt_of, rows_t),
        _pick(text.query, txt_of, rows_t),
        _pick(image.key, img_of),
        _pick(image.value, img_of),
        _pick(image.mask, img_of),
    )
    y = image_layers[0].forward_after_self_attention(
        _pick(image.self_out, img_of, rows_i),
        _pick(image.query, img_of, rows_i),
        _pick(text.key, txt_of),
        _pick(text.value, txt_of),
        _pick(text.mask, txt_of),
    )
    x_mask, y_mask = _pick(text.mask, txt_of), _pick(image.mask, img_of)
    if last > 0:
        middle = last if readout_only else last + 1
        x, y = co_attention(text_layers[1:middle], image_layers[1:middle], x, y, x_mask, y_mask)
        if readout_only:
            x, y = (
                _layer_rows(text_layers[last], x, y, x_mask, y_mask, 1),
                _layer_rows(image_layers[last], y, x, y_mask, x_mask, num_frames),
            )
    cls_text = model.cross_modal_text_pooler(x)
    cls_image = model.cross_modal_image_pooler(y, num_frames)
    return torch.cat([cls_text, cls_image], dim=-1)
