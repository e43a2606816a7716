"""Prediction files made elsewhere, read exactly (for `sclbench score`): every failure is one DataError
naming the file and, where there is one, the line, entry or array.

Formats, one per task family (the official submission formats; `sclbench eval --submission DIR` writes
each of them):

* VQA, EvalAI result JSON: a list of objects ``{"question_id": int, "answer": str}`` (other keys are
  ignored, as EvalAI does); a question answered twice is refused.
* NLVR2, the CSV of lil-lab/nlvr's ``nlvr2/eval/metrics.py``: one ``identifier,prediction`` row per
  statement, no header (a first row ``identifier,prediction`` is accepted and skipped), prediction
  ``True`` / ``False`` in any letter case (the official script lower-cases it). Values with spaces around
  them, a third column, other booleans (1/0, yes/no) and a repeated identifier are refused: the official
  script would score such a row as wrong, or keep the last copy, without a word.
* Retrieval (F30K, COCO, MSRVTT, LSMDC), a score matrix ``.npz``: ``i2t`` and ``t2i`` (floating point,
  shape ``[n_media, n_texts]``: row i = the split's i-th image/video in record order, column t = its t-th
  caption in caption order, i.e. the captions of image 0, then of image 1, ...; higher = better; ``-inf``
  = not a candidate; NaN and ``+inf`` are refused) and ``media_ids`` (unicode strings, the image_id /
  video_id of each row). Read with ``allow_pickle=False``: an object array (pickled Python objects) is
  refused, and every array's header is checked before its data is read.
* Retrieval, ranked lists ``.json``: ``{"i2t": {"<media_id>": [caption index, ...]}, "t2i": {"<caption
  index>": ["<media_id>", ...]}}``, best first, no repeats; lists may be truncated (recall@K is then
  exact for K up to the list's length only, see `sclbench.app.score`).

The readers check the file's own shape; whether its ids belong to the split is checked by the caller,
which knows the split.
"""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sclbench.common.textfile import parse_json, read_text
from sclbench.errors import DataError

FIX = "write the file again in the documented format (README: Scoring prediction files)"
_INDEX = re.compile(r"0|[1-9][0-9]*")  # a caption index as a JSON key: canonical decimal only


def _text(path: Path) -> str:
    return read_text(path, fix=FIX, empty_fix=FIX)


def _json(path: Path):
    return parse_json(_text(path), path, fix=FIX, finite_only=True)


def preview_ids(ids, limit: int = 5) -> str:
    """A few of `ids` (sorted) for an error message, and how many more there are."""
    items = sorted(ids, key=str)
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---- VQA: EvalAI results ---------------------------------------------------------------------------
def read_evalai_answers(path: Path) -> dict[int, str]:
    """{question_id: answer} from an EvalAI VQA result file, in file order."""
    path = Path(path)
    doc = _json(path)
    if not isinstance(doc, list):
        raise DataError(
            f'{path}: expected a JSON list of {{"question_id": int, "answer": str}} objects (the EvalAI '
            f"result format), got a {type(doc).__name__}"
        )
    if not doc:
        raise DataError(f"{path} holds an empty list: no answers to score; {FIX}")
    answers: dict[int, str] = {}
    repeated: list[int] = []
    for i, entry in enumerate(doc):
        where = f"{path}, entry {i}"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: expected an object with question_id and answer, got {type(entry).__name__}")
        for key in ("question_id", "answer"):
            if key not in entry:
                raise DataError(f'{where}: missing key {key!r}; each entry is {{"question_id": int, "answer": str}}')
        qid, answer = entry["question_id"], entry["answer"]
        if not _is_int(qid):
            raise DataError(f"{where}: question_id should be an integer, got {qid!r}")
        if not isinstance(answer, str):
            raise DataError(f"{where}: answer should be a string, got {answer!r}")
        if qid in answers:
            repeated.append(qid)
        answers.setdefault(qid, answer)
    if repeated:
        raise DataError(
            f"{path}: {len(repeated)} question ids are answered more than once ({preview_ids(set(repeated))}); "
            "EvalAI needs exactly one answer per question"
        )
    return answers


# ---- NLVR2: the official CSV -------------------------------------------------------------------------
def read_nlvr2_csv(path: Path) -> dict[str, bool]:
    """{identifier: prediction} from an NLVR2 prediction CSV (see the module docstring), in file order."""
    path = Path(path)
    text = _text(path)
    out: dict[str, bool] = {}
    first_line: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows = []
    try:
        for row in reader:
            rows.append((reader.line_num, row))
    except csv.Error as err:
        raise DataError(f"{path}, line {reader.line_num}: malformed CSV ({err}); {FIX}") from None
    for lineno, row in rows:
        if not row:
            continue  # a blank line (the official script skips them too)
        if lineno == 1 and [c.strip().lower() for c in row] == ["identifier", "prediction"]:
            continue  # a header row written by a dataframe
        where = f"{path}, line {lineno}"
        if len(row) != 2:
            raise DataError(f"{where}: expected 2 columns identifier,prediction, got {len(row)}: {row[:4]!r}")
        identifier, value = row
        for what, cell in (("identifier", identifier), ("prediction", value)):
            if cell != cell.strip() or not cell:
                raise DataError(
                    f"{where}: {what} {cell!r} is empty or has spaces around it (the official script compares "
                    "it as written: it would not match)"
                )
        if value.lower() not in ("true", "false"):
            raise DataError(f"{where}: prediction {value!r} is not True or False")
        if identifier in out:
            raise DataError(
                f"{where}: identifier {identifier!r} is predicted twice (first on line {first_line[identifier]}); "
                "one row per statement"
            )
        out[identifier] = value.lower() == "true"
        first_line[identifier] = lineno
    if not out:
        raise DataError(f"{path} holds no prediction rows; {FIX}")
    return out


# ---- retrieval: the score matrix ---------------------------------------------------------------------
@dataclass
class ScoreMatrices:
    """The two score matrices [n_media, n_texts] and the media id of each row."""

    i2t: np.ndarray
    t2i: np.ndarray
    media_ids: list[str]


SCORE_ARRAYS = ("i2t", "t2i", "media_ids")


def read_score_npz(path: Path, n_media: int, n_texts: int) -> ScoreMatrices:
    """The arrays of a retrieval score file, checked against the split's size before their data is read."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise DataError(
            f"{path} is not an .npz archive (numpy.savez output) ({type(err).__name__}: {err}); {FIX}"
        ) from None
    with archive:
        names = archive.namelist()
        members = {n[: -len(".npy")] if n.endswith(".npy") else n: n for n in names}
        missing = [a for a in SCORE_ARRAYS if a not in members]
        extra = sorted(set(members) - set(SCORE_ARRAYS))
        if missing or extra or len(members) != len(names):
            raise DataError(
                f"{path}: holds arrays {sorted(members)}; a score file holds exactly {list(SCORE_ARRAYS)}"
                + (f" (missing {missing})" if missing else "")
            )
        expected = {"i2t": (n_media, n_texts), "t2i": (n_media, n_texts), "media_ids": (n_media,)}
        arrays = {name: _read_member(archive, members[name], path, name, expected[name]) for name in SCORE_ARRAYS}
    ids = arrays["media_ids"]
    for name in ("i2t", "t2i"):
        top = arrays[name].max() if arrays[name].size else 0.0  # NaN and +inf both surface in the maximum
        if np.isnan(top) or top == np.inf:
            bad = np.isnan(arrays[name]) | np.isposinf(arrays[name])
            row, col = (int(x) for x in np.argwhere(bad)[0])
            raise DataError(
                f"{path}: {name} holds {int(bad.sum())} NaN or +inf scores (first at row {row}, column {col}); "
                "every score must be a number (-inf marks a pair that is not a candidate)"
            )
    return ScoreMatrices(arrays["i2t"], arrays["t2i"], [str(x) for x in ids.tolist()])


def _read_member(archive: zipfile.ZipFile, member: str, path: Path, name: str, shape: tuple[int, ...]) -> np.ndarray:
    where = f"{path}, array {name!r}"
    try:
        with archive.open(member) as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                got, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                got, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise DataError(f"{where}: .npy format version {version} is not supported (numpy.savez writes 1.0)")
            if dtype.hasobject:
                raise DataError(
                    f"{where}: holds Python objects (pickled data, dtype {dtype}); score files are read with "
                    "allow_pickle=False: save plain numeric / unicode arrays"
                )
            if name == "media_ids" and dtype.kind != "U":
                raise DataError(f"{where}: expected unicode strings (dtype <U...), got dtype {dtype}")
            if name != "media_ids" and dtype.kind != "f":
                raise DataError(f"{where}: expected floating-point scores (float32), got dtype {dtype}")
            if tuple(got) != shape:
                hint = " (the transpose: rows must be the images/videos)" if tuple(got) == shape[::-1] else ""
                layout = (
                    "one id per image/video of the split"
                    if name == "media_ids"
                    else "rows = the split's images/videos in record order, columns = its captions in caption order"
                )
                raise DataError(f"{where}: shape {tuple(got)}, expected {shape}{hint}: {layout}")
            # Header checked: read the data (exactly prod(shape) items; a short member is an error), into a
            # writable buffer of its own (torch shares it without a copy).
            data = bytearray(math.prod(shape) * dtype.itemsize)
            view, filled = memoryview(data), 0
            while filled < len(data):
                got_bytes = fh.readinto(view[filled:])
                if not got_bytes:
                    raise DataError(f"{where}: the array data is cut short; {FIX}")
                filled += got_bytes
            array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
            return np.ascontiguousarray(array)
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, RuntimeError, NotImplementedError) as err:
        raise DataError(f"{where}: unreadable ({type(err).__name__}: {err}); {FIX}") from None


# ---- retrieval: ranked lists -------------------------------------------------------------------------
@dataclass
class RankedLists:
    """Best-first candidates per query: i2t by media id (caption indices), t2i by caption index (media ids)."""

    i2t: dict[str, list[int]]
    t2i: dict[int, list[str]]


def read_ranked_lists(path: Path) -> RankedLists:
    """The ranked-lists JSON (see the module docstring); types, repeats and empty lists checked here."""
    path = Path(path)
    doc = _json(path)
    if not isinstance(doc, dict) or set(doc) != {"i2t", "t2i"}:
        got = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise DataError(f"{path}: expected an object with exactly the keys 'i2t' and 't2i', got {got}")
    for direction in ("i2t", "t2i"):
        if not isinstance(doc[direction], dict) or not doc[direction]:
            raise DataError(f"{path}: {direction!r} must be a non-empty object {{query: [candidate, ...]}}")
    i2t: dict[str, list[int]] = {}
    for media_id, ranked in doc["i2t"].items():
        i2t[media_id] = _ranked(ranked, _is_int, "caption indices (integers)", path, f"i2t[{media_id!r}]")
    t2i: dict[int, list[str]] = {}
    for key, ranked in doc["t2i"].items():
        if not _INDEX.fullmatch(key):
            raise DataError(f"{path}: t2i key {key!r} is not a caption index (0, 1, 2, ... without leading zeros)")
        t2i[int(key)] = _ranked(ranked, lambda v: isinstance(v, str), "media ids (strings)", path, f"t2i[{key!r}]")
    return RankedLists(i2t, t2i)


def _ranked(value: object, ok, what: str, path: Path, where: str) -> list:
    if not isinstance(value, list) or not value:
        raise DataError(f"{path}, {where}: expected a non-empty list of {what}, best first")
    wrong = [v for v in value if not ok(v)]
    if wrong:
        raise DataError(f"{path}, {where}: expected {what}, got {preview_ids(wrong, 3)}")
    if len(set(value)) != len(value):
        twice = [v for v, n in Counter(value).items() if n > 1]
        raise DataError(f"{path}, {where}: lists {preview_ids(twice, 3)} more than once; a ranking names each once")
    return value
