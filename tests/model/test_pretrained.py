"""Encoder initialisation: tiny transformers CLIP / RoBERTa models load through the real path and
sclbench's encoders then compute exactly what the transformers models compute."""

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, RobertaConfig, RobertaForMaskedLM, RobertaModel

from sclbench.errors import CheckpointError
from sclbench.model import SCLConfig, SCLModel
from sclbench.model.hub import load_registry
from sclbench.model.pretrained import init_encoders

HF_LAYERS = 3  # the tiny CLIP has one block more than the sclbench model builds, as ViT-B/16 (12 vs 11)


def tiny_clip(act="quick_gelu", hidden=64):
    torch.manual_seed(1)
    cfg = CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=HF_LAYERS,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        hidden_act=act,
        layer_norm_eps=1e-5,
        projection_dim=16,
    )
    model = CLIPVisionModel(cfg).eval()
    with torch.no_grad():  # random, non-trivial LayerNorms and biases so a wrong mapping shows
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model


def tiny_roberta(cls=RobertaModel):
    torch.manual_seed(2)
    cfg = RobertaConfig(
        vocab_size=1000,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=64,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    return cls(cfg).eval()


def sclbench_model(**kw):
    torch.manual_seed(3)
    return SCLModel(SCLConfig.tiny("pretrain", **kw)).eval()


def vision_out(model, images):
    visual = model.vision_transformer.visual
    return model.vision_transformer(visual.embed(images).tokens)


def hf_vision_out(hf, images, layers):
    """What the official CLIP tower computes with its first `layers` blocks: ln_post over all tokens."""
    hidden = hf(pixel_values=images, output_hidden_states=True).hidden_states[layers]
    return getattr(hf, "vision_model", hf).post_layernorm(hidden)


def hf_to_openai(sd):
    """An independent transformers -> OpenAI CLIP renaming (the inverse direction of the converter)."""
    sd = {"vision_model." + k.removeprefix("vision_model."): v for k, v in sd.items()}
    out = {
        "visual.proj": torch.randn(64, 16),
        "positional_embedding": torch.randn(77, 32),
        "token_embedding.weight": torch.randn(10, 32),
        "logit_scale": torch.tensor(4.6),
    }
    e = "vision_model.embeddings."
    out["visual.class_embedding"] = sd[e + "class_embedding"]
    out["visual.conv1.weight"] = sd[e + "patch_embedding.weight"]
    out["visual.positional_embedding"] = sd[e + "position_embedding.weight"]
    for ours, theirs in (("ln_pre", "pre_layrnorm"), ("ln_post", "post_layernorm")):
        for p in ("weight", "bias"):
            out[f"visual.{ours}.{p}"] = sd[f"vision_model.{theirs}.{p}"]
    for i in range(HF_LAYERS):
        src, dst = f"vision_model.encoder.layers.{i}.", f"visual.transformer.resblocks.{i}."
        for p in ("weight", "bias"):
            out[dst + f"attn.in_proj_{p}"] = torch.cat([sd[src + f"self_attn.{x}_proj.{p}"] for x in "qkv"])
            out[dst + f"attn.out_proj.{p}"] = sd[src + f"self_attn.out_proj.{p}"]
            out[dst + f"ln_1.{p}"] = sd[src + f"layer_norm1.{p}"]
            out[dst + f"ln_2.{p}"] = sd[src + f"layer_norm2.{p}"]
            out[dst + f"mlp.c_fc.{p}"] = sd[src + f"mlp.fc1.{p}"]
            out[dst + f"mlp.c_proj.{p}"] = sd[src + f"mlp.fc2.{p}"]
    return out


@pytest.fixture
def images():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))


def test_clip_from_transformers_folder_equals_transformers_outputs(tmp_path, images):
    hf = tiny_clip()
    hf.save_pretrained(tmp_path / "clip")
    model = sclbench_model()
    report = init_encoders(model, tmp_path / "clip", None)
    with torch.no_grad():
        ours, ref = vision_out(model, images), hf_vision_out(hf, images, HF_LAYERS - 1)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    info = report.vision
    assert info.layout == "hf-clip" and report.text is None
    assert "vision_transformer.visual.visual_mask_token" in info.kept_init
    assert any("resblocks.2." in k and "block beyond" in why for k, why in info.dropped.items())
    assert "text: random init" in str(report)


def test_clip_from_openai_layout_file_equals_transformers_outputs(tmp_path, images):
    hf = tiny_clip()
    path = tmp_path / "ViT-tiny.pt"
    torch.save(hf_to_openai(hf.state_dict()), path)
    model = sclbench_model()
    report = init_encoders(model, path, None)
    with torch.no_grad():
        torch.testing.assert_close(
            vision_out(model, images), hf_vision_out(hf, images, HF_LAYERS - 1), atol=1e-5, rtol=0
        )
    assert report.vision.layout == "openai-clip"
    assert report.vision.dropped["visual.proj"].startswith("CLIP's image projection")
    assert "token_embedding.weight" in report.vision.dropped


def test_clip_openai_layout_in_a_torchscript_archive_and_a_safetensors_file(tmp_path, images):
    from safetensors.torch import save_file

    hf = tiny_clip()
    sd = hf_to_openai(hf.state_dict())
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "open_clip_model.safetensors"))

    class Holder(torch.nn.Module):  # a TorchScript module whose state dict has the OpenAI names
        def __init__(self):
            super().__init__()
            for k, v in sd.items():
                *path, leaf = k.split(".")
                mod = self
                for part in path:
                    if not hasattr(mod, part):
                        mod.add_module(part, torch.nn.Module())
                    mod = getattr(mod, part)
                mod.register_parameter(leaf, torch.nn.Parameter(v.clone()))

        def forward(self, x):
            return x

    torch.jit.save(torch.jit.script(Holder()), str(tmp_path / "ViT-B-16.pt"))
    ref = hf_vision_out(hf, images, HF_LAYERS - 1)
    for source in (tmp_path / "ViT-B-16.pt", tmp_path):  # the folder: found by its open_clip file name
        model = sclbench_model()
        init_encoders(model, source, None)
        with torch.no_grad():
            torch.testing.assert_close(vision_out(model, images), ref, atol=1e-5, rtol=0)


def test_position_table_resized_to_the_model_resolution(tmp_path):
    tiny_clip().save_pretrained(tmp_path / "clip")
    model = sclbench_model(image_size=48)
    info = init_encoders(model, tmp_path / "clip", None).vision
    assert info.adapted and "[17, 64] -> [37, 64]" in info.adapted[0]
    assert vision_out(model, torch.randn(1, 3, 48, 48)).shape == (1, 37, 64)


def test_roberta_from_transformers_folder_equals_transformers_outputs(tmp_path):
    hf = tiny_roberta()
    hf.save_pretrained(tmp_path / "roberta")
    model = sclbench_model()
    vision_before = model.vision_transformer.visual.conv1.weight.clone()
    report = init_encoders(model, None, tmp_path / "roberta")
    ids = torch.randint(3, 1000, (2, 12), generator=torch.Generator().manual_seed(5))
    ids[:, 0] = 0
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    ids[1, 8:] = 1
    with torch.no_grad():
        ours = model.text_transformer(input_ids=ids, attention_mask=mask).last_hidden_state
        ref = hf(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(ours[mask.bool()], ref[mask.bool()], atol=1e-5, rtol=0)
    assert torch.equal(model.vision_transformer.visual.conv1.weight, vision_before)  # untouched
    assert report.text.layout == "hf-roberta" and report.vision is None
    assert any(k.startswith("pooler.") for k in report.text.dropped)


def test_roberta_masked_lm_state_dict_file(tmp_path):
    hf = tiny_roberta(RobertaForMaskedLM)
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    model = sclbench_model()
    info = init_encoders(model, None, tmp_path / "pytorch_model.bin").text
    assert torch.equal(
        model.text_transformer.embeddings.word_embeddings.weight, hf.roberta.embeddings.word_embeddings.weight
    )
    assert any(k.startswith("lm_head.") and "MLM head" in why for k, why in info.dropped.items())


def test_offline_hub_id_names_the_cache(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="Hugging Face cache"):
        init_encoders(sclbench_model(), "sclbench-test/no-such-clip", None)


def test_wrong_size_wrong_activation_and_wrong_files_are_clear_errors(tmp_path):
    tiny_clip(hidden=32).save_pretrained(tmp_path / "small")
    with pytest.raises(
        CheckpointError, match=r"class_embedding has shape \[32\] in the file but \[64\] in this tiny model"
    ):
        init_encoders(sclbench_model(), tmp_path / "small", None)
    tiny_clip(act="gelu").save_pretrained(tmp_path / "gelu")
    with pytest.raises(CheckpointError, match="QuickGELU"):
        init_encoders(sclbench_model(), tmp_path / "gelu", None)
    tiny_roberta().save_pretrained(tmp_path / "roberta")
    with pytest.raises(CheckpointError, match="holds no CLIP ViT"):
        init_encoders(sclbench_model(), tmp_path / "roberta" / "model.safetensors", None)
    with pytest.raises(CheckpointError, match="no such file"):
        init_encoders(sclbench_model(), None, tmp_path / "missing.bin")
    shallow = tiny_clip().state_dict()
    shallow = {k: v for k, v in shallow.items() if ".layers.1." not in k}
    torch.save(shallow, tmp_path / "shallow.pt")
    with pytest.raises(CheckpointError, match="lacks .*resblocks\\.1\\."):
        init_encoders(sclbench_model(), tmp_path / "shallow.pt", None)
    nan = tiny_clip().state_dict()
    nan[next(k for k in nan if k.endswith("pre_layrnorm.weight"))][0] = float("nan")
    torch.save(nan, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="ln_pre.weight holds NaN"):
        init_encoders(sclbench_model(), tmp_path / "nan.pt", None)


def test_registry_names_the_encoder_inits():
    registry = load_registry()
    for name, encoder in (("clip-vit-b16-openai", "vision"), ("clip-vit-b16-hf", "vision"), ("roberta-base", "text")):
        assert registry[name]["kind"] == "encoder-init" and registry[name]["encoder"] == encoder
    with pytest.raises(CheckpointError, match="initialises the vision encoder"):
        init_encoders(sclbench_model(), None, "clip-vit-b16-hf")


def test_fresh_model_from_the_factory_starts_from_both_encoders(tmp_path):
    """The lead's factory path: a tiny fresh model whose encoders come from transformers folders."""
    from sclbench.common.tokenizer import load_tokenizer, train_tokenizer
    from sclbench.model.factory import create_model

    train_tokenizer([f"a photo of {i} red cats and dogs" for i in range(200)], tmp_path / "tok", vocab_size=300)
    tok = load_tokenizer(tmp_path / "tok")
    hf_clip, hf_text = tiny_clip(), tiny_roberta()
    hf_clip.save_pretrained(tmp_path / "clip")
    cfg = hf_text.config
    cfg.vocab_size = len(tok)
    RobertaModel(cfg).save_pretrained(tmp_path / "roberta")
    loaded = create_model(
        None,
        task="pretrain",
        preset="tiny",
        tokenizer=str(tmp_path / "tok"),
        encoder_init={"vision": str(tmp_path / "clip"), "text": str(tmp_path / "roberta")},
    )
    assert "vision: random init" not in loaded.report and "text: random init" not in loaded.report
    assert "hf-clip" in loaded.report and "hf-roberta" in loaded.report
    assert loaded.model.text_transformer.embeddings.word_embeddings.weight.shape[0] == len(tok)
    torch.testing.assert_close(
        loaded.model.vision_transformer.visual.conv1.weight,
        getattr(hf_clip, "vision_model", hf_clip).embeddings.patch_embedding.weight,
    )
