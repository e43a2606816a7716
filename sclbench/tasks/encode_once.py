"""Encode each distinct image of an evaluation batch once.

VQA v2 asks ~5 questions about each image (the question files list them together, so consecutive
questions share images), and NLVR2 pairs each image pair with several statements; the evaluation
batches the questions, and a per-question pass would run the ViT (most of a base model's FLOPs at
384 px) once per question. Here the images of a batch are grouped by their source (file, arrow cell
or bytes), the distinct ones are encoded once and every question indexes its image's features. The
evaluation transform is deterministic, so equal sources are equal tensors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from typing import Any

import torch

from sclbench.model import SCLModel, VisionFeatures


def source_key(source: Any) -> Hashable:
    """What makes two images of a batch the same image: the file, the arrow cell or the bytes."""
    for name in ("path", "arrow"):
        value = getattr(source, name, None)
        if value is not None:
            return name, str(value)
    data = getattr(source, "data", None)
    if data is not None:
        return "data", hashlib.sha256(data).hexdigest()
    return "other", str(source)


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
