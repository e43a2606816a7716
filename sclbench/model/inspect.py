"""What a checkpoint holds, without building a model: format, step, heads, variant, sizes, config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sclbench.model.checkpoint import (
    CONFIG_NAME,
    HEAD_PREFIXES,
    POS_KEY,
    TOKEN_TYPE_KEY,
    WEIGHTS_NAME,
    extract_state_dict,
    official_config,
    read_checkpoint,
    read_safetensors,
    rename_meter,
)
from sclbench.model.config import SCLConfig

GROUPS = {
    "text encoder": ("text_transformer.",),
    "vision encoder": ("vision_transformer.visual.",),
    "unused MAE decoder": ("vision_transformer.decoder", "vision_transformer.mask_token"),
    "fusion": ("cross_modal_", "token_type_embeddings."),
    "heads": tuple(HEAD_PREFIXES.values()) + ("language_proj.", "cl_temp"),
}


def inspect_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    info: dict[str, Any] = {"path": str(path)}
    if path.is_dir():
        cfg = SCLConfig.load(path / CONFIG_NAME)
        sd = read_safetensors(path / WEIGHTS_NAME)
        info.update(format="sclbench directory (config.json + model.safetensors)", config=cfg.to_dict())
        obj: dict[str, Any] = {}
    else:
        obj = read_checkpoint(path)
        sd, meter = rename_meter(extract_state_dict(obj, str(path)))
        if meter:
            info["layout"] = "METER (vit_model.* read as vision_transformer.*)"
        lightning = "pytorch-lightning_version" in obj
        info["format"] = (
            f"PyTorch Lightning {obj['pytorch-lightning_version']} checkpoint"
            if lightning
            else "plain state dict"
            if "state_dict" not in obj and "model" not in obj
            else "state dict export"
        )
        for key in ("epoch", "global_step"):
            if key in obj:
                info[key] = obj[key]
        info["optimizer_state"] = bool(obj.get("optimizer_states"))
        cfg_dict = official_config(obj) or obj.get("sclbench_config")
        if cfg_dict:
            keep = (
                "exp_name",
                "loss_names",
                "image_size",
                "max_steps",
                "learning_rate",
                "datasets",
                "batch_size",
                "per_gpu_batchsize",
                "mask_ratio",
                "mtm_ratio",
                "image_token_mask_ratio",
                "task",
                "preset",
                "heads",
            )
            info["config"] = {k: cfg_dict[k] for k in keep if k in cfg_dict}
    info["heads"] = [h for h, p in HEAD_PREFIXES.items() if any(k.startswith(p) for k in sd)]
    visual = "vision_transformer.visual."
    info["vision_variant"] = [n for n in ("visual_mask_token", "temporal_embed") if visual + n in sd]
    if POS_KEY in sd:
        rows = sd[POS_KEY].shape[-2]
        patch = (
            sd["vision_transformer.visual.conv1.weight"].shape[-1]
            if "vision_transformer.visual.conv1.weight" in sd
            else 16
        )
        info["image_size"] = int(round((rows - 1) ** 0.5)) * patch
    if TOKEN_TYPE_KEY in sd:
        info["token_types"] = int(sd[TOKEN_TYPE_KEY].shape[0])
    counts = {g: 0 for g in GROUPS}
    other = 0
    for k, v in sd.items():
        group = next((g for g, prefixes in GROUPS.items() if k.startswith(prefixes)), None)
        if group:
            counts[group] += v.numel()
        else:
            other += v.numel()
    if other:
        counts["other"] = other
    info["parameters"] = counts
    info["total_parameters"] = sum(counts.values())
    info["tensors"] = len(sd)
    return info
