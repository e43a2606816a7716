"""protocol.selection: the official training data with final weights, or a held-out val to select on."""

import pytest

from sclbench.app.selection import apply_selection, selection_protocol
from sclbench.cards import TaskCard, load_card
from sclbench.errors import ConfigError


def test_f30k_defaults_to_the_official_training_data_and_final_weights():
    card = load_card("f30k")
    sel = apply_selection(card)
    assert (sel.name, sel.train, sel.select) == ("official", ["train", "val"], False)
    assert card.get("splits.train") == ["train", "val"]


def test_f30k_heldout_val_is_a_named_option():
    sel = selection_protocol(load_card("f30k", ["protocol.selection=heldout_val"]))
    assert (sel.name, sel.train, sel.select) == ("heldout_val", ["train"], True)


def test_a_card_without_the_section_selects_on_its_val_split():
    sel = selection_protocol(load_card("nlvr2"))
    assert (sel.name, sel.select) == ("heldout_val", True) and sel.train == ["train"]


def card(selection, selections, val="val", test="test"):
    return TaskCard(
        "t",
        {
            "family": "x",
            "splits": {"train": "train", "val": val, "test": test},
            "protocol": {"selection": selection, "selections": selections},
        },
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        (card("nope", {"official": {"train": ["train"], "select": False}}), "not one of its selections"),
        (card("a", {"a": {"train": ["train"]}}), "must be"),
        (card("a", {"a": {"train": ["train"], "select": True}}, val="test"), "selecting on test"),
        (card("a", {"a": {"train": ["train", "val"], "select": True}}), "trains on the val split"),
    ],
)
def test_bad_protocols_are_one_clear_error(bad, message):
    with pytest.raises(ConfigError, match=message):
        selection_protocol(bad)
