"""Reading one cell of an Arrow IPC table: the image bytes an `ImageSource(arrow=...)` points at.

Kept apart from the table readers (`formats/arrow.py`) because the records read through it
(`records.ImageSource.read_bytes`) sit below every reader: this module imports only pyarrow and the
errors. Tables are opened memory-mapped and validated once per process.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from sclbench.errors import DataError

# per process, keyed by (path, size, mtime): memory maps are cheap, re-opened after fork/pickle, and a
# table re-written in place is never served from a stale map
_TABLES: dict[tuple, pa.Table] = {}


def open_table(path: str | Path) -> pa.Table:
    key = str(path)
    try:
        stat = os.stat(key)
    except FileNotFoundError:
        raise DataError(
            f"arrow table {key} not found; write it with the ViLT scripts (or `sclbench data "
            "arrow`) or pass the folder holding the *.arrow files"
        ) from None
    except OSError as err:
        raise DataError(f"cannot read arrow table {key}: {err.strerror}") from None
    cache_key = (key, stat.st_size, stat.st_mtime_ns)
    if cache_key not in _TABLES:
        try:
            table = pa.ipc.open_file(pa.memory_map(key, "r")).read_all()
            table.validate(full=True)  # offsets and UTF-8 checked once, so no cell read can crash later
        except (pa.ArrowException, OSError, ValueError) as err:
            raise DataError(
                f"{key} is not an Arrow IPC file or is damaged ({type(err).__name__}: {str(err)[:200]}); re-create it"
            ) from None
        forget_table(key)
        _TABLES[cache_key] = table
    return _TABLES[cache_key]


def forget_table(path: str | Path) -> None:
    """Drop this process's map of `path` (the writer calls it: a re-written table is re-opened)."""
    for old in [k for k in _TABLES if k[0] == str(path)]:
        del _TABLES[old]


def read_cell(path: str, column: str, row: int) -> bytes:
    table = open_table(path)
    if column not in table.column_names or not 0 <= row < table.num_rows:
        raise DataError(f"{path}: no column {column!r} row {row}; the table changed since it was read")
    value = table.column(column)[row].as_py()
    if not isinstance(value, bytes):
        raise DataError(f"{path}: column {column!r} row {row} holds no image bytes")
    return value
