"""Blind baselines: the question-only VQA answer, the statement-only NLVR2 bound, the paired sign-flip test."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from sclbench.metrics import MetricInputError
from sclbench.metrics.blind import (
    QuestionPrior,
    paired_p_value,
    question_only_baseline,
    sentence_only_accuracy,
    training_answer,
)


def q(question, answer, qtype="what", qid=None, noise=()):
    return {
        "question_id": qid,
        "question": question,
        "question_type": qtype,
        "answers": [answer] * (10 - len(noise)) + list(noise),
    }


def test_the_prior_falls_back_from_question_to_type_to_overall():
    train = [q("Is it red?", "yes", "is it"), q("Is it red?", "yes", "is it"), q("What color?", "blue", "what color")]
    train += [q("What color?", "blue", "what color"), q("How many?", "2", "how many")]
    prior = QuestionPrior.fit(train)
    assert prior.answer("IS IT RED ?") == "yes"  # case, spacing, "?" ignored
    assert prior.answer("Is it round?", "is it") == "yes"  # unseen question: its type
    assert prior.answer("Why?", "why") == "blue" and prior.answer("Why?") == "blue"  # then overall


def test_ties_are_broken_the_same_way_whatever_the_order():
    train = [q("Is it red?", "yes"), q("Is it red?", "no")]
    for order in itertools.permutations(train):
        assert QuestionPrior.fit(order).answer("Is it red?") == "no"


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"multiple_choice_answer": "Two", "answers": ["3"] * 10}, "2"),
        ({"answers": ["two", "2", "3", "3"]}, "2"),  # "two" and "2" are one answer to the scorer
        ({"answers": [], "label_scores": {"no": 0.3, "yes": 0.9}}, "yes"),
        ({"answers": []}, None),
    ],
)
def test_training_answer(record, expected):
    assert training_answer(record) == expected


def test_the_baseline_is_scored_by_the_official_scorer_on_labelled_questions_only():
    train = [q("How many?", "2")]
    test = [
        q("How many?", "2", qid=1, noise=("3",) * 4),
        q("How many?", "3", qid=2, noise=("2",)),
        {"question_id": 3, "question": "How many?", "answers": []},
    ]
    base = question_only_baseline(train, test)
    assert base.answers == {1: "2", 2: "2"}
    assert base.scores == pytest.approx({1: 1.0, 2: 0.3})  # one dissenter of ten: 0.3 partial credit
    assert base.accuracy == pytest.approx(65.0)


def test_a_prior_scores_high_on_skewed_data_and_low_on_balanced_data():
    rng = random.Random(0)
    questions = [f"Is there a {c}?" for c in ("red", "blue", "green")]
    skewed = [q(rng.choice(questions), "yes" if rng.random() < 0.9 else "no") for _ in range(200)]
    balanced = [q(question, answer) for question in questions for answer in ("yes", "no") for _ in range(30)]
    assert question_only_baseline(skewed, skewed[:100]).accuracy > 80
    assert question_only_baseline(balanced, balanced).accuracy == pytest.approx(50.0)


@pytest.mark.parametrize("bad", [[], [{"question": "x", "answers": []}]])
def test_no_training_answers_is_one_metric_error(bad):
    with pytest.raises(MetricInputError, match="training questions"):
        question_only_baseline(bad, [q("x", "1", qid=1)])


def test_exact_sign_flip_equals_the_enumeration():
    rng = np.random.default_rng(3)
    model, base = rng.random(9), rng.random(9)
    diff = model - base
    totals = [sum(s * d for s, d in zip(signs, diff)) for signs in itertools.product((1, -1), repeat=9)]
    assert paired_p_value(model, base) == pytest.approx(np.mean(np.array(totals) >= diff.sum() - 1e-12))


@pytest.mark.parametrize("n", [40, 150, 1000])
def test_sign_flip_p_values_are_calibrated_and_see_an_effect(n):
    rng = np.random.default_rng(n)
    same = [paired_p_value(rng.random(n), rng.random(n), resamples=500, seed=i) for i in range(60)]
    assert 0.25 < np.mean(same) < 0.75  # under the null the p-values spread over (0, 1)
    better = rng.random(n) < 0.9
    worse = rng.random(n) < 0.3
    assert paired_p_value(better, worse) < 0.01
    assert paired_p_value(worse, better) > 0.9  # one-sided


def test_units_share_a_sign():
    model, base = [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]
    assert paired_p_value(model, base) == pytest.approx(1 / 64)
    assert paired_p_value(model, base, units=list("aabbcc")) == pytest.approx(1 / 8)
    assert paired_p_value(model, base, units=list("aaaaaa")) == pytest.approx(1 / 2)


@pytest.mark.parametrize("args", [([1, 0], [1]), ([1], [0], None, 0, ["a", "b"])])
def test_paired_lists_of_different_lengths_are_one_metric_error(args):
    with pytest.raises(MetricInputError, match="equally long"):
        paired_p_value(*args)


def test_statement_only_bound():
    ids = [f"test1-{s}-{p}-0" for s in range(5) for p in (0, 1)]
    assert sentence_only_accuracy(ids, [p == 0 for s in range(5) for p in (0, 1)]) == 50.0  # complementary
    assert sentence_only_accuracy(ids, [True] * 10) == 100.0  # a statement always true: text alone suffices
    with pytest.raises(MetricInputError):
        sentence_only_accuracy(ids, [True])
