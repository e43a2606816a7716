"""The text stream written in sclbench/model/text.py against transformers' RobertaModel: same keys,
same seeded weights, same random-number use, same outputs and gradients, bit for bit."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch
from transformers import RobertaModel

from sclbench.model import SCLConfig
from sclbench.model.text import RobertaEncoder, TextSizes, build_text_encoder, roberta_config


def _pair(seed: int = 0):
    cfg = SCLConfig.preset("tiny", "vqa")
    torch.manual_seed(seed)
    rc = roberta_config(cfg)
    rc._attn_implementation = "sdpa"
    hf = RobertaModel(rc, add_pooling_layer=False)
    hf_next = torch.rand(4)
    torch.manual_seed(seed)
    ours = RobertaEncoder(TextSizes.of(cfg))
    ours_next = torch.rand(4)
    return cfg, hf, ours, (hf_next, ours_next)


def _batch(cfg, padded: bool = True):
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(4, cfg.vocab_size, (3, 11), generator=g)
    mask = torch.ones(3, 11, dtype=torch.long)
    if padded:
        mask[1, 6:] = 0
        mask[2, 9:] = 0
    return ids * mask + cfg.pad_token_id * (1 - mask), mask


def test_same_keys_weights_and_random_stream():
    _, hf, ours, (hf_next, ours_next) = _pair()
    a, b = hf.state_dict(), ours.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(hf_next, ours_next)  # what is built after the encoder draws the same numbers


@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("train", [False, True])
def test_same_outputs_and_gradients(padded, train):
    cfg, hf, ours, _ = _pair()
    ids, mask = _batch(cfg, padded)
    hf.train(train)
    ours.train(train)
    torch.manual_seed(7)  # dropout draws
    ref = hf(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.manual_seed(7)
    out = ours(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.equal(ref, out)
    ref.square().sum().backward()
    out.square().sum().backward()
    grads = dict(hf.named_parameters())
    for name, p in ours.named_parameters():
        assert torch.equal(p.grad, grads[name].grad), name


def test_bf16_autocast_and_checkpointing_match():
    cfg, hf, ours, _ = _pair()
    ids, mask = _batch(cfg)
    hf.eval()
    ours.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(
            hf(input_ids=ids, attention_mask=mask).last_hidden_state,
            ours(input_ids=ids, attention_mask=mask).last_hidden_state,
        )
    ours.train()
    torch.manual_seed(5)
    plain = ours(input_ids=ids, attention_mask=mask).last_hidden_state
    ours.gradient_checkpointing_enable({"use_reentrant": False})
    torch.manual_seed(5)
    ckpt = ours(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.equal(plain, ckpt)
    ours.gradient_checkpointing_disable()
    assert not ours.gradient_checkpointing


def test_pretrained_text_encoder_reads_the_weights(tmp_path):
    cfg, hf, _, _ = _pair(seed=4)
    hf.save_pretrained(tmp_path / "roberta")
    torch.manual_seed(0)
    before = torch.rand(2)
    torch.manual_seed(0)
    enc = build_text_encoder(dataclasses.replace(cfg, text_encoder=str(tmp_path / "roberta")))
    assert torch.equal(torch.rand(2), before)  # loading draws no random numbers
    ref = hf.state_dict()
    assert list(enc.state_dict()) == list(ref)
    assert all(torch.equal(v, ref[k]) for k, v in enc.state_dict().items())


def test_model_path_does_not_import_the_transformers_modelling_stack():
    """The memory point of writing the encoder here: building and training a model imports no
    transformers model code (about 225 MB resident)."""
    code = (
        "import sys; from sclbench.model import SCLConfig; from sclbench.model.factory import assemble; "
        "from sclbench.engine.optim import build_optimizer; assemble(SCLConfig.preset('tiny', 'vqa')); "
        "print(sorted(m for m in sys.modules if m.startswith('transformers.model') or m == 'torchvision'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
