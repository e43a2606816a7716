"""Files written so that a reader (or a killed writer) never sees half of one, and JSON-lines reading
with errors that name the file and line."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import IO, Callable, Iterator

from sclbench.errors import DataError, SCLBenchError


def atomic_write(path: str | Path, data: str | bytes | Callable[[IO[bytes]], None]) -> Path:
    """Write `data` (text, bytes, or a function writing to a binary file) to a temporary file in the
    same folder, fsync it and rename it over `path` (os.replace is atomic on POSIX): readers see the
    old file or the new one, never a partial one. A full disk raises one clear error, no file left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise SCLBenchError(f"no space left on the device while writing {path}: free some space (or write "
                                "elsewhere) and rerun; the previous file, if any, is unchanged") from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-empty line of a JSON-lines file."""
    path = Path(path)
    try:
        f = open(path, encoding="utf-8")
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror}") from None
    with f:
        try:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"malformed JSON in {path}, line {lineno}: {err.msg}; "
                                    "fix or re-download the file") from None
                if not isinstance(obj, dict):
                    raise DataError(f"{path}, line {lineno}: expected a JSON object, got {type(obj).__name__}")
                yield lineno, obj
        except UnicodeDecodeError as err:
            raise DataError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
