"""Tokenizer (trained, loaded, encoded) and masking properties."""

import pytest
import torch
from transformers import AutoTokenizer

from sclbench.common.tokenizer import encode, load_tokenizer
from sclbench.data.masking import MaskSpec, mlm_mask, scl_text_mask
from sclbench.errors import DataError


def test_trained_tokenizer_has_roberta_specials(synth_root, synth_tokenizer):
    tok = AutoTokenizer.from_pretrained(str(synth_root / "tokenizer"))
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")}
    assert ids == {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": len(tok) - 1}
    assert synth_tokenizer.mask_token_id == len(synth_tokenizer) - 1
    ids = tok("A red circle <mask> the left.")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and tok.mask_token_id in ids


def test_encode_pads_to_max_len(synth_tokenizer):
    enc = encode(["A red circle.", "A blue square on the left " * 20], synth_tokenizer, max_len=50)
    assert enc["ids"].shape == enc["masks"].shape == (2, 50) and enc["ids"].dtype == torch.long
    assert enc["masks"][1].all() and enc["ids"][1, -1] == 2  # truncated, still ends with </s>
    n = int(enc["masks"][0].sum())
    assert (enc["ids"][0, n:] == 1).all() and enc["ids"][0, n - 1] == 2


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(DataError, match="has none of"):
        load_tokenizer(tmp_path)
    with pytest.raises(DataError, match="Put tokenizer.json"):
        load_tokenizer("sclbench-no-such-org/no-such-tokenizer")


def _batch(tok):
    texts = ["A red circle.", "Two shapes: a blue square and a green triangle on the left.", "A", ""]
    return encode(texts, tok, max_len=24)


def test_mlm_never_touches_specials_or_padding(synth_tokenizer):
    enc = _batch(synth_tokenizer)
    spec = MaskSpec.from_tokenizer(synth_tokenizer)
    ids, masks = enc["ids"].repeat(50, 1), enc["masks"].repeat(50, 1)
    out, labels = mlm_mask(ids, masks, spec, generator=torch.Generator().manual_seed(0))
    special = torch.isin(ids, torch.tensor(spec.special_ids)) | (masks == 0)
    assert (labels[special] == -100).all() and torch.equal(out[special], ids[special])
    chosen = labels != -100
    assert torch.equal(labels[chosen], ids[chosen])
    assert 0.08 < chosen.sum() / (~special).sum() < 0.25
    assert not torch.isin(out[~special], torch.tensor([0, 1, 2])).any()  # no specials injected
    again, _ = mlm_mask(ids, masks, spec, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_scl_mask_distinct_positions(synth_tokenizer):
    enc = _batch(synth_tokenizer)
    mask_id = synth_tokenizer.mask_token_id
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        out, pos = scl_text_mask(enc["ids"], enc["masks"], mask_id, 0.4, generator=g)
        n = enc["masks"].sum(1)
        for row in range(len(n)):
            k = int(pos[row].sum())
            expected = int((int(n[row]) - 2) * 0.4) + 1 if n[row] > 2 else 0
            assert k == expected  # distinct: exactly mask_len positions
            where = pos[row].nonzero().squeeze(1)
            assert ((where >= 1) & (where <= n[row] - 2)).all()  # never <s>, </s> or padding
            assert (out[row, where] == mask_id).all()
            assert torch.equal(out[row][~pos[row]], enc["ids"][row][~pos[row]])
    a = scl_text_mask(enc["ids"], enc["masks"], mask_id, generator=torch.Generator().manual_seed(5))
    b = scl_text_mask(enc["ids"], enc["masks"], mask_id, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0])
