"""The one door to a ready model: a checkpoint name, path or preset in -> model + tokenizer + key report out.

Like open_clip's `create_model` or timm's `build_model_with_cfg`, every verb (finetune, eval, pretrain,
predict, explain, ckpt convert) and the demo builds its model here, in four steps:

1. resolve: a registered name (checkpoints.yaml, via the hub) or a local path, or nothing (a preset);
2. config: the checkpoint's own (`config.json` of an sclbench directory), the official sizes for an
   official `.ckpt` (temporal embedding detected from its keys), or the preset; then the task's heads
   and the card's `model.*` entries on top;
3. weights: loaded with the key report (loaded / missing / unexpected, benign keys explained);
4. tokenizer: the one that travels with the weights — saved beside them in an sclbench directory, the
   one the config names for an official checkpoint (`roberta-base`), or an explicit `tokenizer=`.
   It is never guessed from a data folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sclbench.errors import CheckpointError, ConfigError
from sclbench.model.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    KeyReport,
    check_dtypes,
    check_finite,
    describe_model,
    describe_weights,
    load_into,
)
from sclbench.model.config import SCLConfig
from sclbench.model.hub import ResolvedCheckpoint, resolve
from sclbench.model.readers import extract_state_dict, read_checkpoint, read_safetensors
from sclbench.model.scl import SCLModel

TOKENIZER_FILES = ("tokenizer.json", "vocab.json")
# Present only in video-pretrained (CVPR v1) official checkpoints: the model then keeps the table.
TEMPORAL_KEY = "vision_transformer.visual.temporal_embed"


@dataclass
class LoadedModel:
    """What `create_model` returns. `zero_shot`: a pre-trained checkpoint evaluated on retrieval
    without fine-tuning (its rank head was set from the ITM head). `init` says where every weight came
    from, in words (recorded in logs and run records)."""

    model: SCLModel
    tokenizer: Any
    checkpoint: ResolvedCheckpoint | None
    zero_shot: bool = False
    report: str = ""
    init: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


def assemble(
    config: SCLConfig,
    state_dict: dict[str, Any] | None = None,
    source: str = "checkpoint",
    require_heads: tuple[str, ...] = (),
) -> tuple[SCLModel, Any]:
    """The one place a model is constructed: `SCLModel(config)`, then (when given) its weights, loaded
    with the key report. Every path (create_model, load_official / load_pretrained behind `SCLModel.from_*`,
    benchmarks) comes through here."""
    model = SCLModel(config)
    report = load_into(model, state_dict, source, require_heads=require_heads) if state_dict is not None else None
    return model, report


def official_base(state_dict: dict[str, Any], task: str, preset: str = "base") -> SCLConfig:
    """The config of an official file, which holds none: the preset's sizes for `task`, with the temporal
    table when the file has one."""
    config = SCLConfig.preset(preset, task)
    if TEMPORAL_KEY in state_dict:
        config.use_temporal_embed = True
    return config


def configure(config: SCLConfig, task: str, model_overrides: dict[str, Any] | None = None) -> SCLConfig:
    """`config` with the heads of `task` and the card's `model.*` entries. The official resolutions
    in the cards are for the official sizes: the tiny preset keeps its own."""
    overrides = dict(model_overrides or {})
    if config.preset != "base":
        overrides.pop("image_size", None)
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(SCLConfig)})
    if unknown:
        raise ConfigError(
            f"unknown model setting(s) {', '.join('model.' + u for u in unknown)} in the card or "
            "overrides; see sclbench.model.SCLConfig for the valid names"
        )
    return config.for_task(task, **overrides)


def load_tokenizer_for(config: SCLConfig, ckpt_dir: Path | None, explicit: str | None) -> Any:
    """The tokenizer that travels with the weights (see the module docstring)."""
    from sclbench.common.tokenizer import load_tokenizer

    if explicit:
        return load_tokenizer(explicit)
    if ckpt_dir is not None and any((ckpt_dir / f).is_file() for f in TOKENIZER_FILES):
        return load_tokenizer(ckpt_dir)
    if config.tokenizer:
        return load_tokenizer(config.tokenizer)
    where = f"{ckpt_dir} holds no tokenizer files" if ckpt_dir else f"the {config.preset} preset names no tokenizer"
    raise CheckpointError(
        f"no tokenizer for this model: {where}. Pass --tokenizer DIR (a folder saved with "
        "tokenizer.save_pretrained; `sclbench data synth OUT` writes one to OUT/tokenizer)"
    )


def fit_vocab(config: SCLConfig, tokenizer: Any) -> SCLConfig:
    """A fresh model takes its vocabulary size and special ids from its tokenizer."""
    if len(tokenizer) != config.vocab_size or tokenizer.mask_token_id != config.mask_token_id:
        config = dataclasses.replace(
            config,
            vocab_size=len(tokenizer),
            mask_token_id=tokenizer.mask_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    return config


def create_model(
    ckpt: str | Path | None = None,
    *,
    task: str = "pretrain",
    preset: str = "base",
    model_overrides: dict[str, Any] | None = None,
    tokenizer: str | None = None,
    encoder_init: dict[str, str | None] | None = None,
    verify: bool = True,
    trust_pickle: bool = False,
    require_tokenizer: bool = True,
    require_heads: tuple[str, ...] = (),
) -> LoadedModel:
    """A ready model for `task` (a model task: pretrain, vqa, nlvr2, irtr, ...).

    ckpt: a registered name, an official `.ckpt`/state-dict file, an sclbench directory, or None for a
    fresh `preset` model ("base" = official sizes, "tiny" = tests and demo). encoder_init (fresh
    models only): {"vision": SOURCE, "text": SOURCE} to start the encoders from CLIP / RoBERTa weights
    (see sclbench.model.pretrained); None or {} keeps them random. trust_pickle: allow arbitrary pickled
    objects in an official file (only for files you trust). require_tokenizer=False: a weights-only job
    (`ckpt convert`) goes on without one when none travels with the weights. require_heads: heads the
    checkpoint must hold trained weights for (evaluation passes its task head). A registry entry's
    `image_size` (e.g. METER VQA at 576 px) is the resolution the weights were fine-tuned at: it wins
    over the card's.
    """
    if ckpt is None:
        return _fresh(task, preset, model_overrides, tokenizer, encoder_init)
    if encoder_init:
        raise ConfigError("an encoder initialisation applies to a fresh model only, not on top of --ckpt")
    resolved = resolve(str(ckpt), verify=verify)
    path = resolved.path
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
            raise CheckpointError(
                f"{path} is a directory without {CONFIG_NAME} and {WEIGHTS_NAME}: not an "
                "sclbench checkpoint (convert an official file with `sclbench ckpt convert`)"
            )
        base = SCLConfig.load(path / CONFIG_NAME)
        tok = _tokenizer(base, path, tokenizer, require_tokenizer)
        model, report = assemble(
            configure(base, task, model_overrides), read_safetensors(path / WEIGHTS_NAME), str(path), require_heads
        )
    else:
        state_dict = extract_state_dict(read_checkpoint(path, trust_pickle=trust_pickle), str(path))
        if resolved.entry and resolved.entry.get("image_size"):
            model_overrides = {**(model_overrides or {}), "image_size": int(resolved.entry["image_size"])}
        base = official_base(state_dict, task, preset)
        tok = _tokenizer(base, None, tokenizer, require_tokenizer)
        config = configure(fit_vocab(base, tok) if tok is not None else base, task, model_overrides)
        model, report = assemble(config, state_dict, str(path), require_heads)
    zero_shot = any("rank_output :=" in a for a in report.adapted)
    return LoadedModel(
        model, tok, resolved, zero_shot=zero_shot, report=report.summary(), init=f"checkpoint {resolved.name} ({path})"
    )


def _tokenizer(config: SCLConfig, ckpt_dir: Path | None, explicit: str | None, required: bool) -> Any:
    if required:
        return load_tokenizer_for(config, ckpt_dir, explicit)
    try:
        return load_tokenizer_for(config, ckpt_dir, explicit)
    except CheckpointError:
        return None


def _fresh(
    task: str,
    preset: str,
    model_overrides: dict[str, Any] | None,
    tokenizer: str | None,
    encoder_init: dict[str, str | None] | None,
) -> LoadedModel:
    base = SCLConfig.preset(preset, task)
    tok = load_tokenizer_for(base, None, tokenizer)
    model, _ = assemble(configure(fit_vocab(base, tok), task, model_overrides))
    vision, text = (encoder_init or {}).get("vision"), (encoder_init or {}).get("text")
    if vision or text:
        from sclbench.model.pretrained import init_encoders

        report = init_encoders(model, vision, text)
        init = f"encoders from vision={vision or 'random'}, text={text or 'random'}; fusion and heads random"
        return LoadedModel(model, tok, None, report=str(report), init=init, meta={"encoder_init": report.as_record()})
    return LoadedModel(
        model, tok, None, report="freshly initialised", init=f"random ({preset} preset: encoders, fusion and heads)"
    )


# ---- the loaders behind SCLModel.from_official_checkpoint / SCLModel.from_pretrained ------------------
def load_official(
    path_or_state_dict: str | Path | dict,
    task: str = "pretrain",
    image_size: int | None = None,
    config: SCLConfig | None = None,
    strict_report: bool = False,
) -> tuple[SCLModel, KeyReport]:
    """Build the model for `task` (official `base` sizes unless `config` is given) and load weights."""
    if isinstance(path_or_state_dict, (str, Path)):
        source = str(path_or_state_dict)
        obj = read_checkpoint(path_or_state_dict)
    else:
        source, obj = "state dict", path_or_state_dict
    sd = extract_state_dict(obj, source)
    if config is None:
        config = official_base(sd, task)
    if image_size is not None:
        config.image_size = image_size
    model, report = assemble(config, sd, source)
    if strict_report:
        miss, unexp = report.unexplained()
        if miss or unexp:
            raise CheckpointError(f"{source}: unexplained keys: missing {miss[:5]}, unexpected {unexp[:5]}")
    return model, report


def load_pretrained(
    directory: str | Path, task: str | None = None, map_location: str = "cpu", **config_overrides: Any
) -> SCLModel:
    """Load a `save_pretrained` directory; `task` re-targets the heads for fine-tuning another task."""
    directory = Path(directory)
    if not (directory / CONFIG_NAME).is_file() or not (directory / WEIGHTS_NAME).is_file():
        raise CheckpointError(
            f"{directory} is not an sclbench checkpoint directory (needs {CONFIG_NAME} and {WEIGHTS_NAME})"
        )
    config = SCLConfig.load(directory / CONFIG_NAME)
    if task is not None and task != config.task:
        config = config.for_task(task, image_size=config.image_size)
    for k, v in config_overrides.items():
        setattr(config, k, v)
    model, _ = assemble(config)
    weights = directory / WEIGHTS_NAME
    sd = read_safetensors(weights, device=map_location)
    if task is None or task == SCLConfig.load(directory / CONFIG_NAME).task:
        own = model.state_dict()
        missing, unexpected = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
        wrong = [
            f"{k}: file {list(sd[k].shape)} vs config {list(own[k].shape)}"
            for k in sorted(set(sd) & set(own))
            if tuple(sd[k].shape) != tuple(own[k].shape)
        ]
        if missing or unexpected or wrong:
            raise CheckpointError(
                f"{weights} does not match {directory / CONFIG_NAME}: missing {missing[:3]}, unexpected "
                f"{unexpected[:3]}, shape mismatches {wrong[:2]}. The weights hold {describe_weights(sd)}; "
                f"the config describes {describe_model(config)} (files of two different saves?)"
            )
        check_dtypes(sd, own, str(weights))
        check_finite(sd, str(weights))
        model.load_state_dict(sd)
    else:
        load_into(model, sd, str(directory))
    return model


SCLModel.install_builders(official=load_official, pretrained=load_pretrained)
