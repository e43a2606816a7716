"""Pins the official vqaEval.py semantics, quirks included (conventions.md, VQA v2)."""

import pytest

from sclbench.errors import SCLBenchError
from sclbench.metrics import MetricInputError, vqa_accuracy, vqa_evaluate, vqa_scores, vqa_soft_score, vqa_vote_score
from sclbench.metrics.vqa import process_digit_article, process_punctuation


def answers(*pairs: tuple[str, int]) -> list[str]:
    out = [a for a, n in pairs for _ in range(n)]
    assert len(out) == 10
    return out


@pytest.mark.parametrize("matches,expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (7, 1.0), (10, 1.0)])
def test_leave_one_out_closed_form(matches, expected):
    gts = answers(("cat", matches), ("dog", 10 - matches)) if matches < 10 else ["cat"] * 10
    assert vqa_accuracy("cat", gts) == pytest.approx(expected, abs=1e-12)


def test_leave_one_out_is_not_min_n_over_3():
    # min(1, 1/3) would be .333; the official leave-one-out average is .3
    assert vqa_accuracy("red", answers(("red", 1), ("blue", 9))) == pytest.approx(0.3)


def test_identical_answers_skip_all_processing():
    # All ten answers identical: compared raw (only stripped), so case and articles matter.
    assert vqa_accuracy("Yes", ["yes"] * 10) == 0.0
    assert vqa_accuracy("  yes\n", ["yes"] * 10) == 1.0
    assert vqa_accuracy("the dog", ["dog"] * 10) == 0.0
    # One dissenting answer switches processing on for everyone.
    assert vqa_accuracy("the Dog", answers(("dog", 9), ("cat", 1))) == 1.0


def test_number_words_and_articles():
    gts = answers(("2", 5), ("3", 5))
    assert vqa_accuracy("two", gts) == 1.0
    assert vqa_accuracy("none", answers(("0", 4), ("1", 6))) == 1.0
    assert vqa_accuracy("a dog", answers(("dog", 3), ("the dog", 3), ("cat", 4))) == 1.0
    assert process_digit_article("The Two Dogs dont") == "2 dogs don't"


def test_punctuation_rules():
    # A mark touching a space is deleted, otherwise replaced by a space.
    assert process_punctuation("yes!") == "yes "
    assert process_punctuation("yes !") == "yes "
    assert process_punctuation("black-and-white") == "black and white"
    # The comma rule (digit,digit) anywhere deletes every mark instead of spacing it.
    assert process_punctuation("1,000 (approx)") == "1000 approx"
    # Periods go unless followed by a digit; ':' and "'" are not in the official list.
    assert process_punctuation("3.5 m.p.h.") == "3.5 mph"
    assert process_punctuation("it's 10:30") == "it's 10:30"
    assert vqa_accuracy("black-and-white", answers(("black and white", 4), ("gray", 6))) == 1.0


def test_period_regex_count_quirk():
    # re.UNICODE (32) is passed as the count: only the first 32 periods are stripped.
    assert process_punctuation("." * 40) == "." * 8
    assert process_punctuation("a." * 33) == "a" * 32 + "a."


def test_evaluate_per_type_and_full_precision():
    qs = [
        {"question_id": 1, "answers": ["yes"] * 10, "answer_type": "yes/no", "question_type": "is the"},
        {
            "question_id": 2,
            "answers": answers(("2", 1), ("3", 9)),
            "answer_type": "number",
            "question_type": "how many",
        },
        {
            "question_id": 3,
            "answers": answers(("red", 2), ("blue", 8)),
            "answer_type": "other",
            "question_type": "what color",
        },
    ]
    res = vqa_evaluate({1: "yes", 2: "two", 3: "red"}, qs)
    assert res["accuracy"] == pytest.approx(100 * (1 + 0.3 + 0.6) / 3)
    assert res["accuracy"] != round(res["accuracy"], 2)  # not rounded in the dict
    assert res["accuracy_yes_no"] == 100.0
    assert res["accuracy_number"] == pytest.approx(30.0)
    assert res["per_answer_type"]["other"] == pytest.approx(60.0)
    assert res["per_question_type"]["how many"] == pytest.approx(30.0)
    assert res["count"] == 3


def test_annotation_dicts_and_evalai_records():
    qs = [
        {
            "question_id": 7,
            "answers": [{"answer": "cat", "answer_id": i} for i in range(10)],
            "answer_type": "other",
            "question_type": "what",
        }
    ]
    assert vqa_evaluate([{"question_id": 7, "answer": "cat"}], qs)["accuracy"] == 100.0


def test_missing_prediction_is_an_error():
    qs = [{"question_id": q, "answers": ["a"] * 10, "answer_type": "other", "question_type": "x"} for q in (1, 2)]
    with pytest.raises(MetricInputError, match="no prediction for 1 of 2"):
        vqa_evaluate({1: "a"}, qs)
    with pytest.raises(SCLBenchError):
        vqa_scores({}, qs)


def test_duplicates_and_extra_predictions():
    qs = [{"question_id": 1, "answers": ["a"] * 10, "answer_type": "other", "question_type": "x"}]
    dup = [{"question_id": 1, "answer": "a"}, {"question_id": 1, "answer": "b"}]
    with pytest.raises(MetricInputError, match="several predictions"):
        vqa_evaluate(dup, qs)
    assert vqa_evaluate(dup, qs, duplicates="first")["accuracy"] == 100.0
    assert vqa_evaluate(dup, qs, duplicates="last")["accuracy"] == 0.0
    with pytest.raises(MetricInputError, match="not in the ground truth"):
        vqa_evaluate({1: "a", 2: "b"}, qs)
    assert vqa_evaluate({1: "a", 2: "b"}, qs, extra="ignore")["accuracy"] == 100.0
    with pytest.raises(MetricInputError, match="twice"):
        vqa_scores({1: "a"}, qs + qs)


def test_vote_score_and_soft_score_proxy():
    assert [vqa_vote_score(n) for n in range(6)] == [0.0, 0.3, 0.6, 0.9, 1.0, 1.0]
    targets = [[0.0, 0.3, 1.0], [0.9, 0.0, 0.0]]
    assert vqa_soft_score([[0.1, 0.2, 5.0], [0.0, 3.0, 1.0]], targets) == pytest.approx(50.0)
    assert vqa_soft_score([2, 0], targets) == pytest.approx(95.0)
    with pytest.raises(MetricInputError):
        vqa_soft_score([0, 1, 2], targets)
