"""Which data trains and which weights are reported: a card's `protocol.selection`.

The official recipe sometimes trains on the split sclbench would select on (Flickr30K: Karpathy train +
val, "validation" on test). A card then names its choices:

    protocol:
      selection: official                      # the default: the official training data
      selections:
        official: {train: [train, val], select: false}   # final weights are reported
        heldout_val: {train: [train], select: true}      # best on val, test reported once

`train` lists split names (each one a `splits.<role>` value, or a published split name); `select`
says whether checkpoints are selected on the validation role. A card without the section trains on
`splits.train` and selects on `splits.val` ("heldout_val"). The choice is recorded with the results.

What the official code keeps, in effect (`OFFICIAL_SELECTION`): Lightning keeps the checkpoint of the
highest `val/the_metric` (scl/modules/scl_utils.py `epoch_wrapup`). For retrieval that metric is
`ir_r1 + tr_r1` (fractions, at most 2) PLUS the current epoch number, and for LSMDC/MSRVTT
(`get_recall_metric: False`, scl/config.py) the epoch alone, so one validation a epoch keeps the
LAST epoch (an earlier one only if the two R@1 fell by more than 1.0 = 100 points in one epoch). Last
is no test leak, so those cards default to `last` (final weights) and name `best_val` as the option.
VQA selects on its held-out val (vqav2_rest_val), like sclbench; NLVR2 adds the test-P accuracy,
i.e. selects on test: sclbench selects on dev instead (a leak is never the default).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sclbench.cards import TaskCard
from sclbench.errors import ConfigError

DEFAULT = "heldout_val"

# card -> (what the official checkpoint callback keeps in effect, sclbench's default protocol name);
# tests/app/test_fidelity_selection.py pins each card's default to this table.
OFFICIAL_SELECTION: dict[str, tuple[str, str]] = {
    "f30k": ("last epoch (ir_r1 + tr_r1 + epoch), trained on Karpathy train + val", "official"),
    "coco": ("last epoch (ir_r1 + tr_r1 + epoch)", "last"),
    "lsmdc": ("last epoch (metric = epoch, get_recall_metric False)", "last"),
    "msrvtt": ("last epoch (the lsmdc config: metric = epoch)", "last"),
    "vqa": ("best vqa score on the held-out vqav2_rest_val", DEFAULT),
    "nlvr2": ("best test-P accuracy (a test leak; sclbench selects on dev)", DEFAULT),
}


# Protocol names whose meaning is fixed, so a card cannot call a selecting protocol "last".
NAMED_SELECT = {"last": False, "official": False, "best_val": True, "heldout_val": True}


def official_the_metric(epoch: int, recalls: tuple[float, float] | None = None) -> float:
    """The official `val/the_metric` of a retrieval card at `epoch` (0-based): the epoch, plus
    ir_r1 + tr_r1 as fractions when the card computes recalls (`get_recall_metric`)."""
    return float(epoch) + (sum(recalls) if recalls is not None else 0.0)


@dataclass(frozen=True)
class Selection:
    name: str
    train: list[str]  # split names that form the training data
    select: bool  # select the best checkpoint on the validation role (else: final weights)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def selection_protocol(card: TaskCard) -> Selection:
    """The card's chosen selection protocol, checked (one clear error naming the card and the key)."""
    default_train = _as_list(card.get("splits.train", "train"))
    name = card.get("protocol.selection")
    if name is None:
        return Selection(DEFAULT, default_train, True)
    choices = card.get("protocol.selections") or {}
    if not isinstance(choices, dict) or str(name) not in choices:
        known = ", ".join(sorted(choices)) if isinstance(choices, dict) else "none"
        raise ConfigError(
            f"task card {card.name}: protocol.selection {name!r} is not one of its selections "
            f"({known}); set protocol.selection=<one of them>"
        )
    spec = choices[str(name)]
    if not isinstance(spec, dict) or "train" not in spec or not isinstance(spec.get("select"), bool):
        raise ConfigError(
            f"task card {card.name}: protocol.selections.{name} must be {{train: [split, ...], select: true|false}}"
        )
    select = spec["select"]
    if NAMED_SELECT.get(str(name), select) != select:
        raise ConfigError(
            f"task card {card.name}: protocol.selections.{name} must have select: "
            f"{str(NAMED_SELECT[str(name)]).lower()} (the name says whether it selects)"
        )
    if select and card.get("splits.val") == card.get("splits.test"):
        raise ConfigError(
            f"task card {card.name}: protocol.selections.{name} selects on val, but the val split "
            "is the test split; selecting on test is not allowed"
        )
    if select and str(card.get("splits.val")) in _as_list(spec["train"]):
        raise ConfigError(
            f"task card {card.name}: protocol.selections.{name} trains on the val split "
            f"{card.get('splits.val')!r} and selects on it; set select: false"
        )
    return Selection(str(name), _as_list(spec["train"]), select)


def apply_selection(card: TaskCard) -> Selection:
    """Set the card's `splits.train` to the chosen protocol's training splits; return the protocol."""
    selection = selection_protocol(card)
    card.data.setdefault("splits", {})["train"] = list(selection.train)
    return selection
