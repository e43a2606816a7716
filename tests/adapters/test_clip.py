"""The CLIP adapter gives transformers' CLIP similarities on the same inputs, for images and for clips
(mean of normalised frame embeddings)."""

from __future__ import annotations

import hf_tiny
import pytest
import torch
import torch.nn.functional as F

from sclbench.adapters.interface import missing_methods
from sclbench.errors import ConfigError

pytest.importorskip("transformers")

CAPTIONS = ["a dog on the grass", "the man in the street", "two red cats", "a blue car", "people playing"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return hf_tiny.save_clip(tmp_path_factory.mktemp("clip") / "tiny")


@pytest.fixture(scope="module")
def model(folder):
    from sclbench.adapters import clip

    return clip.build(ckpt=str(folder), family="retrieval")


def test_image_text_similarity_equals_transformers_logits(model, folder):
    from transformers import CLIPModel, CLIPProcessor

    assert not model.has_pair_scorer and missing_methods(model, "retrieval") == []
    imgs = hf_tiny.images(4, seed=7)
    prep = model.preprocess()
    media = model.embed_media(torch.stack([prep.image(im) for im in imgs])[:, None])
    texts = model.embed_texts(prep.text(CAPTIONS))
    ours = media["embedding"] @ texts["embedding"].t()

    ref_model = CLIPModel.from_pretrained(folder).eval()
    processor = CLIPProcessor.from_pretrained(folder)
    inputs = processor(
        images=imgs, text=CAPTIONS, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    )
    with torch.no_grad():
        out = ref_model(**inputs)
    torch.testing.assert_close(ours * ref_model.logit_scale.exp(), out.logits_per_image, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(media["embedding"], F.normalize(out.image_embeds, dim=-1), atol=1e-5, rtol=1e-4)
    assert ours.std() > 1e-3


def test_clip_embedding_is_the_normalised_mean_of_normalised_frames(model, folder):
    from transformers import CLIPModel, CLIPProcessor

    frames = hf_tiny.images(6, seed=8)  # two clips of three frames
    prep = model.preprocess()
    pixels = torch.stack([prep.image(im) for im in frames]).view(2, 3, 3, 32, 32)
    ours = model.embed_media(pixels)["embedding"]

    ref_model = CLIPModel.from_pretrained(folder).eval()
    pixel_values = CLIPProcessor.from_pretrained(folder).image_processor(images=frames, return_tensors="pt")
    with torch.no_grad():
        per_frame = F.normalize(
            ref_model(
                pixel_values=pixel_values["pixel_values"], input_ids=torch.zeros(1, 2, dtype=torch.long)
            ).image_embeds,
            dim=-1,
        )
    expected = F.normalize(per_frame.view(2, 3, -1).mean(1), dim=-1)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)
    # One frame: exactly that frame's embedding.
    torch.testing.assert_close(
        model.embed_media(pixels[:, :1])["embedding"], per_frame.view(2, 3, -1)[:, 0], atol=1e-5, rtol=1e-4
    )


def test_clip_has_no_vqa_or_nlvr2(folder):
    from sclbench.adapters import clip

    for family in ("vqa", "nlvr2"):
        with pytest.raises(ConfigError, match=f"no {family} adapter"):
            clip.build(ckpt=str(folder), family=family)


def test_compile_for_eval_compiles_the_towers_and_keeps_the_outputs(folder):
    from sclbench.adapters import clip

    model = clip.build(ckpt=str(folder), family="retrieval")
    prep = model.preprocess()
    pixels = torch.stack([prep.image(im) for im in hf_tiny.images(2, seed=9)])[:, None]
    before = model.embed_media(pixels)["embedding"], model.embed_texts(prep.text(CAPTIONS))["embedding"]
    model.compile_for_eval(backend="eager")
    assert model.compiled_methods == ["vision_model", "text_model"]
    after = model.embed_media(pixels)["embedding"], model.embed_texts(prep.text(CAPTIONS))["embedding"]
    for b, a in zip(before, after):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
