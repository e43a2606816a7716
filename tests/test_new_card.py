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

SMALL = ["train.global_batch_size=2", "train.per_device_batch_size=2", "train.neg_texts=1", "train.log_every=1"]


def run(cards: Path, *argv: str) -> int:
    return main(["--cards", str(cards), *argv])


@pytest.fixture
def cards(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cards"
    folder.mkdir()
    (folder / "f8k.yaml").write_text(F8K)
    # --cards sets $SCLBENCH_TASKS_DIR for the rest of the process: undone after the test
    monkeypatch.setenv("SCLBENCH_TASKS_DIR", str(folder))
    return folder


def test_a_seventh_card_runs_end_to_end_without_code_changes(cards, tmp_path, capsys):
    data = tmp_path / "synth"
    assert run(cards, "data", "synth", str(data), "--scale", "0.05") == 0
    # its own folder in the published Karpathy layout, its images where its card put them
    doc = json.loads((data / "f8k" / "karpathy" / "dataset_f8k.json").read_text())
    assert doc["dataset"] == "f8k"
    assert [e["split"] for e in doc["images"]] == ["train"] * 2 + ["val"] * 2 + ["test"] * 2  # 2 each at scale 0.05
    assert all((data / "f8k" / "Flicker8k_Dataset" / entry["filename"]).is_file() for entry in doc["images"])
    assert (data / "arrow" / "f8k_caption_karpathy_test.arrow").is_file()
    assert "f8k" in json.loads((data / "synth.json").read_text())["tasks"]

    capsys.readouterr()
    assert run(cards, "data", "check", "f8k", "--data-root", str(data / "f8k")) == 0
    assert "f8k at" in capsys.readouterr().out

    run_dir = tmp_path / "run"
    assert run(cards, "finetune", "f8k", "--data-root", str(data / "f8k"), "--preset", "tiny", "--tokenizer",
               str(data / "tokenizer"), "--out", str(run_dir), "--max-steps", "2", "--no-resume", *SMALL) == 0
    assert (run_dir / "final").is_dir()

    results = tmp_path / "results"
    assert run(cards, "eval", "f8k", "--ckpt", str(run_dir / "final"), "--data-root", str(data / "f8k"), "--split",
               "test", "--results", str(results), "--mode", "exhaustive") == 0
    (record,) = collect(results)
    assert record.task == "f8k" and record.split == "test"
    assert {"tr_r1", "ir_r1", "r_mean"} <= set(record.metrics)
    # the card is its own: f30k's paper numbers are not f8k's
    assert not record.extra.get("paper") and "paper" not in record.config["card"]


def test_the_seventh_card_is_seen_everywhere_the_cards_are_listed(cards):
    from sclbench.app.catalog import task_names
    from sclbench.config import load_card
    from sclbench.data.formats import card_format
    from sclbench.data.synthetic import synth_cards

    card = load_card("f8k")
    assert card_format(card).name == "karpathy"  # inherited from f30k
    assert card.get("train.lr") == load_card("f30k").get("train.lr")
    assert card.get("data.root") == "data/f8k" and card.get("data.dedup_captions") is True
    assert list(synth_cards())[-2:] == ["pretrain", "f8k"]  # order 80: after the packaged parts
    assert "f8k" in task_names()
    # help texts list the cards found when the CLI starts ($SCLBENCH_TASKS_DIR's included)
    env = {**os.environ, "SCLBENCH_TASKS_DIR": str(cards), "COLUMNS": "200"}
    shown = subprocess.run([sys.executable, "-m", "sclbench", "data", "check", "--help"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "f8k" in shown.stdout, shown.stdout + shown.stderr
