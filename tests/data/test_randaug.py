"""The official fine-tuning RandAugment (`clip_randaug`): op table, magnitude mapping, op behaviour,
determinism, and the pipeline around it."""

import random

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from sclbench.data.randaug import OPS, RandAugment
from sclbench.data.transforms import CLIP_MEAN, CLIP_STD, ClipTransform, build_transform

# (name, lo, hi) of the official scl/transforms/randaug.py augment_list, in its order.
OFFICIAL_TABLE = [
    ("AutoContrast", 0, 1),
    ("Equalize", 0, 1),
    ("Rotate", 0, 30),
    ("Posterize", 0, 4),
    ("Solarize", 0, 256),
    ("SolarizeAdd", 0, 110),
    ("Color", 0.1, 1.9),
    ("Contrast", 0.1, 1.9),
    ("Brightness", 0.1, 1.9),
    ("Sharpness", 0.1, 1.9),
    ("ShearX", 0.0, 0.3),
    ("ShearY", 0.0, 0.3),
    ("TranslateXabs", 0.0, 100),
    ("TranslateYabs", 0.0, 100),
]
# The argument each op receives at the official m = 9 (value = lo + (hi - lo) * 9 / 30).
AT_M9 = {
    "AutoContrast": 0.3,
    "Equalize": 0.3,
    "Rotate": 9.0,
    "Posterize": 1.2,
    "Solarize": 76.8,
    "SolarizeAdd": 33.0,
    "Color": 0.64,
    "Contrast": 0.64,
    "Brightness": 0.64,
    "Sharpness": 0.64,
    "ShearX": 0.09,
    "ShearY": 0.09,
    "TranslateXabs": 30.0,
    "TranslateYabs": 30.0,
}


def noise(w=64, h=48) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))


def op(name):
    return next(o for o in OPS if o.name == name)


class FixedSign:
    """An rng stand-in whose random() always says 'keep the sign' (official: negate if > 0.5)."""

    def random(self):
        return 0.0


def test_op_table_is_the_official_one_without_invert():
    assert [(o.name, o.lo, o.hi) for o in OPS] == OFFICIAL_TABLE
    names = {o.name for o in OPS}
    assert not names & {"Invert", "Cutout", "CutoutAbs", "Identity", "TranslateX", "TranslateY"}


@pytest.mark.parametrize("name", [n for n, _, _ in OFFICIAL_TABLE])
def test_magnitude_mapping(name):
    o = op(name)
    assert o.value(9) == pytest.approx(AT_M9[name])
    assert o.value(0) == pytest.approx(o.lo) and o.value(30) == pytest.approx(o.hi)


def test_ops_at_m9_do_what_the_official_ops_do():
    flat = lambda v: Image.fromarray(np.full((8, 8, 3), v, np.uint8))  # noqa: E731
    px = lambda img: np.asarray(img)[0, 0, 0]  # noqa: E731
    rng = FixedSign()
    posterized = np.asarray(op("Posterize").apply(noise(), op("Posterize").value(9), rng))
    assert set(np.unique(posterized)) <= {0, 128}  # int(1.2) = 1 bit kept
    solar = op("Solarize")
    assert (
        px(solar.apply(flat(80), solar.value(9), rng)) == 255 - 80
        and px(solar.apply(flat(70), solar.value(9), rng)) == 70
    )
    add = op("SolarizeAdd")
    assert px(add.apply(flat(100), add.value(9), rng)) == 255 - 133 and px(add.apply(flat(50), add.value(9), rng)) == 83
    bright = op("Brightness")
    assert px(bright.apply(flat(200), bright.value(9), rng)) == 128  # factor 0.64, never > 1
    # Translations are absolute pixels: 30 px on a 64- and on a 128-pixel-wide image alike.
    for width in (64, 128):
        img = noise(width, 40)
        moved = np.asarray(op("TranslateXabs").apply(img, op("TranslateXabs").value(9), rng))
        assert np.array_equal(moved[:, : width - 30], np.asarray(img)[:, 30:]) and not moved[:, width - 30 :].any()


def test_geometric_sign_flips_half_the_time():
    img, tx = noise(), op("TranslateXabs")
    rng = random.Random(0)
    outs = [np.asarray(tx.apply(img, 30.0, rng)) for _ in range(40)]
    left = sum(np.array_equal(o[:, :34], np.asarray(img)[:, 30:]) for o in outs)
    assert 10 < left < 30 and all(
        np.array_equal(o[:, 30:], np.asarray(img)[:, :34])
        for o in outs
        if not np.array_equal(o[:, :34], np.asarray(img)[:, 30:])
    )


def test_every_drawn_op_is_applied_n_with_replacement():
    img = noise()
    for seed in range(20):
        names = [o.name for o in random.Random(seed).choices(OPS, k=2)]
        replay = random.Random(seed)
        replay.choices(OPS, k=2)
        expect = img
        for name in names:
            expect = op(name).apply(expect, op(name).value(9), replay)
        got = RandAugment(2, 9, rng=random.Random(seed))(img)
        assert np.array_equal(np.asarray(got), np.asarray(expect)), (seed, names)
    draws = [tuple(o.name for o in random.Random(s).choices(OPS, k=2)) for s in range(200)]
    assert any(a == b for a, b in draws)  # with replacement: the same op twice happens


def test_determinism_under_the_global_seed():
    img, aug = noise(), RandAugment(2, 9)
    random.seed(5)
    first = [np.asarray(aug(img)) for _ in range(5)]
    random.seed(5)
    again = [np.asarray(aug(img)) for _ in range(5)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert any(not np.array_equal(first[0], a) for a in first[1:])


def test_invalid_magnitude():
    with pytest.raises(ValueError):
        RandAugment(2, 31)


def test_clip_randaug_pipeline_and_no_op_equals_eval():
    size = 32
    pipe = build_transform("clip_randaug", size)
    kinds = [type(t) for t in pipe.transforms]
    assert kinds == [RandAugment, T.RandomResizedCrop, T.ToTensor, T.Normalize]  # no flip
    aug, crop, _, norm = pipe.transforms
    assert (aug.n, aug.m) == (2, 9) and crop.scale == (0.9, 1.0) and crop.interpolation == T.InterpolationMode.BICUBIC
    assert tuple(norm.mean) == CLIP_MEAN and tuple(norm.std) == CLIP_STD
    img = noise(size, size)
    out = pipe(img)
    assert out.shape == (3, size, size) and out.dtype == torch.float32
    # With no op drawn and the whole image kept, the output is the eval transform's.
    pipe.transforms[0] = RandAugment(0, 9)
    pipe.transforms[1] = T.RandomResizedCrop(size, scale=(1.0, 1.0), interpolation=T.InterpolationMode.BICUBIC)
    assert torch.equal(pipe(img), build_transform("eval", size)(img))


def test_names_and_aliases():
    for name in ("finetune_train", "video_randaug"):
        assert isinstance(build_transform(name, 16).transforms[0], RandAugment)
    assert "RandAugment" in type(build_transform("timm_randaug", 16).transforms[0]).__name__
    assert isinstance(build_transform("clip", 16).transforms[1], T.RandomHorizontalFlip)
    assert isinstance(build_transform("clip_test", 16).transforms[0], T.Resize)
    from sclbench.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown transform 'rand'"):
        build_transform("rand", 16)


def test_video_randaug_one_draw_per_clip():
    frames = [noise(), noise().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    transform = build_transform("video_randaug", 32)
    random.seed(3)
    torch.manual_seed(3)
    clip = ClipTransform(transform)(frames)
    for k, frame in enumerate(frames):  # frame k = the frame transform from the same generator state
        random.seed(3)
        torch.manual_seed(3)
        assert torch.equal(clip[k], transform(frame))
