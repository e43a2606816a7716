"""`sclbench data synth --scale S` writes a benchmark every task reads, at any supported scale.

From the smallest supported scale (`MIN_SCALE`, where every split is near its floor of 2 samples) to the
demo's 2: every part passes its card's check (its arrow tables too), every task reads each split it
plays, the VQA answer vocabulary is non-empty and its threshold is the one recorded in synth.json. A
smaller scale is one error naming --scale, before anything is written.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from sclbench.cli import main
from sclbench.common.tokenizer import load_tokenizer
from sclbench.data import synth_scenes as S
from sclbench.data.check import check_layout
from sclbench.data.formats import card_format, read_vqa
from sclbench.data.formats.vqa import AnswerVocab
from sclbench.data.formats.vqa_normalize import normalize_answer
from sclbench.data.synthetic import MIN_SCALE, VQA_MIN_COUNT, generate, synth_cards, vqa_min_count
from sclbench.errors import ConfigError
from sclbench.tasks.base import get_task

# Where the sizes still follow the scale, the VQA threshold steps down (0.02: 2, 0.01: 1), the test
# fixtures' 0.25, and the demo's scales (1: --quick, 2: full), which take ~10 and ~20 s to write.
SCALES = [
    MIN_SCALE,
    0.01,
    0.02,
    0.05,
    0.25,
    pytest.param(1.0, marks=pytest.mark.slow),
    pytest.param(2.0, marks=pytest.mark.slow),
]


@pytest.fixture(autouse=True)
def packaged_cards_only(monkeypatch):
    monkeypatch.delenv("SCLBENCH_TASKS_DIR", raising=False)


def _roles(card) -> list[str]:
    return ["train"] if card.family == "pretrain" else ["train", "val", "test"]


@pytest.mark.parametrize("scale", SCALES)
def test_every_part_is_read_by_its_task(scale, tmp_path):
    root = generate(tmp_path / "synth", seed=1, scale=scale)
    info = json.loads((root / "synth.json").read_text())
    cards = synth_cards()
    assert sorted(info["tasks"]) == sorted(cards)
    assert len(load_tokenizer(root / "tokenizer")) > 0
    for name, card in cards.items():
        report = check_layout(name, root / name)
        assert report.ok and report.found and all(n > 0 for n in report.found.values()), report.render()
        if card_format(card).arrow is not None:
            report = check_layout(name, root / "arrow")
            assert report.ok, report.render()
        # the VQA minival is cut from val (at least 2 images at any scale): one image of it
        overrides = ["data.minival_images=1"] if card.family == "vqa" else []
        task = get_task(name, overrides, data_root=str(root / name))
        counts = task.validate_data(_roles(card))
        assert all(n > 0 for n in counts.values()), (name, counts)
        if card.family == "vqa":
            vocab = task.vocab  # the saved answer_vocab.json
            assert len(vocab) > 0 and set(vocab.answers) <= set(S.possible_answers())
            assert info["vqa_min_count"] == vqa_min_count(len(task.records("train")) + len(task.records("val")))


# The VQA part alone (no videos, no tokenizer: ~0.1 s a scale below 1), on a finer grid of scales.
VQA_SCALES = [MIN_SCALE, 0.006, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.025, 0.03, 0.04, 0.07, 0.1, 0.5, 1.0]


@pytest.mark.parametrize("scale", VQA_SCALES)
def test_the_vqa_vocabulary_is_never_empty_and_keeps_the_threshold_where_it_can(scale, tmp_path):
    root = generate(tmp_path, seed=0, scale=scale, parts=("vqa",), tokenizer=False) / "vqa"
    answered = read_vqa(root, "train") + read_vqa(root, "val")
    threshold = vqa_min_count(len(answered))
    vocab = AnswerVocab.load(root / "answer_vocab.json")
    counts = Counter(normalize_answer(r.multiple_choice_answer) for r in answered)
    assert vocab.answers == [a for a, n in counts.items() if n >= threshold] != []
    assert 1 <= threshold <= VQA_MIN_COUNT
    if len(answered) >= VQA_MIN_COUNT * len(S.possible_answers()):  # from 14 train + val images up: as before
        assert threshold == VQA_MIN_COUNT


@pytest.mark.parametrize("questions", range(1, 100))
def test_some_answer_always_reaches_the_threshold(questions):
    """Pigeonhole: of `questions` majority answers, each one of the possible answers, the most frequent
    occurs at least ceil(questions / answers) times: never below the threshold."""
    assert 1 <= vqa_min_count(questions) <= -(-questions // len(S.possible_answers()))


@pytest.mark.parametrize("scale", ["0.004", "0.001", "1e-9"])
def test_a_scale_below_the_smallest_is_one_error_naming_scale(scale, tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["data", "synth", str(out), "--scale", scale]) == 2
    err = capsys.readouterr().err
    assert "--scale" in err and f"{MIN_SCALE:g}" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    assert not out.exists()  # refused before anything is written
    with pytest.raises(ConfigError, match="--scale .* smallest supported scale"):
        generate(out, scale=float(scale))
