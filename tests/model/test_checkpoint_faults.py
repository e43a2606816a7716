"""Damaged and foreign checkpoints: each defect is one CheckpointError naming the file (issue 12).

Files in every format sclbench reads (official-style torch zip `.ckpt`, legacy pickle `.pt`,
`.safetensors`, an sclbench directory), each with exactly one defect; then hypothesis truncations and
byte flips of tiny valid files, which must load or raise only sclbench's own errors.
"""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sclbench.errors import CheckpointError, SCLBenchError
from sclbench.model import SCLConfig, SCLModel
from sclbench.model.checkpoint import (
    WEIGHTS_NAME,
    extract_state_dict,
    load_into,
    read_checkpoint,
    save_pretrained,
    to_official_state_dict,
)
from sclbench.model.factory import load_pretrained


def tiny(task="pretrain", **kw):
    torch.manual_seed(0)
    return SCLModel(SCLConfig.tiny(task, **kw))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One valid tiny checkpoint per format, small enough for hypothesis to mutate quickly."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("ckpts")
    model = tiny()
    sd = to_official_state_dict(model)
    small = {k: v for k, v in sd.items() if k.startswith(("cross_modal_text_transform", "cl_temp", "itm_score"))}
    torch.save({"state_dict": small, "epoch": 1}, root / "zip.ckpt")
    torch.save({"state_dict": small}, root / "legacy.pt", _use_new_zipfile_serialization=False)
    save_file({k: v.contiguous() for k, v in small.items()}, str(root / "small.safetensors"))
    save_pretrained(model, root / "dir")
    return {"model": model, "sd": sd, "root": root}


def test_truncated_safetensors_names_the_file(files, tmp_path):
    data = (files["root"] / "dir" / WEIGHTS_NAME).read_bytes()
    for cut in (4, 100, len(data) // 2, len(data) - 1):
        path = tmp_path / "model.safetensors"
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=r"model\.safetensors.*(truncated|not a)"):
            read_checkpoint(path)


def test_truncated_safetensors_in_an_sclbench_directory(files, tmp_path):
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(files["root"] / "dir", folder)
    weights = folder / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match=rf"{weights}.*truncated"):
        load_pretrained(folder)


def test_checkpoint_of_another_preset_names_key_file_and_request(files):
    path = files["root"] / "tiny.ckpt"
    torch.save({"state_dict": files["sd"]}, path)
    sd = extract_state_dict(read_checkpoint(path), str(path))
    with torch.device("meta"):
        base = SCLModel(SCLConfig.base("pretrain"))
    with pytest.raises(CheckpointError) as err:
        load_into(base, sd, str(path))
    msg = str(err.value)
    assert str(path) in msg and "shape mismatch" in msg
    assert "text_transformer.embeddings.word_embeddings.weight: file [1000, 64] vs model [50265, 768]" in msg
    assert "holds tiny-size model (hidden 64" in msg and "asked for the base pretrain model (hidden 768" in msg


def test_checkpoint_of_another_task_names_the_head():
    vqa = tiny("vqa")
    sd = vqa.state_dict()
    other = tiny("vqa", num_answers=7)
    with pytest.raises(CheckpointError) as err:
        load_into(other, sd, "vqa-32.ckpt")
    msg = str(err.value)
    assert "vqa_classifier.3.weight: file [32, 128] vs model [7, 128]" in msg
    assert "heads vqa (32 answers)" in msg and "heads vqa (7 answers)" in msg


def test_directory_whose_weights_do_not_match_its_config(files, tmp_path):
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(files["root"] / "dir", folder)
    save_pretrained(
        tiny("pretrain", hidden_size=32, vision_width=32, cross_intermediate_size=64, text_intermediate_size=64),
        tmp_path / "other",
    )
    shutil.copy(tmp_path / "other" / WEIGHTS_NAME, folder / WEIGHTS_NAME)
    with pytest.raises(CheckpointError, match=r"does not match .*config\.json.*hidden 32.*hidden 64"):
        load_pretrained(folder)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_or_inf_weights_are_refused_at_load_with_the_tensor_named(files, tmp_path, bad):
    sd = {k: v.clone() for k, v in files["sd"].items()}
    sd["cross_modal_image_layers.0.output.dense.weight"][3, 5] = bad
    path = tmp_path / "diverged.ckpt"
    torch.save({"state_dict": sd}, path)
    with pytest.raises(
        CheckpointError,
        match=r"diverged\.ckpt: tensor cross_modal_image_layers\.0\.output\.dense"
        r"\.weight holds 1 NaN/Inf",
    ):
        load_into(tiny(), extract_state_dict(read_checkpoint(path), str(path)), str(path))
    # the same in an sclbench directory
    model = tiny()
    with torch.no_grad():
        model.cl_temp.fill_(bad)
    save_pretrained(model, tmp_path / "nan-dir")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensor cl_temp holds 1 NaN/Inf"):
        load_pretrained(tmp_path / "nan-dir")


@pytest.mark.parametrize(
    "content",
    [
        b"hello, I am a text file\n",
        b'{"state_dict": {}}',
        b"\x89PNG\r\n\x1a\n" + b"0" * 64,
        b"",
        b"PK\x03\x04" + b"\x00" * 40,
    ],
)
def test_a_file_that_is_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "model.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"model\.ckpt"):
        read_checkpoint(path)


def test_not_a_checkpoint_message_and_directory(tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_text("these are not weights")
    with pytest.raises(CheckpointError, match="is not a checkpoint: it is neither a PyTorch file"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="is a directory"):
        read_checkpoint(tmp_path)
    torch.save({"state_dict": [1, 2, 3]}, tmp_path / "list.ckpt")
    with pytest.raises(CheckpointError, match="holds no state dict"):
        extract_state_dict(read_checkpoint(tmp_path / "list.ckpt"), "list.ckpt")


# ---- property-based: truncations and byte flips never escape as foreign exceptions ------------------
FORMATS = ["zip.ckpt", "legacy.pt", "small.safetensors"]


def _read_any(path):
    obj = read_checkpoint(path)
    sd = extract_state_dict(obj, str(path))
    assert all(isinstance(v, torch.Tensor) for v in sd.values())


def _mutated(files, tmp_path, name, data):
    path = tmp_path / f"m-{name}"
    path.write_bytes(data)
    return path


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(FORMATS), frac=st.floats(0.0, 0.999))
def test_truncations_raise_only_checkpoint_errors_naming_the_file(files, tmp_path, name, frac):
    data = (files["root"] / name).read_bytes()
    path = _mutated(files, tmp_path, name, data[: int(len(data) * frac)])
    with pytest.raises(SCLBenchError) as err:
        _read_any(path)
    assert str(path) in str(err.value)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(FORMATS),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=4),
)
def test_byte_flips_load_or_raise_only_checkpoint_errors_naming_the_file(files, tmp_path, name, flips):
    data = bytearray((files["root"] / name).read_bytes())
    for where, xor in flips:
        data[int(where * len(data))] ^= xor
    path = _mutated(files, tmp_path, name, bytes(data))
    try:
        _read_any(path)  # a flip inside tensor data can leave a readable file: that is fine
    except SCLBenchError as err:
        assert str(path) in str(err)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=3),
    cut=st.one_of(st.none(), st.floats(0.0, 0.999)),
)
def test_damaged_weights_of_an_sclbench_directory(files, tmp_path, flips, cut):
    import shutil

    folder = tmp_path / "dir"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(files["root"] / "dir", folder)
    weights = folder / WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    for where, xor in flips:
        data[int(where * len(data))] ^= xor
    if cut is not None:
        data = data[: int(len(data) * cut)]
    weights.write_bytes(bytes(data))
    try:
        load_pretrained(folder)
    except SCLBenchError as err:
        assert str(folder) in str(err)


def test_evaluating_with_a_checkpoint_of_another_task_is_refused():
    f30k = tiny("f30k").state_dict()
    with pytest.raises(
        CheckpointError, match=r"f30k\.ckpt has no trained vqa head \(the file holds .*heads itm, con, rank"
    ):
        load_into(tiny("vqa"), f30k, "f30k.ckpt", require_heads=("vqa",))
    report = load_into(tiny("vqa"), f30k, "f30k.ckpt")  # fine-tuning: the new head starts fresh
    assert any(k.startswith("vqa_classifier.") for k in report.missing)
    load_into(tiny("vqa"), tiny("vqa").state_dict(), "vqa.ckpt", require_heads=("vqa",))


def _pickled_with_fake_module(path, build):
    """torch.save objects of classes from a module that does not exist when the file is read."""
    import sys
    import types

    mod = types.ModuleType("fake_cfg_lib")
    sys.modules["fake_cfg_lib"] = mod
    try:
        torch.save(build(mod), path)
    finally:
        del sys.modules["fake_cfg_lib"]


def test_config_containers_are_read_as_plain_lists_and_dicts(tmp_path):
    def build(mod):
        class ReadOnlyList(list):
            pass

        class AttributeDict(dict):
            pass

        for cls in (ReadOnlyList, AttributeDict):
            cls.__module__, cls.__qualname__ = "fake_cfg_lib", cls.__name__
            setattr(mod, cls.__name__, cls)
        return {
            "state_dict": {"a": torch.zeros(1)},
            "hyper_parameters": AttributeDict(config={"datasets": ReadOnlyList(["coco", "vg"])}),
        }

    _pickled_with_fake_module(tmp_path / "cfg.ckpt", build)
    obj = read_checkpoint(tmp_path / "cfg.ckpt")
    assert obj["hyper_parameters"]["config"]["datasets"] == ["coco", "vg"]


def test_objects_the_safe_reader_cannot_rebuild_point_to_trust_pickle(tmp_path):
    import datetime

    # Callback-like instances are rebuilt as inert placeholders; an object pickled through a
    # constructor call (datetime's reduce) cannot be, and the message offers the trusted conversion.
    torch.save({"state_dict": {"a": torch.zeros(1)}, "saved_at": datetime.datetime(2022, 3, 1)}, tmp_path / "cb.ckpt")
    with pytest.raises(CheckpointError, match=r"cb\.ckpt safely: .*--trust-pickle"):
        read_checkpoint(tmp_path / "cb.ckpt")
