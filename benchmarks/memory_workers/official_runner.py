"""The official side of benchmarks/official_memory.py: one measured process of the official SCL code.

Our text; it imports the official modules, which are never part of this repository. Run by path with the
official interpreter and PYTHONPATH set to benchmarks/official_shims and the official checkout:

    python benchmarks/memory_workers/official_runner.py prepare ARCHIVE   # write the stand-in CLIP archive
    python benchmarks/memory_workers/official_runner.py run SPEC_JSON     # measure; prints one JSON line
"""

from __future__ import annotations

import copy
import json
import sys
import types

from memory_step import make_batch, run_steps, status_mb


def clip_archive_shapes(
    width=768, layers=12, patch=16, grid=14, text_width=512, text_layers=12, vocab=49408, context=77, embed=512
):
    """Key names and shapes of OpenAI's ViT-B/16 archive (the official build_model reads them)."""
    shapes = {
        "visual.class_embedding": (width,),
        "visual.positional_embedding": (grid * grid + 1, width),
        "visual.proj": (width, embed),
        "visual.conv1.weight": (width, 3, patch, patch),
        "visual.ln_pre.weight": (width,),
        "visual.ln_pre.bias": (width,),
        "visual.ln_post.weight": (width,),
        "visual.ln_post.bias": (width,),
        "positional_embedding": (context, text_width),
        "text_projection": (text_width, embed),
        "logit_scale": (),
        "token_embedding.weight": (vocab, text_width),
        "ln_final.weight": (text_width,),
        "ln_final.bias": (text_width,),
    }
    for prefix, w, n in (("visual.transformer", width, layers), ("transformer", text_width, text_layers)):
        for i in range(n):
            b = f"{prefix}.resblocks.{i}."
            for name, shape in (
                ("attn.in_proj_weight", (3 * w, w)),
                ("attn.in_proj_bias", (3 * w,)),
                ("attn.out_proj.weight", (w, w)),
                ("attn.out_proj.bias", (w,)),
                ("ln_1.weight", (w,)),
                ("ln_1.bias", (w,)),
                ("ln_2.weight", (w,)),
                ("ln_2.bias", (w,)),
                ("mlp.c_fc.weight", (4 * w, w)),
                ("mlp.c_fc.bias", (4 * w,)),
                ("mlp.c_proj.weight", (w, 4 * w)),
                ("mlp.c_proj.bias", (w,)),
            ):
                shapes[b + name] = shape
    return shapes


def write_clip_archive(path):
    """A TorchScript module whose state_dict has the archive's keys (random fp16 values, as OpenAI
    ships fp16 weights); run in its own process so that it costs the measured runs nothing."""
    import torch
    from torch import nn

    class Holder(nn.Identity):
        pass

    root, g = Holder(), torch.Generator().manual_seed(0)
    for name, shape in clip_archive_shapes().items():
        *parents, leaf = name.split(".")
        mod = root
        for p in parents:
            if not hasattr(mod, p):
                mod.add_module(p, Holder())
            mod = getattr(mod, p)
        value = (torch.randn(shape, generator=g) * 0.02).half()
        mod.register_parameter(leaf, nn.Parameter(value, requires_grad=False))
    torch.jit.save(torch.jit.script(root), path)


def official_worker(spec):
    stages = {"start": status_mb("VmRSS")}
    import torch

    stages["torch"] = status_mb("VmRSS")
    torch.set_num_threads(1)
    import pytorch_lightning  # noqa: F401
    from scl.config import config_dict
    from scl.modules import objectives, scl_module, scl_utils
    from transformers import RobertaConfig

    if spec["path"] == "trainer":  # what the official run.py imports besides the model
        from pytorch_lightning.plugins.environments import ClusterEnvironment  # noqa: F401
        from pytorch_lightning.plugins.training_type import DDPPlugin  # noqa: F401
        from scl.datamodules.multitask_datamodule import MTDataModule  # noqa: F401
    stages["imports"] = status_mb("VmRSS")
    stages["modules"] = len(sys.modules)
    stages["heavy_modules"] = sorted(
        m
        for m in (
            "transformers.modeling_utils",
            "torchvision",
            "torch._dynamo",
            "timm",
            "pandas",
            "pycocotools",
            "scipy",
            "rich",
        )
        if m in sys.modules
    )
    # roberta-base's sizes in place of the hard-coded cluster path of its weights.
    sizes = RobertaConfig(
        vocab_size=50265,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=514,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    scl_module.RobertaModel.from_pretrained = classmethod(lambda cls, *a, **k: cls(sizes).eval())
    config = copy.deepcopy(config_dict["vqa"])
    config.update(image_size=spec["image_size"], load_path="", test_only=False, vit_path=spec["archive"])
    torch.manual_seed(0)
    model = scl_module.SCLTransformer(config)
    model.train()
    model.log = lambda *a, **k: None  # compute_vqa logs through a Lightning trainer; there is none
    model.current_tasks = ["vqa"]
    stages["model"] = status_mb("VmRSS")
    # set_schedule reads the step budget from the trainer; only its optimizer is used here.
    model.trainer = types.SimpleNamespace(max_steps=1000)
    (optimizer,), _ = scl_utils.set_schedule(model)
    stages["optimizer"] = status_mb("VmRSS")
    batch = make_batch(
        spec["batch"], config["max_text_len"], spec["image_size"], config["vocab_size"], config["vqav2_label_size"]
    )
    official_batch = {
        "text_ids": batch["text_ids"],
        "text_labels": torch.full_like(batch["text_ids"], -100),
        "text_masks": batch["text_masks"],
        "image": [batch["images"]],
        "vqa_labels": batch["vqa_labels"],
        "vqa_scores": batch["vqa_scores"],
    }
    loss_fn = lambda: objectives.compute_vqa(model, official_batch)["vqa_loss"]  # noqa: E731
    run_steps(stages, spec["steps"], loss_fn, optimizer, list(model.parameters()))
    stages["torch_version"] = torch.__version__
    return stages


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        write_clip_archive(sys.argv[2])
    else:
        print(json.dumps(official_worker(json.loads(sys.argv[2]))))
