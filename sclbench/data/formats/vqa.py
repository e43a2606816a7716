"""VQA v2: questions + annotations JSON, the answer vocabulary, soft scores, and the minival split.

Layout (official file names; the JSON may sit in <root>, <root>/annotations or <root>/questions):
  v2_OpenEnded_mscoco_{train2014,val2014,test-dev2015,test2015}_questions.json
  v2_mscoco_{train2014,val2014}_annotations.json
  images <root>/{train2014,val2014,test2015}/COCO_<dir>_<image_id:012d>.jpg (test-dev uses test2015)
Split names used here: train, val, test-dev, test.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import torch

from sclbench.common.io import atomic_write
from sclbench.data.formats._io import field, find_file, load_json, media_ok, not_empty
from sclbench.data.formats.vqa_normalize import normalize_answer
from sclbench.data.records import ImageSource, SkipCounter, VQARecord
from sclbench.errors import DataError

SUBSETS = {"train": "train2014", "val": "val2014", "test-dev": "test-dev2015", "test": "test2015"}
IMAGE_DIRS = {"train": "train2014", "val": "val2014", "test-dev": "test2015", "test": "test2015"}
_DIRS = ["", "annotations/", "questions/"]


def question_file(root: Path, split: str) -> Path:
    name = f"v2_OpenEnded_mscoco_{SUBSETS[split]}_questions.json"
    return find_file(root, [d + name for d in _DIRS], f"VQA v2 {split} questions")


def annotation_file(root: Path, split: str) -> Path:
    name = f"v2_mscoco_{SUBSETS[split]}_annotations.json"
    return find_file(root, [d + name for d in _DIRS], f"VQA v2 {split} annotations")


def image_path(root: Path, split: str, image_id: int) -> Path:
    folder = IMAGE_DIRS[split]
    return Path(root) / folder / f"COCO_{folder}_{image_id:012d}.jpg"


def _entries(path: Path, key: str) -> list[dict]:
    doc = load_json(path)
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a JSON object with a {key!r} list")
    items = not_empty(field(doc, key, path, "top level", list), path, key)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise DataError(f"{path}, {key}[{i}]: expected an object")
    return items


def _id(obj: dict, key: str, path: Path, where: str) -> int:
    value = field(obj, key, path, where, int)
    if isinstance(value, bool):  # JSON true/false are not ids, although Python counts bool as int
        raise DataError(f"{path}, {where}: field {key!r} should be int, got bool")
    return value


def _unique(qid: int, seen: dict[int, int], path: Path, key: str, i: int) -> None:
    if qid in seen:
        raise DataError(
            f"{path}, {key}[{i}]: question_id {qid} already used by {key}[{seen[qid]}]; "
            "the file is damaged (re-download it)"
        )
    seen[qid] = i


def read_annotations(path: Path) -> dict[int, tuple[int, dict]]:
    """question_id -> (position, checked annotation), in file order; every required field validated."""
    out: dict[int, tuple[int, dict]] = {}
    seen: dict[int, int] = {}
    for i, ann in enumerate(_entries(path, "annotations")):
        where = f"annotations[{i}]"
        qid = _id(ann, "question_id", path, where)
        _unique(qid, seen, path, "annotations", i)
        where = f"annotations[{i}] (question {qid})"
        checked = {
            "image_id": _id(ann, "image_id", path, where),
            "answer_type": field(ann, "answer_type", path, where, str),
            "question_type": field(ann, "question_type", path, where, str),
            "multiple_choice_answer": field(ann, "multiple_choice_answer", path, where, str),
        }
        answers = []
        for j, vote in enumerate(field(ann, "answers", path, where, list)):
            if not isinstance(vote, dict):
                raise DataError(f"{path}, {where}: answers[{j}] should be an object with an 'answer'")
            answers.append(field(vote, "answer", path, f"{where}, answers[{j}]", str))
        checked["answers"] = answers
        out[qid] = (i, checked)
    return out


def read_vqa(root: str | Path, split: str, *, skip: SkipCounter | None = None) -> list[VQARecord]:
    """One record per question, in the order of the questions file.

    Validated: both files are objects holding lists of objects; question ids are unique in each
    file; every question has question_id, image_id, question; every annotation has question_id,
    image_id, answers (objects with an `answer`), answer_type, question_type,
    multiple_choice_answer. Where annotations exist (train, val) the join is checked both ways:
    each question has exactly one annotation, each annotation has its question, with the same image.
    """
    if split not in SUBSETS:
        raise DataError(f"unknown VQA split {split!r}; use one of {sorted(SUBSETS)}")
    root = Path(root)
    qpath = question_file(root, split)
    annotations: dict[int, tuple[int, dict]] = {}
    apath = None
    if split in ("train", "val"):
        apath = annotation_file(root, split)
        annotations = read_annotations(apath)
    questions = []
    seen: dict[int, int] = {}
    for i, q in enumerate(_entries(qpath, "questions")):
        where = f"questions[{i}]"
        qid = _id(q, "question_id", qpath, where)
        _unique(qid, seen, qpath, "questions", i)
        where = f"questions[{i}] (question {qid})"
        questions.append((qid, _id(q, "image_id", qpath, where), field(q, "question", qpath, where, str)))
    if apath is not None:
        _check_join(qpath, apath, questions, annotations)
    records = []
    for i, (qid, image_id, question) in enumerate(questions):
        ann = annotations[qid][1] if apath is not None else None
        path = image_path(root, split, image_id)
        if not media_ok(path, skip, listed_in=f"{qpath}, questions[{i}] (question {qid})"):
            continue
        if ann is None:
            records.append(VQARecord(qid, ImageSource(path=path), image_id, question, [], "", "", "", split))
        else:
            records.append(
                VQARecord(
                    qid,
                    ImageSource(path=path),
                    image_id,
                    question,
                    ann["answers"],
                    ann["answer_type"],
                    ann["question_type"],
                    ann["multiple_choice_answer"],
                    split,
                )
            )
    return records


def _check_join(
    qpath: Path, apath: Path, questions: list[tuple[int, int, str]], annotations: dict[int, tuple[int, dict]]
) -> None:
    """Every question has its annotation (same image) and every annotation has its question."""
    asked = set()
    for i, (qid, image_id, _) in enumerate(questions):
        asked.add(qid)
        if qid not in annotations:
            raise DataError(
                f"{qpath}, questions[{i}]: question {qid} has no annotation in {apath}; "
                "the two files do not belong together (re-download both)"
            )
        j, ann = annotations[qid]
        if ann["image_id"] != image_id:
            raise DataError(
                f"{apath}, annotations[{j}]: question {qid} is about image {ann['image_id']} "
                f"but {qpath} puts it on image {image_id}; the files do not belong together"
            )
    for qid, (j, _) in annotations.items():
        if qid not in asked:
            raise DataError(
                f"{apath}, annotations[{j}]: question_id {qid} has no question in {qpath}; "
                "the two files do not belong together (re-download both)"
            )


def vote_score(count: int) -> float:
    """Soft score for a number of raw human votes: 0, .3, .6, .9, 1 for 0, 1, 2, 3, >=4."""
    return (0.0, 0.3, 0.6, 0.9, 1.0)[min(count, 4)]


class AnswerVocab:
    """The answer classes: normalised `multiple_choice_answer` with frequency >= min_count.

    Official (`write_vqa.make_arrow`): the answers of train2014 then val2014 annotations, each file
    in its own order, normalised, counted; those seen >= 9 times are the 3,129 classes, and class i
    is the i-th of them *in order of first appearance* (a Python dict keeps insertion order). The
    same order here means a head trained by the official code (or METER) maps class for class.
    """

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)
        self.index = {a: i for i, a in enumerate(self.answers)}

    @classmethod
    def from_answers(cls, answers, min_count: int = 9) -> AnswerVocab:
        """From raw `multiple_choice_answer` strings in the writer's order (train file, then val file)."""
        counts = Counter(normalize_answer(a) for a in answers)  # a Counter keeps first-seen order
        kept = [a for a, c in counts.items() if c >= min_count]
        if not kept:
            raise DataError(f"no answer occurs {min_count} times; lower the vocabulary min_count")
        return cls(kept)

    @classmethod
    def build(cls, records: list[VQARecord], min_count: int = 9) -> AnswerVocab:
        """From answered records, in their order (the official order when they come in annotation order).

        Records left out by the skip option are not counted; `from_annotations` counts every
        annotation, as the official writer does.
        """
        return cls.from_answers((r.multiple_choice_answer for r in records if r.answers), min_count)

    @classmethod
    def from_annotations(cls, root: str | Path, min_count: int = 9) -> AnswerVocab:
        """The official vocabulary: every train2014 then val2014 annotation, in file order."""
        answers = []
        for split in ("train", "val"):
            annotations = read_annotations(annotation_file(Path(root), split))
            answers += [ann["multiple_choice_answer"] for _, ann in annotations.values()]
        return cls.from_answers(answers, min_count)

    def __len__(self) -> int:
        return len(self.answers)

    def scores(self, record: VQARecord) -> dict[str, float]:
        """Vocabulary answer -> soft score, from the raw votes (or the arrow table's stored scores)."""
        if not record.answers:
            return {a: s for a, s in (record.label_scores or {}).items() if a in self.index}
        # Raw votes are counted un-normalised and matched against the vocabulary, as write_vqa does.
        votes = Counter(record.answers)
        return {a: vote_score(c) for a, c in votes.items() if a in self.index}

    def target(self, record: VQARecord) -> torch.Tensor:
        """Dense Float[num_answers] soft-score target."""
        t = torch.zeros(len(self.answers))
        for answer, score in self.scores(record).items():
            t[self.index[answer]] = score
        return t

    def save(self, path: str | Path) -> None:
        atomic_write(path, json.dumps({"answers": self.answers}, indent=0) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> AnswerVocab:
        path = Path(path)
        doc = load_json(path)
        if not isinstance(doc, dict):
            raise DataError(f"{path}: expected a JSON object with an 'answers' list (an answer vocabulary)")
        answers = field(doc, "answers", path, "top level", list)
        seen: dict[str, int] = {}
        for i, answer in enumerate(answers):
            if not isinstance(answer, str):
                raise DataError(f"{path}, answers[{i}]: should be a string, got {type(answer).__name__}")
            if answer in seen:
                raise DataError(
                    f"{path}, answers[{i}]: {answer!r} already is answer {seen[answer]}; "
                    "the vocabulary is damaged (delete it to rebuild it from the annotations)"
                )
            seen[answer] = i
        if not answers:
            raise DataError(f"{path}: the answer vocabulary is empty; delete it to rebuild it")
        return cls(answers)


def split_minival(val: list[VQARecord], num_images: int = 1000, seed: int = 0):
    """Split val2014 into (trainable_val, minival, manifest) by image, seeded and recorded.

    The manifest (seed, sorted minival image ids) belongs in the run record; `apply_minival` replays
    it. Differs from ViLT, whose minival is "the last 1000 images of a shuffled table".
    """
    image_ids = sorted({r.image_id for r in val})
    if num_images >= len(image_ids):
        raise DataError(f"minival wants {num_images} images but val has only {len(image_ids)}")
    chosen = sorted(random.Random(seed).sample(image_ids, num_images))
    manifest = {"seed": seed, "num_images": num_images, "image_ids": chosen}
    return (*apply_minival(val, manifest), manifest)


def apply_minival(val: list[VQARecord], manifest: dict):
    ids = manifest.get("image_ids") if isinstance(manifest, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        raise DataError(f"minival manifest should hold an 'image_ids' list of ints, got {manifest!r:.200}")
    held = set(ids)
    return [r for r in val if r.image_id not in held], [r for r in val if r.image_id in held]
