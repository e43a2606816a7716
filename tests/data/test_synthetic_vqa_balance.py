"""The synthetic VQA is balanced like VQA v2: every question string is asked of images that answer it
differently, its answers spread evenly, so the question alone does not give the answer away."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from sclbench.data import synth_scenes as S
from sclbench.data.formats import vqa as fmt
from sclbench.data.synthetic import generate
from sclbench.metrics.blind import QuestionPrior, normalize_answer

SPECS = {spec.question: spec for spec in S.question_specs()}


def answers_per_question(questions) -> dict[str, Counter]:
    per: dict[str, Counter] = defaultdict(Counter)
    for q in questions:
        per[q["question"]][normalize_answer(q["multiple_choice_answer"])] += 1
    return per


def assert_balanced(per: dict[str, Counter]) -> None:
    for question, counts in per.items():
        n, top = sum(counts.values()), max(counts.values())
        assert len(counts) >= 2, f"{question!r} asked {n} times, always answered {next(iter(counts))!r}"
        # answers cycle through the question's answers: the most frequent one is at most one ahead
        assert top <= -(-n // len(SPECS[question].answers)) + 1, (question, dict(counts))
        assert top / n <= 2 / 3, (question, dict(counts))


@pytest.fixture(scope="module")
def vqa_root(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth"), seed=0, scale=1.0, parts=("vqa",), tokenizer=False) / "vqa"


@pytest.mark.parametrize("split", ["train", "val"])
def test_every_question_of_the_generated_split_is_balanced(vqa_root, split):
    records = fmt.read_vqa(vqa_root, split)
    per = answers_per_question(
        {"question": r.question, "multiple_choice_answer": r.multiple_choice_answer} for r in records
    )
    assert len(per) >= 20, "the split asks too few different questions to say anything"
    assert_balanced(per)
    # and every image is asked three different questions
    by_image = Counter(r.image_id for r in records)
    assert set(by_image.values()) == {3}
    assert all(len({r.question for r in records if r.image_id == i}) == 3 for i in by_image)


@pytest.mark.parametrize("n_images", [2, 3, 5, 12, 40, 60, 150])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_balance_and_truth_hold_for_any_split_size(n_images, seed):
    images = S.balanced_questions(n_images, random.Random(f"{seed}/{n_images}"))
    assert len(images) == n_images
    for scene, questions in images:
        assert len(questions) == 3 and len({q["question"] for q in questions}) == 3
        for q in questions:
            spec = SPECS[q["question"]]
            # the majority answer is what the scene says, and every annotator answer is a possible one
            assert q["multiple_choice_answer"] == spec.answer(scene)
            assert {normalize_answer(a) for a in q["answers"]} <= set(spec.answers)
            assert Counter(normalize_answer(a) for a in q["answers"])[spec.answer(scene)] >= 8
    assert_balanced(answers_per_question(q for _, qs in images for q in qs))


def test_the_question_alone_scores_near_its_chance(vqa_root):
    """The most frequent training answer per question string matches the val answer about as often as
    a uniform guess among that question's answers: no prior left to learn."""
    train, val = fmt.read_vqa(vqa_root, "train"), fmt.read_vqa(vqa_root, "val")
    prior = QuestionPrior.fit(train)
    hits = [prior.answer(r.question, r.question_type) == r.multiple_choice_answer for r in val]
    uniform = sum(1 / len(SPECS[r.question].answers) for r in val)
    assert abs(sum(hits) - uniform) / len(val) < 0.1, (sum(hits) / len(val), uniform / len(val))


def test_same_seed_same_questions_other_seed_others():
    def draw(seed: int):
        return [(scene, [q["question"] for q in qs]) for scene, qs in S.balanced_questions(20, random.Random(seed))]

    assert draw(0) == draw(0)
    assert draw(0) != draw(1)


def test_a_skewed_split_fails_the_balance_check():
    """The check above can fail: the old generator's kind of split (one answer per question) is caught."""
    skewed = [{"question": "How many shapes are there?", "multiple_choice_answer": "1"}] * 5
    with pytest.raises(AssertionError, match="always answered"):
        assert_balanced(answers_per_question(skewed))
    lopsided = skewed + [{"question": "How many shapes are there?", "multiple_choice_answer": "2"}]
    with pytest.raises(AssertionError):
        assert_balanced(answers_per_question(lopsided))
