"""A tokenizer folder cut short, emptied, overwritten by another tool or holding the wrong files: one
DataError naming the damaged file (or the folder), never a parser's traceback from inside transformers."""

from __future__ import annotations

import contextlib
import shutil
import signal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sclbench.common.tokenizer import load_tokenizer, train_tokenizer
from sclbench.errors import DataError, SCLBenchError

BUDGET = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CAPTIONS = [
    f"a {c} {a} on a {p}"
    for c in ("red", "blue", "green")
    for a in ("cat", "dog", "bird")
    for p in ("mat", "log", "table")
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok") / "good"
    train_tokenizer(CAPTIONS * 3, folder, vocab_size=300)
    return folder


def copy(saved, tmp_path):
    folder = tmp_path / "tok"
    shutil.copytree(saved, folder)
    return folder


def refused(folder, *words: str) -> str:
    with pytest.raises(DataError) as info:
        load_tokenizer(folder)
    message = str(info.value)
    assert all(w in message for w in words), message
    assert "\n" not in message
    return message


def test_the_saved_folder_loads(saved):
    assert len(load_tokenizer(saved)) > 10


@pytest.mark.parametrize("name", ["tokenizer.json", "tokenizer_config.json"])
@pytest.mark.parametrize("damage", ["empty", "half", "first-100", "last-byte", "binary", "list", "string", "nul"])
def test_a_damaged_json_file_is_named(saved, tmp_path, name, damage):
    folder = copy(saved, tmp_path)
    path = folder / name
    data = path.read_bytes()
    path.write_bytes(
        {
            "empty": b"",
            "half": data[: len(data) // 2],
            "first-100": data[:100],
            "last-byte": data[:-2],
            "binary": b"\x00\xff\xfe" * 50,
            "list": b"[1, 2, 3]",
            "string": b'"tokenizer"',
            "nul": b"\x00" * 64,
        }[damage]
    )
    refused(folder, str(path))


def test_tokenizer_json_without_a_model(saved, tmp_path):
    folder = copy(saved, tmp_path)
    (folder / "tokenizer.json").write_text('{"version": "1.0", "added_tokens": []}')
    refused(folder, str(folder / "tokenizer.json"), "'model'")


def test_a_repeated_key_is_named(saved, tmp_path):
    folder = copy(saved, tmp_path)
    path = folder / "tokenizer_config.json"
    text = path.read_text().rstrip()
    path.write_text(text[:-1].rstrip() + ', "model_max_length": 7, "model_max_length": 9}')
    refused(folder, str(path), "twice")


@pytest.mark.parametrize("files", [{}, {"readme.txt": "hello"}, {"config.json": "{}"}, {"model.safetensors": "x"}])
def test_a_folder_with_the_wrong_files_is_named(tmp_path, files):
    folder = tmp_path / "tok"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    refused(folder, str(folder))


def test_a_file_instead_of_a_folder(saved):
    refused(saved / "tokenizer.json", "is a file", "folder")


@pytest.mark.parametrize("vocab, merges", [("{bad", "#version: 0.2\na b\n"), ('{"a": 0}', None), ("[]", "")])
def test_damaged_vocab_and_merges(tmp_path, vocab, merges):
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "vocab.json").write_text(vocab)
    if merges is not None:
        (folder / "merges.txt").write_text(merges)
    refused(folder, str(folder))


@contextlib.contextmanager
def alarm(seconds: int = 20):
    def hang(*_):
        raise TimeoutError(f"tokenizer still loading after {seconds} s")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@BUDGET
@given(data=st.data())
def test_random_damage_loads_or_names_the_file(saved, tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("fuzz") / "tok"
    shutil.copytree(saved, folder)
    name = data.draw(st.sampled_from(["tokenizer.json", "tokenizer_config.json"]))
    path = folder / name
    raw = bytearray(path.read_bytes())
    cut = data.draw(st.integers(0, len(raw)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, max(len(raw) - 1, 0)), st.integers(0, 255)), max_size=3))
    for at, byte in flips:
        if at < len(raw):
            raw[at] = byte
    path.write_bytes(bytes(raw[:cut]))
    with alarm():
        try:
            load_tokenizer(folder)
        except SCLBenchError as err:
            assert str(folder) in str(err) and "\n" not in str(err)
