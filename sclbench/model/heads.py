"""Task and objective heads, under their official attribute names.

| attribute          | input                         | output                      |
|--------------------|-------------------------------|-----------------------------|
| mlm_score          | fused text tokens [B, L, D]   | vocabulary logits           |
| itm_score          | cls_feats [B, 2D]             | match / no-match logits     |
| vision_proj,       | unimodal CLS [B, D]           | contrastive embedding       |
| language_proj      |                               | (temperature `cl_temp`)     |
| vqa_classifier     | cls_feats [B, 2D]             | answer logits (3129)        |
| nlvr2_classifier   | two passes' cls_feats [B, 4D] | true / false logits         |
| rank_output        | cls_feats [B, 2D]             | retrieval score (from ITM)  |
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sclbench.model.config import SCLConfig


class PredictionTransform(nn.Module):
    """BERT's prediction-head transform: dense, GELU, LayerNorm (eps 1e-12)."""

    def __init__(self, hidden: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(F.gelu(self.dense(x)))


class MLMHead(nn.Module):
    """Masked-language-model head; the decoder is NOT tied to the word embeddings (official)."""

    def __init__(self, config: SCLConfig):
        super().__init__()
        self.transform = PredictionTransform(config.hidden_size, config.cross_layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(x)) + self.bias


class ITMHead(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.fc = nn.Linear(hidden * 2, 2)

    def forward(self, cls_feats: torch.Tensor) -> torch.Tensor:
        return self.fc(cls_feats)


def projection(hidden: int, out_dim: int) -> nn.Sequential:
    """Contrastive projection: Linear, LayerNorm, GELU, Linear (keys .0 .1 .3)."""
    return nn.Sequential(nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, out_dim))


def classifier(d_in: int, hidden: int, n_out: int) -> nn.Sequential:
    """VQA / NLVR2 classifier: Linear, LayerNorm, GELU, Linear (keys .0 .1 .3)."""
    return nn.Sequential(nn.Linear(d_in, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, n_out))


def build_heads(model: nn.Module, config: SCLConfig) -> None:
    """Attach the heads named in `config.heads` to `model` under their official names."""
    h = config.hidden_size
    if "mlm" in config.heads:
        model.mlm_score = MLMHead(config)
    if "itm" in config.heads:
        model.itm_score = ITMHead(h)
    if "con" in config.heads:
        model.cl_temp = nn.Parameter(torch.tensor(config.cl_temp_init))
        model.vision_proj = projection(h, config.contrastive_dim)
        model.language_proj = projection(h, config.contrastive_dim)
    if "vqa" in config.heads:
        model.vqa_classifier = classifier(2 * h, 2 * h, config.num_answers)
    if "nlvr2" in config.heads:
        model.nlvr2_classifier = classifier(4 * h, 2 * h, 2)
    if "rank" in config.heads:
        # Declared Linear(2D, 1) (the official module says Linear(768, 1) but holds a [1, 1536]
        # weight); initialised from the ITM "match" row by SCLModel.init_rank_output_from_itm().
        model.rank_output = nn.Linear(2 * h, 1)


def init_weights(module: nn.Module) -> None:
    """The official init of new modules: N(0, 0.02) weights, zero biases, unit LayerNorms."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.data.normal_(mean=0.0, std=0.02)
    elif isinstance(module, nn.LayerNorm):
        module.bias.data.zero_()
        module.weight.data.fill_(1.0)
    if isinstance(module, nn.Linear) and module.bias is not None:
        module.bias.data.zero_()
