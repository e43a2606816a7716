"""A seventh benchmark is a card: a Flickr8K-like card of the karpathy format, in a folder of the
user's own cards, goes through `data synth`, `data check`, `finetune` and `eval` on the command line
with no change to the code (issue 23, "Done when")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sclbench.cli import main
from sclbench.results import collect

F8K = """# Flickr8K with the Karpathy split (dataset_f8k.json): Flickr30K's recipe, its own data and sizes
name: f8k
include: f30k
description: Image-text retrieval on Flickr8K (Karpathy split), the Flickr30K recipe.
data:
  root: data/f8k
  dataset: f8k
synth:
  order: 80
  splits: {train: 30, val: 6, test: 10}
  image_dir: Flicker8k_Dataset
"""

# An MSVD-like card of the MSRVTT format: clips and captions in the MSRVTT layout under its own folder.
MSVD = """name: msvd
include: msrvtt
description: Video-text retrieval on an MSVD-like set in the MSRVTT layout.
data:
  root: data/msvd
  dataset: msvd
synth:
  order: 90
  splits: {train: 40, test: 20}
"""
CARDS = {"f8k": F8K, "msvd": MSVD}
METRICS = {"f8k": {"tr_r1", "ir_r1", "r_mean"}, "msvd": {"t2v_r1", "v2t_r1"}}

SMALL = ["train.global_batch_size=2", "train.per_device_batch_size=2", "train.neg_texts=1", "train.log_every=1"]


def run(cards: Path, *argv: str) -> int:
    return main(["--cards", str(cards), *argv])


@pytest.fixture
def cards(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cards"
    folder.mkdir()
    for name, text in CARDS.items():
        (folder / f"{name}.yaml").write_text(text)
    # --cards sets $SCLBENCH_TASKS_DIR for the rest of the process: undone after the test
    monkeypatch.setenv("SCLBENCH_TASKS_DIR", str(folder))
    return folder


@pytest.fixture
def synth(cards, tmp_path) -> Path:
    data = tmp_path / "synth"
    assert run(cards, "data", "synth", str(data), "--scale", "0.05") == 0
    return data


def test_synth_writes_each_new_card_in_its_formats_layout(synth):
    # its own folder in the published Karpathy layout, its images where its card put them
    doc = json.loads((synth / "f8k" / "karpathy" / "dataset_f8k.json").read_text())
    assert doc["dataset"] == "f8k"
    assert [e["split"] for e in doc["images"]] == ["train"] * 2 + ["val"] * 2 + ["test"] * 2  # 2 each at scale 0.05
    assert all((synth / "f8k" / "Flicker8k_Dataset" / entry["filename"]).is_file() for entry in doc["images"])
    assert (synth / "arrow" / "f8k_caption_karpathy_test.arrow").is_file()
    assert (synth / "msvd" / "annotation" / "MSR_VTT.json").is_file()
    assert len(list((synth / "msvd" / "videos" / "all").glob("*.mp4"))) == 2 + 2  # train 40, test 20 at 0.05
    assert {"f8k", "msvd"} <= set(json.loads((synth / "synth.json").read_text())["tasks"])


@pytest.mark.parametrize("name", CARDS)
def test_a_seventh_card_runs_end_to_end_without_code_changes(name, cards, synth, tmp_path, capsys):
    capsys.readouterr()
    assert run(cards, "data", "check", name, "--data-root", str(synth / name)) == 0
    assert f"{name} at {synth / name}: OK" in capsys.readouterr().out

    run_dir = tmp_path / "run"
    assert (
        run(
            cards,
            "finetune",
            name,
            "--data-root",
            str(synth / name),
            "--preset",
            "tiny",
            "--tokenizer",
            str(synth / "tokenizer"),
            "--out",
            str(run_dir),
            "--max-steps",
            "2",
            "--no-resume",
            *SMALL,
        )
        == 0
    )
    assert (run_dir / "final").is_dir()

    results = tmp_path / "results"
    assert (
        run(
            cards,
            "eval",
            name,
            "--ckpt",
            str(run_dir / "final"),
            "--data-root",
            str(synth / name),
            "--split",
            "test",
            "--results",
            str(results),
            "--mode",
            "exhaustive",
        )
        == 0
    )
    (record,) = collect(results)
    assert record.task == name and record.split == "test"
    assert METRICS[name] <= set(record.metrics)
    # the card is its own: the included card's paper numbers are not its numbers
    assert "paper" not in record.config["card"]


def test_the_seventh_card_is_seen_everywhere_the_cards_are_listed(cards):
    from sclbench.app.catalog import task_names
    from sclbench.cards import load_card
    from sclbench.data.formats import card_format
    from sclbench.data.synthetic import synth_cards

    card = load_card("f8k")
    assert card_format(card).name == "karpathy"  # inherited from f30k
    assert card.get("train.lr") == load_card("f30k").get("train.lr")
    assert card.get("data.root") == "data/f8k" and card.get("data.dedup_captions") is True
    assert list(synth_cards())[-3:] == ["pretrain", "f8k", "msvd"]  # orders 80, 90: after the packaged parts
    assert "f8k" in task_names()
    # help texts list the cards found when the CLI starts ($SCLBENCH_TASKS_DIR's included)
    env = {**os.environ, "SCLBENCH_TASKS_DIR": str(cards), "COLUMNS": "200"}
    shown = subprocess.run(
        [sys.executable, "-m", "sclbench", "data", "check", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0 and "f8k" in shown.stdout, shown.stdout + shown.stderr


# End-to-end runs (subprocesses, training, compiling, fuzzing real jobs): CI runs them; the fast lane
# (-m "not slow") leaves them out to stay under two minutes.
pytestmark = pytest.mark.slow
