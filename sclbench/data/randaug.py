"""The official fine-tuning RandAugment (ViLT's policy, used by SCL's `clip_randaug`), from its facts.

The policy, as the official `scl/transforms/randaug.py` defines it (our own code):
- 14 operations, each with a magnitude range (lo, hi); Invert is NOT among them (and neither are
  Cutout / Identity). See `OPS`.
- `n` operations are drawn uniformly WITH replacement (Python `random.choices`), and every drawn
  operation is applied: there is no per-op probability (timm applies each op with p=0.5).
- One magnitude `m` on a 0..30 scale maps linearly onto each range: v = lo + (hi - lo) * m / 30
  (timm uses a 0..10 scale, per-op rules and random magnitude noise). With m = 9: rotate 9 deg,
  shear 0.09, translate 30 px, solarize threshold 76.8, solarize-add 33, posterize 1 bit (int(1.2)),
  colour / contrast / brightness / sharpness factor 0.64.
- Rotate, shear and translate flip their sign with probability 1/2; the enhancement factors do
  not (0.64 always weakens). Translations are absolute pixels, not a fraction of the image size.
- Geometric ops resample with nearest neighbour and fill with black (PIL defaults).

Randomness comes from Python's `random` module (as officially), so `random.seed` fixes it, the
DataLoader's per-worker seeding covers it, and `ClipTransform` replays it for every frame of a clip.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

MAGNITUDE_SCALE = 30.0


def _affine(img: Image.Image, coeffs: tuple[float, ...]) -> Image.Image:
    return img.transform(img.size, Image.Transform.AFFINE, coeffs)


def _signed(v: float, rng) -> float:
    # The official code negates when random() > 0.5; the draw is the same either way round.
    return -v if rng.random() > 0.5 else v


def _solarize_add(img: Image.Image, v: float) -> Image.Image:
    shifted = np.clip(np.asarray(img).astype(np.int64) + v, 0, 255).astype(np.uint8)
    return ImageOps.solarize(Image.fromarray(shifted), 128)


@dataclass(frozen=True)
class Op:
    name: str
    lo: float
    hi: float
    apply: Callable[[Image.Image, float, random.Random], Image.Image]

    def value(self, m: float) -> float:
        """The operation's argument at magnitude m (0..30)."""
        return self.lo + (self.hi - self.lo) * float(m) / MAGNITUDE_SCALE


OPS: tuple[Op, ...] = (
    Op("AutoContrast", 0, 1, lambda img, v, rng: ImageOps.autocontrast(img)),
    Op("Equalize", 0, 1, lambda img, v, rng: ImageOps.equalize(img)),
    Op("Rotate", 0, 30, lambda img, v, rng: img.rotate(_signed(v, rng))),
    Op("Posterize", 0, 4, lambda img, v, rng: ImageOps.posterize(img, max(1, int(v)))),
    Op("Solarize", 0, 256, lambda img, v, rng: ImageOps.solarize(img, v)),
    Op("SolarizeAdd", 0, 110, lambda img, v, rng: _solarize_add(img, v)),
    Op("Color", 0.1, 1.9, lambda img, v, rng: ImageEnhance.Color(img).enhance(v)),
    Op("Contrast", 0.1, 1.9, lambda img, v, rng: ImageEnhance.Contrast(img).enhance(v)),
    Op("Brightness", 0.1, 1.9, lambda img, v, rng: ImageEnhance.Brightness(img).enhance(v)),
    Op("Sharpness", 0.1, 1.9, lambda img, v, rng: ImageEnhance.Sharpness(img).enhance(v)),
    Op("ShearX", 0.0, 0.3, lambda img, v, rng: _affine(img, (1, _signed(v, rng), 0, 0, 1, 0))),
    Op("ShearY", 0.0, 0.3, lambda img, v, rng: _affine(img, (1, 0, 0, _signed(v, rng), 1, 0))),
    Op("TranslateXabs", 0.0, 100, lambda img, v, rng: _affine(img, (1, 0, _signed(v, rng), 0, 1, 0))),
    Op("TranslateYabs", 0.0, 100, lambda img, v, rng: _affine(img, (1, 0, 0, 0, 1, _signed(v, rng)))),
)


class RandAugment:
    """Apply `n` operations drawn with replacement from `OPS`, each at magnitude `m` (0..30).

    `rng` None draws from Python's global `random` (the official behaviour, see module docstring);
    pass a `random.Random` for an independent stream.
    """

    def __init__(self, n: int = 2, m: float = 9, rng: random.Random | None = None) -> None:
        if n < 0 or not 0 <= m <= MAGNITUDE_SCALE:
            raise ValueError(f"RandAugment needs n >= 0 and 0 <= m <= {MAGNITUDE_SCALE:g}; got n={n}, m={m}")
        self.n, self.m, self.rng = n, m, rng

    def __call__(self, img: Image.Image) -> Image.Image:
        rng = self.rng or random  # the module's functions draw from the generator random.seed() sets
        for op in rng.choices(OPS, k=self.n):
            img = op.apply(img, op.value(self.m), rng)
        return img

    def __repr__(self) -> str:
        return f"RandAugment(n={self.n}, m={self.m}, ops={len(OPS)})"
