"""Official checkpoint import, key report, our own format round trip, export, clear errors."""

import json
import sys
import types

import pytest
import torch

from sclbench.cli import main
from sclbench.errors import CheckpointError
from sclbench.model import SCLConfig, SCLModel
from sclbench.model.checkpoint import read_checkpoint, to_official_state_dict
from sclbench.model.factory import load_official


def official_like_state_dict(task="pretrain", image_size=32):
    """A tiny model's weights dressed as an official file: extra unused modules and buffers."""
    torch.manual_seed(0)
    model = SCLModel(SCLConfig.tiny(task, image_size=image_size))
    sd = to_official_state_dict(model)
    sd["text_transformer.pooler.dense.weight"] = torch.randn(64, 64)
    sd["vision_transformer.decoder_embed.weight"] = torch.randn(16, 64)
    sd["vision_transformer.mask_token"] = torch.zeros(1, 1, 16)
    return model, sd


def write_lightning_ckpt(path, sd, config=None):
    """Save like PL 1.3 does, including classes the safe loader must not execute."""
    mod = types.ModuleType("fake_pl_parsing")

    class AttributeDict(dict):
        pass

    class ModelCheckpoint:
        pass

    AttributeDict.__module__ = ModelCheckpoint.__module__ = "fake_pl_parsing"
    AttributeDict.__qualname__, ModelCheckpoint.__qualname__ = "AttributeDict", "ModelCheckpoint"
    mod.AttributeDict, mod.ModelCheckpoint = AttributeDict, ModelCheckpoint
    sys.modules["fake_pl_parsing"] = mod
    try:
        torch.save(
            {
                "epoch": 41,
                "global_step": 99999,
                "pytorch-lightning_version": "1.3.2",
                "state_dict": sd,
                "callbacks": {ModelCheckpoint: {"best_model_score": torch.tensor(1.0)}},
                "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(3)}}}],
                "hyper_parameters": AttributeDict(config=config or {"loss_names": {"mlm": 1}, "image_size": 32}),
            },
            path,
        )
    finally:
        del sys.modules["fake_pl_parsing"]


def test_lightning_checkpoint_loads_safely_and_exactly(tmp_path):
    model, sd = official_like_state_dict()
    path = tmp_path / "MGSC-100k.ckpt"
    write_lightning_ckpt(path, sd)
    obj = read_checkpoint(path)  # would raise if it had to import fake_pl_parsing
    assert obj["global_step"] == 99999 and obj["hyper_parameters"]["config"]["image_size"] == 32
    loaded, report = load_official(path, config=SCLConfig.tiny("pretrain"))
    assert report.loaded_fraction == 1.0 and not report.missing
    assert set(report.unexpected) == {
        "text_transformer.embeddings.position_ids",
        "text_transformer.pooler.dense.weight",
        "vision_transformer.decoder_embed.weight",
        "vision_transformer.mask_token",
    }
    assert report.unexplained() == ([], [])
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


def test_finetune_targets_from_pretrain(tmp_path):
    model, sd = official_like_state_dict()
    # VQA at another resolution: position table resized, fresh classifier reported as benign
    vqa, report = load_official(sd, config=SCLConfig.tiny("vqa", image_size=48))
    assert vqa.vision_transformer.visual.positional_embedding.shape == (1 + 36, 64)
    assert any("bicubic" in a for a in report.adapted)
    assert all(k.startswith("vqa_classifier") for k in report.missing)
    # NLVR2: third token-type row copied from the image row
    nlvr2, report = load_official(sd, config=SCLConfig.tiny("nlvr2"))
    tt = nlvr2.token_type_embeddings.weight
    assert torch.equal(tt[2], tt[1]) and torch.equal(tt[:2], sd["token_type_embeddings.weight"])
    # Retrieval: rank_output := ITM match row, and ITM frozen
    f30k, report = load_official(sd, config=SCLConfig.tiny("f30k"))
    assert torch.equal(f30k.rank_output.weight, sd["itm_score.fc.weight"][1:])
    assert torch.equal(f30k.rank_output.bias, sd["itm_score.fc.bias"][1:])
    assert not any(p.requires_grad for p in f30k.itm_score.parameters())


def test_video_variant_and_prefix(tmp_path):
    _, sd = official_like_state_dict("msrvtt")
    prefixed = {"module." + k: v for k, v in sd.items()}
    model, report = load_official({"model": prefixed}, config=SCLConfig.tiny("msrvtt"))
    assert any("prefix" in a for a in report.adapted)
    assert torch.equal(model.vision_transformer.visual.temporal_embed, sd["vision_transformer.visual.temporal_embed"])


def test_save_load_round_trip_is_exact(tmp_path):
    torch.manual_seed(0)
    model = SCLModel(SCLConfig.tiny("nlvr2")).eval()
    model.save_pretrained(tmp_path / "ck")
    again = SCLModel.from_pretrained(tmp_path / "ck").eval()
    assert again.config == model.config
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    ids = torch.tensor([[0, 5, 6, 2]])
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(
            model.nlvr2_logits(ids, torch.ones_like(ids), x, x), again.nlvr2_logits(ids, torch.ones_like(ids), x, x)
        )


def test_truncated_and_foreign_checkpoints_fail_clearly(tmp_path):
    _, sd = official_like_state_dict()
    good = tmp_path / "good.ckpt"
    write_lightning_ckpt(good, sd)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.ckpt"):
        load_official(truncated, config=SCLConfig.tiny("pretrain"))
    foreign = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.randn(4, 3, 3, 3), "fc.weight": torch.randn(10, 4)}, foreign)
    with pytest.raises(CheckpointError, match="not an SCL checkpoint"):
        load_official(foreign, config=SCLConfig.tiny("pretrain"))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_official(tmp_path / "nope.ckpt", config=SCLConfig.tiny("pretrain"))
    base_sd = {k: v for k, v in sd.items()}
    base_sd["cross_modal_text_transform.weight"] = torch.randn(768, 768)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_official(base_sd, config=SCLConfig.tiny("pretrain"))


def test_ckpt_cli_inspect_and_convert(tmp_path, capsys):
    _, sd = official_like_state_dict()
    path = tmp_path / "GLSCL-100k.ckpt"
    write_lightning_ckpt(path, sd, config={"exp_name": "mlm_itm_cl_mgsc_mltc", "image_size": 32})
    assert main(["ckpt", "inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["global_step"] == 99999 and info["heads"] == ["mlm", "itm", "con"]
    assert info["image_size"] == 32 and info["config"]["exp_name"] == "mlm_itm_cl_mgsc_mltc"
    assert main(["ckpt", "convert", str(path), str(tmp_path / "conv"), "--preset", "tiny"]) == 0
    assert (tmp_path / "conv" / "model.safetensors").is_file()
    assert main(["ckpt", "convert", str(tmp_path / "conv"), str(tmp_path / "back.ckpt")]) == 0
    back = torch.load(tmp_path / "back.ckpt", weights_only=True)["state_dict"]
    for k, v in back.items():
        if k in sd:
            assert torch.equal(v, sd[k]), k
    # a user error: one line, exit code 2, no traceback
    assert main(["ckpt", "inspect", str(tmp_path / "missing.ckpt")]) == 2
    assert "does not exist" in capsys.readouterr().err
