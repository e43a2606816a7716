"""Every card, parametrised over the cards found (as timm's tests are over its registry): its format is
known, its hooks resolve, and the synthetic benchmark writes a layout its format's check passes."""

from __future__ import annotations

import pytest

from sclbench.cards import TaskCard, available_cards, load_card
from sclbench.data.check import check_layout
from sclbench.data.formats import FORMATS, card_format, format_name
from sclbench.errors import ConfigError

CARDS = available_cards()
SYNTH_CARDS = [name for name in CARDS if isinstance(load_card(name).get("synth"), dict)]


@pytest.mark.parametrize("name", CARDS)
def test_every_card_names_a_known_format_whose_hooks_resolve(name):
    card = load_card(name)
    assert card.get("format") in FORMATS, f"{name}: set `format:` to one of {sorted(FORMATS)}"
    fmt = card_format(card)
    for hook in ("writer", "checker", *(["arrow_writer"] if fmt.arrow_writer else [])):
        assert callable(fmt.hook(hook)), (name, hook)
    assert (fmt.arrow is None) == (fmt.arrow_writer is None)


@pytest.mark.parametrize("name", SYNTH_CARDS)
def test_every_synthetic_part_passes_its_cards_check(name, synth_root):
    report = check_layout(name, synth_root / name)
    assert report.ok, report.render()
    assert report.found and all(count > 0 for count in report.found.values()), report.render()


@pytest.mark.parametrize("name", [n for n in SYNTH_CARDS if card_format(load_card(n)).arrow is not None])
def test_every_synthetic_arrow_table_set_passes_its_cards_check(name, synth_root):
    report = check_layout(name, synth_root / "arrow")
    assert report.ok and all(key.endswith("(arrow)") for key in report.found), report.render()


@pytest.mark.parametrize("name", SYNTH_CARDS)
def test_every_synth_section_gives_sizes_and_an_order(name):
    card = load_card(name)
    sizes = card.get("synth.splits")
    assert isinstance(sizes, dict) and sizes and all(isinstance(n, int) and n > 0 for n in sizes.values())
    assert isinstance(card.get("synth.order"), int)


def test_the_synthetic_order_is_the_published_one():
    """The tokenizer is trained on the parts' texts in this order: changing it changes every byte of it."""
    from sclbench.data.synthetic import synth_cards

    assert list(synth_cards())[:7] == ["f30k", "coco", "vqa", "nlvr2", "msrvtt", "lsmdc", "pretrain"]


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"family": "image_retrieval"}, "karpathy"),  # a card written before `format:`: its family's
        ({"family": "vqa"}, "vqa"),
        ({"family": "video_retrieval", "data": {"dataset": "lsmdc"}}, "lsmdc"),  # the dataset names the format
        ({"family": "video_retrieval", "format": "msrvtt", "data": {"dataset": "msvd"}}, "msrvtt"),
    ],
)
def test_a_card_without_format_falls_back_to_its_dataset_or_family(data, expected):
    assert format_name(TaskCard("mine", data)) == expected


@pytest.mark.parametrize(
    "data",
    [
        {"family": "video_retrieval", "data": {"dataset": "msvd"}},
        {"family": "vqa", "format": "parquet"},
        {"family": "unknown"},
    ],
)
def test_an_unknown_or_missing_format_is_one_error_naming_the_card(data):
    with pytest.raises(ConfigError, match="task card 'mine'.*format") as info:
        card_format(TaskCard("mine", data))
    assert "karpathy" in str(info.value)  # the known formats are listed


def test_an_unknown_task_is_refused_listing_the_cards():
    from sclbench.errors import DataError

    with pytest.raises(DataError, match="unknown task 'nope'; use one of .*f30k"):
        check_layout("nope", ".")
