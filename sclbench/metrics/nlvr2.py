"""NLVR2 accuracy and consistency, with the definitions of lil-lab/nlvr `nlvr2/eval/metrics.py`.

Accuracy = correct / number of labelled examples. Consistency = fraction of unique sentences whose
predictions are correct on EVERY image pair they appear with; an example's sentence key is its
identifier `split-set-pair-sentence` with the pair field blanked. Labels compare case-insensitively.
Every labelled example needs a prediction; predictions for unknown identifiers are ignored, as in
the official script (it iterates over the labels).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sclbench.metrics._common import MetricInputError, preview


def _label(value: Any, what: str, identifier: str) -> str:
    # bools come from model outputs, strings from the JSONL files ("True"/"False") or a CSV.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.strip().lower()
    raise MetricInputError(f"{what} for {identifier!r} must be a bool or 'True'/'False', got {value!r}")


def sentence_key(identifier: str) -> str:
    """The consistency group of an example: its identifier with the image-pair field blanked.

    Examples:
        >>> sentence_key("dev-850-3-0")
        'dev-850--0'
    """
    parts = identifier.split("-")
    if len(parts) != 4:
        raise MetricInputError(f"NLVR2 identifier {identifier!r} is not of the form split-set-pair-sentence")
    split, set_id, _pair, sentence = parts
    return f"{split}-{set_id}--{sentence}"


def nlvr2_correct(predictions: Mapping[str, Any], labels: Mapping[str, Any]) -> dict[str, bool]:
    """Per-example correctness, keyed by identifier (the per-sample record behind the metrics).

    Examples:
        >>> nlvr2_correct({"dev-1-0-0": True, "dev-1-1-0": "False"}, {"dev-1-0-0": "True", "dev-1-1-0": "true"})
        {'dev-1-0-0': True, 'dev-1-1-0': False}
    """
    missing = [i for i in labels if i not in predictions]
    if missing:
        raise MetricInputError(f"no prediction for {len(missing)} of {len(labels)} NLVR2 examples: {preview(missing)}")
    return {i: _label(predictions[i], "prediction", i) == _label(y, "label", i) for i, y in labels.items()}


def nlvr2_metrics(predictions: Mapping[str, Any], labels: Mapping[str, Any]) -> dict[str, float]:
    """`accuracy` and `consistency` in percent; both keyed by `split-set-pair-sentence` identifiers.

    Examples:
        Sentence 1 is right on one of its two image pairs, sentence 2 on its only pair: 2 of 3
        examples are correct, 1 of 2 sentences is consistent.

        >>> labels = {"dev-1-0-0": True, "dev-1-1-0": True, "dev-2-0-0": False}
        >>> predictions = {"dev-1-0-0": True, "dev-1-1-0": False, "dev-2-0-0": False}
        >>> {name: round(value, 4) for name, value in nlvr2_metrics(predictions, labels).items()}
        {'accuracy': 66.6667, 'consistency': 50.0}
    """
    if not labels:
        raise MetricInputError("no NLVR2 labels to evaluate")
    correct = nlvr2_correct(predictions, labels)
    groups: dict[str, bool] = defaultdict(lambda: True)
    for identifier, ok in correct.items():
        key = sentence_key(identifier)
        groups[key] = groups[key] and ok
    return {
        "accuracy": 100.0 * sum(correct.values()) / len(correct),
        "consistency": 100.0 * sum(groups.values()) / len(groups),
    }
