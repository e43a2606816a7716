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

from sclbench.data.formats._io import field, find_file, load_json, media_ok
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
    items = field(doc, key, path, "top level", list)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise DataError(f"{path}, {key}[{i}]: expected an object")
    return items


def read_vqa(root: str | Path, split: str, *, skip: SkipCounter | None = None) -> list[VQARecord]:
    """One record per question, in the order of the questions file."""
    if split not in SUBSETS:
        raise DataError(f"unknown VQA split {split!r}; use one of {sorted(SUBSETS)}")
    root = Path(root)
    qpath = question_file(root, split)
    annotations: dict[int, dict] = {}
    apath = None
    if split in ("train", "val"):
        apath = annotation_file(root, split)
        for i, ann in enumerate(_entries(apath, "annotations")):
            annotations[field(ann, "question_id", apath, f"annotations[{i}]", int)] = ann
    records = []
    for i, q in enumerate(_entries(qpath, "questions")):
        where = f"questions[{i}]"
        qid = field(q, "question_id", qpath, where, int)
        image_id = field(q, "image_id", qpath, where, int)
        question = field(q, "question", qpath, where, str)
        answers, answer_type, question_type, mc = [], "", "", ""
        if apath is not None:
            ann = annotations.get(qid)
            if ann is None:
                raise DataError(f"{qpath}, {where}: question {qid} has no entry in {apath}; "
                                "the two files do not belong together")
            awhere = f"annotation of question {qid}"
            raw = field(ann, "answers", apath, awhere, list)
            answers = [field(a, "answer", apath, awhere, str) for a in raw]
            answer_type = field(ann, "answer_type", apath, awhere, str)
            question_type = field(ann, "question_type", apath, awhere, str)
            mc = field(ann, "multiple_choice_answer", apath, awhere, str)
        path = image_path(root, split, image_id)
        if not media_ok(path, skip):
            continue
        records.append(VQARecord(qid, ImageSource(path=path), image_id, question, answers, answer_type,
                                 question_type, mc, split))
    return records


def vote_score(count: int) -> float:
    """Soft score for a number of raw human votes: 0, .3, .6, .9, 1 for 0, 1, 2, 3, >=4."""
    return (0.0, 0.3, 0.6, 0.9, 1.0)[min(count, 4)]


class AnswerVocab:
    """The answer classes: normalised `multiple_choice_answer` with frequency >= min_count.

    Official: train2014 + val2014, min_count 9 -> 3,129 answers. Order: most frequent first, ties
    alphabetical (deterministic; the official order came from a dict and is not meaningful).
    """

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)
        self.index = {a: i for i, a in enumerate(self.answers)}

    @classmethod
    def build(cls, records: list[VQARecord], min_count: int = 9) -> AnswerVocab:
        counts = Counter(normalize_answer(r.multiple_choice_answer) for r in records if r.answers)
        kept = sorted((a for a, c in counts.items() if c >= min_count), key=lambda a: (-counts[a], a))
        if not kept:
            raise DataError(f"no answer occurs {min_count} times; lower the vocabulary min_count")
        return cls(kept)

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
        Path(path).write_text(json.dumps({"answers": self.answers}, indent=0) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> AnswerVocab:
        return cls(field(load_json(Path(path)), "answers", Path(path), "top level", list))


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
    held = set(manifest["image_ids"])
    return [r for r in val if r.image_id not in held], [r for r in val if r.image_id in held]
