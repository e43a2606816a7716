"""Sample cards: one JSON-able dict per prediction, the page's script draws them.

A card holds what the reader needs to judge one sample: its media (thumbnail paths), its text, the
model's answer beside the truth, the per-sample score, and facets to filter on. Which fields a
prediction carries depends on the sclbench version that wrote it; whatever is missing is taken from
the split's records (`SplitView`), and whatever is missing there too is left out (the card shows the id).
Nothing here is specific to one model: a card reads the prediction keys of its task family only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from sclbench.metrics.vqa import process_digit_article, process_punctuation, vqa_accuracy
from sclbench.results.browse.media import MediaItem, SplitView
from sclbench.results.browse.thumbs import Thumbnailer

TOP_SHOWN = 5
RETRIEVAL_PREFIXES = ("image/", "video/", "text/")
DIRECTIONS = {"image": "image → text", "video": "video → text", "text": "text → {media}"}


def family_of(view_family: str, record_family: str, predictions: list[dict[str, Any]]) -> str:
    """The task family: from the task's card when known, else from the predictions' own keys."""
    family = view_family or record_family
    if family:
        return "retrieval" if family.endswith("retrieval") else family
    first = predictions[0] if predictions else {}
    if "question_id" in first:
        return "vqa"
    if "identifier" in first or "prob_true" in first:
        return "nlvr2"
    if str(first.get("id", "")).startswith(RETRIEVAL_PREFIXES):
        return "retrieval"
    return "generic"


def main_score_key(family: str, scores: Mapping[str, Any]) -> str | None:
    """The per-sample score a card is judged by: accuracy, or R@1 of the query's direction."""
    if not scores:
        return None
    if family == "retrieval":
        at_one = [k for k in scores if k.endswith("_r1")]
        if at_one:
            return at_one[0]
    return "accuracy" if "accuracy" in scores else next(iter(scores))


def sample_score(family: str, prediction: Mapping[str, Any]) -> tuple[str | None, float | None]:
    scores = prediction.get("scores")
    if not isinstance(scores, Mapping):
        return None, None
    key = main_score_key(family, scores)
    value = scores.get(key) if key else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return key, None
    return key, float(value)


def outcome(score: float | None) -> str:
    """right (full credit), wrong (none), partial (VQA's 0.3 / 0.6 / 0.9), or unscored."""
    if score is None:
        return "unscored"
    return "right" if score >= 1.0 else "wrong" if score <= 0.0 else "partial"


def flip_of(score_a: float | None, score_b: float | None) -> str:
    """'ab' when A scored higher (a 0/1 score: A right, B wrong), 'ba' the reverse, '' when equal or
    unscored: the rule of `sclbench compare`, so both list the same samples."""
    if score_a is None or score_b is None or score_a == score_b:
        return ""
    return "ab" if score_a > score_b else "ba"


def sort_key(family: str, prediction: Mapping[str, Any], flip: str, position: int) -> tuple:
    """Flipped samples first (in a comparison), then failures: lowest score, then the worst rank."""
    _, score = sample_score(family, prediction)
    rank = prediction.get("rank")
    worse = -rank if isinstance(rank, int) and not isinstance(rank, bool) else 0
    return (0 if flip else 1, 2.0 if score is None else score, worse, position)


class CardMaker:
    """Builds the cards of one record's page (media through the thumbnailer, paths relative to the page)."""

    def __init__(
        self, family: str, view: SplitView, thumbs: Thumbnailer | None, prefix: str, video: bool = False
    ) -> None:
        self.family = family
        self.video = video  # a video retrieval record: its gallery holds clips
        self.view = view
        self.thumbs = thumbs
        self.prefix = prefix  # from the page to the site root, e.g. "../"

    # ---- media -----------------------------------------------------------------------------------
    def media(self, media_id: Any, label: str = "") -> list[dict[str, Any]]:
        """Thumbnail entries of one picture (one entry) or clip (a strip of frames); an entry without
        `src` carries the id (and why there is no picture) so the card still says what it was."""
        if media_id is None:
            return []
        media_id = str(media_id)
        item: MediaItem | None = self.view.media.get(media_id)
        shown = f"{label}{media_id}"
        if item is None or self.thumbs is None:
            return [{"label": shown, "missing": "no media for this id" if self.thumbs else ""}]
        paths, error = self.thumbs.get(item)
        if error:
            return [{"label": shown, "missing": error}]
        return [
            {"label": shown, "src": self.prefix + p, "frame": i if item.video else None} for i, p in enumerate(paths)
        ]

    def is_video(self, media_id: Any) -> bool:
        item = self.view.media.get(str(media_id))
        return bool(item and item.video)

    # ---- cards -----------------------------------------------------------------------------------
    def card(self, prediction: Mapping[str, Any], other: Mapping[str, Any] | None) -> dict[str, Any]:
        build: Callable[[Mapping[str, Any], dict[str, Any]], None] = {
            "vqa": self._vqa,
            "nlvr2": self._nlvr2,
            "retrieval": self._retrieval,
        }.get(self.family, self._generic)
        key, score = sample_score(self.family, prediction)
        card: dict[str, Any] = {
            "id": str(prediction.get("id")),
            "score": score,
            "scoreKey": key,
            "outcome": outcome(score),
            "facets": {},
            "media": [],
            "rows": [],
        }
        build(prediction, card)
        if other is not None:
            _, score_b = sample_score(self.family, other)
            card["b"] = {"score": score_b, "outcome": outcome(score_b), "rows": self._b_rows(other)}
            card["flip"] = flip_of(score, score_b)
        return card

    def _b_rows(self, other: Mapping[str, Any]) -> list[list[Any]]:
        if self.family == "vqa":
            return [["answer", other.get("answer")]]
        if self.family == "nlvr2":
            return [["prediction", other.get("prediction")], ["P(true)", _round(other.get("prob_true"))]]
        if self.family == "retrieval" and isinstance(other.get("rank"), int):
            return [["rank of the true item", other["rank"] + 1]]
        return []

    def _vqa(self, p: Mapping[str, Any], card: dict[str, Any]) -> None:
        qid = p.get("question_id", p.get("id"))
        known = self.view.questions.get(str(qid), {})
        field = lambda name: p.get(name) if p.get(name) is not None else known.get(name)  # noqa: E731
        card["text"] = field("question")
        card["media"] = self.media(field("image_id"), "image ")
        answer = p.get("answer")
        answers = field("answers") or []
        card["rows"] = [["prediction", answer], ["VQA score", _round(card["score"])]]
        if answers and isinstance(answer, str):
            card["answers"] = vqa_answer_table(answer, [str(a) for a in answers])
        for facet in ("answer_type", "question_type"):
            value = field(facet)
            if value:
                card["facets"][facet.replace("_", " ")] = str(value)

    def _nlvr2(self, p: Mapping[str, Any], card: dict[str, Any]) -> None:
        identifier = str(p.get("identifier", p.get("id")))
        known = self.view.statements.get(identifier, {})
        card["text"] = p.get("sentence") or known.get("sentence")
        images = p.get("images") or known.get("images") or []
        card["media"] = [m for side, i in zip(("left ", "right "), images) for m in self.media(i, side)]
        card["pair"] = True
        label = p.get("label", known.get("label"))
        card["rows"] = [
            ["prediction", p.get("prediction")],
            ["P(true)", _round(p.get("prob_true"))],
            ["label", "unlabelled" if label is None else bool(label)],
        ]
        card["facets"]["label"] = "unlabelled" if label is None else str(bool(label)).lower()

    def _retrieval(self, p: Mapping[str, Any], card: dict[str, Any]) -> None:
        kind, _, index_text = str(p.get("id")).partition("/")
        index = int(index_text) if index_text.isdigit() else None
        gallery, captions = self.view.gallery, self.view.captions
        media_kind = "video" if self.video or kind == "video" else "image"
        card["facets"]["direction"] = DIRECTIONS.get(kind, kind).format(media=media_kind)
        truth: set[str] = set()
        if kind == "text":
            text = p.get("text")
            owner = captions[index][1] if index is not None and index < len(captions) else None
            if text is None and index is not None and index < len(captions):
                text = captions[index][0]
            card["text"] = text
            media_id = p.get("media_id") or (gallery[owner] if owner is not None and owner < len(gallery) else None)
            if owner is not None:
                truth.add(f"{media_kind}/{owner}")
            true_media = self.media(media_id, "true " + media_kind + " ")
            card["strip"] = self.is_video(media_id)
        else:
            media_id = p.get("media_id") or (gallery[index] if index is not None and index < len(gallery) else None)
            card["media"] = self.media(media_id, f"{kind} ")
            card["strip"] = self.is_video(media_id)
            truth = {f"text/{t}" for t, (_, owner) in enumerate(captions) if owner == index}
            true_media = []
        rank = p.get("rank")
        if isinstance(rank, int) and not isinstance(rank, bool):
            card["rows"].append(["rank of the true item", rank + 1])
        for key, value in (p.get("scores") or {}).items():  # the task's order: r1, r5, r10
            card["rows"].append([key, _round(value)])
        top = p.get("top")
        if isinstance(top, list):
            card["top"] = [self._candidate(c, truth) for c in top[:TOP_SHOWN] if isinstance(c, (list, tuple)) and c]
            shown_true = any(c["true"] for c in card["top"])
        else:
            card["topMissing"] = "this record's predictions do not keep the top-ranked items"
            shown_true = False
        if kind == "text" and not shown_true:
            card["media"] = true_media  # the true picture, when it is not already among the top 5

    def _candidate(self, entry: list | tuple, truth: set[str]) -> dict[str, Any]:
        cand = str(entry[0])
        score = entry[1] if len(entry) > 1 else None
        kind, _, index_text = cand.partition("/")
        index = int(index_text) if index_text.isdigit() else None
        out: dict[str, Any] = {"id": cand, "score": _round(score), "true": cand in truth}
        if kind == "text":
            known = index is not None and index < len(self.view.captions)
            out["text"] = self.view.captions[index][0] if known else cand
        else:
            gallery = self.view.gallery
            media_id = gallery[index] if index is not None and index < len(gallery) else None
            thumbs = self.media(media_id) if media_id is not None else [{"label": cand, "missing": ""}]
            out["media"] = thumbs[len(thumbs) // 2 : len(thumbs) // 2 + 1]  # a clip: its middle frame
        return out

    def _generic(self, p: Mapping[str, Any], card: dict[str, Any]) -> None:
        for key, value in p.items():
            if key not in ("id", "scores") and isinstance(value, (str, int, float, bool)):
                card["rows"].append([key, _round(value)])
        for key, value in (p.get("scores") or {}).items():  # the task's order: r1, r5, r10
            card["rows"].append([key, _round(value)])


def vqa_answer_table(prediction: str, answers: list[str]) -> list[dict[str, Any]]:
    """The annotators' answers, each once with its count and the VQA score it would earn, best first."""
    counts: dict[str, int] = {}
    for answer in answers:
        counts[answer] = counts.get(answer, 0) + 1
    normal = lambda text: process_digit_article(process_punctuation(text.strip()))  # noqa: E731
    rows = [
        {
            "answer": answer,
            "count": count,
            "credit": round(vqa_accuracy(answer, answers), 3),
            "picked": normal(answer) == normal(prediction),
        }
        for answer, count in counts.items()
    ]
    return sorted(rows, key=lambda r: (-r["count"], r["answer"]))


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else str(value)
    return value
