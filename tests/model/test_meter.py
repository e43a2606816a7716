"""METER's released checkpoints: their key sets (from METER's module definitions, meter_keys.py)
against sclbench's base models, loading through the same API and key report, and the registry."""

import re

import pytest
import torch

from sclbench.errors import CheckpointError
from sclbench.model import SCLConfig, SCLModel
from sclbench.model.checkpoint import (
    BENIGN_MISSING,
    BENIGN_UNEXPECTED,
    extract_state_dict,
    load_into,
    read_checkpoint,
    rename_meter,
)
from sclbench.model.hub import load_registry, registry_entry, resolve
from sclbench.model.inspect import inspect_checkpoint
from tests.model.meter_keys import METER_ONLY, RELEASED, SCL_ONLY_ALL, SCL_ONLY_PRETRAIN, meter_keys

TINY = dict(
    hidden=64,
    text_layers=2,
    intermediate=128,
    vocab=1000,
    text_positions=64,
    vision_layers=2,
    patch=8,
    top_layers=2,
    answers=32,
)


def scl_only(task):
    return SCL_ONLY_ALL | (SCL_ONLY_PRETRAIN if task in ("pretrain", "f30k", "coco") else set())


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_meter_keys_equal_scl_keys_up_to_explained_differences(name):
    spec = RELEASED[name]
    theirs = meter_keys(spec["task"], spec["heads"], spec["image_size"])
    mapped, renamed = rename_meter(theirs)
    assert renamed
    with torch.device("meta"):
        model = SCLModel(SCLConfig.base(spec["task"], image_size=spec["image_size"]))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    only_scl = scl_only(spec["task"])
    assert {k: s for k, s in mapped.items() if k not in METER_ONLY} == {
        k: s for k, s in ours.items() if k not in only_scl
    }
    assert METER_ONLY <= set(mapped) and only_scl <= set(ours)
    for key in METER_ONLY:
        assert any(re.search(p, key) for p, _ in BENIGN_UNEXPECTED), key
    for key in only_scl:
        assert any(re.search(p, key) for p, _ in BENIGN_MISSING), key


def write_meter_ckpt(path, task, heads, image_size=32):
    """A tiny METER Lightning-style file with METER's names (values random, seeded)."""
    gen = torch.Generator().manual_seed(7)
    sd = {k: torch.randn(s, generator=gen) for k, s in meter_keys(task, heads, image_size, **TINY).items()}
    sd["text_transformer.embeddings.position_ids"] = torch.arange(TINY["text_positions"]).unsqueeze(0)
    torch.save({"epoch": 9, "global_step": 1000, "pytorch-lightning_version": "1.3.2", "state_dict": sd}, path)
    return sd


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_tiny_meter_checkpoint_loads_with_a_clean_key_report(tmp_path, name):
    spec = RELEASED[name]
    path = tmp_path / f"{name}.ckpt"
    sd = write_meter_ckpt(path, spec["task"], spec["heads"])
    model = SCLModel(SCLConfig.tiny(spec["task"], num_answers=TINY["answers"]))
    report = load_into(model, extract_state_dict(read_checkpoint(path), str(path)), str(path))
    assert report.unexplained() == ([], [])
    assert "METER layout: vit_model.* -> vision_transformer.*" in report.adapted
    own = model.state_dict()
    assert torch.equal(
        own["vision_transformer.visual.transformer.resblocks.1.mlp.c_fc.weight"],
        sd["vit_model.visual.transformer.resblocks.1.mlp.c_fc.weight"],
    )
    assert torch.equal(
        own["cross_modal_text_layers.1.crossattention.self.key.weight"],
        sd["cross_modal_text_layers.1.crossattention.self.key.weight"],
    )
    if "rank" in spec["heads"]:  # METER's fine-tuned rank head is loaded, not re-derived from ITM
        assert torch.equal(own["rank_output.weight"], sd["rank_output.weight"])
        assert not any("rank_output :=" in a for a in report.adapted)
    info = inspect_checkpoint(path)
    assert info["layout"].startswith("METER") and info["global_step"] == 1000
    assert set(info["heads"]) == set(spec["heads"])


def test_meter_vqa_at_576_is_resized_to_the_requested_resolution(tmp_path):
    path = tmp_path / "meter-vqa.ckpt"
    write_meter_ckpt(path, "vqa", ("vqa",), image_size=48)  # 6x6 grid, as 576px is 36x36
    model = SCLModel(SCLConfig.tiny("vqa", num_answers=TINY["answers"]))  # 32px: 4x4
    report = load_into(model, extract_state_dict(read_checkpoint(path), str(path)), str(path))
    assert any("[37, 64] -> [17, 64]" in a for a in report.adapted)


def test_registry_lists_every_released_meter_model_with_its_published_location():
    registry = load_registry()
    for name, spec in RELEASED.items():
        entry = registry_entry(name, registry)
        assert entry["source"] == "url" and entry["family"] == "meter"
        assert entry["url"].startswith("https://github.com/zdou0830/METER/releases/download/")
        assert entry["url"].endswith("/" + entry["file"])
        assert entry["task"] == spec["task"] and entry["image_size"] == spec["image_size"]
    assert registry_entry("meter-pretrain", registry)["name"] == "meter-clip16-288-pretrain"


def test_offline_url_checkpoint_says_where_to_download_and_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SCLBENCH_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError) as err:
        resolve("meter-vqa")
    msg = str(err.value)
    assert (
        "download https://github.com/zdou0830/METER/releases/download/checkpoint/meter_clip16_288_roberta_vqa.ckpt"
        in msg
    )
    assert f"put it at {tmp_path / 'meter-vqa' / 'meter_clip16_288_roberta_vqa.ckpt'}" in msg


def test_url_source_downloads_completely_or_leaves_nothing(tmp_path, monkeypatch):
    """A `source: url` entry is fetched into a .part file and renamed; a failed fetch names URL and PATH."""
    payload = tmp_path / "published.ckpt"
    torch.save({"state_dict": {"x": torch.ones(2)}}, payload)
    registry = tmp_path / "checkpoints.yaml"
    registry.write_text(
        "checkpoints:\n"
        f"  good: {{source: url, url: '{payload.as_uri()}', file: m.ckpt, sha256: null, task: vqa}}\n"
        f"  gone: {{source: url, url: '{(tmp_path / 'missing.ckpt').as_uri()}', file: m.ckpt, sha256: null}}\n"
    )
    monkeypatch.setenv("SCLBENCH_CHECKPOINTS", str(registry))
    monkeypatch.setenv("SCLBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("SCLBENCH_OFFLINE", raising=False)
    got = resolve("good")
    assert got.path == tmp_path / "cache" / "good" / "m.ckpt" and got.path.read_bytes() == payload.read_bytes()
    with pytest.raises(CheckpointError, match=r"cannot download gone: .*download file://.*missing\.ckpt and put it at"):
        resolve("gone")
    assert not list((tmp_path / "cache" / "gone").glob("*"))  # no partial file left behind
