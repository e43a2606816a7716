"""VQA and NLVR2 evaluation encode each distinct image of a batch once, with the predictions of the
per-question path (one ViT pass per question)."""

from pathlib import Path

import pytest
import torch

from sclbench.adapters import scl as scl_adapter
from sclbench.app import jobs
from sclbench.data.records import ImageSource
from sclbench.tasks import encode_once
from sclbench.tasks.encode_once import group, source_key


@pytest.mark.parametrize(
    "keys,first,inverse",
    [
        (["a", "b", "c"], [0, 1, 2], [0, 1, 2]),  # all distinct
        (["a", "a", "a"], [0], [0, 0, 0]),  # one image
        (["a", "b", "a", "c", "b"], [0, 1, 3], [0, 1, 0, 2, 1]),  # interleaved
        ([], [], []),
    ],
)
def test_group(keys, first, inverse):
    assert group(keys) == (first, inverse)


def test_source_keys_tell_sources_apart():
    same = [ImageSource(path=Path("/x/1.jpg")), ImageSource(path=Path("/x/1.jpg"))]
    assert source_key(same[0]) == source_key(same[1])
    others = [
        ImageSource(path=Path("/x/2.jpg")),
        ImageSource(arrow=("t.arrow", "image", 0)),
        ImageSource(arrow=("t.arrow", "image", 1)),
        ImageSource(data=b"abc"),
        ImageSource(data=b"abd"),
    ]
    assert len({source_key(s) for s in [same[0], *others]}) == 6


def _count_vision_calls(model, monkeypatch) -> list[int]:
    sizes: list[int] = []
    original = model.encode_vision

    def counted(images, *args, **kwargs):
        sizes.append(len(images))
        return original(images, *args, **kwargs)

    monkeypatch.setattr(model, "encode_vision", counted)
    return sizes


def _per_question(model, images, keys):  # the old path: one ViT pass per question
    return model.encode_vision(images)


@pytest.mark.parametrize("task_name", ["vqa", "nlvr2"])
def test_each_image_encoded_once_per_batch_with_the_same_predictions(synth_root, monkeypatch, task_name):
    overrides = ["data.minival_images=4"] if task_name == "vqa" else []
    torch.manual_seed(0)
    task, loaded = jobs.prepare(
        task_name, None, str(synth_root / task_name), overrides, preset="tiny", tokenizer=str(synth_root / "tokenizer")
    )
    model = loaded.model.eval()
    batch_size = 6
    records = task.build_dataset("val", train=False).records
    # What one batch holds: its questions' images (NLVR2: both images of each statement).
    expected = []
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        sources = (
            [r.image for r in chunk] if task_name == "vqa" else [r.image_0 for r in chunk] + [r.image_1 for r in chunk]
        )
        expected.append(len({source_key(s) for s in sources}))
    per_question_images = len(records) * (1 if task_name == "vqa" else 2)
    assert sum(expected) < per_question_images, "the data must repeat images within a batch for this test"

    calls = _count_vision_calls(model, monkeypatch)
    once = task.evaluate(model, "val", batch_size=batch_size)
    assert calls == expected  # one call per batch, of exactly its distinct images

    monkeypatch.setattr(scl_adapter, "encode_images_once", _per_question)  # SCL's VQA and NLVR2 methods use it
    calls.clear()
    old = task.evaluate(model, "val", batch_size=batch_size)
    assert sum(calls) == per_question_images
    assert once.metrics == old.metrics
    key = "soft_score" if task_name == "vqa" else "prob_true"
    answer = "answer" if task_name == "vqa" else "prediction"
    assert [p["id"] for p in once.predictions] == [p["id"] for p in old.predictions]
    assert [p[answer] for p in once.predictions] == [p[answer] for p in old.predictions]
    assert [p[key] for p in once.predictions] == pytest.approx([p[key] for p in old.predictions], abs=1e-6)


def test_features_indexed_per_question_equal_a_pass_per_question():
    from sclbench.model import SCLConfig, SCLModel

    torch.manual_seed(0)
    model = SCLModel(SCLConfig.tiny("vqa")).eval()
    size = model.config.image_size
    distinct = torch.randn(3, 3, size, size)
    order = [2, 0, 2, 1, 0, 2]
    with torch.no_grad():
        once = encode_once.encode_images_once(model, distinct[order], [f"img{i}" for i in order])
        each = model.encode_vision(distinct[order])
    assert torch.allclose(once.embeds, each.embeds, atol=1e-5, rtol=0)
    assert once.num_frames == each.num_frames
