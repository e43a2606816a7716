"""Records, predictions and logs are read exactly (common/textfile): bytes that are not UTF-8, an empty or
malformed file and an object repeating a key are one DataError naming the file (and line), never a
UnicodeDecodeError; a UTF-8 byte-order mark is removed; a NaN metric is read (the check fails it)."""

from __future__ import annotations

import codecs
import json
import math

import pytest

from sclbench.cli import main
from sclbench.common.io import read_jsonl
from sclbench.errors import DataError
from sclbench.results import ResultRecord, collect
from sclbench.results.record import load


def saved(tmp_path, metrics=None):
    rec = ResultRecord("f30k", "test", metrics or {"tr_r1": 50.0}, "recall-gt_last", checkpoint={"name": "ck"})
    return rec.save(tmp_path / "results", predictions=[{"id": "a", "scores": {"tr_r1": 0.5}}])


# damage(record text) -> bytes, and what the message says besides the file's path
DAMAGE = {
    "utf-16 without mark": (lambda t: t.encode("utf-16-le"), "malformed JSON"),  # NULs are valid UTF-8
    "utf-16 cut short": (lambda t: t.encode("utf-16")[:-1], "bytes that are not UTF-16"),
    "latin-1": (lambda t: t.replace("recall", "récall").encode("latin-1"), "not UTF-8"),
    "random bytes": (lambda t: bytes(range(128, 256)) * 4, "not UTF-8"),
    "empty": (lambda t: b"", "is empty"),
    "cut short": (lambda t: t.encode()[: len(t) // 2], "malformed JSON"),
    "repeated key": (
        lambda t: t.replace('"split": "test"', '"split": "test", "split": "val"').encode(),
        "key 'split' occurs twice",
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_record_is_one_error_naming_it(tmp_path, damage):
    path = saved(tmp_path)
    make, words = DAMAGE[damage]
    path.write_bytes(make(path.read_text(encoding="utf-8")))
    for read in (load, lambda p: collect(p.parent.parent)):
        with pytest.raises(DataError) as err:
            read(path)
        message = str(err.value)
        assert str(path) in message and words in message and "\n" not in message, message


@pytest.mark.parametrize("verb", [["table"], ["check", "--baseline"]])
def test_the_cli_prints_one_line(tmp_path, capsys, verb):
    path = saved(tmp_path)
    path.write_bytes(bytes(range(128, 256)))
    argv = [verb[0], str(path.parent.parent)] + ([verb[1], str(path.parent.parent)] if len(verb) > 1 else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(path) in err and err.count("\n") == 1, err


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
def test_a_marked_encoding_is_read_and_nan_is_kept(tmp_path, encoding):
    """A byte-order mark says the encoding (a record saved again by an editor): read, the mark removed."""
    path = saved(tmp_path, {"tr_r1": float("nan"), "tr_r5": 80.0})
    assert "NaN" in path.read_text()  # json.dumps writes it; the reader must take it back
    path.write_bytes(path.read_text().encode(encoding))
    record = load(path)
    assert math.isnan(record.metrics["tr_r1"]) and record.metrics["tr_r5"] == 80.0
    assert [r.source for r in collect(tmp_path / "results")] == [path]


PREDICTION_DAMAGE = {
    "utf-16 cut short": ('{"id": "a"}\n'.encode("utf-16")[:-1], "line 1", "not UTF-16"),
    "latin-1 on line 2": (b'{"id": "a"}\n{"id": "\xe9"}\n', "line 2", "not UTF-8"),
    "repeated key": (b'{"id": "a"}\n{"id": "b", "id": "c"}\n', "line 2", "occurs twice"),
    "malformed": (b'{"id": "a"}\n\n{"id": \n', "line 3", "malformed JSON"),
    "not an object": (b"[1]\n", "line 1", "expected a JSON object"),
}


@pytest.mark.parametrize("damage", sorted(PREDICTION_DAMAGE))
def test_predictions_and_logs_are_read_exactly(tmp_path, damage):
    data, line, words = PREDICTION_DAMAGE[damage]
    path = tmp_path / "x.predictions.jsonl"
    path.write_bytes(data)
    with pytest.raises(DataError) as err:
        list(read_jsonl(path))
    message = str(err.value)
    assert f"{path}, line" in message and line in message and words in message and "\n" not in message, message


def test_jsonl_good_files(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(codecs.BOM_UTF8 + b'{"loss": NaN}\n\n{"loss": 1.5}\r\n')
    rows = list(read_jsonl(path))
    assert [n for n, _ in rows] == [1, 3] and math.isnan(rows[0][1]["loss"]) and rows[1][1] == {"loss": 1.5}
    path.write_bytes(b"")
    assert list(read_jsonl(path)) == []  # a run that logged nothing yet
    assert json.loads(json.dumps(rows[1][1])) == {"loss": 1.5}
