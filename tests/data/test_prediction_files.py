"""The strict readers of prediction files (`sclbench score`): valid files read exactly, every class of
damage is one DataError naming the file, never a numpy / json / csv / zipfile exception."""

from __future__ import annotations

import io
import json
import math
import pickle
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sclbench.data.formats.predictions import (
    read_evalai_answers,
    read_nlvr2_csv,
    read_ranked_lists,
    read_score_npz,
)
from sclbench.errors import DataError

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
BOMS = [b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]  # UTF-8, UTF-16-LE, UTF-16-BE
JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=4),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)  # fmt: skip


def _refused(reader, path, *args, contains: str | None = None) -> str:
    with pytest.raises(DataError) as info:
        reader(path, *args)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    if contains:
        assert contains in message, message
    return message


def _encode(text: str, bom: bytes | None) -> bytes:
    if bom is None:
        return text.encode("utf-8")
    codec = {b"\xef\xbb\xbf": "utf-8", b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}[bom]
    return bom + text.encode(codec)


# ---- VQA EvalAI results ---------------------------------------------------------------------------------
def test_evalai_file_reads_in_order_with_or_without_a_byte_order_mark(tmp_path):
    entries = [{"question_id": 7, "answer": "yes"}, {"question_id": 3, "answer": "2", "extra": 1}]
    for bom in [None, *BOMS]:
        path = tmp_path / "a.json"
        path.write_bytes(_encode(json.dumps(entries), bom))
        assert list(read_evalai_answers(path).items()) == [(7, "yes"), (3, "2")]


@pytest.mark.parametrize(
    "doc, says",
    [
        ({"question_id": 1, "answer": "x"}, "JSON list"),
        ([], "empty list"),
        ([[1, "x"]], "expected an object"),
        ([{"question_id": 1}], "'answer'"),
        ([{"answer": "x"}], "'question_id'"),
        ([{"question_id": "1", "answer": "x"}], "integer"),
        ([{"question_id": 1.0, "answer": "x"}], "integer"),
        ([{"question_id": True, "answer": "x"}], "integer"),
        ([{"question_id": 1, "answer": 1}], "string"),
        ([{"question_id": 1, "answer": None}], "string"),
        ([{"question_id": 1, "answer": "a"}, {"question_id": 2, "answer": "b"}, {"question_id": 1, "answer": "a"}],
         "more than once"),
    ],
)  # fmt: skip
def test_evalai_file_shapes_and_types_are_refused(tmp_path, doc, says):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    _refused(read_evalai_answers, path, contains=says)


@pytest.mark.parametrize("text", ["", "  \n", "[{", '[{"question_id": 1, "answer": NaN}]', "[1,]", "\x00"])
def test_evalai_file_empty_or_malformed_is_refused(tmp_path, text):
    path = tmp_path / "a.json"
    path.write_text(text)
    _refused(read_evalai_answers, path)


@SETTINGS
@given(key=st.sampled_from(["question_id", "answer"]), value=JSON_VALUES)
def test_evalai_any_wrong_type_is_one_error(tmp_path, key, value):
    entry = {"question_id": 5, "answer": "no", key: value}
    path = tmp_path / "a.json"
    path.write_text(json.dumps([entry]))
    ok = (key == "question_id" and type(value) is int) or (key == "answer" and isinstance(value, str))
    if ok:
        assert read_evalai_answers(path) == {entry["question_id"]: entry["answer"]}
    else:
        _refused(read_evalai_answers, path)


# ---- NLVR2 CSV ----------------------------------------------------------------------------------------
def test_nlvr2_csv_reads_the_official_format(tmp_path):
    path = tmp_path / "p.csv"
    for text in ["dev-1-0-0,True\ndev-1-1-0,false\n", "dev-1-0-0,TRUE\r\ndev-1-1-0,False", "identifier,prediction\n"
                 "dev-1-0-0,true\n\ndev-1-1-0,False\n"]:  # fmt: skip
        for bom in [None, BOMS[0]]:
            path.write_bytes(_encode(text, bom))
            assert read_nlvr2_csv(path) == {"dev-1-0-0": True, "dev-1-1-0": False}


@pytest.mark.parametrize(
    "text, says",
    [
        ("dev-1-0-0,1\n", "not True or False"),
        ("dev-1-0-0,yes\n", "not True or False"),
        ("dev-1-0-0,Truee\n", "not True or False"),
        ("dev-1-0-0, True\n", "spaces"),
        ("dev-1-0-0 ,True\n", "spaces"),
        ("dev-1-0-0,True,0.9\n", "2 columns"),
        ("dev-1-0-0\n", "2 columns"),
        (",True\n", "empty"),
        ("dev-1-0-0,True\ndev-1-0-0,False\n", "twice"),
        ('dev-1-0-0,"True\n', "malformed CSV"),
        ("identifier,prediction\n", "no prediction rows"),
        ("\n\n", "empty"),
        ("", "empty"),
    ],
)
def test_nlvr2_csv_damage_is_refused(tmp_path, text, says):
    path = tmp_path / "p.csv"
    path.write_text(text)
    _refused(read_nlvr2_csv, path, contains=says)


@SETTINGS
@given(value=st.text(max_size=8))
def test_nlvr2_csv_any_prediction_text_is_read_or_refused(tmp_path, value):
    path = tmp_path / "p.csv"
    path.write_text(f"dev-1-0-0,{value}\n", encoding="utf-8", newline="")
    try:
        got = read_nlvr2_csv(path)
    except DataError as err:
        assert str(path) in str(err)
    else:  # only the two booleans, in any letter case, get through
        assert value.lower() in ("true", "false") and got == {"dev-1-0-0": value.lower() == "true"}


# ---- retrieval score files ---------------------------------------------------------------------------
def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _valid(n_media=3, n_texts=6, dtype=np.float32):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(n_media, n_texts)).astype(dtype)
    return {"i2t": scores, "t2i": scores.copy(), "media_ids": np.array([f"m{i}.jpg" for i in range(n_media)])}


def test_score_npz_reads_plain_and_compressed_archives(tmp_path):
    arrays = _valid()
    arrays["i2t"][0, 1] = -np.inf  # not a candidate: allowed
    for save in (np.savez, np.savez_compressed):
        path = tmp_path / "s.npz"
        save(path, **arrays)
        got = read_score_npz(path, 3, 6)
        assert np.array_equal(got.i2t, arrays["i2t"]) and np.array_equal(got.t2i, arrays["t2i"])
        assert got.media_ids == ["m0.jpg", "m1.jpg", "m2.jpg"]
    for dtype in (np.float16, np.float64):  # other float widths are read as they are
        assert read_score_npz(_npz(tmp_path / "w.npz", **_valid(dtype=dtype)), 3, 6).i2t.dtype == dtype


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda a: a.pop("t2i"), "missing"),
        (lambda a: a.update(extra=np.zeros(2)), "exactly"),
        (lambda a: a.update(i2t=a["i2t"].T.copy()), "transpose"),
        (lambda a: a.update(t2i=a["t2i"][:, :5].copy()), "shape"),
        (lambda a: a.update(i2t=a["i2t"][None]), "shape"),
        (lambda a: a.update(media_ids=a["media_ids"][:2]), "shape"),
        (lambda a: a.update(i2t=np.ones((3, 6), dtype=np.int64)), "floating-point"),
        (lambda a: a.update(media_ids=np.arange(3)), "unicode"),
        (lambda a: a.update(media_ids=np.array([b"a", b"b", b"c"])), "unicode"),
        (lambda a: a["i2t"].__setitem__((1, 2), np.nan), "NaN"),
        (lambda a: a["t2i"].__setitem__((2, 0), np.inf), "+inf"),
    ],
)
def test_score_npz_wrong_arrays_are_refused(tmp_path, change, says):
    arrays = _valid()
    change(arrays)
    path = _npz(tmp_path / "s.npz", **arrays)
    _refused(read_score_npz, path, 3, 6, contains=says)


class _Boom:
    def __reduce__(self):  # what a malicious pickle would do on load
        return (exec, ("raise SystemExit('pickle executed')",))


def test_score_npz_never_unpickles(tmp_path):
    arrays = _valid()
    arrays["media_ids"] = np.array([_Boom(), "b", "c"], dtype=object)
    path = _npz(tmp_path / "s.npz", **arrays)
    _refused(read_score_npz, path, 3, 6, contains="allow_pickle=False")
    # a pickle saved under an .npy name inside the archive, and a bare pickle as the whole file
    with zipfile.ZipFile(tmp_path / "p.npz", "w") as zf:
        for name in ("i2t", "t2i", "media_ids"):
            zf.writestr(f"{name}.npy", pickle.dumps(_Boom()))
    _refused(read_score_npz, tmp_path / "p.npz", 3, 6)
    (tmp_path / "b.npz").write_bytes(pickle.dumps(_Boom()))
    _refused(read_score_npz, tmp_path / "b.npz", 3, 6, contains="not an .npz")


def test_score_npz_non_archives_and_cut_archives_are_refused(tmp_path):
    good = _npz(tmp_path / "good.npz", **_valid()).read_bytes()
    buffer = io.BytesIO()
    np.save(buffer, _valid()["i2t"])
    cases = {
        "empty": b"",
        "text": b"i2t,t2i\n1,2\n",
        "npy": buffer.getvalue(),  # a single array, not an archive
        "cut": good[: len(good) // 2],
        "tail": good[:-30],
    }
    for name, data in cases.items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(data)
        _refused(read_score_npz, path, 3, 6)


@SETTINGS
@given(data=st.data())
def test_score_npz_any_byte_damage_is_read_or_refused(tmp_path, data):
    good = bytearray(_npz(tmp_path / "good.npz", **_valid()).read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        good[data.draw(st.integers(0, len(good) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path / "bad.npz"
    path.write_bytes(bytes(good))
    try:
        got = read_score_npz(path, 3, 6)
    except DataError as err:
        assert str(path) in str(err)
    else:  # damage in places numpy does not read (zip comments, padding): still well-formed arrays
        assert got.i2t.shape == (3, 6) and not np.isnan(got.i2t).any() and len(got.media_ids) == 3
        assert all(math.isfinite(v) or v == -math.inf for v in got.t2i.ravel().tolist())


# ---- retrieval ranked lists ---------------------------------------------------------------------------
def test_ranked_lists_read(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"i2t": {"a.jpg": [2, 0], "b.jpg": [1]}, "t2i": {"0": ["a.jpg"], "10": ["b.jpg"]}}))
    got = read_ranked_lists(path)
    assert got.i2t == {"a.jpg": [2, 0], "b.jpg": [1]} and got.t2i == {0: ["a.jpg"], 10: ["b.jpg"]}


@pytest.mark.parametrize(
    "doc, says",
    [
        ([], "exactly the keys"),
        ({"i2t": {"a": [0]}}, "exactly the keys"),
        ({"i2t": {"a": [0]}, "t2i": {"0": ["a"]}, "extra": {}}, "exactly the keys"),
        ({"i2t": {}, "t2i": {"0": ["a"]}}, "non-empty"),
        ({"i2t": [[0]], "t2i": {"0": ["a"]}}, "non-empty"),
        ({"i2t": {"a": []}, "t2i": {"0": ["a"]}}, "non-empty list"),
        ({"i2t": {"a": [0, 0]}, "t2i": {"0": ["a"]}}, "more than once"),
        ({"i2t": {"a": ["0"]}, "t2i": {"0": ["a"]}}, "integers"),
        ({"i2t": {"a": [True]}, "t2i": {"0": ["a"]}}, "integers"),
        ({"i2t": {"a": [0.0]}, "t2i": {"0": ["a"]}}, "integers"),
        ({"i2t": {"a": [0]}, "t2i": {"0": [1]}}, "strings"),
        ({"i2t": {"a": [0]}, "t2i": {"00": ["a"]}}, "caption index"),
        ({"i2t": {"a": [0]}, "t2i": {"-1": ["a"]}}, "caption index"),
        ({"i2t": {"a": [0]}, "t2i": {"x": ["a"]}}, "caption index"),
    ],
)
def test_ranked_lists_wrong_shapes_are_refused(tmp_path, doc, says):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    _refused(read_ranked_lists, path, contains=says)


def test_ranked_lists_repeated_key_is_refused(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"i2t": {"a": [0], "a": [1]}, "t2i": {"0": ["a"]}}')
    _refused(read_ranked_lists, path, contains="twice")
