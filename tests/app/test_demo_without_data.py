"""A card with a `demo:` section that the synthetic benchmark holds no data for (no `synth:` section, or a
copy of a packaged card that keeps the packaged card's `name:`): `sclbench demo` leaves it out with a note
naming the card, and a demo asked for it by name is one error naming the card, before any data is written.
(Before: a data-root error about another task, after generation and pre-training.)"""

from __future__ import annotations

import shutil

import pytest
import yaml

from sclbench.app import demo
from sclbench.assets import packaged_cards_dir
from sclbench.errors import ConfigError

PACKAGED = ("vqa", "nlvr2", "f30k", "coco", "msrvtt", "lsmdc")
DEMO = {"order": 25, "shown": ["accuracy"], "step_factor": 1.0, "cost": 10}


@pytest.fixture
def user_cards(tmp_path, monkeypatch):
    """A cards folder with the two kinds: myf30k.yaml a copy of f30k.yaml (its `name: f30k` too, as the
    fuzz workspace's card), mynlvr2.yaml a demo card without synthetic data."""
    shutil.copy(packaged_cards_dir() / "f30k.yaml", tmp_path / "myf30k.yaml")
    card = yaml.safe_load((packaged_cards_dir() / "nlvr2.yaml").read_text())
    for key in ("name", "synth"):
        del card[key]
    (tmp_path / "mynlvr2.yaml").write_text(yaml.safe_dump({**card, "demo": DEMO}))
    monkeypatch.setenv("SCLBENCH_TASKS_DIR", str(tmp_path))
    return tmp_path


def test_the_packaged_demo_cards_all_have_data(monkeypatch):
    monkeypatch.delenv("SCLBENCH_TASKS_DIR", raising=False)
    assert tuple(demo.demo_tasks()) == PACKAGED
    assert demo.without_data(PACKAGED) == {}


def test_cards_without_synthetic_data_are_named_with_why(user_cards):
    specs = demo.demo_tasks()
    assert {"myf30k", "mynlvr2"} <= set(specs)
    missing = demo.without_data(tuple(specs))
    assert set(missing) == {"myf30k", "mynlvr2"}
    assert "no synth: section" in missing["mynlvr2"]
    assert "'f30k', not 'myf30k'" in missing["myf30k"]


def _stub_the_work(monkeypatch, calls):
    """run_demo with generation, training and evaluation replaced by recorders."""
    import sclbench.data.synthetic as synthetic

    def generate(out, **kw):
        calls.append(("generate", kw))
        out.mkdir(parents=True)
        return out

    monkeypatch.setattr(synthetic, "generate", generate)

    def run_all(batch, workers):
        calls.append(("run", [call[1] for call in batch]))
        return [{"path": None, "finetune_s": 0.0, "evaluate_s": 0.0, "cpu_s": 0.0} for _ in batch]

    monkeypatch.setattr(demo, "_run_all", run_all)
    monkeypatch.setattr(demo, "collect", lambda results: [])


def test_the_demo_leaves_them_out_with_a_note(user_cards, tmp_path, monkeypatch, capsys):
    calls = []
    _stub_the_work(monkeypatch, calls)
    demo.run_demo(tmp_path / "out", quick=True, workers=1)
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    for name in ("myf30k", "mynlvr2"):
        assert f"left out: task card '{name}' has a demo: section" in err
    finetuned = [tasks for what, tasks in calls if what == "run"][-1]
    assert sorted(finetuned) == sorted(PACKAGED)


@pytest.mark.parametrize("asked", [("myf30k",), ("f30k", "mynlvr2")])
def test_a_demo_asked_for_one_by_name_is_one_error_naming_it(user_cards, tmp_path, monkeypatch, asked):
    calls = []
    _stub_the_work(monkeypatch, calls)
    with pytest.raises(ConfigError, match=f"task card '{asked[-1]}'"):
        demo.run_demo(tmp_path / "out", quick=True, workers=1, tasks=asked)
    assert calls == []  # refused before generating anything
