"""Checkpoints: official SCL / METER `.ckpt` import with a key report, our own format, export back.

Official files are complete PyTorch-Lightning checkpoints (weights under `state_dict`, or `model` for
plain exports; no key prefix; 4.4 GB with optimizer state), read safely by `sclbench.model.readers`
(no pickled code runs; memory-mapped). `load_into` maps their weights onto a model with a key report
(loaded / missing / unexpected, each benign key explained), refuses foreign files, wrong shapes, wrong
dtypes (integer or complex values where float weights belong) and NaN/Inf values with one message
naming the file and the tensor.

Our own format is a directory: `config.json` (SCLConfig) + `model.safetensors` (+ tokenizer files
+ `sclbench.json` with provenance), written by `save_pretrained`. Models are built (and these files read
into them) by `sclbench.model.factory` only: `load_official`, `load_pretrained`, `create_model`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sclbench.common.io import atomic_write
from sclbench.errors import CheckpointError
from sclbench.model.config import SCLConfig
from sclbench.model.readers import (  # noqa: F401  (re-exported: the readers' public home was this module)
    _first_line,
    extract_state_dict,
    official_config,
    read_checkpoint,
    read_safetensors,
    sniff_format,
)
from sclbench.model.vision import resize_position_table

if TYPE_CHECKING:  # annotations only: the network module imports this one (save_pretrained)
    from sclbench.model.scl import SCLModel

POS_KEY = "vision_transformer.visual.positional_embedding"
TOKEN_TYPE_KEY = "token_type_embeddings.weight"

# Keys of official checkpoints that this implementation deliberately does not build, and why.
BENIGN_UNEXPECTED: list[tuple[str, str]] = [
    (r"^text_transformer\.embeddings\.position_ids$", "a buffer in transformers 4.6; recomputed here"),
    (r"^text_transformer\.pooler\.", "RoBERTa pooler: never used by SCL"),
    (r"^vision_transformer\.(decoder_|mask_token$)", "MAE decoder: never used by any SCL objective"),
    (r"^vision_transformer\.visual\.visual_mask_token$", "MLTC mask token: this model variant has none"),
    (r"^vision_transformer\.visual\.temporal_embed$", "video temporal table: this image model has none"),
    (r"^(mlm_score|itm_score|vision_proj|language_proj|cl_temp|rank_output)\b", "head not used by this task"),
    (r"^(vqa_classifier|nlvr2_classifier|snli_classifier)\.", "head of another task"),
    (
        r"^vision_transformer\.(positional_embedding$|ln_final\.)",
        "METER's CLIP: the unused CLIP text tower's position table and final LayerNorm",
    ),
]
BENIGN_MISSING: list[tuple[str, str]] = [
    (r"^(vqa_classifier|nlvr2_classifier)\.", "task head: freshly initialised for fine-tuning"),
    (r"^rank_output\.", "initialised from the ITM 'match' row"),
    (r"^vision_transformer\.visual\.temporal_embed$", "image checkpoint: temporal table freshly initialised"),
    (
        r"^vision_transformer\.visual\.visual_mask_token$",
        "video or METER checkpoint: MLTC mask token freshly initialised (only MLTC pre-training uses it)",
    ),
    (r"^(mlm_score|itm_score|vision_proj|language_proj|cl_temp)\b", "head absent from the checkpoint"),
]
# Below this fraction of parameters (by element count) found in the file, refuse: it is not an SCL
# checkpoint for this model, or its keys carry a prefix we do not know.
MIN_LOADED_FRACTION = 0.5


@dataclass
class KeyReport:
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)  # resized / expanded / derived on the way in
    loaded_fraction: float = 0.0

    def explain(self, key: str, table: list[tuple[str, str]]) -> str | None:
        return next((why for pattern, why in table if re.search(pattern, key)), None)

    def unexplained(self) -> tuple[list[str], list[str]]:
        miss = [k for k in self.missing if not self.explain(k, BENIGN_MISSING)]
        unexp = [k for k in self.unexpected if not self.explain(k, BENIGN_UNEXPECTED)]
        return miss, unexp

    def summary(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors ({self.loaded_fraction:.1%} of parameters)"]
        for title, keys, table in (
            ("missing", self.missing, BENIGN_MISSING),
            ("unexpected", self.unexpected, BENIGN_UNEXPECTED),
        ):
            groups: dict[str, list[str]] = {}
            for k in keys:
                groups.setdefault(self.explain(k, table) or "NOT EXPLAINED", []).append(k)
            for why, ks in groups.items():
                lines.append(f"{title}: {len(ks)} ({why}), e.g. {ks[0]}")
        lines += [f"adapted: {a}" for a in self.adapted]
        return "\n".join(lines)


# ---- mapping official weights onto a model --------------------------------------------------------
def _strip_prefix(sd: dict[str, torch.Tensor], model_keys: set[str]) -> tuple[dict[str, torch.Tensor], str]:
    """Undo a wrapper prefix (`module.`, `model.`) when that is what stops the keys from matching."""
    if len(model_keys & sd.keys()) > 0.5 * len(model_keys):
        return sd, ""
    for prefix in ("module.", "model.", "module.model.", "_orig_mod."):
        stripped = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
        if len(model_keys & stripped.keys()) > 0.5 * len(model_keys):
            return stripped, prefix
    return sd, ""


def adapt_state_dict(sd: dict[str, torch.Tensor], model: SCLModel, report: KeyReport) -> dict[str, torch.Tensor]:
    """Fit official weights to this model: position table resolution, NLVR2 token-type rows."""
    config = model.config
    sd = dict(sd)
    if POS_KEY in sd:
        before = tuple(sd[POS_KEY].shape)
        table = resize_position_table(sd[POS_KEY], config.image_size, config.patch_size)
        sd[POS_KEY] = table.reshape(-1, table.shape[-1])
        if tuple(sd[POS_KEY].shape) != before:
            report.adapted.append(f"{POS_KEY}: {list(before)} -> {list(sd[POS_KEY].shape)} (bicubic)")
    rows = config.num_token_types
    if TOKEN_TYPE_KEY in sd and sd[TOKEN_TYPE_KEY].shape[0] == 2 and rows == 3:
        # NLVR2: the second image gets its own token type, initialised from the first image's.
        sd[TOKEN_TYPE_KEY] = torch.cat([sd[TOKEN_TYPE_KEY], sd[TOKEN_TYPE_KEY][1:2]])
        report.adapted.append(f"{TOKEN_TYPE_KEY}: 2 -> 3 rows (row 2 := row 1)")
    return sd


HEAD_PREFIXES = {
    "mlm": "mlm_score.",
    "itm": "itm_score.",
    "con": "vision_proj.",
    "vqa": "vqa_classifier.",
    "nlvr2": "nlvr2_classifier.",
    "rank": "rank_output.",
}
WORD_KEY = "text_transformer.embeddings.word_embeddings.weight"


def describe_weights(sd: dict[str, torch.Tensor]) -> str:
    """What a state dict holds, in words: size class, heads (with the answer count), resolution."""
    parts = []
    if WORD_KEY in sd and sd[WORD_KEY].dim() == 2:
        hidden = sd[WORD_KEY].shape[1]
        size = {768: "base", 64: "tiny"}.get(hidden)
        parts.append(f"{size + '-size' if size else 'a'} model (hidden {hidden}, vocabulary {sd[WORD_KEY].shape[0]})")
    heads = [h for h, prefix in HEAD_PREFIXES.items() if any(k.startswith(prefix) for k in sd)]
    if "vqa_classifier.3.weight" in sd:
        heads[heads.index("vqa")] = f"vqa ({sd['vqa_classifier.3.weight'].shape[0]} answers)"
    parts.append(f"heads {', '.join(heads) or 'none'}")
    if POS_KEY in sd and sd[POS_KEY].dim() >= 2 and "vision_transformer.visual.conv1.weight" in sd:
        grid = int(round((sd[POS_KEY].shape[-2] - 1) ** 0.5))
        parts.append(f"{grid * sd['vision_transformer.visual.conv1.weight'].shape[-1]}px")
    return ", ".join(parts)


def describe_model(config: SCLConfig) -> str:
    heads = [f"vqa ({config.num_answers} answers)" if h == "vqa" else h for h in config.heads]
    return (
        f"the {config.preset} {config.task} model (hidden {config.hidden_size}, vocabulary {config.vocab_size}, "
        f"heads {', '.join(heads)}, {config.image_size}px)"
    )


def check_finite(sd: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights with NaN/Inf values: they would train or evaluate silently into garbage."""
    for key, value in sd.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise CheckpointError(
                f"{source}: tensor {key} holds {bad} NaN/Inf value(s) of {value.numel()}; the "
                "checkpoint is corrupt (saved from a diverged run?): use an earlier checkpoint"
            )


def check_dtypes(sd: dict[str, torch.Tensor], own: dict[str, torch.Tensor], source: str) -> None:
    """Refuse tensors whose dtype cannot stand for the model's: integer, bool or complex values where
    float weights belong (and float or complex values in an integer buffer). `load_state_dict` would
    cast them silently (an int8 tensor of 0s and 1s evaluates as weights). Float weights of another
    precision (float16, bfloat16, float64) are legitimate and are cast, as before."""
    for key, value in sd.items():
        if key not in own:
            continue
        want = own[key]
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{source}: entry {key} is a {type(value).__name__} where the model holds a tensor "
                "(not a state dict of this model)"
            )
        if want.is_floating_point():
            fits = value.is_floating_point()
        elif want.is_complex():
            fits = value.is_complex()
        elif want.dtype == torch.bool:
            fits = value.dtype == torch.bool
        else:  # an integer buffer (ids, counters)
            fits = not (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool)
        if not fits:
            raise CheckpointError(
                f"{source}: tensor {key} is {_dtype_name(value.dtype)} where the model holds "
                f"{_dtype_name(want.dtype)} values; refused rather than cast (the file is not "
                "a checkpoint of this model's weights, or was converted wrongly)"
            )


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# METER (zdou0830/METER) names its CLIP tower `vit_model`; SCL, built on METER, calls it `vision_transformer`.
METER_RENAMES = [(r"^vit_model\.", "vision_transformer.")]


def rename_meter(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], bool]:
    """METER's key layout -> SCL's (only the vision tower's prefix differs)."""
    if not any(k.startswith("vit_model.visual.") for k in sd):
        return sd, False
    out = {}
    for key, value in sd.items():
        for pattern, repl in METER_RENAMES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out, True


def load_into(
    model: SCLModel, sd: dict[str, torch.Tensor], source: str = "checkpoint", require_heads: tuple[str, ...] = ()
) -> KeyReport:
    """Load official-named weights into `model` with a full key report; refuse foreign files.

    require_heads: heads (`vqa`, `nlvr2`, ...) the file must provide; evaluation passes its task head,
    so that a checkpoint of another task is refused instead of scored with a random head.
    """
    report = KeyReport()
    own = model.state_dict()
    sd, prefix = _strip_prefix(sd, set(own))
    if prefix:
        report.adapted.append(f"stripped key prefix {prefix!r}")
    sd, meter = rename_meter(sd)
    if meter:
        report.adapted.append("METER layout: vit_model.* -> vision_transformer.*")
    check_dtypes(sd, own, source)  # before adapting: resizing an integer position table would fail obscurely
    sd = adapt_state_dict(sd, model, report)
    loadable, mismatched = {}, []
    for key, value in sd.items():
        if key not in own:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(own[key].shape):
            mismatched.append(f"{key}: file {list(value.shape)} vs model {list(own[key].shape)}")
        else:
            loadable[key] = value
    if mismatched:
        raise CheckpointError(
            f"{source} does not fit this model: {len(mismatched)} shape mismatch(es), e.g. {mismatched[0]}. "
            f"The file holds {describe_weights(sd)}; asked for {describe_model(model.config)}. Use a checkpoint "
            "of this preset/task (base vs tiny, vqa answer count), or pick the task/preset the file was made for."
        )
    check_finite(loadable, source)
    report.loaded = sorted(loadable)
    report.missing = sorted(set(own) - set(loadable))
    absent = [h for h in require_heads if any(k.startswith(HEAD_PREFIXES[h]) for k in report.missing)]
    if absent:
        raise CheckpointError(
            f"{source} has no trained {', '.join(absent)} head (the file holds {describe_weights(sd)}): evaluating "
            f"needs a checkpoint fine-tuned for this task; fine-tune it first (sclbench finetune ... --ckpt {source})"
        )
    total = sum(t.numel() for t in own.values())
    report.loaded_fraction = sum(own[k].numel() for k in loadable) / max(total, 1)
    if report.loaded_fraction < MIN_LOADED_FRACTION:
        sample = ", ".join(list(sd)[:3])
        raise CheckpointError(
            f"{source} is not an SCL checkpoint for this model: only {report.loaded_fraction:.1%} of the "
            f"parameters of {describe_model(model.config)} were found (the file holds {describe_weights(sd)}; "
            f"first keys: {sample})."
        )
    model.load_state_dict(loadable, strict=False)
    if hasattr(model, "rank_output") and "rank_output.weight" not in loadable:
        if "itm_score.fc.weight" in loadable:
            model.init_rank_output_from_itm()
            report.adapted.append("rank_output := itm_score.fc row 1 (the ITM 'match' logit)")
    return report


def to_official_state_dict(model: SCLModel) -> dict[str, torch.Tensor]:
    """Our weights under the official names (identical by construction), plus the transformers-4.6
    `position_ids` buffer so that the official loader sees a complete text encoder."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    n = model.config.max_position_embeddings
    sd["text_transformer.embeddings.position_ids"] = torch.arange(n).unsqueeze(0)
    return sd


def export_official(model: SCLModel, path: str | Path) -> Path:
    """Write a `.ckpt` the official code loads (`{"state_dict": ...}` + our config for reference)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"state_dict": to_official_state_dict(model), "sclbench_config": model.config.to_dict()}
    atomic_write(path, lambda fh: torch.save(payload, fh))  # a failed write keeps the previous file
    return path


# ---- our own format ---------------------------------------------------------------------------------
WEIGHTS_NAME, CONFIG_NAME, META_NAME = "model.safetensors", "config.json", "sclbench.json"


def save_pretrained(
    model: SCLModel, directory: str | Path, tokenizer: Any = None, meta: dict[str, Any] | None = None
) -> Path:
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.config.save(directory / CONFIG_NAME)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = directory / (WEIGHTS_NAME + ".tmp")
    save_file(state, str(tmp), metadata={"format": "pt", "producer": "sclbench"})
    tmp.replace(directory / WEIGHTS_NAME)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(directory))
    if meta:
        atomic_write(directory / META_NAME, json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return directory
