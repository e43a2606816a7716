"""The reproduction guide cites public sources only and names the protocol of every number
(issue 26, items 2 and 7)."""

import re

import pytest

from sclbench.app.reproduce import render_guide
from sclbench.cards import load_card, packaged_cards_dir
from sclbench.results.paper import card_paper_numbers

PUBLIC = {
    "scl": "arXiv:2211.13437",
    "meter": "arXiv:2111.02387",
    "vilt": "arXiv:2102.03334",
    "blip": "arXiv:2201.12086",
    "clip": "arXiv:2103.00020",
}
HEADS = {"scl": "SCL", "meter": "METER"}  # how the guide names a model (others: as the cards do)
INTERNAL = ("project brief", "scl-official", "reference material", "reference/", "brief")


@pytest.fixture(scope="module")
def guide():
    return render_guide()


def _number_blocks(text):
    parts = re.split(r"^(#### .*)$", text, flags=re.M)
    return {parts[i]: parts[i + 1].split("\n## ")[0] for i in range(1, len(parts) - 1, 2)}


def test_no_internal_source_is_cited(guide):
    lowered = guide.lower()
    assert not [w for w in INTERNAL if w in lowered]
    for path in packaged_cards_dir().glob("*.yaml"):
        for model, block in (load_card(path).section("paper") or {}).items():
            source = str(block.get("source", ""))
            assert PUBLIC[model] in source and not [w for w in INTERNAL if w in source.lower()], (path.stem, model)


def test_every_number_names_its_source_check_and_protocol(guide):
    blocks = _number_blocks(guide)
    rows = [
        r
        for p in packaged_cards_dir().glob("*.yaml")
        for r in card_paper_numbers(p.stem, load_card(p).section("paper"))
    ]
    assert len(blocks) == len({(r.task, r.model, r.split) for r in rows}) >= 13  # 6 cards, SCL + METER
    for head, body in blocks.items():
        shown = head[len("#### ") :].split(" · ")[0]
        model = {v: k for k, v in HEADS.items()}.get(shown, shown)
        source = re.search(r"^Source: (.*)$", body, flags=re.M).group(1)
        assert PUBLIC[model] in source and re.search(r"\(checked against the paper: (yes|no)\)\.$", source), head
        protocol = re.search(r"^Protocol: (.*)$", body, flags=re.M).group(1)
        assert "split `" in protocol and "--split " in protocol, head
        assert "weights" in protocol or "checkpoint best on" in protocol, head
    for row in rows:  # a number not checked against the paper says so in its block
        label = {"test1": "test1 (test-P)"}.get(row.split, row.split)
        heads = [
            h
            for h in blocks
            if f" · {row.task} · " in h
            and (f"· {label} (" in h or f"· {row.split} (" in h)
            and h.startswith(f"#### {HEADS.get(row.model, row.model)} · ")
        ]
        assert heads and f"(checked against the paper: {'yes' if row.verified else 'no'})" in blocks[heads[0]], row


def test_selection_and_loss_balance_are_stated(guide):
    assert "either way" not in guide
    lsmdc = guide.split("\n## lsmdc: ", 1)[1].split("\n## ", 1)[0]
    assert "runs/lsmdc/final" in lsmdc and "`protocol.selection` last" in lsmdc
    section = guide.split("\n## pretrain: ", 1)[1]
    assert "### Loss balance" in section and "itc 0.0625 (official 0.0625), negatives from 16 (official 128)" in section
