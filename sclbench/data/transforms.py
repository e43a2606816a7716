"""Image and clip transforms (CLIP statistics), following the official `mae_transforms.py`.

Names (the official transform key in brackets):
- "clip_randaug" [clip_randaug]: the official fine-tuning augmentation: ViLT's RandAugment(n=2,
  m=9) (`sclbench.data.randaug`: 14 ops, no Invert, every drawn op applied, magnitude m/30) then
  RandomResizedCrop(scale 0.9-1, bicubic), no flip. "finetune_train" is the same transform.
- "video_randaug" [video_randaug]: the official config names it for video fine-tuning and video
  pre-training but the official repository defines no such transform (nor "video_test"). sclbench
  uses "clip_randaug"; `Visuals` applies it through `ClipTransform`, one draw per clip.
- "timm_randaug": the earlier sclbench default, timm's `rand-m9-n2` before the same crop (timm's op
  set includes Invert, applies each op with p=0.5, scales magnitudes on 0..10 with its own ranges
  and translates by a fraction of the image size).
- "eval" [clip_test]: bicubic resize to size x size (aspect ratio not kept, like the official).
- "video_eval" [video_test]: the official video cards name `video_test`, which the official repository
  does not define; its call `transform((frames, None))` is VideoMAE's group-transform interface, whose
  test transform scales the shorter side and centre-crops. sclbench: bicubic resize of the shorter side
  to `size`, centre crop size x size (CLIP's own evaluation preprocessing); the aspect ratio is kept.
- "pretrain_train" [clip]: RandomResizedCrop(scale 0.8-1, bicubic) + horizontal flip.
The official keys "clip" and "clip_test" are accepted as aliases.
Every transform returns Float[3,H,W]. `ClipTransform` applies one transform to all frames of a clip
with the same random choices (one set of parameters per clip) and returns Float[F,3,H,W].
"""

from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from sclbench.data.randaug import RandAugment

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
NAMES = ("clip_randaug", "video_randaug", "timm_randaug", "finetune_train", "eval", "video_eval", "pretrain_train")
ALIASES = {
    "finetune_train": "clip_randaug",
    "video_randaug": "clip_randaug",
    "clip": "pretrain_train",
    "clip_test": "eval",
    "video_test": "video_eval",
}


def build_transform(name: str, size: int):
    """A PIL -> Float[3,size,size] transform by name (see module docstring)."""
    bicubic = T.InterpolationMode.BICUBIC
    tail = [T.ToTensor(), T.Normalize(CLIP_MEAN, CLIP_STD)]
    name = ALIASES.get(name, name)
    if name == "eval":
        return T.Compose([T.Resize((size, size), interpolation=bicubic), *tail])
    if name == "video_eval":  # shorter side to `size`, then the centre square: the aspect ratio is kept
        return T.Compose([T.Resize(size, interpolation=bicubic), T.CenterCrop(size), *tail])
    if name == "pretrain_train":
        return T.Compose(
            [T.RandomResizedCrop(size, scale=(0.8, 1.0), interpolation=bicubic), T.RandomHorizontalFlip(), *tail]
        )
    crop = T.RandomResizedCrop(size, scale=(0.9, 1.0), interpolation=bicubic)
    if name == "clip_randaug":
        return T.Compose([RandAugment(2, 9), crop, *tail])
    if name == "timm_randaug":
        from timm.data.auto_augment import rand_augment_transform

        fill = tuple(round(255 * m) for m in CLIP_MEAN)
        randaug = rand_augment_transform("rand-m9-n2", {"img_mean": fill})
        return T.Compose([randaug, crop, *tail])
    from sclbench.errors import ConfigError

    raise ConfigError(
        f"train.transform / eval.transform: unknown transform {name!r}; use one of "
        f"{', '.join(NAMES)} (or the official keys {', '.join(k for k in ALIASES if k not in NAMES)})"
    )


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
