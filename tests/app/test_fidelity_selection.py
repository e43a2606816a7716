"""Which weights each card reports, pinned to what the official checkpoint callback keeps (issue 26, item 1).

The official callback keeps the highest `val/the_metric`; for retrieval that is ir_r1 + tr_r1 (fractions)
plus the epoch, for LSMDC/MSRVTT the epoch alone (scl/modules/scl_utils.py, scl/config.py).
"""

import random

import pytest

from sclbench.app.selection import OFFICIAL_SELECTION, official_the_metric, selection_protocol
from sclbench.cards import load_card, packaged_cards_dir

CARDS = sorted(p.stem for p in packaged_cards_dir().glob("*.yaml") if p.stem != "pretrain")


def _kept_epoch(recalls_per_epoch):
    """The epoch the official top-1 checkpoint callback keeps (first maximum, as Lightning's strict >)."""
    scores = [official_the_metric(e, r) for e, r in enumerate(recalls_per_epoch)]
    return max(range(len(scores)), key=lambda e: (scores[e], -e))


def test_every_fine_tuning_card_is_in_the_official_table():
    assert sorted(OFFICIAL_SELECTION) == CARDS


@pytest.mark.parametrize("name", CARDS)
def test_default_protocol_is_the_official_one_unless_that_leaks(name):
    card = load_card(name)
    sel = selection_protocol(card)
    official, default = OFFICIAL_SELECTION[name]
    assert sel.name == default
    if official.startswith("last epoch"):  # the official keeps the last epoch: final weights, no selection
        assert sel.select is False
    else:  # VQA (held-out val) and NLVR2 (official: test-P, a leak): best on the val role
        assert sel.select is True and card.get("splits.val") != card.get("splits.test")
    assert card.get("splits.test") not in sel.train  # never trained on the reported split
    if not sel.select:  # the reproduction guide evaluates what the protocol keeps
        assert card.get("reproduce.eval_ckpt") == "final"


@pytest.mark.parametrize("name", ["coco", "lsmdc"])
def test_best_on_val_is_a_named_option(name):
    card = load_card(name, ["protocol.selection=best_val"])
    sel = selection_protocol(card)
    assert (sel.name, sel.select, sel.train) == ("best_val", True, ["train"])
    assert card.get("splits.val") != card.get("splits.test")


def test_the_official_retrieval_metric_keeps_the_last_epoch():
    rng = random.Random(0)
    for _ in range(2000):  # any R@1 path whose sum never falls by a full 1.0 in one epoch keeps the last
        recalls, level = [], rng.uniform(0, 2)
        for _ in range(10):
            level = min(2.0, max(0.0, level + rng.uniform(-0.99, 0.3)))
            ir = rng.uniform(max(0.0, level - 1), min(1.0, level))
            recalls.append((ir, level - ir))
        assert _kept_epoch(recalls) == 9
    # the only exception: a fall of more than 100 points of ir_r1 + tr_r1 in the last epoch
    assert _kept_epoch([(0.9, 0.9), (0.9, 0.9), (0.1, 0.1)]) == 1
    # LSMDC / MSRVTT: no recall in the metric, the epoch alone
    assert _kept_epoch([None] * 10) == 9


@pytest.mark.parametrize("name, select", [("last", True), ("best_val", False)])
def test_a_protocol_name_fixes_its_select_flag(name, select):
    from sclbench.cards import TaskCard
    from sclbench.errors import ConfigError

    card = TaskCard(
        "t",
        {
            "family": "x",
            "splits": {"train": "train", "val": "val", "test": "test"},
            "protocol": {"selection": name, "selections": {name: {"train": ["train"], "select": select}}},
        },
    )
    with pytest.raises(ConfigError, match=f"protocol.selections.{name} must have select"):
        selection_protocol(card)
