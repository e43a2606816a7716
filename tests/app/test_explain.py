"""Alignment figures: the maps are computed as documented, the PNG is written, and on the demo's
retrieval model the heatmap of a named object lies on that object's pixels (the scene generator
knows where each shape is)."""

import random

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from sclbench.app.explain import alignment_maps, explain_alignment, mass_ratio, word_spans
from sclbench.app.predict import load_predictor
from sclbench.data import synth_scenes as S
from sclbench.errors import ConfigError


def scene_image(tmp_path, scene, seed=3):
    img = S.render(scene, random.Random(seed))
    path = tmp_path / "scene.png"
    img.save(path)
    return path, img


def object_mask(img: Image.Image, colour: str, size: int) -> np.ndarray:
    """Pixels of the shape of `colour`, at the model's resolution."""
    full = np.abs(np.asarray(img).astype(int) - np.array(S.COLOURS[colour])).sum(-1) < 60
    return np.asarray(Image.fromarray(full.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)) > 127


def test_maps_are_cosines_of_projected_tokens(tiny_checkpoint, tmp_path):
    p = load_predictor(tiny_checkpoint("f30k"), device="cpu")
    path, _ = scene_image(tmp_path, [S.Shape("red", "circle", "left")])
    maps = alignment_maps(p, path, "A red circle on the left.", word="circle")
    grid = p.model.config.image_size // p.model.config.patch_size
    assert maps.sentence_map.shape == (1, grid, grid) and maps.word_map.shape == (1, grid, grid)
    assert maps.words == ["A", "red", "circle", "on", "the", "left"] and maps.word_weights.shape == (6,)
    assert np.all(np.abs(maps.sentence_map) <= 1.0 + 1e-5)
    # recompute one patch's cosine by hand
    model = p.model
    with torch.no_grad():
        ids, masks = p.text(["A red circle on the left."])
        t = torch.nn.functional.normalize(model.language_proj(model.encode_text(ids, masks)[0, 0]), dim=-1)
        v = model.encode_vision(p.pixels(path))
        patch = torch.nn.functional.normalize(model.vision_proj(v.embeds[0, 1 + grid + 2]), dim=-1)
    assert maps.sentence_map[0, 1, 2] == pytest.approx(float(t @ patch), abs=1e-5)
    fused = alignment_maps(p, path, "A red circle on the left.", space="fused")
    assert fused.word_map is None and not np.allclose(fused.sentence_map, maps.sentence_map)
    with pytest.raises(ConfigError, match="not in the sentence"):
        alignment_maps(p, path, "A red circle.", word="square")
    with pytest.raises(ConfigError, match="space"):
        alignment_maps(p, path, "A red circle.", space="attention")


def test_gradcam_maps_are_attention_times_positive_gradient(tiny_checkpoint, tmp_path):
    p = load_predictor(tiny_checkpoint("f30k"), device="cpu")
    path, _ = scene_image(tmp_path, [S.Shape("red", "circle", "left"), S.Shape("blue", "square", "right")])
    sentence = "A red circle on the left."
    maps = alignment_maps(p, path, sentence, word="circle", space="gradcam")
    grid = p.model.config.image_size // p.model.config.patch_size
    assert maps.space == "gradcam" and maps.sentence_map.shape == (1, grid, grid)
    assert maps.word_map.shape == (1, grid, grid) and maps.word_weights.shape == (6,)
    assert (maps.sentence_map >= 0).all() and (maps.word_map >= 0).all() and (maps.word_weights >= 0).all()
    assert maps.sentence_map.sum() > 0
    # The hooks recompute the attention explicitly: the model's output is the same with them.
    from sclbench.app.explain import _attention_probs

    model = p.model
    ids, masks = p.text([sentence])
    with torch.no_grad():
        plain = model.fuse(model.encode_text(ids, masks), masks, model.encode_vision(p.pixels(path))).cls_feats
        store = {}
        hook = _attention_probs(model.cross_modal_text_layers[0].crossattention.self, store, "text")
        try:
            hooked = model.fuse(model.encode_text(ids, masks), masks, model.encode_vision(p.pixels(path))).cls_feats
        finally:
            hook.remove()
    assert torch.allclose(plain, hooked, atol=1e-5)
    assert torch.allclose(store["text"].sum(-1), torch.ones(1))  # probabilities over the image tokens
    last = alignment_maps(p, path, sentence, space="gradcam", layer=-1)
    assert not np.allclose(last.sentence_map, maps.sentence_map)
    with pytest.raises(ConfigError, match="co-attention layers"):
        alignment_maps(p, path, sentence, space="gradcam", layer=5)
    with pytest.raises(ConfigError, match="no match head"):
        alignment_maps(load_predictor(tiny_checkpoint("vqa"), device="cpu"), path, sentence, space="gradcam")


def test_png_and_cli(tiny_checkpoint, tmp_path):
    from sclbench.cli.predict import register

    path, _ = scene_image(tmp_path, [S.Shape("blue", "square", "right")])
    out, _ = explain_alignment(tiny_checkpoint("f30k"), path, "A blue square.", tmp_path / "a.png", word="square",
                               device="cpu")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 400
    app = typer.Typer()
    register(app)
    res = CliRunner().invoke(app, ["explain", str(path), "A blue square.", "--ckpt", str(tiny_checkpoint("f30k")),
                                   "--word", "blue", "--out", str(tmp_path / "b.png"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "b.png").is_file() and "closest to the image" in res.output


def test_word_spans():
    assert [w for w, _, _ in word_spans("A red circle, on the left.")] == ["A", "red", "circle", "on", "the", "left"]


@pytest.fixture(scope="module")
def demo_retrieval_model(tmp_path_factory):
    """The quick demo's pre-training and its F30K fine-tune (nothing else): the demo model."""
    from sclbench.app.demo import run_demo

    out = tmp_path_factory.mktemp("demo_f30k")
    run_demo(out, quick=True, tasks=("f30k",))
    best = out / "runs" / "scl" / "f30k" / "best"
    return best if (best / "config.json").is_file() else out / "runs" / "scl" / "f30k" / "final"


# Measured on the quick demo's F30K model (seed 0, 2026-12-01): object/background heat ratios of
# 0.92 (sentence) / 0.67 (word) for the red circle and 0.59 / 0.66 for the yellow triangle; over 14
# random two-shape scenes the median ratio was 0.99 (cosine maps) and occlusion maps were as mixed.
# Re-measured after the demo's redesign (16 two-shape scenes): cosine maps median 0.68 / 0.71,
# Grad-CAM on the first co-attention layer 0.68 / 0.74, on the last 1.68 (sentence) but 0 (word: no
# positive gradient), above 1.5 in at most half the scenes. The tiny demo model (32 px, a 4x4 patch
# grid) does not localise objects. Strict: when a change makes the maps localise, this starts to
# pass and must be promoted to a plain test.
@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="the quick demo's 4x4-patch model does not localise the named object "
                   "(heat ratio ~0.6-0.9, see the comment above)")
@pytest.mark.parametrize("target,other", [(("red", "circle", "left"), ("blue", "square", "right")),
                                          (("yellow", "triangle", "top"), ("green", "circle", "bottom"))])
def test_heatmap_lies_on_the_named_object(demo_retrieval_model, tmp_path, target, other):
    colour, shape, where = target
    path, img = scene_image(tmp_path, [S.Shape(*target), S.Shape(*other)])
    p = load_predictor(demo_retrieval_model, device="cpu")
    maps = alignment_maps(p, path, f"A {colour} {shape}.", word=shape)
    mask = object_mask(img, colour, maps.image.shape[0])
    assert mask.sum() > 20
    ratio_word = mass_ratio(maps.upsampled("word"), mask)
    ratio_sentence = mass_ratio(maps.upsampled("sentence"), mask)
    print(f"{colour} {shape}: heat on object / background = {ratio_sentence:.2f} (sentence), {ratio_word:.2f} (word)")
    assert ratio_sentence > 1.5 and ratio_word > 1.5
