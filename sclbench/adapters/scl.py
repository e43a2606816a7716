"""SCL and METER checkpoints as one implementation of the model interface (no special path).

`SCLEvalModel` wraps an `SCLModel` (kept as `self.scl`, so its parameter names, device and
`compile_stages` are the model's own) with the preprocessing its checkpoint was trained with: the
card's eval transform at the model's image size, and its tokenizer at the model's text length.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import torch

from sclbench.adapters.interface import NLVR2Batch, NLVR2Model, Preprocess, VQABatch, VQAModel
from sclbench.adapters.scl_retrieval import SCLRetrieval
from sclbench.common.tokenizer import encode
from sclbench.data.transforms import build_transform
from sclbench.model import SCLModel, VisionFeatures


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
            deterministic=self.transform_name == "eval",
        )

    def identity(self) -> dict[str, Any]:
        return {"checkpoint_sha256": self.checkpoint_sha256} if self.checkpoint_sha256 else {}

    def compile_for_eval(self, **options: Any) -> None:
        """The model's stages (`SCLModel.compile_stages`): the family methods call them, and eval-only heads
        stay eager as in training."""
        self.scl.compile_stages(**options)

    # ---- VQA: the pooled fusion output through the answer classifier ----------------------------------
    def answer_vqa(self, batch: VQABatch) -> torch.Tensor:
        # Each distinct image of the batch through the ViT once (VQA v2: ~5 questions per image).
        m = self.scl
        vision = encode_images_once(m, batch.pixels, batch.image_keys)
        return m.vqa_classifier(m(batch.text["ids"], batch.text["masks"], vision).cls_feats)

    # ---- NLVR2: two fused passes (token types 1 and 2), as `SCLModel.nlvr2_logits` --------------------
    def nlvr2_prob_true(self, batch: NLVR2Batch) -> torch.Tensor:
        # Both images of every statement, each distinct image once (NLVR2 pairs each image pair with
        # several statements); then the two passes on the features.
        m = self.scl
        keys = [*batch.image_keys_0, *batch.image_keys_1]
        vision = encode_images_once(m, torch.cat([batch.pixels_0, batch.pixels_1]), keys)
        b, masks = len(batch.image_keys_0), batch.text["masks"]
        text = m.encode_text(batch.text["ids"], masks)
        out0 = m.fuse(text, masks, vision.index(slice(0, b)), image_token_type_idx=1)
        out1 = m.fuse(text, masks, vision.index(slice(b, 2 * b)), image_token_type_idx=2)
        logits = m.nlvr2_classifier(torch.cat([out0.cls_feats, out1.cls_feats], dim=-1))
        return logits.float().softmax(1)[:, 1]  # fp32 probabilities under autocast too


def as_eval_model(
    model: SCLModel | Any, tokenizer: Any, transform: str = "eval", checkpoint_sha256: str | None = None
) -> Any:
    """`model` as the engine's interface: an `EvalModel` as it is, an `SCLModel` wrapped with the
    preprocessing it was trained with (callers that hold an SCLModel: in-training validation, tests).
    The wrapper starts in the model's own train/eval mode, which evaluation restores afterwards."""
    if not isinstance(model, SCLModel):
        return model
    wrapped = SCLEvalModel(model, tokenizer, transform, checkpoint_sha256)
    wrapped.train(model.training)
    return wrapped


# ---- each distinct image of a batch through the vision tower once ----------------------------------
# VQA v2 asks ~5 questions about each image (the question files list them together, so consecutive
# questions share images), and NLVR2 pairs each image pair with several statements: a per-question
# pass would run the ViT (most of a base model's FLOPs at 384 px) once per question. The images of a
# batch are grouped by key (the task's `source_key`: file, arrow cell or bytes), the distinct ones are
# encoded once and every question indexes its image's features. The evaluation transform is
# deterministic, so equal sources are equal tensors.
def group(keys: Sequence[Hashable]) -> tuple[list[int], list[int]]:
    """(first position of each distinct key, in first-seen order; per position, its key's group)."""
    first: list[int] = []
    group_of: dict[Hashable, int] = {}
    inverse = []
    for i, key in enumerate(keys):
        if key not in group_of:
            group_of[key] = len(first)
            first.append(i)
        inverse.append(group_of[key])
    return first, inverse


def encode_images_once(model: SCLModel, images: torch.Tensor, keys: Sequence[Hashable]) -> VisionFeatures:
    """`model.encode_vision(images)`, with the images of equal `keys` encoded once (see `group`)."""
    first, inverse = group(keys)
    if len(first) == len(keys):
        return model.encode_vision(images)
    device = images.device
    vision = model.encode_vision(images[torch.tensor(first, device=device)])
    return vision.index(torch.tensor(inverse, device=device))
