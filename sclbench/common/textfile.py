"""Text and JSON files read exactly: every failure is one DataError naming the file and the line.

Shared by every room that reads a file a user or another tool may have written (the format readers in
data/formats/, result records and predictions in results/, sentence files in app/predict, JSON lines in
common/io), so that no UnicodeDecodeError, json.JSONDecodeError or RecursionError escapes, and a repeated
JSON key (which json.loads resolves by keeping the last copy without a word) is never read.

A byte-order mark is honoured and removed (UTF-8, -16, -32), other encodings are refused with the line; an
empty (or white-space-only) file is refused unless allowed. NaN / Infinity literals are accepted (Python's
json writes them; a record keeps a NaN metric so that the check fails it and the table shows it).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path

from sclbench.errors import DataError

# Byte-order marks a saving tool may put first (Excel's "CSV UTF-8", Notepad, PowerShell). UTF-32's come
# before UTF-16's: FF FE 00 00 also starts with UTF-16-LE's FF FE.
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


DOWNLOADED = "re-download it (or save it as UTF-8)"  # what to do, for a file that came from elsewhere
CUT_SHORT = "the download or copy did not finish: re-download it"


def read_text(path: Path, *, allow_empty: bool = False, fix: str = DOWNLOADED, empty_fix: str = CUT_SHORT) -> str:
    """The whole file as text: UTF-8, or UTF-8/16/32 behind a byte-order mark (the mark removed, so no
    id starts with U+FEFF). Unreadable or non-UTF-8 bytes, a mark inside the file (two files
    concatenated) and an empty or whitespace-only file (unless `allow_empty`) name the file; `fix` and
    `empty_fix` say what to do (the defaults suit a downloaded data file)."""
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
        line = data[start : start + err.start].decode(encoding, "replace").count("\n") + 1
        raise DataError(
            f"{path}, line {line}: bytes that are not {encoding.upper()} ({err.reason}); the file "
            f"is damaged or in another encoding: {fix}"
        ) from None
    if not allow_empty and not text.strip():
        raise DataError(f"{path} is empty ({len(data)} bytes{', only white space' if data else ''}); {empty_fix}")
    stray = text.find("\ufeff")
    if stray >= 0 and (stray == 0 or text[stray - 1] == "\n"):
        line = text.count("\n", 0, stray) + 1
        raise DataError(
            f"{path}, line {line}: a byte-order mark (U+FEFF) starts this line: two files were "
            "joined together (each with its own mark); re-create the file from its parts"
        )
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


def parse_json(
    text: str, path: Path, line: int | None = None, fix: str = "re-download the file", finite_only: bool = False
):
    """JSON text of `path` (or of its `line`), exactly: a repeated key in any object, malformed JSON or
    absurd nesting is a DataError naming the file, the line and where (a JSON path), then `fix`.
    finite_only: NaN / Infinity (which Python's json reads, and JSON does not have) are refused too;
    records keep them (a NaN metric is a failed check, not a damaged file), configs do not."""
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

    def no_constant(name: str) -> float:
        raise DataError(f"{at}: {name} is not a JSON number; {fix}")

    try:
        doc = json.loads(
            text, object_pairs_hook=strict_object, **({"parse_constant": no_constant} if finite_only else {})
        )
    except json.JSONDecodeError as err:
        place = f"line {line}, column {err.colno}" if line is not None else f"line {err.lineno} column {err.colno}"
        raise DataError(f"malformed JSON in {path}, {place}: {err.msg}; {fix}") from None
    except RecursionError:
        raise DataError(f"malformed JSON in {at}: nested too deeply to be data; {fix}") from None
    if repeated:  # only then is the tree walked, to say where
        where, key = _find_repeated(doc)
        raise DataError(
            f"{at}: key {key!r} occurs twice in the object at {where}; a JSON reader keeps one "
            "copy silently, so the file is damaged or was edited by hand: fix it, or "
            f"{fix}"
        )
    return doc


def load_json(path: Path, *, fix: str | None = None):
    """A whole JSON file, read exactly (see read_text and parse_json)."""
    if fix is None:
        return parse_json(read_text(path), path)
    return parse_json(read_text(path, fix=fix, empty_fix=fix), path, fix=fix)


def read_jsonl(path: Path, *, allow_empty: bool = False, fix: str | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-empty line of a JSON-lines file, each line read exactly."""
    path = Path(path)
    text = (
        read_text(path, allow_empty=allow_empty)
        if fix is None
        else read_text(path, allow_empty=allow_empty, fix=fix, empty_fix=fix)
    )
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        obj = parse_json(line, path, lineno) if fix is None else parse_json(line, path, lineno, fix=fix)
        if not isinstance(obj, dict):
            raise DataError(f"{path}, line {lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj
