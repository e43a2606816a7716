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

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

# The exact text and JSON readers live in common/ (records, predictions and sentence files use them too);
# the format readers import them from here with the rest of their helpers.
from sclbench.common.textfile import load_json, parse_json, read_jsonl, read_text, text_lines
from sclbench.errors import DataError

__all__ = [
    "MissingDataFile",
    "dedup",
    "expect_dict",
    "field",
    "find_dir",
    "find_file",
    "load_json",
    "media_ok",
    "not_empty",
    "parse_json",
    "read_csv_table",
    "read_jsonl",
    "read_text",
    "str_list",
    "text_lines",
    "unique",
]

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
    raise MissingDataFile(
        f"{what} not found; looked for {tried}. Download it into one of these places (or pass the right --data-root)"
    )


def find_dir(root: Path, candidates: list[str]) -> Path | None:
    for rel in candidates:
        if (Path(root) / rel).is_dir():
            return Path(root) / rel
    return None


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
        raise DataError(
            f"{path} holds no {what} (an empty list); the download or export did not finish: re-download it"
        )
    return items


def unique(key, seen: dict, path: Path, where: str, what: str) -> None:
    """Refuse a duplicated id, naming both entries (a duplicate would silently double a sample)."""
    if key in seen:
        raise DataError(
            f"{path}, {where}: duplicated {what} {key!r} (first at {seen[key]}); "
            "the file is damaged or two files were concatenated"
        )
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
        frame = pd.read_csv(
            io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, skip_blank_lines=True, engine="c"
        )
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
        raise DataError(
            f"missing {kind} {path}{source}; restore it, or pass the skip option to leave the "
            "sample out (it is counted in the run record)"
        )
    skip.add(f"missing {kind}", str(path))
    return False
