"""VQA v2 accuracy, exactly as the official GT-Vision-Lab `vqaEval.py` computes it, quirks included.

Parity with the official scorer matters more than tidiness here: a number in a result file must be
the number EvalAI would give. The quirks kept on purpose (see conventions.md, pinned by tests):

* answers are only normalised (punctuation, lower-case, number words, articles, contractions) when
  the 10 human answers are NOT all identical; otherwise the prediction is compared raw (stripped);
* the period-stripping regex is called with `re.UNICODE` as its *count* argument (at most 32 periods
  are removed), and its look-behind is a typo that makes it a plain "'.' not followed by a digit";
* accuracy is the mean over the 10 leave-one-out subsets of min(1, matches among the other 9 / 3).

`vqa_soft_score` is the training proxy of ViLT/METER/SCL (argmax class times its soft target); it is
NOT VQA accuracy and must never be reported as such.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from sclbench.metrics._common import MetricInputError, preview

# The official contraction table, verbatim including its oddities ("somebody'd" -> "somebodyd", keys
# with capitals that can never match after lower-casing): changing any entry changes scores.
CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've",
    "hasnt": "hasn't", "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
    "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've",
    "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've",
    "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've",
    "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd", "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've", "somebodyll": "somebody'll", "somebodys": "somebody's",
    "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've",
    "somethingll": "something'll", "thats": "that's", "thered": "there'd", "thered've": "there'd've",
    "there'dve": "there'd've", "therere": "there're", "theres": "there's", "theyd": "they'd",
    "theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're",
    "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're", "whats": "what's",
    "whatve": "what've", "whens": "when's", "whered": "where'd", "wheres": "where's",
    "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
    "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're",
    "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've",
    "youll": "you'll", "youre": "you're", "youve": "you've",
}  # fmt: skip

NUMBER_WORDS: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip

ARTICLES: frozenset[str] = frozenset({"a", "an", "the"})

# Order matters: each mark is handled in turn, deciding from the ORIGINAL text whether to delete it
# or replace it by a space. '.', ':', "'" and the like are deliberately absent (as in the official).
PUNCTUATION: tuple[str, ...] = (
    ";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",",
    "?", "!",
)  # fmt: skip

# The official pattern "(?!<=\d)(\.)(?!\d)": the first group is a negative LOOK-AHEAD for "<=digit"
# (a typo for a look-behind), always true before a '.', so it removes every '.' not followed by a digit.
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")
# Passed positionally as `count`, exactly like the official call `sub("", text, re.UNICODE)`.
_PERIOD_COUNT = int(re.UNICODE)


def process_punctuation(text: str) -> str:
    """The official `processPunctuation`: delete or space out marks, then strip periods (max 32).

    Examples:
        >>> process_punctuation("yes, it is.")  # ", " is deleted, the final period stripped
        'yes it is'
        >>> process_punctuation("black/white")  # no space beside the slash: it becomes one
        'black white'
        >>> process_punctuation("1,000")  # a digit-comma-digit anywhere deletes every mark
        '1000'
    """
    out = text
    delete = _COMMA_STRIP.search(text) is not None
    for mark in PUNCTUATION:
        if delete or f"{mark} " in text or f" {mark}" in text:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_STRIP.sub("", out, _PERIOD_COUNT)


def process_digit_article(text: str) -> str:
    """The official `processDigitArticle`: lower-case, number words -> digits, drop articles, contractions.

    Examples:
        >>> process_digit_article("Two Dogs")
        '2 dogs'
        >>> process_digit_article("the dog isnt")
        "dog isn't"
    """
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def _clean(text: str) -> str:
    # The official scorer turns newlines and tabs into spaces before stripping.
    return text.replace("\n", " ").replace("\t", " ").strip()


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Official VQA accuracy of one prediction against the human answers (usually 10), in [0, 1].

    Leave-one-out: for each human answer, count how many of the OTHER answers equal the prediction,
    score min(1, count / 3), and average. With 10 answers this gives 0, .3, .6, .9, 1 for 0..>=4
    matches (up to float rounding, computed the same way as the official code).

    Examples:
        >>> vqa_accuracy("2", ["2"] * 10)
        1.0

        Two of ten say "2": leaving out one of them leaves 1 match (1/3), leaving out any of the
        other eight leaves 2 (2/3), so the mean is (2 * 1/3 + 8 * 2/3) / 10 = 0.6.

        >>> round(vqa_accuracy("two", ["2"] * 2 + ["3"] * 8), 4)
        0.6

        The official quirk: ten identical answers are compared raw, so "two" no longer becomes "2".

        >>> vqa_accuracy("two", ["2"] * 10)
        0.0
    """
    if not answers:
        raise MetricInputError("vqa_accuracy needs at least one human answer")
    gts = [_clean(a) for a in answers]
    pred = _clean(prediction)
    if len(set(gts)) > 1:  # the quirk: all-identical answers are compared without any processing
        gts = [process_digit_article(process_punctuation(a)) for a in gts]
        pred = process_digit_article(process_punctuation(pred))
    accs = []
    for left_out in range(len(gts)):
        matches = sum(1 for j, gt in enumerate(gts) if j != left_out and gt == pred)
        accs.append(min(1.0, float(matches) / 3))
    return float(sum(accs)) / len(accs)


Duplicates = Literal["error", "first", "last"]


def _prediction_map(predictions: Mapping[Any, str] | Iterable[Any], duplicates: Duplicates) -> dict[int, str]:
    """Predictions as {question_id: answer}; lists of EvalAI records or (qid, answer) pairs accepted."""
    if duplicates not in ("error", "first", "last"):
        raise MetricInputError(f"duplicates must be 'error', 'first' or 'last', not {duplicates!r}")
    if isinstance(predictions, Mapping):
        return {int(q): str(a) for q, a in predictions.items()}
    out: dict[int, str] = {}
    dupes: set[int] = set()
    for item in predictions:
        qid, ans = (item["question_id"], item["answer"]) if isinstance(item, Mapping) else item
        qid = int(qid)
        if qid in out:
            dupes.add(qid)
            if duplicates == "first":
                continue
        out[qid] = str(ans)
    if dupes and duplicates == "error":
        raise MetricInputError(
            f"{len(dupes)} question ids have several predictions ({preview(dupes)}); a submission "
            "needs exactly one per question (pass duplicates='first' or 'last' to choose one)"
        )
    return out


def _answer_strings(answers: Sequence[Any]) -> list[str]:
    # Accept raw VQA v2 annotation dicts ({"answer": ..., "answer_id": ...}) as well as plain strings.
    return [a["answer"] if isinstance(a, Mapping) else a for a in answers]


def vqa_scores(
    predictions: Mapping[Any, str] | Iterable[Any],
    questions: Iterable[Mapping[str, Any]],
    *,
    duplicates: Duplicates = "error",
    extra: Literal["error", "ignore"] = "error",
) -> dict[int, float]:
    """Per-question official accuracy in [0, 1], keyed by question id (for per-sample records).

    Every question needs a prediction (a missing one is an error, as in the official `loadRes`), and by
    default a prediction for a question that is not in `questions` is an error too.

    Examples:
        >>> questions = [{"question_id": 1, "answers": ["yes"] * 10}, {"question_id": 2, "answers": ["yes"] * 10}]
        >>> vqa_scores({1: "yes", 2: "no"}, questions)
        {1: 1.0, 2: 0.0}
    """
    preds = _prediction_map(predictions, duplicates)
    scores: dict[int, float] = {}
    missing: list[int] = []
    for q in questions:
        qid = int(q["question_id"])
        if qid in scores:
            raise MetricInputError(f"question id {qid} appears twice in the ground truth")
        if qid not in preds:
            missing.append(qid)
            scores[qid] = 0.0
            continue
        scores[qid] = vqa_accuracy(preds[qid], _answer_strings(q["answers"]))
    if missing:
        raise MetricInputError(f"no prediction for {len(missing)} of {len(scores)} questions: {preview(missing)}")
    unknown = preds.keys() - scores.keys()
    if unknown and extra == "error":
        raise MetricInputError(
            f"{len(unknown)} predictions are for question ids not in the ground truth: {preview(unknown)} "
            "(pass extra='ignore' to score a subset)"
        )
    return scores


def vqa_evaluate(
    predictions: Mapping[Any, str] | Iterable[Any],
    questions: Iterable[Mapping[str, Any]],
    *,
    duplicates: Duplicates = "error",
    extra: Literal["error", "ignore"] = "error",
) -> dict[str, Any]:
    """Official VQA accuracy, overall and per answer/question type, in percent (full precision).

    predictions: {question_id: answer}, or EvalAI records [{"question_id", "answer"}, ...] whose
    duplicates are an error unless `duplicates` picks the first or last one.
    questions: records with `question_id`, `answers` (10 strings or annotation dicts), `answer_type`
    and `question_type`.

    Returns `accuracy`, `accuracy_<answer type>` (yes/no -> `accuracy_yes_no`), and the nested
    `per_answer_type`, `per_question_type` (keyed by the raw type strings) and `count`. Round for
    display only (the official prints 2 decimals).

    Examples:
        One yes/no question right, one wrong, and a number question worth 0.6 (see `vqa_accuracy`):

        >>> votes = ["2"] * 2 + ["3"] * 8
        >>> questions = [
        ...     {"question_id": 1, "answers": ["yes"] * 10, "answer_type": "yes/no", "question_type": "is the"},
        ...     {"question_id": 2, "answers": ["no"] * 10, "answer_type": "yes/no", "question_type": "is the"},
        ...     {"question_id": 3, "answers": votes, "answer_type": "number", "question_type": "how many"},
        ... ]
        >>> result = vqa_evaluate([{"question_id": 1, "answer": "yes"}, (2, "yes"), (3, "two")], questions)
        >>> {name: round(result[name], 4) for name in ("accuracy", "accuracy_yes_no", "accuracy_number")}
        {'accuracy': 53.3333, 'accuracy_yes_no': 50.0, 'accuracy_number': 60.0}
        >>> result["count"]
        3
    """
    qs = list(questions)
    if not qs:
        raise MetricInputError("no questions to evaluate")
    scores = vqa_scores(predictions, qs, duplicates=duplicates, extra=extra)
    by_answer: dict[str, list[float]] = defaultdict(list)
    by_question: dict[str, list[float]] = defaultdict(list)
    for q in qs:
        s = scores[int(q["question_id"])]
        by_answer[str(q.get("answer_type", "unknown"))].append(s)
        by_question[str(q.get("question_type", "unknown"))].append(s)

    def pct(values: list[float]) -> float:
        return 100.0 * float(sum(values)) / len(values)

    per_answer = {t: pct(v) for t, v in sorted(by_answer.items())}
    out: dict[str, Any] = {"accuracy": pct(list(scores.values()))}
    out.update({f"accuracy_{re.sub(r'[^0-9a-z]+', '_', t.lower())}": v for t, v in per_answer.items()})
    out["per_answer_type"] = per_answer
    out["per_question_type"] = {t: pct(v) for t, v in sorted(by_question.items())}
    out["count"] = len(scores)
    return out


def vqa_vote_score(n_votes: int) -> float:
    """Soft target of an answer given by `n_votes` of the 10 annotators: 0, .3, .6, .9, 1 (>= 4).

    Examples:
        >>> [vqa_vote_score(n) for n in range(6)]
        [0.0, 0.3, 0.6, 0.9, 1.0, 1.0]
    """
    if n_votes < 0:
        raise ValueError(f"n_votes must be >= 0, got {n_votes}")
    return (0.0, 0.3, 0.6, 0.9)[n_votes] if n_votes < 4 else 1.0


def vqa_soft_score(logits_or_labels: Any, targets: Any) -> float:
    """Training PROXY (ViLT/METER/SCL `VQAScore`), in percent: NOT the official VQA accuracy.

    logits_or_labels: [N, C] logits (argmax is taken) or [N] predicted class ids.
    targets: [N, C] dense soft targets (`vqa_vote_score` of each vocabulary answer).
    Returns 100 * mean over questions of the soft target of the predicted class. It ignores answers
    outside the vocabulary and the leave-one-out rule, so it differs from `vqa_accuracy`.

    Examples:
        The argmax picks class 0 (target 1.0) then class 1 (target 0.6): mean 0.8.

        >>> targets = [[1.0, 0.0], [0.3, 0.6]]
        >>> round(vqa_soft_score([[2.0, 0.1], [0.3, 1.5]], targets), 4)
        80.0
        >>> round(vqa_soft_score([1, 1], targets), 4)  # class ids: 0.0 and 0.6
        30.0
    """
    import torch

    pred = torch.as_tensor(logits_or_labels)
    tgt = torch.as_tensor(targets, dtype=torch.float64)
    if pred.dim() == 2:
        pred = pred.argmax(dim=1)
    if pred.dim() != 1 or tgt.dim() != 2 or tgt.shape[0] != pred.shape[0]:
        raise MetricInputError(
            f"vqa_soft_score expects [N, C] logits or [N] labels and [N, C] targets, got "
            f"{tuple(torch.as_tensor(logits_or_labels).shape)} and {tuple(tgt.shape)}"
        )
    if pred.numel() == 0:
        raise MetricInputError("vqa_soft_score got no questions")
    picked = tgt.gather(1, pred.long().to(tgt.device).unsqueeze(1)).squeeze(1)
    return 100.0 * float(picked.mean())
