"""Video details pinned to the official code (issue 26, item 4): frame sampling
(scl/datasets/base_video_dataset.py), the video evaluation transform (video_test, VideoMAE's group
interface: shorter side + centre crop), the pre-training clips' transform and resolution."""

import random

import numpy as np
import pytest
import torch
from PIL import Image

from sclbench.cards import load_card
from sclbench.data.transforms import CLIP_MEAN, CLIP_STD, build_transform
from sclbench.data.video import sample_frame_indices


def official_random(duration: int, frames: int, rng: random.Random) -> list[int] | None:
    """The official 'random' sampler, restated (None where it raises and the sample is replaced)."""
    bounds = np.linspace(0, duration, num=frames + 1, dtype=int).tolist()
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        choices = range(a, b - 1) if a < b else range(a, b)
        if len(choices) == 0:
            return None
        out.append(rng.choice(choices))
    return out


@pytest.mark.parametrize("duration", [8, 9, 12, 30, 100, 301])
def test_random_sampling_has_the_official_support(duration):
    """Every index drawn lies where the official draws, and every official index is drawn."""
    rng, g = random.Random(0), torch.Generator().manual_seed(0)
    official = [tuple(official_random(duration, 4, rng)) for _ in range(3000)]
    ours = [tuple(sample_frame_indices(duration, 4, "random", g)) for _ in range(3000)]
    for k in range(4):
        assert {o[k] for o in ours} == {o[k] for o in official}, k


@pytest.mark.parametrize("duration", [1, 3, 4, 5, 7])
def test_short_clips_take_segment_starts_where_the_official_crashes(duration):
    assert official_random(duration, 4, random.Random(0)) is None
    idx = sample_frame_indices(duration, 4, "random", torch.Generator().manual_seed(0))
    bounds = np.linspace(0, duration, 5, dtype=int)
    for i, start, end in zip(idx, bounds[:-1], bounds[1:]):
        assert start <= i <= end - 2 if end - start >= 2 else i == min(start, duration - 1)


def test_lsmdc_trains_on_uniform_frames_as_the_official_frame_folders():
    assert load_card("lsmdc").get("train.frame_mode") == "uniform"
    assert load_card("lsmdc", ["train.frame_mode=random"]).get("train.frame_mode") == "random"
    assert load_card("msrvtt").get("train.frame_mode", "random") == "random"  # mp4 training: official random


@pytest.mark.parametrize("width, height", [(320, 240), (240, 320), (224, 224), (500, 281)])
def test_video_eval_keeps_the_aspect_ratio(width, height):
    """A centred square marker stays square: shorter side scaled to 224, the centre cropped."""
    img = Image.new("RGB", (width, height), (0, 0, 0))
    side = min(width, height) // 2
    x0, y0 = (width - side) // 2, (height - side) // 2
    img.paste((255, 255, 255), (x0, y0, x0 + side, y0 + side))
    out = build_transform("video_eval", 224)(img)
    assert out.shape == (3, 224, 224)
    white = out[0] * CLIP_STD[0] + CLIP_MEAN[0] > 0.5
    rows, cols = white.any(1).nonzero(), white.any(0).nonzero()
    h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
    assert abs(h - w) <= 2 and abs(h - 112) <= 2
    assert build_transform("video_test", 224)(img).equal(out)  # the official key is an alias
    if width != height:  # the squash of the image cards would stretch it
        squashed = build_transform("eval", 224)(img)[0] * CLIP_STD[0] + CLIP_MEAN[0] > 0.5
        rows, cols = squashed.any(1).nonzero(), squashed.any(0).nonzero()
        assert abs(int(rows.max() - rows.min()) - int(cols.max() - cols.min())) > 10


@pytest.mark.parametrize("name", ["lsmdc", "msrvtt"])
def test_video_cards_evaluate_with_the_video_transform(name):
    assert load_card(name).get("eval.transform") == "video_eval"


def test_pretraining_clips_get_the_official_video_transform_key(synth_root, synth_tokenizer):
    from sclbench.data.randaug import RandAugment
    from sclbench.model import SCLConfig
    from sclbench.tasks.base import get_task

    card = load_card("pretrain")
    assert card.get("train.video_transform") == "video_randaug" and card.get("train.transform") == "pretrain_train"
    task = get_task("pretrain", [], data_root=synth_root / "pretrain")
    task.tokenizer, task.model_config = synth_tokenizer, SCLConfig.tiny("pretrain_video")
    image_tf = build_transform("pretrain_train", 32)
    clips, images = task._visuals("video", image_tf), task._visuals("image", image_tf)
    assert isinstance(clips.transform.transforms[0], RandAugment) and images.transform is image_tf
