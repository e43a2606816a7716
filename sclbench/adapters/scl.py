"""SCL and METER checkpoints as one implementation of the model interface (no special path).

`SCLEvalModel` wraps an `SCLModel` (kept as `self.scl`, so its parameter names, device and
`compile_stages` are the model's own) with the preprocessing its checkpoint was trained with: the
card's eval transform at the model's image size, and its tokenizer at the model's text length.
"""

from __future__ import annotations

from typing import Any

import torch

from sclbench.adapters.interface import NLVR2Model, Preprocess, VQAModel
from sclbench.adapters.scl_retrieval import SCLRetrieval
from sclbench.common.tokenizer import encode
from sclbench.data.transforms import build_transform
from sclbench.model import SCLModel


class Tokenize:
    """`Preprocess.text` for a Hugging Face tokenizer: ids and masks padded to exactly `max_len`
    (a class, not a closure, so that loader workers can receive it)."""

    def __init__(self, tokenizer: Any, max_len: int):
        self.tokenizer, self.max_len = tokenizer, max_len

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return encode(list(texts), self.tokenizer, self.max_len)


class SCLEvalModel(SCLRetrieval, VQAModel, NLVR2Model):
    name = "scl"

    def __init__(self, scl: SCLModel, tokenizer: Any, transform: str = "eval", checkpoint_sha256: str | None = None):
        super().__init__()
        self.scl = scl
        self.tokenizer, self.transform_name, self.checkpoint_sha256 = tokenizer, transform, checkpoint_sha256

    def preprocess(self) -> Preprocess:
        cfg = self.scl.config
        tok = self.tokenizer
        return Preprocess(
            image=build_transform(self.transform_name, cfg.image_size),
            text=Tokenize(tok, cfg.max_text_len),
            describe={
                "image_size": cfg.image_size,
                "transform": self.transform_name,
                "tokenizer": getattr(tok, "name_or_path", None),
                "vocab_size": len(tok) if tok is not None else None,
                "max_text_len": cfg.max_text_len,
            },
        )

    def identity(self) -> dict[str, Any]:
        return {"checkpoint_sha256": self.checkpoint_sha256} if self.checkpoint_sha256 else {}
