"""Blind baselines: what a VQA answer scores from the question alone, and whether a model beats that.

The question-only baseline answers each question with the most frequent training answer of the same
question string (VQA v2's "prior per question" idea, Goyal et al. 2017), falling back to the most
frequent answer of its question type (the annotations' `question_type`, e.g. "how many") and then to
the most frequent answer overall when the training split never asked it. It is scored by the official
scorer (`vqa_accuracy`) on the same questions as the model, so the two pair question by question;
`paired_p_value` tests the model against it (one-sided sign-flip test over the paired differences).

Records are anything with `question`, `answers` (the human answers), and optionally
`question_type`, `multiple_choice_answer`, `label_scores` and `question_id`: VQA records or dicts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sclbench.metrics._common import MetricInputError
from sclbench.metrics.nlvr2 import sentence_key
from sclbench.metrics.vqa import process_digit_article, process_punctuation, vqa_accuracy


def _field(record: Any, name: str, default: Any = None) -> Any:
    if isinstance(record, Mapping):
        return record.get(name, default)
    return getattr(record, name, default)


def normalize_answer(answer: str) -> str:
    """An answer as the official scorer compares answers that disagree ("two" and "2" are one answer).

    Examples:
        >>> normalize_answer("two"), normalize_answer("a circle")
        ('2', 'circle')
    """
    return process_digit_article(process_punctuation(" ".join(str(answer).split())))


def question_key(question: str) -> str:
    """The question string as the baseline matches it: case, spacing and the final "?" ignored.

    Examples:
        >>> question_key("  How many  shapes are there? ")
        'how many shapes are there'
    """
    return " ".join(str(question).lower().split()).rstrip("?").strip()


def training_answer(record: Any) -> str | None:
    """The answer a training question teaches: its multiple-choice answer, else the most frequent human
    answer, else the best soft label (tables that keep only those); normalised as the scorer does.

    Examples:
        >>> training_answer({"answers": ["two", "2", "3"]})
        '2'
        >>> training_answer({"answers": [], "label_scores": {"no": 0.3, "yes": 1.0}})
        'yes'
    """
    chosen = _field(record, "multiple_choice_answer")
    if not chosen:
        answers = [normalize_answer(str(a)) for a in _field(record, "answers") or []]
        if answers:
            counts = Counter(answers)
            chosen = min(counts, key=lambda a: (-counts[a], a))
        else:
            labels = _field(record, "label_scores") or {}
            chosen = min(labels, key=lambda a: (-labels[a], a)) if labels else None
    return normalize_answer(str(chosen)) if chosen else None


def _most_frequent(counts: Counter) -> str:
    return min(counts, key=lambda a: (-counts[a], a))  # ties: the first by name, so the result is fixed


@dataclass(frozen=True)
class QuestionPrior:
    """The most frequent training answer per question string, per question type and overall."""

    by_question: dict[str, str]
    by_type: dict[str, str]
    overall: str

    @classmethod
    def fit(cls, training: Iterable[Any]) -> QuestionPrior:
        """Count the training answers; MetricInputError when no training record has an answer.

        Examples:
            >>> prior = QuestionPrior.fit([
            ...     {"question": "Is it red?", "question_type": "is it", "answers": ["yes"] * 10},
            ...     {"question": "Is it blue?", "question_type": "is it", "answers": ["no"] * 10},
            ...     {"question": "Is it blue?", "question_type": "is it", "answers": ["no"] * 10},
            ... ])
            >>> prior.answer("is it red?"), prior.answer("Is it green?", "is it"), prior.answer("What?")
            ('yes', 'no', 'no')
        """
        per_question: dict[str, Counter] = {}
        per_type: dict[str, Counter] = {}
        overall: Counter = Counter()
        for record in training:
            answer = training_answer(record)
            if answer is None:
                continue
            per_question.setdefault(question_key(_field(record, "question", "")), Counter())[answer] += 1
            qtype = _field(record, "question_type")
            if qtype:
                per_type.setdefault(str(qtype), Counter())[answer] += 1
            overall[answer] += 1
        if not overall:
            raise MetricInputError("the question-only baseline needs training questions with answers")
        return cls(
            {q: _most_frequent(c) for q, c in per_question.items()},
            {t: _most_frequent(c) for t, c in per_type.items()},
            _most_frequent(overall),
        )

    def answer(self, question: str, question_type: str | None = None) -> str:
        """The question's own most frequent training answer, else its type's, else the overall one."""
        found = self.by_question.get(question_key(question))
        if found is None and question_type:
            found = self.by_type.get(str(question_type))
        return self.overall if found is None else found


@dataclass(frozen=True)
class BlindBaseline:
    accuracy: float  # percent, over the labelled questions
    scores: dict[Any, float]  # question id -> official accuracy in [0, 1] of the blind answer
    answers: dict[Any, str]  # question id -> the blind answer


def question_only_baseline(training: Iterable[Any], evaluated: Sequence[Any]) -> BlindBaseline:
    """The question-only baseline fitted on `training` and scored on the labelled `evaluated` records.

    Examples:
        >>> train = [{"question": "How many?", "answers": ["2"] * 10}]
        >>> test = [{"question_id": 7, "question": "How many?", "answers": ["2"] * 6 + ["3"] * 4}]
        >>> base = question_only_baseline(train, test)
        >>> base.accuracy, base.answers
        (100.0, {7: '2'})
    """
    prior = QuestionPrior.fit(training)
    scores: dict[Any, float] = {}
    answers: dict[Any, str] = {}
    for i, record in enumerate(evaluated):
        human = _field(record, "answers") or []
        if not human:
            continue
        qid = _field(record, "question_id")
        qid = i if qid is None else qid
        answers[qid] = prior.answer(_field(record, "question", ""), _field(record, "question_type"))
        scores[qid] = vqa_accuracy(answers[qid], [str(a) for a in human])
    if not scores:
        raise MetricInputError("the question-only baseline needs evaluated questions with human answers")
    return BlindBaseline(100.0 * sum(scores.values()) / len(scores), scores, answers)


def paired_p_value(
    model: Sequence[float],
    baseline: Sequence[float],
    resamples: int = 10_000,
    seed: int = 0,
    units: Sequence[Any] | None = None,
) -> float:
    """One-sided p-value of "the model scores no higher than the baseline", paired sample by sample.

    Sign-flip (randomisation) test: under the null each paired difference is as likely negative as
    positive, so the observed total difference is set against the totals with random signs; exact over
    all 2^n signs up to n = 16, else `resamples` seeded draws (floor 1 / (resamples + 1)). `units`
    (one per sample, e.g. the image a question is about): the differences of a unit share one sign,
    as questions about the same image are not independent.

    Examples:
        Four of four questions better: exact p = one sign pattern in 2^4 is as extreme.

        >>> paired_p_value([1, 1, 1, 1], [0, 0, 0, 0])
        0.0625
        >>> paired_p_value([1, 1, 1, 1], [0, 0, 0, 0], units=["a", "a", "b", "b"])  # two units: 1 in 4
        0.25
        >>> paired_p_value([0.5, 0.5], [0.5, 0.5])
        1.0
    """
    if len(model) != len(baseline) or (units is not None and len(units) != len(model)):
        sizes = f"{len(model)}, {len(baseline)}" + ("" if units is None else f" and {len(units)} units")
        raise MetricInputError(f"paired_p_value needs equally long lists, got {sizes}")
    diff = np.asarray(model, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    if units is not None:  # one difference per unit: the sum of its samples'
        totals: dict[Any, float] = {}
        for unit, d in zip(units, diff.tolist()):
            totals[unit] = totals.get(unit, 0.0) + d
        diff = np.asarray(list(totals.values()), dtype=np.float64)
    diff = diff[diff != 0.0]  # ties carry no sign
    if diff.size == 0:
        return 1.0
    observed = diff.sum()
    tolerance = 1e-9 * max(1.0, float(np.abs(diff).sum()))
    if diff.size <= 16:
        signs = 1 - 2 * ((np.arange(2**diff.size)[:, None] >> np.arange(diff.size)) & 1)
        return float(np.mean(signs @ diff >= observed - tolerance))
    rng = np.random.default_rng(seed)
    hits, step = 0, max(1, 2_000_000 // diff.size)  # draws per batch: bounded memory for large sets
    for start in range(0, resamples, step):
        signs = rng.choice(np.array([-1.0, 1.0]), size=(min(step, resamples - start), diff.size))
        hits += int(np.sum(signs @ diff >= observed - tolerance))
    return float((1 + hits) / (resamples + 1))


def sentence_only_accuracy(identifiers: Sequence[str], labels: Sequence[bool]) -> float:
    """The best accuracy (percent) any answer from the NLVR2 statement alone can reach on these samples:
    each statement (its pairs share `sentence_key`) answered with its most frequent label here.

    The synthetic NLVR2 makes every statement true of one of its image pairs and false of the other,
    so this is 50 by design; on other data it bounds what a text-only shortcut can score.

    Examples:
        >>> sentence_only_accuracy(["dev-1-0-0", "dev-1-1-0", "dev-2-0-1"], [True, False, True])
        66.66666666666667
    """
    if len(identifiers) != len(labels) or not identifiers:
        raise MetricInputError(f"sentence_only_accuracy needs labels for the {len(identifiers)} identifiers")
    per_sentence: dict[str, Counter] = {}
    for identifier, label in zip(identifiers, labels):
        per_sentence.setdefault(sentence_key(str(identifier)), Counter())[bool(label)] += 1
    return 100.0 * sum(max(c.values()) for c in per_sentence.values()) / len(identifiers)
