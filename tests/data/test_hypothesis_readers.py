"""Property: a damaged annotation file is read correctly or refused with one sclbench error naming it.

For every caption/video reader (Karpathy F30K/COCO, MSRVTT json + csv, LSMDC, VG, SBU, CC3M TSV,
WebVid, COCO's own caption files, the ViLT arrow tables): valid files of the published format are
damaged by random truncations, byte flips, deleted required fields, values of the wrong type and
duplicated entries. The reader must either return records or raise an SCLBenchError whose message
names the damaged file: never a bare KeyError/JSONDecodeError/AssertionError/TypeError, never a
hang (an alarm fails the example after a few seconds). Small budgets: CI runs every suite.
"""

from __future__ import annotations

import contextlib
import json
import signal
import tempfile
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from retrieval_builders import BUILDERS

from sclbench.errors import SCLBenchError

BUDGET = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NAMES = sorted(BUILDERS)


@contextlib.contextmanager
def alarm(seconds: int = 10):
    def hang(*_):
        raise TimeoutError(f"reader still running after {seconds} s: a hang")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def read_damaged(name: str, tmp: Path, damage) -> None:
    root = Path(tempfile.mkdtemp(dir=tmp))  # a fresh copy per example: no cache sees an old file
    case = BUILDERS[name](root)
    target = damage(case.files)
    with alarm():
        try:
            records = case.read()
        except SCLBenchError as err:
            assert target.name in str(err), f"the message does not name {target.name}: {err}"
            return
    assert isinstance(records, list)


# ---- byte-level damage: every file type ----------------------------------------------------------
@BUDGET
@given(name=st.sampled_from(NAMES), which=st.integers(0, 10), cut=st.floats(0, 1, exclude_max=True))
def test_truncated_files(tmp_path, name, which, cut):
    def damage(files):
        path = files[which % len(files)]
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * cut)])
        return path

    read_damaged(name, tmp_path, damage)


@BUDGET
@given(
    name=st.sampled_from(NAMES),
    which=st.integers(0, 10),
    where=st.floats(0, 1, exclude_max=True),
    flip=st.integers(1, 255),
    count=st.integers(1, 4),
)
def test_byte_flips(tmp_path, name, which, where, flip, count):
    def damage(files):
        path = files[which % len(files)]
        data = bytearray(path.read_bytes())
        for k in range(count):  # a short burst of flipped bytes, as a bad sector or a bad copy
            pos = (int(len(data) * where) + 7 * k) % len(data)
            data[pos] ^= flip
        path.write_bytes(bytes(data))
        return path

    read_damaged(name, tmp_path, damage)


# ---- structural damage of JSON files -------------------------------------------------------------
def _slots(obj, path=()):
    """Every (container path, key) of a JSON document."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        yield path, key
        yield from _slots(value, path + (key,))


def _at(doc, path):
    for key in path:
        doc = doc[key]
    return doc


WRONG = st.sampled_from([None, 7, -1, 2.5, True, "", "x", [], {}, [1, 2], {"a": 1}])
JSON_CASES = [
    n
    for n in NAMES
    if n in ("karpathy_f30k", "karpathy_coco", "msrvtt_json", "msrvtt_csv", "vg", "sbu", "coco_captions")
]


@BUDGET
@given(
    name=st.sampled_from(JSON_CASES),
    which=st.integers(0, 10),
    slot=st.integers(0, 10_000),
    op=st.sampled_from(["delete", "retype", "duplicate"]),
    wrong=WRONG,
)
def test_json_fields_deleted_retyped_duplicated(tmp_path, name, which, slot, op, wrong):
    def damage(files):
        jsons = [f for f in files if f.suffix == ".json"]
        path = jsons[which % len(jsons)]
        doc = json.loads(path.read_text())
        slots = list(_slots(doc))
        where, key = slots[slot % len(slots)]
        parent = _at(doc, where)
        if op == "delete":
            del parent[key]
        elif op == "retype":
            parent[key] = wrong
        elif isinstance(parent, list):
            parent.append(parent[key])  # the same entry twice
        else:
            parent[key] = [parent[key], parent[key]]
        path.write_text(json.dumps(doc))
        return path

    read_damaged(name, tmp_path, damage)


# ---- structural damage of line files (CSV/TSV/lists) ---------------------------------------------
LINE_CASES = ["msrvtt_json", "msrvtt_csv", "lsmdc", "cc3m_tsv", "webvid"]


@BUDGET
@given(
    name=st.sampled_from(LINE_CASES),
    which=st.integers(0, 10),
    line=st.integers(0, 100),
    op=st.sampled_from(["drop_field", "empty_field", "duplicate", "delete"]),
    col=st.integers(0, 8),
)
def test_lines_fields_dropped_emptied_duplicated(tmp_path, name, which, line, op, col):
    def damage(files):
        texts = [f for f in files if f.suffix in (".txt", ".csv", ".tsv")]
        path = texts[which % len(texts)]
        lines = path.read_text().splitlines()
        i = line % len(lines)
        sep = "\t" if "\t" in lines[i] else ","
        fields = lines[i].split(sep)
        if op == "drop_field":
            del fields[col % len(fields)]
        elif op == "empty_field":
            fields[col % len(fields)] = ""
        if op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "delete":
            del lines[i]
        else:
            lines[i] = sep.join(fields)
        path.write_text("\n".join(lines) + "\n")
        return path

    read_damaged(name, tmp_path, damage)


# ---- structural damage of arrow tables -----------------------------------------------------------
@BUDGET
@given(
    which=st.integers(0, 2),
    column=st.integers(0, 20),
    row=st.integers(0, 1),
    op=st.sampled_from(["drop_column", "retype_column", "duplicate_row", "shorten_cell"]),
)
def test_arrow_columns_dropped_retyped_rows_duplicated(tmp_path, which, column, row, op):
    def damage(files):
        path = files[which]
        table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        cols = {c: table.column(c).to_pylist() for c in table.column_names}
        name = table.column_names[column % len(cols)]
        if op == "drop_column":
            del cols[name]
        elif op == "retype_column":
            cols[name] = [str(v) if not isinstance(v, str) else 3 for v in cols[name]]
        elif op == "duplicate_row":
            cols = {c: v + [v[row]] for c, v in cols.items()}
        elif isinstance(cols[name][row], list) and cols[name][row]:
            cols[name][row] = cols[name][row][:-1]
        table = pa.table(cols)
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        return path

    read_damaged("arrow", tmp_path, damage)


@pytest.mark.parametrize("name", NAMES)
def test_undamaged_layouts_read(tmp_path, name):
    """The baseline of the properties above: each valid tiny layout reads to records."""
    assert BUILDERS[name](tmp_path).read()
