"""The config layer: packaged cards through importlib.resources, user card folders, strict overrides."""

from __future__ import annotations

import pytest

from sclbench.cards import (
    apply_overrides,
    available_cards,
    cards_dirs,
    check_override_keys,
    leaf_keys,
    load_card,
    packaged_cards_dir,
)
from sclbench.errors import ConfigError
from sclbench.tasks.base import get_task, settings_read_by_code


def test_cards_ship_inside_the_package():
    folder = packaged_cards_dir()
    assert folder.parts[-3:] == ("sclbench", "assets", "tasks")
    assert {"vqa", "nlvr2", "f30k", "coco", "msrvtt", "lsmdc", "pretrain"} <= set(available_cards())


def test_user_folder_comes_first(tmp_path, monkeypatch):
    (tmp_path / "vqa.yaml").write_text("name: vqa\nfamily: vqa\ndescription: mine\n")
    monkeypatch.setenv("SCLBENCH_TASKS_DIR", str(tmp_path))
    assert cards_dirs()[0] == tmp_path
    assert load_card("vqa").get("description") == "mine"
    monkeypatch.delenv("SCLBENCH_TASKS_DIR")
    assert load_card("vqa").get("description") != "mine"


def test_unknown_card_lists_the_known_ones():
    with pytest.raises(ConfigError, match="known tasks: .*nlvr2"):
        load_card("nlvr3")


def test_overrides_parse_yaml_scalars_and_numbers():
    data = apply_overrides({"train": {"lr": 1.0}}, ["train.lr=1e-5", "splits.train=[train, val]", "eval.k=16"])
    assert data["train"]["lr"] == 1e-5 and data["splits"]["train"] == ["train", "val"] and data["eval"]["k"] == 16


@pytest.mark.parametrize(
    "typo, nearest",
    [
        ("train.lrr=1e-5", "train.lr"),
        ("eval.kk=3", "eval.k"),
        ("splits.tset=test", "splits.test"),
        ("model.image_szie=224", "model.image_size"),
    ],
)
def test_a_typo_is_refused_with_the_nearest_key(typo, nearest, synth_root):
    with pytest.raises(ConfigError, match=f"did you mean {nearest}\\?"):
        get_task("f30k", [typo], data_root=str(synth_root / "f30k"))


def test_settings_the_code_reads_are_accepted(synth_root):
    task = get_task(
        "f30k",
        ["train.max_grad_norm=1.0", "eval.ties=index", "paper.scl.test.tr_r1=1"],
        data_root=str(synth_root / "f30k"),
    )
    assert task.card.get("train.max_grad_norm") == 1.0 and task.card.get("eval.ties") == "index"


def test_override_without_equals_sign():
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides({}, ["train.lr"])
    check_override_keys(["paper.anything=1"], set(), "card")  # free-form section: no error


def test_every_card_setting_is_read_by_the_code():
    """A setting no code reads is a promise nothing keeps: each card leaf must be a setting the code
    declares (TrainConfig / SCLConfig fields, OPTIONAL_SETTINGS) or a name the source reads."""
    import re
    from pathlib import Path

    import sclbench

    source = "\n".join(p.read_text() for p in Path(sclbench.__file__).parent.rglob("*.py"))
    declared = settings_read_by_code()
    for name in available_cards():
        card = load_card(name)
        for key in sorted(leaf_keys(card.data)):
            if key.startswith("paper") or key in declared or "." not in key and key in ("name", "family"):
                continue
            last = key.rsplit(".", 1)[-1]
            assert re.search(rf"[\"'.{{]{re.escape(last)}[\"'}}]|\b{re.escape(last)}\b\s*[:=]", source), (
                f"{name}.yaml: {key} is read by no code"
            )
