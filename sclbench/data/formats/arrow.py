"""ViLT/METER/SCL arrow tables (Arrow IPC *file* format), read memory-mapped; and a writer.

Tables and columns (scl-official.md §6):
  {coco,f30k}_caption_karpathy_<split>.arrow: image, caption (list[str]), image_id (file name), split
  vqav2_<split>.arrow: one row per image: image, questions, answers (vocabulary strings per
    question), answer_labels, answer_scores, image_id (int), question_id (list[int]), split
  nlvr2_<split>.arrow: one row per image pair: image_0, image_1, questions, answers ("True"/"False"),
    identifier (the pair id)
The official VQA/NLVR2 tables drop the raw annotator answers and the full NLVR2 identifiers. Our
writer keeps them in extra columns (`raw_answers`, `answer_types`, `question_types`,
`multiple_choice_answers`; `identifiers`), which the official reader ignores, so records read back
equal the raw reader's. Without them: VQA records carry `label_scores` and no raw answers; NLVR2
identifiers are rebuilt as `<pair>-<position in row>` (an approximation, named as such here).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from sclbench.data.records import CaptionRecord, ImageSource, NLVR2Record, VQARecord
from sclbench.errors import DataError

IMAGE_COLUMNS = ("image", "image_0", "image_1")
_TABLES: dict[str, pa.Table] = {}  # per process: memory maps are cheap, re-opened after fork/pickle


def open_table(path: str | Path) -> pa.Table:
    key = str(path)
    if key not in _TABLES:
        try:
            source = pa.memory_map(key, "r")
            _TABLES[key] = pa.ipc.open_file(source).read_all()
        except FileNotFoundError:
            raise DataError(f"arrow table {key} not found; write it with the ViLT scripts or pass "
                            "the folder holding the *.arrow files") from None
        except pa.ArrowInvalid as err:
            raise DataError(f"{key} is not an Arrow IPC file ({err}); re-create it") from None
    return _TABLES[key]


def read_cell(path: str, column: str, row: int) -> bytes:
    value = open_table(path).column(column)[row].as_py()
    if not isinstance(value, bytes):
        raise DataError(f"{path}: column {column!r} row {row} holds no image bytes")
    return value


def _columns(path: Path, names: tuple[str, ...]) -> tuple[pa.Table, dict[str, list]]:
    table = open_table(path)
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; is this a ViLT-format table?")
    extra = [n for n in table.column_names if n not in IMAGE_COLUMNS]  # images stay memory-mapped
    return table, {n: table.column(n).to_pylist() for n in extra}


def caption_table(root: str | Path, dataset: str, split: str) -> Path:
    return Path(root) / f"{dataset}_caption_karpathy_{split}.arrow"


def read_caption_arrow(root: str | Path, dataset: str, split: str) -> list[CaptionRecord]:
    path = caption_table(root, dataset, split)
    table, cols = _columns(path, ("image", "caption", "image_id", "split"))
    return [CaptionRecord(ImageSource(arrow=(str(path), "image", i)), str(cols["image_id"][i]),
                          list(cols["caption"][i]), cols["split"][i]) for i in range(table.num_rows)]


def read_vqa_arrow(root: str | Path, split: str) -> list[VQARecord]:
    path = Path(root) / f"vqav2_{split}.arrow"
    table, cols = _columns(path, ("image", "questions", "answers", "answer_scores", "image_id",
                                  "question_id", "split"))
    has_raw = "raw_answers" in cols
    records = []
    for i in range(table.num_rows):
        image = ImageSource(arrow=(str(path), "image", i))
        for j, (qid, question) in enumerate(zip(cols["question_id"][i], cols["questions"][i])):
            if has_raw:
                extra = dict(answers=list(cols["raw_answers"][i][j]), answer_type=cols["answer_types"][i][j],
                             question_type=cols["question_types"][i][j],
                             multiple_choice_answer=cols["multiple_choice_answers"][i][j])
            else:
                answers, scores = cols["answers"][i], cols["answer_scores"][i]
                labels = dict(zip(answers[j], scores[j])) if j < len(answers) else {}
                extra = dict(answers=[], answer_type="", question_type="", multiple_choice_answer="",
                             label_scores=labels)
            records.append(VQARecord(question_id=int(qid), image=image, image_id=int(cols["image_id"][i]),
                                     question=question, split=cols["split"][i], **extra))
    return records


def read_nlvr2_arrow(root: str | Path, split: str) -> list[NLVR2Record]:
    path = Path(root) / f"nlvr2_{split}.arrow"
    table, cols = _columns(path, ("image_0", "image_1", "questions", "answers", "identifier"))
    records = []
    for i in range(table.num_rows):
        ids = cols["identifiers"][i] if "identifiers" in cols else \
            [f"{cols['identifier'][i]}-{k}" for k in range(len(cols["questions"][i]))]
        for ident, sentence, answer in zip(ids, cols["questions"][i], cols["answers"][i]):
            label = None if answer is None else str(answer).lower() == "true"
            records.append(NLVR2Record(ident, sentence, label, ImageSource(arrow=(str(path), "image_0", i)),
                                       ImageSource(arrow=(str(path), "image_1", i)), split))
    return records


# --------------------------------------------------------------------------------------- writer
def write_table(columns: dict[str, list], path: str | Path) -> Path:
    """Write one Arrow IPC file (record-batch file format, as the official readers expect)."""
    table = pa.table(columns)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    _TABLES.pop(str(path), None)
    return path


def write_caption_arrow(records: list[CaptionRecord], path: str | Path) -> Path:
    return write_table({"image": [r.image.read_bytes() for r in records],
                        "caption": [list(r.captions) for r in records],
                        "image_id": [r.image_id for r in records],
                        "split": [r.split for r in records]}, path)


def _group(records, key):
    groups: dict = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    return list(groups.values())


def write_vqa_arrow(records: list[VQARecord], path: str | Path, vocab) -> Path:
    """One row per image (first-appearance order), questions in record order."""
    rows = _group(records, lambda r: (r.split, r.image_id))
    scored = [[vocab.scores(q) for q in row] for row in rows]
    return write_table({
        "image": [row[0].image.read_bytes() for row in rows],
        "questions": [[q.question for q in row] for row in rows],
        "answers": [[list(s) for s in ss] for ss in scored],
        "answer_labels": [[[vocab.index[a] for a in s] for s in ss] for ss in scored],
        "answer_scores": [[list(s.values()) for s in ss] for ss in scored],
        "image_id": [row[0].image_id for row in rows],
        "question_id": [[q.question_id for q in row] for row in rows],
        "split": [row[0].split for row in rows],
        "raw_answers": [[list(q.answers) for q in row] for row in rows],
        "answer_types": [[q.answer_type for q in row] for row in rows],
        "question_types": [[q.question_type for q in row] for row in rows],
        "multiple_choice_answers": [[q.multiple_choice_answer for q in row] for row in rows],
    }, path)


def write_nlvr2_arrow(records: list[NLVR2Record], path: str | Path) -> Path:
    rows = _group(records, lambda r: r.pair_id)
    return write_table({
        "image_0": [row[0].image_0.read_bytes() for row in rows],
        "image_1": [row[0].image_1.read_bytes() for row in rows],
        "questions": [[r.sentence for r in row] for row in rows],
        "answers": [[None if r.label is None else str(r.label) for r in row] for row in rows],
        "identifier": [row[0].pair_id for row in rows],
        "identifiers": [[r.identifier for r in row] for row in rows],
    }, path)
