"""Optimizer groups against the reference table (scl-official.md §5.2), on the full-size model (meta)."""

import pytest
import torch

from sclbench.engine.optim import build_optimizer, param_groups
from sclbench.engine.trainer import TrainConfig
from sclbench.model import SCLConfig, SCLModel

# (task, lr, lr_mult_head, lr_mult_cross_modal) of the official configs (§5.1).
OFFICIAL = {"vqa": (5e-6, 50, 10), "pretrain_video": (2e-5, 5, 5), "f30k": (5e-6, 10, 10)}


def meta_model(task: str) -> SCLModel:
    with torch.device("meta"):
        return SCLModel(SCLConfig.base(task))


def lookup(task: str, fixed: bool = False) -> tuple[SCLModel, dict[str, tuple[str, float, float]]]:
    """name -> (group, lr, weight decay)."""
    model = meta_model(task)
    lr, head, cross = OFFICIAL[task]
    groups = param_groups(model, lr, 0.01, head, cross, fixed_groups=fixed)
    table = {n: (g["name"], g["lr"], g["weight_decay"]) for g in groups for n in g["param_names"]}
    return model, table


def check(table, name, group, lr, wd):
    got_group, got_lr, got_wd = table[name]
    assert got_group == group, name
    assert got_lr == pytest.approx(lr, rel=1e-12), name
    assert got_wd == wd, name


def test_vqa_official_groups():
    model, t = lookup("vqa")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sorted(t) == sorted(trainable)  # every trainable parameter in exactly one group
    base, cross, head = 5e-6, 5e-5, 2.5e-4  # effective lrs of the reference table
    assert sorted({lr for _, lr, _ in t.values()}) == pytest.approx([base, cross, head])
    # CLIP LayerNorms (`ln_` not matched), embeddings: decayed at base lr (official quirk).
    check(t, "vision_transformer.visual.ln_pre.weight", "decay", base, 0.01)
    check(t, "vision_transformer.visual.transformer.resblocks.3.ln_1.weight", "decay", base, 0.01)
    check(t, "vision_transformer.visual.class_embedding", "decay", base, 0.01)
    check(t, "vision_transformer.visual.positional_embedding", "decay", base, 0.01)
    check(t, "vision_transformer.visual.visual_mask_token", "decay", base, 0.01)
    check(t, "vision_transformer.visual.ln_pre.bias", "no_decay", base, 0.0)
    check(t, "text_transformer.encoder.layer.0.attention.output.LayerNorm.weight", "no_decay", base, 0.0)
    check(t, "text_transformer.embeddings.word_embeddings.weight", "decay", base, 0.01)
    check(t, "token_type_embeddings.weight", "decay", base, 0.01)
    # Cross-modal stack.
    check(t, "cross_modal_text_layers.0.output.LayerNorm.weight", "no_decay_cross_modal", cross, 0.0)
    check(t, "cross_modal_image_layers.5.crossattention.self.query.weight", "decay_cross_modal", cross, 0.01)
    check(t, "cross_modal_image_pooler.dense.weight", "decay_cross_modal", cross, 0.01)
    check(t, "cross_modal_text_transform.bias", "no_decay_cross_modal", cross, 0.0)
    # Head: the LayerNorm inside the Sequential (`.1.weight`) is decayed (official quirk).
    check(t, "vqa_classifier.1.weight", "decay_head", head, 0.01)
    check(t, "vqa_classifier.0.weight", "decay_head", head, 0.01)
    check(t, "vqa_classifier.1.bias", "no_decay_head", head, 0.0)


def test_pretrain_video_official_groups():
    _, t = lookup("pretrain_video")
    base, head = 2e-5, 1e-4
    check(t, "cl_temp", "decay", base, 0.01)
    check(t, "vision_transformer.visual.temporal_embed", "decay", base, 0.01)
    check(t, "vision_proj.1.weight", "decay", base, 0.01)  # contrastive projections: base lr
    check(t, "language_proj.0.weight", "decay", base, 0.01)
    check(t, "mlm_score.bias", "no_decay_head", head, 0.0)
    check(t, "mlm_score.transform.LayerNorm.weight", "no_decay_head", head, 0.0)
    check(t, "itm_score.fc.weight", "decay_head", head, 0.01)
    check(t, "cross_modal_image_layers.0.output.dense.weight", "decay_cross_modal", 1e-4, 0.01)


def test_f30k_frozen_itm_and_rank_output():
    _, t = lookup("f30k")
    assert not any(n.startswith("itm_score") for n in t)  # frozen (requires_grad False): skipped
    check(t, "rank_output.weight", "decay", 5e-6, 0.01)
    check(t, "rank_output.bias", "no_decay", 5e-6, 0.0)


def test_fixed_groups():
    _, t = lookup("pretrain_video", fixed=True)
    check(t, "vision_transformer.visual.ln_pre.weight", "no_decay", 2e-5, 0.0)
    check(t, "vision_transformer.visual.class_embedding", "no_decay", 2e-5, 0.0)
    check(t, "cl_temp", "no_decay", 2e-5, 0.0)
    check(t, "vision_transformer.visual.positional_embedding", "decay", 2e-5, 0.01)  # 2-D: still decayed
    check(t, "vision_proj.1.weight", "no_decay_head", 1e-4, 0.0)
    check(t, "language_proj.0.weight", "decay_head", 1e-4, 0.01)
    _, t = lookup("f30k", fixed=True)
    check(t, "rank_output.weight", "decay_head", 5e-5, 0.01)


def test_build_optimizer_adamw_settings():
    model = meta_model("vqa")
    opt = build_optimizer(model, TrainConfig(lr=5e-6, lr_mult_head=50, lr_mult_cross_modal=10))
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["betas"] == (0.9, 0.98) and opt.defaults["eps"] == 1e-8
    assert [g["name"] for g in opt.param_groups] == [
        "decay",
        "no_decay",
        "decay_head",
        "no_decay_head",
        "decay_cross_modal",
        "no_decay_cross_modal",
    ]
