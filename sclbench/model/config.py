"""SCLConfig: the sizes and switches of the SCL network, with presets.

`base` reproduces the official sizes (RoBERTa-base + CLIP ViT-B/16 with 11 blocks + 6+6 co-attention
layers, all 768 wide); `tiny` is a few-MB model for tests and the demo. Each preset takes a task, which
decides the heads and the few task-dependent shapes, exactly as the official configs do:

| task            | heads                       | image size | token types | vision extras        |
|-----------------|-----------------------------|------------|-------------|----------------------|
| pretrain        | mlm, itm, con               | 288        | 2           | visual_mask_token    |
| pretrain_video  | mlm, itm, con               | 288        | 2           | both                 |
| vqa             | vqa                         | 384        | 2           | visual_mask_token    |
| nlvr2           | nlvr2                       | 288        | 3           | visual_mask_token    |
| f30k, coco      | itm, con, rank              | 384        | 2           | visual_mask_token    |
| msrvtt, lsmdc   | itm, con, rank              | 224        | 2           | temporal_embed       |
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sclbench.common.io import atomic_write
from sclbench.common.textfile import parse_json
from sclbench.common.values import Rule, check_value
from sclbench.errors import ConfigError, SCLBenchError

HEAD_NAMES = ("mlm", "itm", "con", "vqa", "nlvr2", "rank")

# Per task: which heads exist, the official fine-tuning resolution, token-type rows, and which of the
# two optional vision parameters the official model of that task has (HEAD image model: the MLTC mask
# token; video model: the 8-row temporal table).
_TASKS: dict[str, dict[str, Any]] = {
    "pretrain": dict(
        heads=("mlm", "itm", "con"),
        image_size=288,
        num_token_types=2,
        use_visual_mask_token=True,
        use_temporal_embed=False,
    ),
    "pretrain_video": dict(
        heads=("mlm", "itm", "con"),
        image_size=288,
        num_token_types=2,
        use_visual_mask_token=True,
        use_temporal_embed=True,
    ),
    "vqa": dict(
        heads=("vqa",), image_size=384, num_token_types=2, use_visual_mask_token=True, use_temporal_embed=False
    ),
    "nlvr2": dict(
        heads=("nlvr2",), image_size=288, num_token_types=3, use_visual_mask_token=True, use_temporal_embed=False
    ),
    "f30k": dict(
        heads=("itm", "con", "rank"),
        image_size=384,
        num_token_types=2,
        use_visual_mask_token=True,
        use_temporal_embed=False,
    ),
    "coco": dict(
        heads=("itm", "con", "rank"),
        image_size=384,
        num_token_types=2,
        use_visual_mask_token=True,
        use_temporal_embed=False,
    ),
    "msrvtt": dict(
        heads=("itm", "con", "rank"),
        image_size=224,
        num_token_types=2,
        use_visual_mask_token=False,
        use_temporal_embed=True,
    ),
    "lsmdc": dict(
        heads=("itm", "con", "rank"),
        image_size=224,
        num_token_types=2,
        use_visual_mask_token=False,
        use_temporal_embed=True,
    ),
}
MODEL_TASKS = tuple(_TASKS)  # what SCLConfig.for_task accepts: head sets and sizes, not the task cards

_SIZE, _ID, _EPS = Rule("int", low=1), Rule("int", low=0), Rule("float", low=0, low_open=True)
_TEXT, _FLAG = Rule("str"), Rule("bool")
# What each field accepts: checked on every construction (presets, `model.*` card settings through
# `for_task`, config.json), so a string, a negative size or a NaN never reaches a layer constructor.
FIELD_RULES: dict[str, Rule] = {
    "vocab_size": _SIZE,
    "hidden_size": _SIZE,
    "num_heads": _SIZE,
    "text_layers": _SIZE,
    "text_intermediate_size": _SIZE,
    "max_position_embeddings": _SIZE,
    "text_layer_norm_eps": _EPS,
    "pad_token_id": _ID,
    "bos_token_id": _ID,
    "eos_token_id": _ID,
    "mask_token_id": _ID,
    "max_text_len": Rule("int", low=2),  # <s> and </s> at least
    "tokenizer": _TEXT,
    "text_encoder": Rule("str", nullable=True),
    "text_init_std": _EPS,
    "image_size": _SIZE,
    "patch_size": _SIZE,
    "vision_width": _SIZE,
    "vision_layers": _SIZE,
    "vision_heads": _SIZE,
    "max_frames": _SIZE,
    "use_temporal_embed": _FLAG,
    "use_visual_mask_token": _FLAG,
    "num_top_layer": _SIZE,
    "cross_intermediate_size": _SIZE,
    "cross_layer_norm_eps": _EPS,
    "drop_rate": Rule("float", low=0, high=1, high_open=True),
    "num_token_types": _SIZE,
    "heads": Rule("list", items="str"),
    "num_answers": _SIZE,
    "contrastive_dim": _SIZE,
    "cl_temp_init": _EPS,
    "task": _TEXT,
    "preset": _TEXT,
    "extra": Rule("dict"),
}
# config.json fields a reader may do without (added after the first saves, or informational): every
# other field decides a weight's shape or the computation, and a file without it is refused.
OPTIONAL_FIELDS = frozenset({"text_init_std", "text_encoder", "extra"})


@dataclass
class SCLConfig:
    """Every size and switch of the network. Defaults are the official `base` pre-training model."""

    # Text stream: RoBERTa (its own config fields, so a roberta-base checkpoint loads as is).
    vocab_size: int = 50265
    hidden_size: int = 768
    num_heads: int = 12
    text_layers: int = 12
    text_intermediate_size: int = 3072
    max_position_embeddings: int = 514
    text_layer_norm_eps: float = 1e-5
    pad_token_id: int = 1
    bos_token_id: int = 0
    eos_token_id: int = 2
    mask_token_id: int = 50264
    max_text_len: int = 50
    tokenizer: str = "roberta-base"
    text_encoder: str | None = None  # local dir or hub id of RoBERTa weights to start from (else random)
    text_init_std: float = 0.02  # RoBERTa's initializer_range, for a text encoder trained from scratch

    # Vision stream: CLIP ViT. `vision_layers` counts the blocks actually built (CLIP-B/16 has 12; the
    # official model drops the last, so 11).
    image_size: int = 288
    patch_size: int = 16
    vision_width: int = 768
    vision_layers: int = 11
    vision_heads: int = 12
    max_frames: int = 8  # rows of temporal_embed: the upper bound on frames per clip
    use_temporal_embed: bool = False
    use_visual_mask_token: bool = True

    # Fusion: BERT-style co-attention layers (post-LN, eps 1e-12 as RobertaConfig's default).
    num_top_layer: int = 6
    cross_intermediate_size: int = 3072
    cross_layer_norm_eps: float = 1e-12
    drop_rate: float = 0.1
    num_token_types: int = 2

    # Heads.
    heads: tuple[str, ...] = ("mlm", "itm", "con")
    num_answers: int = 3129
    contrastive_dim: int = 512
    cl_temp_init: float = 0.07

    # Which preset/task this config came from (informational; stored in checkpoints).
    task: str = "pretrain"
    preset: str = "base"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if callable(self.preset):  # the classmethod `preset` below shadows this field's default, "base"
            self.preset = "base"
        if isinstance(self.heads, tuple):
            self.heads = list(self.heads)
        for f in dataclasses.fields(self):
            setattr(self, f.name, check_value(getattr(self, f.name), FIELD_RULES[f.name], f"model setting {f.name}"))
        self.heads = tuple(self.heads)
        unknown = [h for h in self.heads if h not in HEAD_NAMES]
        if unknown:
            raise ConfigError(f"unknown head(s) {unknown}; known heads: {', '.join(HEAD_NAMES)}")
        if self.hidden_size % self.num_heads or self.vision_width % self.vision_heads:
            raise ConfigError("hidden_size/vision_width must be divisible by their number of heads")
        if self.image_size % self.patch_size:
            raise ConfigError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if "rank" in self.heads and "itm" not in self.heads:
            raise ConfigError("the 'rank' head is initialised from the 'itm' head: include 'itm' too")

    # ---- derived sizes -------------------------------------------------------------------------
    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    # ---- presets ---------------------------------------------------------------------------------
    @classmethod
    def base(cls, task: str = "pretrain", **overrides: Any) -> SCLConfig:
        """The official sizes for `task` (see the table in the module docstring)."""
        return cls(**{**_task_fields(task), "task": task, "preset": "base", **overrides})

    @classmethod
    def tiny(cls, task: str = "pretrain", **overrides: Any) -> SCLConfig:
        """A few-MB model with the same structure, for tests and the demo (32 px, patch 8)."""
        fields = _task_fields(task)
        fields.update(image_size=32)
        sizes = dict(
            vocab_size=1000,
            hidden_size=64,
            num_heads=4,
            text_layers=2,
            text_intermediate_size=128,
            max_position_embeddings=64,
            max_text_len=24,
            mask_token_id=999,
            patch_size=8,
            vision_width=64,
            vision_layers=2,
            vision_heads=4,
            num_top_layer=2,
            cross_intermediate_size=128,
            num_answers=32,
            contrastive_dim=32,
            tokenizer="",
        )
        return cls(**{**fields, **sizes, "task": task, "preset": "tiny", **overrides})

    @classmethod
    def preset(cls, name: str, task: str = "pretrain", **overrides: Any) -> SCLConfig:  # noqa: F811 (see __post_init__)
        if name not in ("base", "tiny"):
            raise ConfigError(f"unknown preset {name!r}; choose 'base' or 'tiny'")
        return getattr(cls, name)(task, **overrides)

    def for_task(self, task: str, **overrides: Any) -> SCLConfig:
        """The same sizes with the heads and token types of another task (fine-tuning).

        The resolution stays (pass image_size= to change it: task cards do so for the base model).
        """
        fields = _task_fields(task)
        fields.pop("image_size")
        return dataclasses.replace(self, **{**fields, "task": task, **overrides})

    # ---- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["heads"] = list(self.heads)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SCLConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown SCLConfig field(s) {unknown}")
        return cls(**d)

    def save(self, path: str | Path) -> None:
        atomic_write(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> SCLConfig:
        """Read a checkpoint's config.json exactly: a JSON object holding every field that shapes the
        model (OPTIONAL_FIELDS may be absent), no unknown or repeated key, each value of its field's
        kind and range. Anything else is one ConfigError naming the file and the key."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read model config {path}: {err}") from None
        try:
            data = parse_json(text, path, fix="save the checkpoint again", finite_only=True)
        except SCLBenchError as err:
            raise ConfigError(f"model config {path} is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(
                f"model config {path} must hold a JSON object of SCLConfig fields, got {type(data).__name__}"
            )
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ConfigError(
                f"model config {path}: unknown key {unknown[0]!r} (not an SCLConfig field; written by "
                "another program or a newer sclbench?)"
            )
        missing = sorted(fields - set(data) - OPTIONAL_FIELDS)
        if missing:
            raise ConfigError(
                f"model config {path}: key {missing[0]!r} is missing"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                + "; the file is damaged or not an sclbench config.json"
            )
        try:
            return cls(**data)
        except ConfigError as err:
            raise ConfigError(f"model config {path}: {err}") from None


def _task_fields(task: str) -> dict[str, Any]:
    if task not in _TASKS:
        raise ConfigError(f"unknown task {task!r}; known tasks: {', '.join(MODEL_TASKS)}")
    return dict(_TASKS[task])
