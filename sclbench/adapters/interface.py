"""What sclbench needs from a model to evaluate it: one small interface per task family.

The engine (batching, sharding across ranks, precision, feature and score caches, records, `check`)
talks to models only through these classes. SCL is one implementation (`adapters/scl.py`); ViLT,
BLIP and CLIP are others; a user's own model is another, named on the command line as
`--model package.module:factory` (see `adapters/registry.py`).

A model is a `torch.nn.Module` (the engine moves it to the device, switches it to eval mode and
reads its device from its parameters) that subclasses the families it supports:

- `RetrievalModel` (F30K, COCO, MSRVTT, LSMDC): `embed_texts` and `embed_media` give, per item, a
  dict of tensors. Its `"embedding"` entry ([B, C], L2-normalised) ranks the first stage by dot
  product. The other entries are whatever `score_pairs` reads. A model with a cross-encoder sets
  `has_pair_scorer = True` and implements `score_pairs`: the engine calls it on the candidate pairs
  (every pair in exhaustive mode, the first stage's top-k in two-stage mode).
- `VQAModel`: `answer_vqa` gives, for a batch of (image, question), either scores over the card's
  answer vocabulary ([B, V]; the argmax is the answer) or B answer strings. Either way the official
  VQA scorer grades them.
- `NLVR2Model`: `nlvr2_prob_true` gives P(statement is true of the image pair), [B].

The model owns its preprocessing (`preprocess()`): the image transform, the tokenizer and the frames
per clip. The record carries `describe()`, and the feature cache is keyed by `identity()`.

Pixels always arrive as [B, F, 3, H, W]. F is 1 for images and the clip's frames for videos.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

FAMILIES = ("retrieval", "vqa", "nlvr2")


@dataclass(frozen=True)
class Preprocess:
    """How a model wants its inputs. It is applied in the data loader's workers, so keep it picklable:
    module-level functions or callable objects, not lambdas."""

    image: Callable[[Any], torch.Tensor]  # one RGB PIL image -> Float[3, H, W]
    text: Callable[[list[str]], dict[str, torch.Tensor]]  # strings -> tensors with a leading batch dim
    num_frames: int | None = None  # frames per video clip; None: the task card's data.num_frames
    describe: dict[str, Any] = field(default_factory=dict)  # for the record: image size, tokenizer, ...
    # True when `image` gives the same tensor for the same image every time (no random augmentation):
    # then a card's `data.cache_images` may keep decoded images in memory between batches.
    deterministic: bool = False


@dataclass
class VQABatch:
    pixels: torch.Tensor  # [B, 1, 3, H, W]
    text: dict[str, torch.Tensor]  # preprocess.text(questions), on the model's device
    questions: list[str]
    image_keys: list[Hashable]  # equal keys: the same image, so a model may encode it once
    vocabulary: list[str]  # the card's answer vocabulary (the columns of a [B, V] answer)


@dataclass
class NLVR2Batch:
    pixels_0: torch.Tensor  # [B, 1, 3, H, W] left images
    pixels_1: torch.Tensor  # [B, 1, 3, H, W] right images
    text: dict[str, torch.Tensor]
    statements: list[str]
    image_keys_0: list[Hashable]
    image_keys_1: list[Hashable]


class EvalModel(nn.Module):
    """The part every family shares: a name, the preprocessing and what identifies the weights."""

    name: str = "model"
    # True for a model never fine-tuned on the benchmark (CLIP): its records meet the papers' zero-shot rows.
    zero_shot: bool = False

    def preprocess(self) -> Preprocess:
        raise NotImplementedError(f"{type(self).__name__} must define preprocess()")

    def identity(self) -> dict[str, Any]:
        """What makes this model's outputs what they are: the checkpoint's digest, hub id and revision.
        Two models with equal identities must give equal features (the feature cache relies on it).
        Return {} to make the outputs uncacheable."""
        return {}

    def describe(self) -> dict[str, Any]:
        """What the record says about the model: its name, class and preprocessing."""
        cls = type(self)
        return {
            "name": self.name,
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "preprocess": dict(self.preprocess().describe),
            **self.identity(),
        }

    def compile_for_eval(self, **options: Any) -> None:
        """`--compile`: torch.compile this model's family methods in place (`options` go to torch.compile).
        A model whose methods do not trace (e.g. ones that decode strings) overrides this, to compile its
        inner modules instead, or to raise a ConfigError saying so."""
        compiled = []
        for method in _FAMILY_METHODS:
            if _overrides(self, method):
                setattr(self, method, torch.compile(getattr(type(self), method).__get__(self), **options))
                compiled.append(method)
        self.__dict__["compiled_methods"] = compiled

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")


class RetrievalModel(EvalModel):
    """Optional hooks the engine reads when present (see tasks/retrieval_scoring.py): `host_entries`
    (feature entries kept in host memory), `pair_batch_size(device, texts, media)`, and
    `scoring_settings()` (anything besides the weights that changes pair scores; part of the cache key)."""

    has_pair_scorer: bool = False  # implements `score_pairs` (a cross-encoder)
    # False: `embedding` is a placeholder (ViLT has no unimodal stage), so every pair is scored.
    has_first_stage: bool = True
    # True: `score_pairs` already adds the first-stage similarity (BLIP's ITM + ITC), so the engine refuses
    # fusion "itm+itc", which would add it twice.
    score_includes_first_stage: bool = False

    def embed_texts(self, text: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def embed_media(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def score_pairs(
        self,
        texts: dict[str, torch.Tensor],
        media: dict[str, torch.Tensor],
        text_of: torch.Tensor,
        media_of: torch.Tensor,
    ) -> torch.Tensor:
        """Cross-encoder scores [P] of the pairs (texts[text_of[p]], media[media_of[p]]). `texts` and
        `media` hold only the distinct rows these pairs use (slices of the embed_* outputs), so that a
        model can compute the pair-independent part once per item."""
        raise NotImplementedError(f"{type(self).__name__} has no cross-encoder (has_pair_scorer is False)")


class VQAModel(EvalModel):
    def answer_vqa(self, batch: VQABatch) -> torch.Tensor | list[str]:
        raise NotImplementedError


class NLVR2Model(EvalModel):
    def nlvr2_prob_true(self, batch: NLVR2Batch) -> torch.Tensor:
        raise NotImplementedError


_FAMILY_CLASSES: dict[str, type[EvalModel]] = {"retrieval": RetrievalModel, "vqa": VQAModel, "nlvr2": NLVR2Model}


# The methods a family must implement (score_pairs only when has_pair_scorer).
FAMILY_METHODS: dict[str, tuple[str, ...]] = {
    "retrieval": ("embed_texts", "embed_media"),
    "vqa": ("answer_vqa",),
    "nlvr2": ("nlvr2_prob_true",),
}
_FAMILY_METHODS = ("embed_texts", "embed_media", "score_pairs", "answer_vqa", "nlvr2_prob_true")


def _overrides(model: Any, method: str) -> bool:
    """Whether the model's class defines `method` itself (not the interface's NotImplementedError)."""
    for base in _FAMILY_CLASSES.values():
        if hasattr(base, method):
            impl = getattr(type(model), method, None)
            return impl is not None and impl is not getattr(base, method)
    return False


def missing_methods(model: Any, family: str) -> list[str]:
    """The methods of `family`'s interface that `model` leaves unimplemented."""
    family = "retrieval" if family.endswith("retrieval") else family
    needed = list(FAMILY_METHODS.get(family, ()))
    if family == "retrieval" and getattr(model, "has_pair_scorer", False):
        needed.append("score_pairs")
    return [m for m in needed if not _overrides(model, m)]


def supports(model: Any, family: str) -> bool:
    """Whether `model` implements the interface of a task family ("video_retrieval" is "retrieval")."""
    family = "retrieval" if family.endswith("retrieval") else family
    return isinstance(model, _FAMILY_CLASSES.get(family, ()))
