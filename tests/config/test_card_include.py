"""`include:` in task cards: another card's settings deep-merged under the including card's."""

from __future__ import annotations

import pytest

from sclbench.cards import available_cards, deep_merge, load_card
from sclbench.cli import main
from sclbench.errors import ConfigError


@pytest.fixture
def cards(tmp_path, monkeypatch):
    monkeypatch.setenv("SCLBENCH_TASKS_DIR", str(tmp_path))

    def write(name: str, text: str):
        (tmp_path / f"{name}.yaml").write_text(text)
        return tmp_path / f"{name}.yaml"

    return write


def test_deep_merge_mappings_merge_and_the_top_wins():
    base = {"a": 1, "s": {"x": 1, "y": [1, 2], "t": {"p": 1}}, "l": [1, 2, 3]}
    top = {"s": {"y": [9], "t": {"q": 2}, "z": 3}, "l": [4], "b": 2}
    merged = deep_merge(base, top)
    assert merged == {"a": 1, "s": {"x": 1, "y": [9], "t": {"p": 1, "q": 2}, "z": 3}, "l": [4], "b": 2}
    assert base == {"a": 1, "s": {"x": 1, "y": [1, 2], "t": {"p": 1}}, "l": [1, 2, 3]}  # inputs untouched
    merged["s"]["t"]["p"] = 5
    assert base["s"]["t"]["p"] == 1  # no shared nested objects


def test_an_including_card_gets_the_base_under_its_own_keys(cards):
    cards("mine", "include: f30k\ndata: {root: data/mine, dataset: mine}\ntrain: {lr: 1.0e-5}\n")
    mine, f30k = load_card("mine"), load_card("f30k")
    assert mine.name == "mine" and mine.family == f30k.family
    assert mine.get("data.root") == "data/mine" and mine.get("data.dataset") == "mine"
    assert mine.get("data.dedup_captions") == f30k.get("data.dedup_captions")  # a sibling key kept
    assert mine.get("train.lr") == 1e-5 and mine.get("train.max_epochs") == f30k.get("train.max_epochs")
    assert mine.get("eval") == f30k.get("eval") and mine.get("format") == "karpathy"
    # what describes the base's own dataset is not inherited
    for section in ("paper", "reproduce", "demo"):
        assert f30k.get(section) and mine.get(section) is None, section
    assert "include" not in mine.data


def test_includes_chain_and_overrides_apply_last(cards):
    cards("middle", "include: coco\ntrain: {lr: 2.0e-5, max_epochs: 3}\n")
    cards("top", "include: middle\ntrain: {max_epochs: 1}\n")
    top = load_card("top", overrides=["train.weight_decay=0.5"], valid_keys=set())
    assert top.get("train.lr") == 2e-5 and top.get("train.max_epochs") == 1 and top.get("train.weight_decay") == 0.5
    assert top.get("data.train_with_restval") is True  # from coco, two levels down
    assert top.name == "top"


def load_card_packaged(name: str):
    from sclbench.cards import packaged_cards_dir

    return load_card(packaged_cards_dir() / f"{name}.yaml")


def test_a_users_card_may_include_the_packaged_card_of_its_own_name(cards):
    cards("f30k", "include: f30k\ntrain: {lr: 1.0e-5}\n")
    mine = load_card("f30k")
    assert mine.get("train.lr") == 1e-5 and mine.get("format") == "karpathy" and mine.get("eval.k") == 128
    # the same benchmark re-tuned: its paper numbers, guide facts and demo place come along
    assert all(mine.get(k) == load_card_packaged("f30k").get(k) for k in ("paper", "reproduce", "demo"))


def test_a_path_include_is_relative_to_the_including_card(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.yaml").write_text("family: vqa\nformat: vqa\ntrain: {lr: 1.0e-4}\n")
    (tmp_path / "top.yaml").write_text("include: sub/base.yaml\ntrain: {max_epochs: 2}\n")
    card = load_card(tmp_path / "top.yaml")
    assert card.family == "vqa" and card.get("train.lr") == 1e-4 and card.get("train.max_epochs") == 2


@pytest.mark.parametrize(
    "loop",
    [
        {"a": "include: a\nfamily: vqa\n"},  # itself
        {"a": "include: b\n", "b": "include: a\nfamily: vqa\n"},
        {"a": "include: b\n", "b": "include: c\n", "c": "include: a\nfamily: vqa\n"},
    ],
)
def test_an_include_cycle_is_one_error_naming_the_cycle(cards, loop):
    for name, text in loop.items():
        cards(name, text)
    with pytest.raises(ConfigError, match=r"include cycle a( -> \w)* -> a") as info:
        load_card("a")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "target, match",
    [
        ("no_such_card", "names no card"),
        ("[f30k, coco]", "should name one card"),
        ("''", "should name one card"),
        ("missing.yaml", "names no card"),
    ],
)
def test_a_bad_include_is_refused_naming_the_card(cards, target, match):
    path = cards("bad", f"include: {target}\nfamily: vqa\n")
    with pytest.raises(ConfigError, match=match) as info:
        load_card("bad")
    assert str(path) in str(info.value)


def test_a_broken_included_card_is_named(cards):
    cards("base", "family: vqa\ntrain: [unclosed\n")
    cards("top", "include: base\n")
    with pytest.raises(ConfigError, match=r"base\.yaml is not valid YAML"):
        load_card("top")


def test_values_an_include_brings_are_checked_like_the_cards_own(cards):
    cards("base", "family: vqa\nformat: vqa\ntrain: {lr: -1}\n")
    cards("top", "include: base\n")
    with pytest.raises(ConfigError, match="train.lr"):
        load_card("top")


def test_the_cli_reports_an_include_cycle_as_one_error_line(cards, tmp_path, capsys):
    cards("a", "include: b\n")
    cards("b", "include: a\nfamily: vqa\n")
    assert main(["data", "check", "a", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "include cycle" in err[0], err


@pytest.mark.parametrize("name", available_cards())
def test_every_packaged_card_loads_and_includes_nothing_unresolved(name):
    assert "include" not in load_card(name).data
