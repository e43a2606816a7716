"""Weights of the wrong dtype: integer, bool or complex tensors where float weights belong are refused
naming the tensor (load_state_dict would cast them silently); float weights of another precision
(float16, bfloat16, float64) are legitimate and load, cast to the model's dtype."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from sclbench.errors import CheckpointError
from sclbench.model import SCLConfig, SCLModel
from sclbench.model.checkpoint import WEIGHTS_NAME, load_into, save_pretrained
from sclbench.model.factory import load_pretrained

WRONG = [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool, torch.complex64, torch.complex128]
LEGIT = [torch.float16, torch.bfloat16, torch.float64, torch.float32]
KEYS = [
    "text_transformer.embeddings.word_embeddings.weight",  # an embedding
    "vision_transformer.visual.positional_embedding",  # resized on the way in (adapt_state_dict)
    "cross_modal_text_layers.0.attention.self.query.bias",  # a bias
    "itm_score.fc.weight",
]  # a head


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SCLModel(SCLConfig.tiny("f30k"))


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (t.round() if not dtype.is_floating_point and not dtype.is_complex else t).to(dtype)


@pytest.mark.parametrize("dtype", WRONG, ids=str)
@pytest.mark.parametrize("key", KEYS)
def test_load_into_refuses_non_float_weights_naming_the_tensor(model, key, dtype):
    sd = dict(model.state_dict())
    assert key in sd
    sd[key] = _cast(sd[key], dtype)
    fresh = SCLModel(SCLConfig.tiny("f30k"))
    before = fresh.state_dict()[key].clone()
    with pytest.raises(CheckpointError) as info:
        load_into(fresh, sd, "some.ckpt")
    message = str(info.value)
    assert "some.ckpt" in message and key in message and str(dtype).removeprefix("torch.") in message
    assert torch.equal(fresh.state_dict()[key], before)  # nothing was loaded


@pytest.mark.parametrize("dtype", LEGIT, ids=str)
def test_float_weights_of_another_precision_load(model, dtype):
    sd = {k: v.to(dtype) for k, v in model.state_dict().items()}
    fresh = SCLModel(SCLConfig.tiny("f30k"))
    report = load_into(fresh, sd, "half.ckpt")
    assert report.loaded_fraction == 1.0
    key = KEYS[0]
    assert fresh.state_dict()[key].dtype == torch.float32
    assert torch.equal(fresh.state_dict()[key], sd[key].float())


def test_a_non_tensor_entry_is_refused(model):
    sd = dict(model.state_dict())
    sd[KEYS[2]] = [0.0] * 64
    with pytest.raises(CheckpointError, match=KEYS[2].replace(".", r"\.")):
        load_into(SCLModel(SCLConfig.tiny("f30k")), sd, "list.ckpt")


@pytest.mark.parametrize("dtype", [torch.int64, torch.int8, torch.bool, torch.complex64], ids=str)
def test_an_sclbench_directory_with_integer_weights_is_refused(model, tmp_path, dtype):
    folder = save_pretrained(model, tmp_path / "ckpt")
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    sd[KEYS[3]] = _cast(sd[KEYS[3]], dtype).contiguous()
    save_file(sd, str(folder / WEIGHTS_NAME))
    with pytest.raises(CheckpointError) as info:
        load_pretrained(folder)
    assert KEYS[3] in str(info.value) and WEIGHTS_NAME in str(info.value)


def test_an_sclbench_directory_in_half_precision_loads(model, tmp_path):
    folder = save_pretrained(model, tmp_path / "ckpt")
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}, str(folder / WEIGHTS_NAME))
    loaded = load_pretrained(folder)
    assert next(loaded.parameters()).dtype == torch.float32
