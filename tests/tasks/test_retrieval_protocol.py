"""Retrieval evaluation protocol: two-stage with k >= candidates equals exhaustive; passes reported;
zero-shot evaluation of a checkpoint without `rank_output` is labelled as such."""

import json

import pytest
import torch

from sclbench.app import jobs


@pytest.fixture(scope="module")
def f30k_model(synth_root):
    """A freshly initialised tiny f30k model (seeded): the protocol, not the quality, is under test."""
    torch.manual_seed(0)
    task, loaded = jobs.prepare(
        "f30k", None, str(synth_root / "f30k"), [], preset="tiny", tokenizer=str(synth_root / "tokenizer")
    )
    return task, loaded.model.eval()


def run(task, model, **options):
    return task.evaluate(model, "test", batch_size=8, **options)


def test_two_stage_with_k_covering_all_candidates_equals_exhaustive(f30k_model):
    task, model = f30k_model
    exhaustive = run(task, model, mode="exhaustive")
    n_img, n_txt = exhaustive.protocol["num_images"], exhaustive.protocol["num_texts"]
    assert (n_img, n_txt) == (10, 50)  # scale-0.25 Karpathy test: 10 images x 5 captions
    full = run(task, model, mode="two-stage", k=max(n_img, n_txt))
    assert full.metrics == exhaustive.metrics  # exactly, not approximately
    assert [p["rank"] for p in full.predictions] == [p["rank"] for p in exhaustive.predictions]
    assert full.protocol["cross_encoder_passes"] == exhaustive.protocol["cross_encoder_passes"] == n_img * n_txt
    assert full.protocol["exhaustive_passes"] == n_img * n_txt
    assert (full.protocol["mode"], full.protocol["k"]) == ("two-stage", n_txt)
    assert exhaustive.protocol["k"] is None


def test_two_stage_with_small_k_scores_fewer_pairs(f30k_model):
    task, model = f30k_model
    small = run(task, model, mode="two-stage", k=2)
    n_img, n_txt = small.protocol["num_images"], small.protocol["num_texts"]
    passes = small.protocol["cross_encoder_passes"]
    # The union of each image's top-2 texts and each text's top-2 images, each pair scored once.
    assert max(2 * n_img, 2 * n_txt) <= passes <= 2 * n_img + 2 * n_txt
    assert passes < n_img * n_txt
    for value in small.metrics.values():
        assert 0.0 <= value <= 400.0  # rsum is the sum of six recalls


def test_zero_shot_checkpoint_is_labelled(synth_root, tmp_path):
    """A pre-training checkpoint has ITM but no rank_output: evaluated through the ITM match logit."""
    torch.manual_seed(0)
    _, loaded = jobs.prepare(
        "pretrain", None, str(synth_root / "pretrain"), [], preset="tiny", tokenizer=str(synth_root / "tokenizer")
    )
    assert not hasattr(loaded.model, "rank_output")
    ckpt = loaded.model.save_pretrained(tmp_path / "pretrained", tokenizer=loaded.tokenizer)
    ev, path = jobs.evaluate(
        "f30k", str(ckpt), "test", str(synth_root / "f30k"), tmp_path / "results", device="cpu", mode="exhaustive"
    )
    record = json.loads(path.read_text())
    assert record["protocol"]["zero_shot"] is True and ev.protocol["zero_shot"] is True
    assert record["protocol"]["mode"] == "exhaustive"
    # A checkpoint that has rank_output (fine-tuned for retrieval) is not zero-shot.
    _, tuned = jobs.prepare(
        "f30k", None, str(synth_root / "f30k"), [], preset="tiny", tokenizer=str(synth_root / "tokenizer")
    )
    ckpt2 = tuned.model.save_pretrained(tmp_path / "tuned", tokenizer=tuned.tokenizer)
    _, path2 = jobs.evaluate("f30k", str(ckpt2), "test", str(synth_root / "f30k"), tmp_path / "results2", device="cpu")
    assert json.loads(path2.read_text())["protocol"]["zero_shot"] is False
