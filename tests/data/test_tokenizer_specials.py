"""A tokenizer folder whose config lost the special tokens the model needs (a tokenizer_config.json of `{}`,
a null or unknown pad/mask token) is refused at load time naming the folder, instead of loading and then
failing at the first `encode` with transformers' ValueError about padding."""

from __future__ import annotations

import json
import shutil

import pytest

from sclbench.common.tokenizer import encode, load_tokenizer, train_tokenizer
from sclbench.errors import DataError

CAPTIONS = [f"a {c} {a} on a {p}" for c in ("red", "blue") for a in ("cat", "dog") for p in ("mat", "log")]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok") / "good"
    train_tokenizer(CAPTIONS * 5, folder, vocab_size=300)
    return folder


def with_config(saved, tmp_path, edit):
    folder = tmp_path / "tok"
    shutil.copytree(saved, folder)
    path = folder / "tokenizer_config.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    return folder


def test_the_saved_folder_pads_with_roberta_ids(saved):
    tok = load_tokenizer(saved)
    out = encode(["a red cat"], tok, max_len=8)
    assert (tok.pad_token, tok.pad_token_id) == ("<pad>", 1) and out["ids"][0, -1] == 1


def without(*keys):
    return lambda config: {k: v for k, v in config.items() if k not in keys}


# Each way the config can lose a special token the model reads, and the names the message must hold. Only
# a config that no longer names its class loses them: RobertaTokenizer defaults to `<pad>` and `<mask>`.
DAMAGE = {
    "empty config": (lambda c: {}, ["no pad_token", "no mask_token", "'<pad>'", "'<mask>'"]),
    "no class, no pad": (without("tokenizer_class", "pad_token"), ["no pad_token (RoBERTa's is '<pad>')"]),
    "no class, pad null": (lambda c: {**without("tokenizer_class")(c), "pad_token": None}, ["no pad_token"]),
    "no class, no mask": (without("tokenizer_class", "mask_token"), ["no mask_token (RoBERTa's is '<mask>')"]),
}


def test_a_roberta_config_without_pad_gets_the_official_one(saved, tmp_path):
    """The class's defaults are roberta-base's own specials, at roberta's ids: nothing to refuse."""
    tok = load_tokenizer(with_config(saved, tmp_path, without("pad_token", "mask_token")))
    assert (tok.pad_token, tok.pad_token_id, tok.mask_token) == ("<pad>", 1, "<mask>")
    assert encode("a cat", tok, max_len=6)["ids"][0, -1] == 1


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_config_without_the_model_specials_is_refused_at_load(saved, tmp_path, damage):
    edit, words = DAMAGE[damage]
    folder = with_config(saved, tmp_path, edit)
    with pytest.raises(DataError) as err:
        load_tokenizer(folder)
    message = str(err.value)
    assert f"the tokenizer in {folder}" in message and "\n" not in message, message
    for word in words:
        assert word in message, message
