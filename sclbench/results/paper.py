"""The papers' reported numbers, read from the task cards (`paper:` section, by model), mapped to
sclbench's task, split and metric names.

The cards are the one source: each `paper.<model>` block holds `source` (where the number came
from), `verified` (checked against the paper PDF itself), optionally `zero_shot` and `checkpoint`
(the registered weights the numbers are for), and `SPLIT: {metric: value}` rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PaperNumber:
    task: str
    split: str  # canonical split name, see `canonical_split`
    metric: str  # sclbench metric name
    value: float  # percent
    source: str
    verified: bool = False  # checked against the paper PDF itself
    zero_shot: bool = False  # the paper's zero-shot row rather than the fine-tuned one
    model: str = "scl"  # whose number: "scl" (the paper reproduced here) or a baseline such as "meter"
    checkpoint: str | None = None  # the registered weights the number is for (`checkpoint:` of the block)


_META_KEYS = {"source", "verified", "zero_shot", "checkpoint"}


def card_paper_numbers(card_name: str, paper: dict) -> list[PaperNumber]:
    """The rows of one card's `paper:` section."""
    rows = []
    for model, block in (paper or {}).items():
        if not isinstance(block, dict):
            continue
        source, verified = str(block.get("source", "")), bool(block.get("verified", False))
        weights = block.get("checkpoint")
        for split, metrics in block.items():
            if split in _META_KEYS or not isinstance(metrics, dict):
                continue
            zero_shot = bool(metrics.get("zero_shot", block.get("zero_shot", False)))
            for metric, value in metrics.items():
                if metric != "zero_shot":
                    rows.append(
                        PaperNumber(
                            card_name,
                            canonical_split(card_name, str(split)),
                            str(metric),
                            float(value),
                            source,
                            verified,
                            zero_shot,
                            str(model),
                            str(weights) if weights else None,
                        )
                    )
    return rows


# Spellings of the same split seen in the official code, EvalAI and papers.
_SPLIT_ALIASES = {
    "test-p": "test1",
    "testp": "test1",
    "test-dev2015": "test-dev",
    "testdev": "test-dev",
    "test2015": "test-std",
    "teststd": "test-std",
    "1k-a": "test",
    "test-1k-a": "test",
}
_TASK_SPLIT_ALIASES = {("vqa", "test"): "test-std"}


def canonical_split(task: str, split: str) -> str:
    """Normalise a split name so records and paper rows meet (`test-P` -> `test1`, ...)."""
    s = split.strip().lower().replace("_", "-")
    s = _SPLIT_ALIASES.get(s, s)
    return _TASK_SPLIT_ALIASES.get((task.lower(), s), s)


def paper_numbers(model: str | None = "scl") -> list[PaperNumber]:
    """Every card's paper numbers (of `model`; None = all models)."""
    from sclbench.cards import available_cards, load_card

    rows: list[PaperNumber] = []
    for name in available_cards():
        card = load_card(name)
        rows += [r for r in card_paper_numbers(card.name, card.section("paper")) if model is None or r.model == model]
    return rows


def model_family(checkpoint: Mapping[str, Any], registry: Mapping[str, Any] | None = None) -> str:
    """Whose published numbers a record is set beside: the record's `checkpoint.model` (the `--model`
    value; absent in old records = "scl"), except that an SCL-architecture checkpoint registered with a
    `family` (the METER releases: `family: meter`) is that family's.

    registry: the checkpoint registry (`sclbench.model.hub.load_registry()`), read when not given; a
    registry that cannot be read leaves the family "scl" (a table never fails on the registry).
    """
    model = str(checkpoint.get("model") or "scl")
    if model.startswith("sclbench.adapters.") and ":" in model:  # a built-in's other factory: blip:build_rank
        model = model.split(":", 1)[0].rsplit(".", 1)[1]
    if model != "scl":
        return model
    if registry is None:
        registry = checkpoint_registry()
    name = registered_name(str(checkpoint.get("name") or ""), registry)
    entry = registry.get(name) if name else None
    family = entry.get("family") if isinstance(entry, Mapping) else None
    return str(family) if family else "scl"


def registered_name(name: str, registry: Mapping[str, Any]) -> str | None:
    """The registry entry a checkpoint name stands for: itself or its alias target, else the one entry
    whose hub `repo` it is (`dandelin/vilt-b32-finetuned-vqa` -> `vilt-vqa`); None when unknown."""
    seen: set[str] = set()
    while isinstance(registry.get(name), Mapping) and "alias" in registry[name] and name not in seen:
        seen.add(name)
        name = str(registry[name]["alias"])
    if isinstance(registry.get(name), Mapping):
        return name
    by_repo = [
        key for key, e in registry.items() if isinstance(e, Mapping) and e.get("repo") == name and "alias" not in e
    ]
    return by_repo[0] if len(by_repo) == 1 else None


def same_weights(number: PaperNumber, checkpoint: Mapping[str, Any], registry: Mapping[str, Any]) -> bool:
    """Whether a record may be set beside a published number: a block naming its weights
    (`checkpoint: clip-vit-l14-336`) is not compared with another registered checkpoint (clip-vit-b32);
    a checkpoint the registry does not know (a local run) is compared as before."""
    if not number.checkpoint:
        return True
    mine = registered_name(str(checkpoint.get("name") or ""), registry)
    return mine is None or mine == (registered_name(number.checkpoint, registry) or number.checkpoint)


def checkpoint_registry() -> Mapping[str, Any]:
    """The checkpoint registry by name, or {} when it cannot be read (its own commands report why)."""
    from sclbench.errors import SCLBenchError
    from sclbench.model.hub import load_registry

    try:
        return load_registry()
    except (SCLBenchError, OSError):
        return {}


def paper_index_by_model(
    rows: list[PaperNumber],
) -> dict[tuple[str, str, str, bool], dict[str, PaperNumber]]:
    """Paper numbers by (model, task, canonical split, zero_shot) -> {metric: row}."""
    index: dict[tuple[str, str, str, bool], dict[str, PaperNumber]] = {}
    for row in rows:
        key = (row.model, row.task.lower(), canonical_split(row.task, row.split), row.zero_shot)
        index.setdefault(key, {})[row.metric] = row
    return index


def paper_index(rows: list[PaperNumber] | None = None) -> dict[tuple[str, str, bool], dict[str, PaperNumber]]:
    """Paper numbers by (task, canonical split, zero_shot) -> {metric: row}."""
    index: dict[tuple[str, str, bool], dict[str, PaperNumber]] = {}
    for row in paper_numbers() if rows is None else rows:
        key = (row.task.lower(), canonical_split(row.task, row.split), row.zero_shot)
        index.setdefault(key, {})[row.metric] = row
    return index
