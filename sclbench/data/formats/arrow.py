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

Every fine-tuning family reads these tables through `read_family_arrow` (card key `data.format: arrow`),
which returns exactly the record types of that family's raw reader. A table is validated when opened
(`Table.validate(full=True)`: a truncated or bit-flipped file is a DataError, never a crash in a
worker) and its cells are checked row by row: list lengths agree within a row, ids are unique.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from sclbench.data.arrow_cells import forget_table, open_table
from sclbench.data.formats._io import dedup
from sclbench.data.records import CaptionRecord, ImageSource, NLVR2Record, VQARecord
from sclbench.errors import ConfigError, DataError

IMAGE_COLUMNS = ("image", "image_0", "image_1")


# Column types, as predicates over arrow types. A null type anywhere inside is accepted: pandas gives
# it to a list column whose lists are all empty (the answers of a test table).
def _list_of(inner):
    return lambda t: (pa.types.is_list(t) or pa.types.is_large_list(t)) and _or_null(inner)(t.value_type)


def _or_null(pred):
    return lambda t: pa.types.is_null(t) or pred(t)


_BYTES = lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t)
_TEXT = lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)
_NUMBER = lambda t: pa.types.is_integer(t) or pa.types.is_floating(t)
COLUMN_TYPES = {
    "image": (_BYTES, "image bytes"),
    "image_0": (_BYTES, "image bytes"),
    "image_1": (_BYTES, "image bytes"),
    "caption": (_list_of(_TEXT), "lists of captions"),
    "questions": (_list_of(_TEXT), "lists of strings"),
    "split": (_TEXT, "split names"),
    "identifier": (_TEXT, "pair identifiers"),
    "question_id": (_list_of(pa.types.is_integer), "lists of integer ids"),
    "answer_scores": (_list_of(_list_of(_NUMBER)), "lists of score lists"),
}


def _columns(path: Path, names: tuple[str, ...], types: dict | None = None) -> tuple[pa.Table, dict[str, list]]:
    """The table and its non-image columns as Python lists, its schema checked first.

    A table with no rows is an empty split, whatever its column types: the official writers build
    each table with `pa.Table.from_pandas(pd.DataFrame(rows, columns=...))`, which types every column
    of an empty frame `null` (they write such a table when a split is small or absent).
    """
    table = open_table(path)
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; is this a ViLT-format table?")
    if table.num_rows == 0:
        return table, {n: [] for n in table.column_names if n not in IMAGE_COLUMNS}
    for name, (ok, what) in {**COLUMN_TYPES, **(types or {})}.items():
        if name in table.column_names and not ok(table.column(name).type):
            raise DataError(
                f"{path}: column {name!r} should hold {what}, holds {table.column(name).type}; re-create the table"
            )
    extra = [n for n in table.column_names if n not in IMAGE_COLUMNS]  # images stay memory-mapped
    return table, {n: table.column(n).to_pylist() for n in extra}


class _Cells:
    """Typed access to the Python cells of one table: a wrong cell names the file, column and row."""

    def __init__(self, path: Path, cols: dict[str, list]):
        self.path, self.cols = path, cols

    def fail(self, column: str, row: int, what: str) -> DataError:
        return DataError(f"{self.path}, column {column!r} row {row}: {what}; re-create the table")

    def get(self, column: str, row: int, kind, what: str):
        value = self.cols[column][row]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:  # true is no id
            raise self.fail(column, row, f"expected {what}, got {type(value).__name__}")
        return value

    def items(self, column: str, row: int, kind, what: str, length: int | None = None) -> list:
        value = self.get(column, row, list, f"a list of {what}")
        if any(not isinstance(v, kind) or isinstance(v, bool) and kind is not bool for v in value):
            raise self.fail(column, row, f"expected a list of {what}")
        if length is not None and len(value) != length:
            raise self.fail(column, row, f"{len(value)} entries where the row has {length} questions/sentences")
        return value


def _unique(seen: dict, key, path: Path, row: int, what: str) -> None:
    if key in seen:
        raise DataError(
            f"{path}, row {row}: duplicated {what} {key!r} (first in {seen[key]}); a table was "
            "written twice into one file or two tables were concatenated"
        )
    seen[key] = f"{path.name} row {row}"


# --------------------------------------------------------------------------------------- captions
def caption_table(root: str | Path, dataset: str, split: str) -> Path:
    return Path(root) / f"{dataset}_caption_karpathy_{split}.arrow"


def read_caption_arrow(
    root: str | Path, dataset: str, split: str, *, coco_train_with_restval: bool = False, dedup_captions: bool = True
) -> list[CaptionRecord]:
    """Records of one caption table (`split` as in the file name); COCO train + restval when asked,
    like `read_karpathy`. Captions de-duplicated per image as the official datasets do."""
    splits = [split, "restval"] if dataset == "coco" and split == "train" and coco_train_with_restval else [split]
    records, seen = [], {}
    for name in splits:
        path = caption_table(root, dataset, name)
        table, cols = _columns(
            path,
            ("image", "caption", "image_id", "split"),
            {"image_id": (lambda t: _TEXT(t) or pa.types.is_integer(t), "file names")},
        )
        cells = _Cells(path, cols)
        for i in range(table.num_rows):
            image_id = str(cells.get("image_id", i, (str, int), "the image id (file name)"))
            _unique(seen, image_id, path, i, "image id")
            captions = cells.items("caption", i, str, "caption strings")
            if not captions:
                raise cells.fail("caption", i, "no caption")
            records.append(
                CaptionRecord(
                    ImageSource(arrow=(str(path), "image", i)),
                    image_id,
                    dedup(captions) if dedup_captions else list(captions),
                    cells.get("split", i, str, "the split name"),
                )
            )
    return records


# --------------------------------------------------------------------------------------- VQA
def read_vqa_arrow(root: str | Path, split: str) -> list[VQARecord]:
    path = Path(root) / f"vqav2_{split}.arrow"
    table, cols = _columns(
        path,
        ("image", "questions", "answers", "answer_scores", "image_id", "question_id", "split"),
        {
            "image_id": (pa.types.is_integer, "integer image ids"),
            "answers": (_list_of(_list_of(_TEXT)), "lists of answer lists"),
        },
    )
    cells = _Cells(path, cols)
    has_raw = "raw_answers" in cols
    records, seen = [], {}
    for i in range(table.num_rows):
        image = ImageSource(arrow=(str(path), "image", i))
        questions = cells.items("questions", i, str, "question strings")
        n = len(questions)
        qids = cells.items("question_id", i, int, "integer question ids", n)
        image_id = cells.get("image_id", i, int, "an integer image id")
        row_split = cells.get("split", i, str, "the split name")
        answers = cells.items("answers", i, list, "answer lists")
        scores = cells.items("answer_scores", i, list, "score lists")
        # test tables carry no answers at all; otherwise one answer list per question
        if answers and len(answers) != n or len(scores) != len(answers):
            raise cells.fail("answers", i, f"{len(answers)} answer and {len(scores)} score lists for {n} questions")
        if has_raw:
            raw = [
                cells.items(c, i, kind, what, n)
                for c, kind, what in (
                    ("raw_answers", list, "answer lists"),
                    ("answer_types", str, "strings"),
                    ("question_types", str, "strings"),
                    ("multiple_choice_answers", str, "strings"),
                )
            ]
        for j, (qid, question) in enumerate(zip(qids, questions)):
            _unique(seen, qid, path, i, "question_id")
            if has_raw:
                extra = dict(
                    answers=list(raw[0][j]),
                    answer_type=raw[1][j],
                    question_type=raw[2][j],
                    multiple_choice_answer=raw[3][j],
                )
            else:
                labels = {}
                if answers:
                    if len(answers[j]) != len(scores[j]):
                        raise cells.fail(
                            "answer_scores", i, f"question {qid}: {len(answers[j])} answers, {len(scores[j])} scores"
                        )
                    labels = dict(zip(answers[j], scores[j]))
                extra = dict(
                    answers=[], answer_type="", question_type="", multiple_choice_answer="", label_scores=labels
                )
            records.append(
                VQARecord(question_id=qid, image=image, image_id=image_id, question=question, split=row_split, **extra)
            )
    return records


# --------------------------------------------------------------------------------------- NLVR2
_NLVR2_LABELS = {"true": True, "false": False}


def read_nlvr2_arrow(root: str | Path, split: str) -> list[NLVR2Record]:
    path = Path(root) / f"nlvr2_{split}.arrow"
    table, cols = _columns(
        path,
        ("image_0", "image_1", "questions", "answers", "identifier"),
        {"answers": (_list_of(_TEXT), "lists of 'True'/'False' answers")},
    )
    cells = _Cells(path, cols)
    records, seen = [], {}
    for i in range(table.num_rows):
        sentences = cells.items("questions", i, str, "sentence strings")
        n = len(sentences)
        pair = cells.get("identifier", i, str, "the pair identifier")
        answers = cells.get("answers", i, list, "a list of answers")
        if len(answers) != n or any(a is not None and str(a).lower() not in _NLVR2_LABELS for a in answers):
            raise cells.fail("answers", i, f"expected {n} answers, each 'True', 'False' or null")
        ids = (
            cells.items("identifiers", i, str, "identifier strings", n)
            if "identifiers" in cols
            else [f"{pair}-{k}" for k in range(n)]
        )
        for ident, sentence, answer in zip(ids, sentences, answers):
            _unique(seen, ident, path, i, "identifier")
            label = None if answer is None else _NLVR2_LABELS[str(answer).lower()]
            records.append(
                NLVR2Record(
                    ident,
                    sentence,
                    label,
                    ImageSource(arrow=(str(path), "image_0", i)),
                    ImageSource(arrow=(str(path), "image_1", i)),
                    split,
                )
            )
    return records


# --------------------------------------------------------------------------------------- dispatch
ARROW_FAMILIES = ("image_retrieval", "vqa", "nlvr2")


def read_family_arrow(
    family: str,
    root: str | Path,
    split: str,
    *,
    dataset: str | None = None,
    coco_train_with_restval: bool = True,
    dedup_captions: bool = True,
) -> list:
    """The records a card of `family` reads from its raw files, read from the ViLT tables under `root`.

    image_retrieval -> CaptionRecord (`dataset` f30k|coco; COCO train includes restval by default, as
    `read_karpathy`), vqa -> VQARecord (splits train, val, test-dev, test), nlvr2 -> NLVR2Record
    (train, dev, test1). Video retrieval and pre-training have no fine-tuning arrow tables here.
    """
    if family == "image_retrieval":
        if dataset not in ("f30k", "coco"):
            raise ConfigError(
                f"data.format: arrow for image retrieval needs data.dataset f30k or coco, not {dataset!r}"
            )
        return read_caption_arrow(
            root, dataset, split, coco_train_with_restval=coco_train_with_restval, dedup_captions=dedup_captions
        )
    if family == "vqa":
        return read_vqa_arrow(root, split)
    if family == "nlvr2":
        return read_nlvr2_arrow(root, split)
    raise ConfigError(
        f"data.format: arrow is available for the {', '.join(ARROW_FAMILIES)} cards, not for "
        f"{family!r}; use the raw layout (data.format: raw)"
    )


# --------------------------------------------------------------------------------------- writer
def write_table(columns: dict[str, list], path: str | Path) -> Path:
    """Write one Arrow IPC file (record-batch file format, as the official readers expect)."""
    table = pa.table(columns)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    forget_table(path)
    return path


def write_caption_arrow(records: list[CaptionRecord], path: str | Path) -> Path:
    return write_table(
        {
            "image": [r.image.read_bytes() for r in records],
            "caption": [list(r.captions) for r in records],
            "image_id": [r.image_id for r in records],
            "split": [r.split for r in records],
        },
        path,
    )


def _group(records, key):
    groups: dict = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    return list(groups.values())


def write_vqa_arrow(records: list[VQARecord], path: str | Path, vocab) -> Path:
    """One row per image (first-appearance order), questions in record order."""
    rows = _group(records, lambda r: (r.split, r.image_id))
    scored = [[vocab.scores(q) for q in row] for row in rows]
    return write_table(
        {
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
        },
        path,
    )


def write_nlvr2_arrow(records: list[NLVR2Record], path: str | Path) -> Path:
    rows = _group(records, lambda r: r.pair_id)
    return write_table(
        {
            "image_0": [row[0].image_0.read_bytes() for row in rows],
            "image_1": [row[0].image_1.read_bytes() for row in rows],
            "questions": [[r.sentence for r in row] for row in rows],
            "answers": [[None if r.label is None else str(r.label) for r in row] for row in rows],
            "identifier": [row[0].pair_id for row in rows],
            "identifiers": [[r.identifier for r in row] for row in rows],
        },
        path,
    )
