"""Shared file helpers for the format readers: every failure names the file and what to do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from sclbench.data.records import SkipCounter
from sclbench.common.io import read_jsonl  # noqa: F401  (re-exported: the readers' one JSON-lines reader)
from sclbench.errors import DataError


def find_file(root: Path, candidates: list[str], what: str) -> Path:
    """The first existing `root/candidate`; a DataError listing every place looked at otherwise."""
    root = Path(root)
    for rel in candidates:
        if (root / rel).is_file():
            return root / rel
    tried = ", ".join(str(root / c) for c in candidates)
    raise DataError(f"{what} not found; looked for {tried}. Download it into one of these places "
                    "(or pass the right --data-root)")


def find_dir(root: Path, candidates: list[str]) -> Path | None:
    for rel in candidates:
        if (Path(root) / rel).is_dir():
            return Path(root) / rel
    return None


def load_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise DataError(f"malformed JSON in {path}, line {err.lineno} column {err.colno}: {err.msg}; "
                        "re-download the file") from None


def field(obj: dict, key: str, path: Path, where: str, kind: type | tuple = object):
    """obj[key], checked; a missing or mistyped field names the file and the entry."""
    if key not in obj:
        raise DataError(f"{path}, {where}: missing field {key!r}; the file is not in the expected format")
    value = obj[key]
    if not isinstance(value, kind):
        raise DataError(f"{path}, {where}: field {key!r} should be {getattr(kind, '__name__', kind)}, "
                        f"got {type(value).__name__}")
    return value


def media_ok(path: Path, skip: SkipCounter | None, kind: str = "image") -> bool:
    """True if the file (or frame folder) exists; otherwise skip-and-count or raise with the path."""
    if path.exists():
        return True
    if skip is None:
        raise DataError(f"missing {kind} {path}; restore it, or pass the skip option to leave the "
                        "sample out (it is counted in the run record)")
    skip.add(f"missing {kind}", str(path))
    return False
