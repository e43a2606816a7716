"""The text stream: a RoBERTa encoder (`text_transformer.*`), written here rather than imported.

Why not `transformers.RobertaModel`: importing any transformers model class loads its whole modelling
stack (`modeling_utils`: torch.distributed.tensor, torch._dynamo, sympy, scipy, torchvision, ...),
about 225 MB of resident memory in every training and evaluation process before a single weight
exists (benchmarks/official_memory.py measures it). The encoder itself is 12 small layers.

This module computes exactly what transformers' `RobertaModel(config, add_pooling_layer=False)` with
SDPA attention computes, and is checked bit for bit against it (tests/model/test_text_encoder.py):

* the same modules, parameter names, registration order and initialisation (N(0, init_std) for
  linear and embedding weights, zero padding rows, unit LayerNorms), so that a seeded fresh model has
  the same weights as before and checkpoints load unchanged;
* positions from the input ids as fairseq/RoBERTa number them (padding_idx + 1 onwards, padding
  tokens keep padding_idx), one token type (0);
* attention through `F.scaled_dot_product_attention` with the same arguments (a boolean key mask
  [B, 1, L, L], none when nothing is padded, explicit 1/sqrt(head_dim) scale, attention dropout in
  training), exact GELU, post-LN blocks.

The RoBERTa pooler is not built: SCL never uses it (its keys in official checkpoints are ignored when
loading). transformers is imported only to read pretrained RoBERTa weights (`config.text_encoder`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sclbench.errors import CheckpointError
from sclbench.model.config import SCLConfig


@dataclass
class TextSizes:
    """The RoBERTa hyper-parameters the encoder is built from (RobertaConfig's fields, our names)."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    type_vocab_size: int = 1
    layer_norm_eps: float = 1e-5
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    pad_token_id: int = 1
    init_std: float = 0.02

    @classmethod
    def of(cls, config: SCLConfig) -> TextSizes:
        return cls(
            config.vocab_size,
            config.hidden_size,
            config.text_layers,
            config.num_heads,
            config.text_intermediate_size,
            config.max_position_embeddings,
            1,
            config.text_layer_norm_eps,
            config.drop_rate,
            config.drop_rate,
            config.pad_token_id,
            config.text_init_std,
        )

    @classmethod
    def of_hf(cls, rc: Any) -> TextSizes:
        """From a transformers RobertaConfig (pretrained weights bring their own sizes)."""
        return cls(
            rc.vocab_size,
            rc.hidden_size,
            rc.num_hidden_layers,
            rc.num_attention_heads,
            rc.intermediate_size,
            rc.max_position_embeddings,
            rc.type_vocab_size,
            rc.layer_norm_eps,
            rc.hidden_dropout_prob,
            rc.attention_probs_dropout_prob,
            rc.pad_token_id,
            rc.initializer_range,
        )


@dataclass
class TextEncoderOutput:
    """What `RobertaModel(...)` returned and callers read: the last layer's token states [B, L, D]."""

    last_hidden_state: torch.Tensor


class RobertaEmbeddings(nn.Module):
    """`embeddings.*`: word + token type + position embeddings, LayerNorm, dropout.

    Registration order (word, token type, LayerNorm, dropout, position) is RoBERTa's: it fixes the
    order in which a seeded initialisation draws its random numbers."""

    def __init__(self, s: TextSizes):
        super().__init__()
        self.word_embeddings = nn.Embedding(s.vocab_size, s.hidden_size, padding_idx=s.pad_token_id)
        self.token_type_embeddings = nn.Embedding(s.type_vocab_size, s.hidden_size)
        self.LayerNorm = nn.LayerNorm(s.hidden_size, eps=s.layer_norm_eps)
        self.dropout = nn.Dropout(s.hidden_dropout)
        self.padding_idx = s.pad_token_id
        self.position_embeddings = nn.Embedding(s.max_positions, s.hidden_size, padding_idx=s.pad_token_id)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # fairseq's make_positions: non-padding tokens count from padding_idx + 1, padding keeps padding_idx.
        not_pad = input_ids.ne(self.padding_idx).int()
        positions = (torch.cumsum(not_pad, dim=1).type_as(not_pad) * not_pad).long() + self.padding_idx
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(torch.zeros_like(input_ids))
        x = x + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(x))


class RobertaSelfAttention(nn.Module):
    """`attention.self.*`: query / key / value projections, SDPA."""

    def __init__(self, s: TextSizes):
        super().__init__()
        self.num_heads = s.num_heads
        self.head_dim = s.hidden_size // s.num_heads
        self.scaling = self.head_dim**-0.5
        self.query = nn.Linear(s.hidden_size, s.hidden_size)
        self.key = nn.Linear(s.hidden_size, s.hidden_size)
        self.value = nn.Linear(s.hidden_size, s.hidden_size)
        self.dropout = nn.Dropout(s.attention_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (proj(x).view(b, n, -1, self.head_dim).transpose(1, 2) for proj in (self.query, self.key, self.value))
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout.p if self.training else 0.0,
            scale=self.scaling,
            is_causal=False,
        )
        return out.transpose(1, 2).reshape(b, n, -1)


class RobertaAddNorm(nn.Module):
    """`attention.output.*` and `output.*`: dense, dropout, residual, LayerNorm (post-LN)."""

    def __init__(self, d_in: int, s: TextSizes):
        super().__init__()
        self.dense = nn.Linear(d_in, s.hidden_size)
        self.LayerNorm = nn.LayerNorm(s.hidden_size, eps=s.layer_norm_eps)
        self.dropout = nn.Dropout(s.hidden_dropout)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class RobertaAttention(nn.Module):
    def __init__(self, s: TextSizes):
        super().__init__()
        self.self = RobertaSelfAttention(s)
        self.output = RobertaAddNorm(s.hidden_size, s)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(x, mask), x)


class RobertaIntermediate(nn.Module):
    def __init__(self, s: TextSizes):
        super().__init__()
        self.dense = nn.Linear(s.hidden_size, s.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class RobertaLayer(nn.Module):
    def __init__(self, s: TextSizes):
        super().__init__()
        self.attention = RobertaAttention(s)
        self.intermediate = RobertaIntermediate(s)
        self.output = RobertaAddNorm(s.intermediate_size, s)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        h = self.attention(x, mask)
        return self.output(self.intermediate(h), h)


class RobertaLayers(nn.Module):
    """`encoder.*`: the stack (a module of its own so that the keys read `encoder.layer.N.*`)."""

    def __init__(self, s: TextSizes):
        super().__init__()
        self.layer = nn.ModuleList([RobertaLayer(s) for _ in range(s.num_layers)])


class RobertaEncoder(nn.Module):
    """`text_transformer`: embeddings + encoder layers; `forward(input_ids, attention_mask)`."""

    def __init__(self, sizes: TextSizes):
        super().__init__()
        self.sizes = sizes
        self.embeddings = RobertaEmbeddings(sizes)
        self.encoder = RobertaLayers(sizes)
        self.gradient_checkpointing = False
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """RoBERTa's initialisation, drawn module by module in registration order."""
        std = self.sizes.init_std
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                module.weight.normal_(0.0, std)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    module.bias.zero_()
                if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()

    # The method names transformers models use, so callers switch checkpointing the same way.
    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None) -> None:
        self.gradient_checkpointing = True

    def gradient_checkpointing_disable(self) -> None:
        self.gradient_checkpointing = False

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> TextEncoderOutput:
        x = self.embeddings(input_ids)
        mask = key_mask(attention_mask, x.shape[1])
        checkpoint = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for layer in self.encoder.layer:
            if checkpoint:
                x = torch.utils.checkpoint.checkpoint(layer, x, mask, use_reentrant=False)
            else:
                x = layer(x, mask)
        return TextEncoderOutput(last_hidden_state=x)


def key_mask(attention_mask: torch.Tensor | None, length: int) -> torch.Tensor | None:
    """[B, L] 1/0 padding mask -> boolean [B, 1, L, L] (True = may attend); None only without a mask.

    transformers drops a mask with nothing padded (`if mask.all()`), in eager mode only: that test reads
    the tensor on the host (a device sync every step) and breaks a torch.compile graph, so under
    compilation transformers hands SDPA the full mask, as this function always does. An all-True mask
    adds nothing to the scores: on the CPU the output is bit for bit transformers' eager one
    (tests/model/test_text_encoder.py, unpadded case); on CUDA, SDPA may pick another kernel than the
    maskless flash one (equal up to rounding), and padded batches (the common case: text is padded to
    max_text_len) take the masked kernel either way."""
    if attention_mask is None:
        return None
    keep = attention_mask.bool()
    return keep[:, None, None, :].expand(-1, 1, length, -1).contiguous()


def roberta_config(config: SCLConfig) -> Any:
    """The transformers RobertaConfig of `config`'s text sizes (for exports and the equivalence test)."""
    from transformers import RobertaConfig

    return RobertaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=config.text_intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        type_vocab_size=1,
        layer_norm_eps=config.text_layer_norm_eps,
        hidden_dropout_prob=config.drop_rate,
        attention_probs_dropout_prob=config.drop_rate,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        initializer_range=config.text_init_std,
    )


def build_text_encoder(config: SCLConfig) -> RobertaEncoder:
    """RoBERTa with random weights, or the weights of `config.text_encoder` (local dir or hub id)."""
    if config.text_encoder:
        return _pretrained(config.text_encoder)
    return RobertaEncoder(TextSizes.of(config))


def _pretrained(name: str) -> RobertaEncoder:
    from transformers import RobertaModel

    try:
        hf = RobertaModel.from_pretrained(name, add_pooling_layer=False)
    except OSError as err:
        raise CheckpointError(
            f"cannot load RoBERTa weights from {name!r}: {err}. Pass a local "
            "directory holding config.json + model weights, or run once with internet access."
        ) from err
    # Built on the meta device: no random initialisation to draw (the weights are read right after).
    with torch.device("meta"):
        encoder = RobertaEncoder(TextSizes.of_hf(hf.config))
    encoder.to_empty(device="cpu")
    encoder.load_state_dict(hf.state_dict(), strict=True)
    return encoder.train(hf.training)
