"""The sclbench side of benchmarks/official_memory.py: one measured process.

Run by path (`python benchmarks/memory_workers/sclbench_worker.py SPEC_JSON`) with PYTHONPATH set to
the one sclbench tree being measured, so that sclbench comes from that tree only (this folder, first on
sys.path, holds nothing but the workers). Prints the stages as one JSON line.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from memory_step import make_batch, run_steps, status_mb

# The imports `sclbench finetune` makes before its first step (cli entry, verbs, job, task adapters,
# data pipeline, trainer); `_register()` imports every CLI group as the installed entry point does.
TRAINER_IMPORTS = (
    "sclbench.cli",
    "sclbench.cli.jobs",
    "sclbench.app.jobs",
    "sclbench.tasks",
    "sclbench.engine.trainer",
    "sclbench.data.transforms",
)


def sclbench_worker(spec: dict) -> dict:
    stages: dict[str, Any] = {"start": status_mb("VmRSS")}
    import torch

    stages["torch"] = status_mb("VmRSS")
    torch.set_num_threads(1)
    import importlib
    import types

    import torch.nn.functional as F

    from sclbench.engine.optim import build_optimizer
    from sclbench.model import SCLConfig
    from sclbench.model.factory import assemble

    if spec["path"] == "trainer":
        for name in TRAINER_IMPORTS:
            importlib.import_module(name)  # sclbench.cli registers every CLI group on import
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
    torch.manual_seed(0)
    overrides = {"image_size": spec["image_size"]}
    if spec["preset"] == "tiny":
        overrides = {}
    model, _ = assemble(SCLConfig.preset(spec["preset"], "vqa", **overrides))
    model.train()
    stages["model"] = status_mb("VmRSS")
    # The official VQA recipe's optimizer settings (values do not change memory).
    recipe = types.SimpleNamespace(lr=5e-6, weight_decay=0.01, lr_mult_head=50, lr_mult_cross_modal=10)
    optimizer = build_optimizer(model, recipe)
    stages["optimizer"] = status_mb("VmRSS")
    cfg = model.config
    batch = make_batch(spec["batch"], cfg.max_text_len, cfg.image_size, cfg.vocab_size, cfg.num_answers)

    def loss_fn():  # what sclbench.tasks.vqa.VQATask.loss computes
        out = model(batch["text_ids"], batch["text_masks"], batch["images"])
        logits = model.vqa_classifier(out.cls_feats)
        return F.binary_cross_entropy_with_logits(logits, batch["vqa_targets"]) * logits.shape[1]

    run_steps(stages, spec["steps"], loss_fn, optimizer, list(model.parameters()))
    stages["torch_version"] = torch.__version__
    return stages


if __name__ == "__main__":
    print(json.dumps(sclbench_worker(json.loads(sys.argv[1]))))
