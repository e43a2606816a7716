"""Shared file helpers for the format readers: every failure names the file and what to do.

Everything a reader takes from disk goes through these helpers, so that no foreign exception type
(OSError, UnicodeDecodeError, json/pandas parser errors, RecursionError from absurdly nested JSON)
crosses the reader boundary: a user sees one DataError naming the file, the line or entry and the
field.

Files are read exactly or refused: a byte-order mark is honoured and removed (UTF-8, -16, -32), other
encodings are refused with the line; an empty (or white-space-only) file, a CSV with a header and no
rows, a CSV header naming a column twice and a JSON object repeating a key are refused, naming the
file and where (JSON keeps the last copy of a repeated key without a word; that is never read).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sclbench.errors import DataError

if TYPE_CHECKING:
    from sclbench.data.records import SkipCounter


class MissingDataFile(DataError):
    """A file of the layout is absent (as opposed to present but damaged): `data check` reports an absent
    optional file as a note, a damaged one always as a problem."""


def find_file(root: Path, candidates: list[str], what: str) -> Path:
    """The first existing `root/candidate`; a DataError listing every place looked at otherwise."""
    root = Path(root)
    for rel in candidates:
        if (root / rel).is_file():
            return root / rel
    tried = ", ".join(str(root / c) for c in candidates)
    raise MissingDataFile(f"{what} not found; looked for {tried}. Download it into one of these places "
                    "(or pass the right --data-root)")


def find_dir(root: Path, candidates: list[str]) -> Path | None:
    for rel in candidates:
        if (Path(root) / rel).is_dir():
            return Path(root) / rel
    return None


# Byte-order marks a saving tool may put first (Excel's "CSV UTF-8", Notepad, PowerShell). UTF-32's come
# before UTF-16's: FF FE 00 00 also starts with UTF-16-LE's FF FE.
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def read_text(path: Path, *, allow_empty: bool = False) -> str:
    """The whole file as text: UTF-8, or UTF-8/16/32 behind a byte-order mark (the mark removed, so no
    id starts with U+FEFF). Unreadable or non-UTF-8 bytes, a mark inside the file (two files
    concatenated) and an empty or whitespace-only file (unless `allow_empty`) name the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror}") from None
    encoding, start = "utf-8", 0
    for bom, name in _BOMS:
        if data.startswith(bom):
            encoding, start = name, len(bom)
            break
    try:
        text = data[start:].decode(encoding)
    except UnicodeDecodeError as err:
        line = data[start:start + err.start].decode(encoding, "replace").count("\n") + 1
        raise DataError(f"{path}, line {line}: bytes that are not {encoding.upper()} ({err.reason}); the file "
                        "is damaged or in another encoding: re-download it (or save it as UTF-8)") from None
    if not allow_empty and not text.strip():
        raise DataError(f"{path} is empty ({len(data)} bytes{', only white space' if data else ''}); the "
                        "download or copy did not finish: re-download it")
    stray = text.find("\ufeff")
    if stray >= 0 and (stray == 0 or text[stray - 1] == "\n"):
        line = text.count("\n", 0, stray) + 1
        raise DataError(f"{path}, line {line}: a byte-order mark (U+FEFF) starts this line: two files were "
                        "joined together (each with its own mark); re-create the file from its parts")
    return text


def text_lines(path: Path, *, allow_empty: bool = False) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline) for every line of a text file (see read_text)."""
    for lineno, line in enumerate(read_text(path, allow_empty=allow_empty).split("\n"), 1):
        yield lineno, line.rstrip("\r")


class _Repeated(dict):
    """An object in which a key occurs twice: the parse finishes, then the path to it is reported."""

    repeated: str = ""


def _find_repeated(doc) -> tuple[str, str]:
    """(JSON path, key) of the first object, in document order, that repeats a key."""
    stack = [(doc, "")]
    while stack:
        node, at = stack.pop()
        if isinstance(node, _Repeated):
            return at or "top level", node.repeated
        if isinstance(node, dict):
            stack.extend((v, f"{at}.{k}" if at else str(k)) for k, v in reversed(list(node.items())))
        elif isinstance(node, list):
            stack.extend((v, f"{at}[{i}]") for i, v in reversed(list(enumerate(node))))
    return "top level", ""


def parse_json(text: str, path: Path, line: int | None = None):
    """JSON text of `path` (or of its `line`), exactly: a repeated key in any object, malformed JSON or
    absurd nesting is a DataError naming the file, the line and where (a JSON path)."""
    repeated = []

    def strict_object(pairs: list) -> dict:
        obj = dict(pairs)
        if len(obj) != len(pairs):  # json.loads would keep the last copy without a word
            seen: set = set()
            obj = _Repeated(obj)
            obj.repeated = next(k for k, _ in pairs if k in seen or seen.add(k))
            repeated.append(obj)
        return obj

    at = f"{path}, line {line}" if line is not None else str(path)
    try:
        doc = json.loads(text, object_pairs_hook=strict_object)
    except json.JSONDecodeError as err:
        place = f"line {line}, column {err.colno}" if line is not None else f"line {err.lineno} column {err.colno}"
        raise DataError(f"malformed JSON in {path}, {place}: {err.msg}; re-download the file") from None
    except RecursionError:
        raise DataError(f"malformed JSON in {at}: nested too deeply to be an annotation file") from None
    if repeated:  # only then is the tree walked, to say where
        where, key = _find_repeated(doc)
        raise DataError(f"{at}: key {key!r} occurs twice in the object at {where}; a JSON reader keeps one "
                        "copy silently, so the file is damaged or was edited by hand: fix or re-download it")
    return doc


def load_json(path: Path):
    """A whole JSON file, read exactly (see read_text and parse_json)."""
    return parse_json(read_text(path), path)


def read_jsonl(path: Path, *, allow_empty: bool = False) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-empty line of a JSON-lines file, each line read exactly."""
    path = Path(path)
    for lineno, line in text_lines(path, allow_empty=allow_empty):
        if not line.strip():
            continue
        obj = parse_json(line, path, lineno)
        if not isinstance(obj, dict):
            raise DataError(f"{path}, line {lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def expect_dict(obj, path: Path, where: str) -> dict:
    if not isinstance(obj, dict):
        raise DataError(f"{path}, {where}: expected an object, got {type(obj).__name__}")
    return obj


def field(obj: dict, key: str, path: Path, where: str, kind: type | tuple = object):
    """obj[key], checked; a missing or mistyped field names the file and the entry."""
    expect_dict(obj, path, where)
    if key not in obj:
        raise DataError(f"{path}, {where}: missing field {key!r}; the file is not in the expected format")
    value = obj[key]
    # bool is an int in Python; an id or a count given as true/false is a broken file, not a number.
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        names = "/".join(k.__name__ for k in _kinds(kind))
        raise DataError(f"{path}, {where}: field {key!r} should be {names}, got {type(value).__name__}")
    return value


def _kinds(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def str_list(value, path: Path, where: str, what: str, *, non_empty: bool = True) -> list[str]:
    """A list of strings (captions, phrases); anything else names the entry."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{path}, {where}: {what} should be a list of strings")
    if non_empty and not value:
        raise DataError(f"{path}, {where}: no {what}; every entry of this format has at least one")
    return value


def not_empty(items: list, path: Path, what: str) -> list:
    """`items` (the file's entries); none at all is an empty download, refused naming the file."""
    if not items:
        raise DataError(f"{path} holds no {what} (an empty list); the download or export did not finish: "
                        "re-download it")
    return items


def unique(key, seen: dict, path: Path, where: str, what: str) -> None:
    """Refuse a duplicated id, naming both entries (a duplicate would silently double a sample)."""
    if key in seen:
        raise DataError(f"{path}, {where}: duplicated {what} {key!r} (first at {seen[key]}); "
                        "the file is damaged or two files were concatenated")
    seen[key] = where


def dedup(captions: Iterable[str]) -> list[str]:
    """Exact duplicates removed, first appearances kept in file order.

    The official datasets do `list(set(texts))` per image (`remove_duplicate=True`); a set's order
    depends on the string hash seed, so that order is not reproducible. The same set of captions in
    file order is.
    """
    return list(dict.fromkeys(captions))


def read_csv_table(path: Path, columns: tuple[str, ...], *, sep: str = ",") -> list[tuple[int, dict]]:
    """Rows of a headed CSV/TSV as (file line number, {column: str}); every value a non-empty string.

    pandas reads the quoting of the published CSVs (sentences with commas and quotes) and reports the
    line of a malformed row; its errors are turned into DataErrors naming the file.
    """
    import pandas as pd

    text = read_text(path)  # UTF-8 errors with their line, before pandas sees the bytes
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                            skip_blank_lines=True, engine="c")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected a header with {list(columns)}") from None
    except (pd.errors.ParserError, ValueError) as err:
        raise DataError(f"{path}: malformed CSV ({str(err).strip()}); re-download the file") from None
    header = next(csv.reader(io.StringIO(text.lstrip("\r\n")), delimiter=sep), [])
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:  # pandas would rename the second copy "name.1" and read the first without a word
        raise DataError(f"{path}, line 1: the header names column(s) {twice} twice; fix or re-download the file")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: header lacks column(s) {missing}; expected {list(columns)}")
    if len(frame) == 0:
        raise DataError(f"{path} holds a header but no rows; the download or copy did not finish: re-download it")
    lines = _data_line_numbers(text, len(frame))
    rows = []
    for lineno, values in zip(lines, frame[list(columns)].itertuples(index=False, name=None)):
        row = dict(zip(columns, values))
        empty = [c for c, v in row.items() if not v.strip()]
        if empty:
            raise DataError(f"{path}, line {lineno}: empty value in column(s) {empty}")
        rows.append((lineno, row))
    return rows


def _data_line_numbers(text: str, n_rows: int) -> list[int]:
    """File line of each data row (header = line 1; blank lines skipped as pandas skips them).

    Exact for files without quoted newlines (every published annotation CSV); with them it points at
    the nearest row start, which is still the right place to look.
    """
    lines = [i for i, line in enumerate(text.split("\n"), 1) if line.strip()][1:]
    return (lines + list(range(len(text) + 1, len(text) + 1 + n_rows)))[:n_rows]


def media_ok(path: Path, skip: SkipCounter | None, kind: str = "image", listed_in: str = "") -> bool:
    """True if the file (or frame folder) exists; otherwise skip-and-count or raise with the path
    (and `listed_in`, the annotation file and entry that named it, so a typo there can be found)."""
    if path.exists():
        return True
    if skip is None:
        source = f" (named by {listed_in})" if listed_in else ""
        raise DataError(f"missing {kind} {path}{source}; restore it, or pass the skip option to leave the "
                        "sample out (it is counted in the run record)")
    skip.add(f"missing {kind}", str(path))
    return False
