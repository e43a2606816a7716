"""What each task-card setting accepts: its kind (from the packaged cards' defaults) and its range
(from how the code uses it), so that `train.lr=abc`, `train.lr=nan` or `train.per_device_batch_size=0`
is refused before any work starts, naming the key, instead of failing deep inside a run or training
on garbage.

Two sources, the table first:
- RULES: the settings the code reads, with the range that makes sense there (learning rates > 0,
  batch sizes >= 1, ratios in [0, 1], ...). A test keeps it covering every setting the code reads;
- every other setting takes the kind of its value in the packaged cards (int, float, bool, text,
  list, mapping): a number where a card has a number, a list of texts where it has one, and so on.
Free-form sections (`paper`, `reproduce`) hold data, not settings, and are not checked.
"""

from __future__ import annotations

import functools
from typing import Any

import yaml

from sclbench.assets import packaged_cards_dir
from sclbench.common.values import Rule

FREE_FORM_SECTIONS = ("paper", "reproduce")

_POSITIVE = Rule("float", low=0, low_open=True)
_NON_NEGATIVE = Rule("float", low=0)
_RATIO = Rule("float", low=0, high=1)
_INT1 = Rule("int", low=1)
_INT0 = Rule("int", low=0)
_BOOL = Rule("bool")
_TEXT = Rule("str")
_TEXTS = Rule("list", items="str")
_SPLIT = Rule("str", alternatives=(_TEXTS,), nullable=True)  # one published split, or a list of them

RULES: dict[str, Rule] = {
    # identity
    "name": _TEXT,
    "family": _TEXT,
    "model_task": _TEXT,
    "description": _TEXT,
    # train.* (sclbench.engine.trainer.TrainConfig, plus the task adapters' own)
    "train.lr": _POSITIVE,
    "train.weight_decay": _NON_NEGATIVE,
    "train.lr_mult_head": _POSITIVE,
    "train.lr_mult_cross_modal": _POSITIVE,
    "train.fixed_groups": _BOOL,
    # a float is a fraction of all steps, an int counts warm-up steps (engine/schedule.py); the fraction
    # rule comes first so that 1.0 stays the float 1.0 (all steps), never the int 1 (one step)
    "train.warmup": Rule("float", low=0, high=1, alternatives=(_INT0,)),
    "train.schedule": Rule("str", choices=("linear", "cosine")),
    "train.max_steps": Rule("int", low=1, nullable=True),
    "train.max_epochs": _INT1,
    "train.global_batch_size": _INT1,
    "train.per_device_batch_size": _INT1,
    "train.precision": Rule("str", choices=("fp32", "bf16", "fp16"), nullable=True),  # null: by device
    "train.grad_checkpointing": _BOOL,
    "train.tf32": _BOOL,
    "train.compile": _BOOL,
    "train.max_grad_norm": Rule("float", low=0, low_open=True, nullable=True),
    "train.val_check_interval": Rule("float", low=0, high=1, low_open=True, nullable=True),
    "train.eval_every_steps": Rule("int", low=1, nullable=True),
    "train.save_every_steps": Rule("int", low=1, nullable=True),
    "train.keep_last": _INT0,  # 0: keep every checkpoint
    "train.out_dir": _TEXT,
    "train.seed": _INT0,
    "train.num_workers": Rule("int", low=0, nullable=True),  # null: from the CPUs
    "train.log_every": _INT1,
    "train.select_metric": Rule("str", nullable=True),
    "train.select_mode": Rule("str", choices=("max", "min")),
    "train.find_unused_parameters": _BOOL,
    "train.device": Rule("str", nullable=True),
    "train.tensorboard": _BOOL,
    "train.neg_texts": _INT0,
    "train.con_weight": _NON_NEGATIVE,
    "train.chunk_size": _INT1,
    "train.video_chunk_size": _INT1,
    "train.gather_grad": Rule("str", choices=("official", "local_slice", "exact")),
    "train.transform": _TEXT,
    "train.frame_mode": _TEXT,
    "train.itm_negative_distinct": _BOOL,
    "train.itm_negatives": _TEXT,
    "train.batch_forming": _TEXT,
    # eval.*
    "eval.transform": _TEXT,
    "eval.mode": _TEXT,
    "eval.fusion": _TEXT,
    "eval.ties": _TEXT,
    "eval.k": _INT1,
    "eval.precision": Rule("str", choices=("fp32", "bf16", "fp16")),
    "eval.tf32": _BOOL,
    "eval.chunk_pairs": _INT1,
    "eval.pair_batch_size": _INT1,
    "eval.encode_batch_size": _INT1,
    "eval.num_workers": _INT0,
    "eval.cache_dir": Rule("str", nullable=True),
    "eval.shared_fusion": _BOOL,
    # data.*
    "data.root": _TEXT,
    "data.format": _TEXT,
    "data.captions": _TEXT,
    "data.dataset": _TEXT,
    "data.layout": _TEXT,
    "data.media": _TEXT,
    "data.vocab_file": _TEXT,
    "data.cache_images": _BOOL,
    "data.dedup_captions": _BOOL,
    "data.train_with_restval": _BOOL,
    "data.num_frames": _INT1,
    "data.vocab_min_count": _INT1,
    "data.minival_images": _INT1,
    "data.minival_seed": _INT0,
    "data.shuffle_buffer": _INT1,
    "data.negative_pool": _INT1,
    "data.corpora": Rule("list", items="dict"),
    # splits, metrics, protocol
    "splits.train": _SPLIT,
    "splits.val": _SPLIT,
    "splits.test": _SPLIT,  # null: the card has no such split
    "metrics.main": Rule("str", nullable=True),  # null: the family's main metric "metrics.report": _TEXTS,
    "protocol.selection": _TEXT,
    "protocol.selections": Rule("dict"),
    # pre-training
    "objectives": _TEXTS,
    "video_objectives": _TEXTS,
    "mlm_prob": Rule("float", low=0, high=1, low_open=True, high_open=True),
    "con_weight": _NON_NEGATIVE,
    "encoder_init": Rule("dict", nullable=True),
    "encoder_init.vision": Rule("str", nullable=True),  # null: a randomly initialised encoder
    "encoder_init.text": Rule("str", nullable=True),
    "completion.image_drop_ratio": Rule("float", low=0, high=1, high_open=True),
    "completion.text_mask_ratio": _RATIO,
    "completion.image_token_mask_ratio": _RATIO,
    "completion.temperature": _POSITIVE,
    "completion.global_weight": _NON_NEGATIVE,
    "completion.local_weight": _NON_NEGATIVE,
    "completion.local": _BOOL,
    "completion.gather_grad": Rule("str", choices=("official", "local_slice", "exact")),
    # model.* (the rest: SCLConfig's own field rules, sclbench.model.config.FIELD_RULES)
    "model.image_size": _INT1,
    "model.video_image_size": _INT1,
}


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return "any"  # null: the card gives no hint


def _leaves(data: dict[str, Any], prefix: str = ""):
    for key, value in data.items():
        name = f"{prefix}{key}"
        yield name, value
        if isinstance(value, dict):
            yield from _leaves(value, name + ".")


@functools.lru_cache(maxsize=1)
def packaged_rules() -> dict[str, Rule]:
    """The kind of every setting in the packaged cards (an int in one card and a float in another
    is a number; a text in one and a list in another is either)."""
    kinds: dict[str, set[str]] = {}
    items: dict[str, set[str]] = {}
    for path in sorted(packaged_cards_dir().glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for key, value in _leaves(data):
            if key.split(".")[0] in FREE_FORM_SECTIONS:
                continue
            kinds.setdefault(key, set()).add(_kind_of(value))
            if isinstance(value, list):
                items.setdefault(key, set()).update(_kind_of(v) for v in value)
    rules = {}
    for key, found in kinds.items():
        found.discard("any")
        if found == {"int", "float"}:
            found = {"float"}
        if not found:
            continue
        first, *rest = sorted(found)
        element = items.get(key, set())
        item_kind = next(iter(element)) if len(element) == 1 and "any" not in element else None
        rules[key] = Rule(
            first,
            items=item_kind if first == "list" else None,
            alternatives=tuple(Rule(k, items=item_kind if k == "list" else None) for k in rest),
        )
    return rules


def _model_field_rules() -> dict[str, Rule]:
    from sclbench.model.config import FIELD_RULES  # imported late: the model package imports torch

    return FIELD_RULES


_ANNOTATED = {"int": "int", "float": "float", "bool": "bool", "str": "str"}


@functools.lru_cache(maxsize=1)
def train_field_rules() -> dict[str, Rule]:
    """Kinds of the TrainConfig fields the table does not list (a field added to the engine is typed
    from its annotation, `int | None` and the like, until the table gives it a range)."""
    import dataclasses

    from sclbench.engine.trainer import TrainConfig  # imported late: the engine imports torch

    rules = {}
    for f in dataclasses.fields(TrainConfig):
        parts = [p.strip() for p in str(f.type).split("|")]
        kinds = [_ANNOTATED[p] for p in parts if p in _ANNOTATED]
        if not kinds or len(kinds) + ("None" in parts) != len(parts):
            continue  # an annotation we do not read: no rule rather than a wrong one
        if kinds == ["int", "float"]:
            kinds = ["float"]
        rules[f"train.{f.name}"] = Rule(
            kinds[0], nullable="None" in parts, alternatives=tuple(Rule(k) for k in kinds[1:])
        )
    return rules


def rule_for(key: str) -> Rule | None:
    """The rule of a dotted card setting, or None when nothing is known about it (a free-form entry,
    or a setting no card and no code names: the key check refuses those before values are looked at)."""
    if key.split(".")[0] in FREE_FORM_SECTIONS:
        return None
    if key in RULES:
        return RULES[key]
    if key.startswith("model.") and key.count(".") == 1:
        field_rule = _model_field_rules().get(key[len("model.") :])
        if field_rule is not None:
            return field_rule
    if key.startswith("train.") and key not in packaged_rules():
        return train_field_rules().get(key)
    return packaged_rules().get(key)
