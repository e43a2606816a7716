"""The one safe loader: every crafted payload refused (file and global named, nothing run), every form
of legitimate data read exactly (plain containers, numpy arrays and scalars, pandas Series of ints with
numpy, object and arrow string indexes, pickle protocols 0-5)."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from pickle_payloads import PAYLOADS, state_dict_with

from sclbench.common.safe_pickle import load_plain, load_torch
from sclbench.engine.checkpointing import load_checkpoint
from sclbench.errors import CheckpointError, DataError
from sclbench.model.readers import read_checkpoint
from sclbench.tasks.retrieval_cache import load_tensors

pd = pytest.importorskip("pandas")


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_each_payload_is_live_when_unpickled_without_restriction(tmp_path, name):
    """The payloads really run code (so the refusals below are meaningful): plain pickle.loads in a child."""
    marker = tmp_path / "ran"
    data = pickle.dumps({"a": PAYLOADS[name](marker)})
    subprocess.run(
        [sys.executable, "-c", "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"],
        input=data,
        check=False,
        capture_output=True,
        timeout=60,
    )
    assert marker.exists(), name


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_plain_pickle_payloads_are_refused_naming_file_and_global(tmp_path, name, protocol):
    marker, path = tmp_path / "ran", tmp_path / "index.pkl"
    path.write_bytes(pickle.dumps({"video1": 0, "x": PAYLOADS[name](marker)}, protocol=protocol))
    with pytest.raises(DataError, match=r"index\.pkl: refused global [a-z_][\w]*\.[\w.]+") as info:
        load_plain(path, "caption index")
    assert "\n" not in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_torch_file_payloads_are_refused_by_every_torch_reader(tmp_path, name, legacy):
    """Checkpoints (--ckpt), training checkpoints (resume) and retrieval caches: zip and legacy format."""
    marker, path = tmp_path / "ran", tmp_path / "file.pt"
    obj = state_dict_with(PAYLOADS[name](marker))
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    named = r"file\.pt safely: .*global [a-z_][\w]*\.[\w.]+"  # module.name, never torch's word 'GLOBAL'
    with pytest.raises(CheckpointError, match=named + r".*--trust-pickle"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"training checkpoint .*" + named + r".*--trust-pickle"):
        load_checkpoint(path)
    with pytest.raises(DataError, match=r"retrieval cache file .*" + named + r".*delete it"):
        load_tensors(path)
    assert not marker.exists()


def test_trust_pickle_is_the_one_way_to_load_such_a_file(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "file.pt"
    torch.save(state_dict_with(PAYLOADS["os.system"](marker)), path)
    with pytest.raises(CheckpointError):
        load_torch(path, "checkpoint")
    assert not marker.exists()
    load_torch(path, "checkpoint", trust=True)
    assert marker.exists()  # the user's explicit choice, for a file they trust


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize(
    "case",
    [
        "dict",
        "dict-numpy-ints",
        "series-object-index",
        "series-str-index",
        "series-int32",
        "series-range-index",
        "series-uint8",
        "list",
        "nested",
    ],
)
def test_plain_data_reads_exactly(tmp_path, case, protocol):
    ids = [f"video{i}" for i in range(7000, 7012)]
    values = list(range(12))
    obj, expected = {
        "dict": ({k: v for k, v in zip(ids, values)}, dict(zip(ids, values))),
        "dict-numpy-ints": ({k: np.int64(v) for k, v in zip(ids, values)}, dict(zip(ids, values))),
        "series-object-index": (pd.Series(values, index=pd.Index(ids, dtype=object)), dict(zip(ids, values))),
        "series-str-index": (pd.Series(values, index=ids), dict(zip(ids, values))),
        "series-int32": (pd.Series(np.array(values, dtype=">i4"), index=ids), dict(zip(ids, values))),
        "series-range-index": (pd.Series(values), dict(enumerate(values))),
        "series-uint8": (pd.Series(np.array(values, dtype=np.uint8), index=ids), dict(zip(ids, values))),
        "list": (ids, ids),
        "nested": (
            {"a": (1, 2.5, None, True), "b": [b"x", {"c": -3}], "d": np.arange(6).reshape(2, 3)},
            {"a": (1, 2.5, None, True), "b": [b"x", {"c": -3}], "d": [[0, 1, 2], [3, 4, 5]]},
        ),
    }[case]
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    got = load_plain(path, "caption index")
    assert got == expected and type(got) is type(expected)
    assert all(
        type(v) is type(e)
        for v, e in zip(
            list(got.values()) if isinstance(got, dict) else got,
            list(expected.values()) if isinstance(expected, dict) else expected,
        )
    )


@pytest.mark.parametrize(
    "obj,refused",
    [
        (np.array(["a", "b"]), "dtype"),  # unicode arrays: not a plain dtype
        (np.array([1 + 2j]), "dtype"),
        (np.zeros(2, dtype=[("a", "i4")]), "dtype"),  # structured dtype
        (pd.Timestamp("2020-01-01"), "global"),
        (pd.DataFrame({"a": [1]}), "global"),
        (io.BytesIO(b"x"), "global"),
    ],
)
def test_data_outside_the_allowlist_is_refused(tmp_path, obj, refused):
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(DataError, match=rf"data\.pkl: refused .*{refused}"):
        load_plain(path, "caption index")


@pytest.mark.parametrize("cut", [1, 5, 20, -1])
def test_damaged_plain_pickles_name_the_file(tmp_path, cut):
    path = tmp_path / "data.pkl"
    data = pickle.dumps(pd.Series([1, 2], index=["a", "b"]), protocol=4)
    path.write_bytes(data[:cut])
    with pytest.raises(DataError, match=r"data\.pkl"):
        load_plain(path, "caption index")


def test_resume_state_is_read_by_the_safe_loader_and_restores_rng_exactly(tmp_path):
    """RNG states (python, numpy incl. a cached gaussian, torch) survive the safe round trip bit for bit."""
    import random

    from sclbench.common.io import atomic_write
    from sclbench.engine.checkpointing import rng_state, set_rng_state

    random.seed(5)
    np.random.seed(5)
    np.random.standard_normal()  # leaves a cached gaussian in the legacy generator state
    torch.manual_seed(5)
    path = tmp_path / "state.pt"
    atomic_write(path, lambda fh: torch.save({"rng": [rng_state()]}, fh))
    expected = (
        random.random(),
        np.random.standard_normal(3).tolist(),
        np.random.randint(0, 1 << 30, 4).tolist(),
        torch.rand(3).tolist(),
    )
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    set_rng_state(load_torch(path, "training checkpoint")["rng"][0])
    assert (
        random.random(),
        np.random.standard_normal(3).tolist(),
        np.random.randint(0, 1 << 30, 4).tolist(),
        torch.rand(3).tolist(),
    ) == expected


def test_a_python2_pickle_of_a_numpy_array_reads_exactly(tmp_path):
    """Python 2 wrote numpy's raw bytes as a byte string (SHORT_BINSTRING), module names as
    numpy.core; the bytes are read back exactly, non-ASCII ones included."""
    raw = np.array([3, 200, -7], dtype="<i8").tobytes()

    def short(b):
        return b"U" + bytes([len(b)]) + b

    data = (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
        + short(b"b")
        + b"\x87R"
        + b"(K\x01K\x03\x85cnumpy\ndtype\n"
        + short(b"i8")
        + b"K\x00K\x01\x87R(K\x03"
        + short(b"<")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89"
        + short(raw)
        + b"tb."
    )
    path = tmp_path / "py2.pkl"
    path.write_bytes(data)
    assert load_plain(path, "caption index") == [3, 200, -7]


def test_a_resume_checkpoint_of_an_older_sclbench_needs_trust_pickle_and_then_restores(tmp_path):
    """Older checkpoints held numpy's generator state as a numpy tuple: refused by name, then read with
    --trust-pickle (the user's own run folder), and its RNG state restored."""
    import random

    from sclbench.engine.checkpointing import set_rng_state

    np.random.seed(11)
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    expected = np.random.randint(0, 1 << 30, 5).tolist()
    path = tmp_path / "step-00000002.pt"
    torch.save({"rng": [state]}, path)
    with pytest.raises(CheckpointError, match=r"step-00000002\.pt safely: .*numpy.*--trust-pickle"):
        load_checkpoint(path)
    np.random.seed(0)
    set_rng_state(load_checkpoint(path, trust_pickle=True)["rng"][0])
    assert np.random.randint(0, 1 << 30, 5).tolist() == expected


@pytest.mark.parametrize("damage", ["garbage", "pickle-garbage", "cut-zip", "cut-legacy", "cut-legacy-head"])
def test_damaged_torch_files_are_a_cache_miss_and_one_line_checkpoint_errors(tmp_path, damage):
    """Damage is not a refusal: a cache entry is recomputed, a checkpoint is named as damaged in one line."""
    rng = np.random.default_rng(0)
    torch.save({"scores": torch.zeros(100)}, tmp_path / "zip.pt")
    torch.save({"scores": torch.zeros(100)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    zipped, legacy = (tmp_path / "zip.pt").read_bytes(), (tmp_path / "legacy.pt").read_bytes()
    data = {
        "garbage": rng.bytes(500),
        "pickle-garbage": b"\x80\x02" + rng.bytes(500),
        "cut-zip": zipped[: len(zipped) // 2],
        "cut-legacy": legacy[: len(legacy) // 2],
        "cut-legacy-head": legacy[:60],
    }[damage]
    path = tmp_path / "damaged.pt"
    path.write_bytes(data)
    assert load_tensors(path) is None
    for read in (read_checkpoint, load_checkpoint):
        with pytest.raises(CheckpointError, match=r"damaged\.pt") as info:
            read(path)
        assert "\n" not in str(info.value) and len(str(info.value)) < 400, str(info.value)
