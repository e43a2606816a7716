"""Image and clip transforms (CLIP statistics), following the official `mae_transforms.py`.

- "finetune_train": RandAugment(n=2, m=9) + RandomResizedCrop(scale 0.9-1, bicubic), no flip. We use
  timm's `rand-m9-n2` policy; its op set differs slightly from the official copy of ViLT's
  (timm adds Invert and translates relative to the image size instead of up to 100 px).
- "eval": bicubic resize to size x size (aspect ratio not kept, like the official).
- "pretrain_train": RandomResizedCrop(scale 0.8-1, bicubic) + horizontal flip.
Every transform returns Float[3,H,W]. `ClipTransform` applies one transform to all frames of a clip
with the same random choices (one set of parameters per clip) and returns Float[F,3,H,W].
"""

from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
NAMES = ("finetune_train", "eval", "pretrain_train")


def build_transform(name: str, size: int):
    """A PIL -> Float[3,size,size] transform by name (see module docstring)."""
    bicubic = T.InterpolationMode.BICUBIC
    tail = [T.ToTensor(), T.Normalize(CLIP_MEAN, CLIP_STD)]
    if name == "eval":
        return T.Compose([T.Resize((size, size), interpolation=bicubic), *tail])
    if name == "pretrain_train":
        return T.Compose([T.RandomResizedCrop(size, scale=(0.8, 1.0), interpolation=bicubic),
                          T.RandomHorizontalFlip(), *tail])
    if name == "finetune_train":
        from timm.data.auto_augment import rand_augment_transform

        fill = tuple(round(255 * m) for m in CLIP_MEAN)
        randaug = rand_augment_transform("rand-m9-n2", {"img_mean": fill})
        return T.Compose([randaug, T.RandomResizedCrop(size, scale=(0.9, 1.0), interpolation=bicubic), *tail])
    raise ValueError(f"unknown transform {name!r}; use one of {NAMES}")


class ClipTransform:
    """Apply a frame transform to every frame of a clip with identical random parameters.

    timm and torchvision draw from Python's, NumPy's and torch's global generators; restoring all
    three before each frame makes every frame see the same draws. Afterwards the generators stand
    where a single frame would have left them.
    """

    def __init__(self, frame_transform) -> None:
        self.frame_transform = frame_transform

    def __call__(self, frames: list[Image.Image]) -> torch.Tensor:
        states = random.getstate(), np.random.get_state(), torch.get_rng_state()
        out = []
        for frame in frames:
            random.setstate(states[0])
            np.random.set_state(states[1])
            torch.set_rng_state(states[2])
            out.append(self.frame_transform(frame))
        return torch.stack(out)
