"""Text side: the RoBERTa tokenizer (local folder or hub), a tiny trained tokenizer, encoding.

The official model uses `roberta-base` with captions truncated and padded to exactly 50 tokens.
For tests and the demo, `train_tokenizer` builds a small byte-level BPE on the synthetic captions
with RoBERTa's special tokens and ids (`<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, `<mask>` = last id),
saved so that `transformers.AutoTokenizer.from_pretrained(dir)` loads it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import torch

from sclbench.errors import DataError

ROBERTA_FILES = ("tokenizer.json", "vocab.json", "merges.txt")


# JSON files a tokenizer folder may hold (transformers reads each one that is there).
TOKENIZER_JSON = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "added_tokens.json",
    "config.json",
)


def load_tokenizer(name_or_path: str | Path = "roberta-base"):
    """A fast tokenizer from a local directory, or from the hub (cached) by name.

    A local folder is checked first, file by file (each JSON file a complete JSON object, tokenizer.json
    with its `model`, merges.txt UTF-8 text), so that a download cut short or a file saved by another
    tool is one DataError naming the file instead of a parser's traceback from inside the library."""
    from transformers import AutoTokenizer

    path = Path(name_or_path)
    if path.is_file():
        raise DataError(f"tokenizer {path} is a file: pass the folder that holds it (with {', '.join(ROBERTA_FILES)})")
    if path.is_dir():
        if not any((path / f).is_file() for f in ROBERTA_FILES):
            raise DataError(
                f"tokenizer folder {path} has none of {ROBERTA_FILES}; save a tokenizer "
                "there with tokenizer.save_pretrained(...)"
            )
        check_tokenizer_files(path)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
        except Exception as err:  # noqa: BLE001 - the library raises anything from a damaged folder
            present = sorted(p.name for p in path.iterdir() if p.is_file())
            raise DataError(
                f"cannot load the tokenizer in {path} (files: {', '.join(present)}): "
                f"{type(err).__name__}: {_first_line(err)}. Save it again with "
                "tokenizer.save_pretrained(...) or re-download it"
            ) from None
        return _with_model_specials(tokenizer, f"the tokenizer in {path}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
    except Exception as err:  # noqa: BLE001 - not found, offline, or a damaged cached download
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
        hint = " (offline mode is on)" if offline else ""
        raise DataError(
            f"cannot load tokenizer {name_or_path!r}{hint}: {_first_line(err)}. "
            f"Put {', '.join(ROBERTA_FILES)} of {name_or_path} in a folder (e.g. "
            f"huggingface-cli download {name_or_path} --local-dir DIR) and pass that folder"
        ) from None
    return _with_model_specials(tokenizer, f"tokenizer {name_or_path!r}")


# The special tokens the model reads from its tokenizer: `encode` pads with pad_token (and the model's
# pad_token_id and MLM's mask id come from the tokenizer, model/factory.py). A folder whose
# tokenizer_config.json / special_tokens_map.json lost them (a config of `{}`) still loads, then fails
# at the first `encode` with transformers' ValueError. We refuse it here rather than assume RoBERTa's
# `<pad>`/`<mask>`: such a config has lost bos/eos/unk and its class too, and guessing one id would hide a
# damaged folder. A config that still names RobertaTokenizer gets the class's own defaults (`<pad>`, `<mask>`),
# which are the official tokenizer's: that is transformers' doing and correct.
MODEL_SPECIALS = {"pad_token": "<pad>", "mask_token": "<mask>"}


def _with_model_specials(tokenizer, what: str):
    missing = [
        name
        for name in MODEL_SPECIALS
        if getattr(tokenizer, name, None) is None or getattr(tokenizer, f"{name}_id", None) is None
    ]
    if missing:
        names = ", no ".join(f"{name} (RoBERTa's is {MODEL_SPECIALS[name]!r})" for name in missing)
        raise DataError(
            f"{what} defines no {names}: its tokenizer_config.json / special_tokens_map.json do not "
            f"name {'them' if len(missing) > 1 else 'it'}, so captions cannot be padded and masked; "
            "save the tokenizer again with tokenizer.save_pretrained(...) or re-download it"
        )
    return tokenizer


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:160] if lines else "(no message)"


def check_tokenizer_files(folder: Path) -> None:
    """Every tokenizer file in `folder` is complete: JSON files parse to an object (tokenizer.json
    holding a `model`), merges.txt is UTF-8 text; else one DataError naming the file."""
    from sclbench.common.textfile import parse_json
    from sclbench.errors import SCLBenchError

    for name in TOKENIZER_JSON:
        file = folder / name
        if not file.is_file():
            continue
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise DataError(
                f"tokenizer file {file} is not UTF-8 text ({err.reason} at byte {err.start}): "
                "damaged; save or download it again"
            ) from None
        except OSError as err:
            raise DataError(f"cannot read tokenizer file {file}: {err.strerror}") from None
        if not text.strip():
            raise DataError(f"tokenizer file {file} is empty (a download cut short?); save or download it again")
        try:
            data = parse_json(text, file, fix="save or download it again")
        except SCLBenchError as err:
            raise DataError(f"{err} (cut short or damaged?); save or download it again") from None
        if not isinstance(data, dict):
            raise DataError(f"tokenizer file {file} must hold a JSON object, got {type(data).__name__}")
        if name == "tokenizer.json" and not isinstance(data.get("model"), dict):
            raise DataError(
                f"tokenizer file {file} has no 'model' object: not a tokenizers file "
                "(save it with tokenizer.save_pretrained)"
            )
    merges = folder / "merges.txt"
    if merges.is_file():
        try:
            merges.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"tokenizer file {merges} is not UTF-8 text ({err.reason} at byte {err.start})") from None


def train_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 1000):
    """Train a byte-level BPE with RoBERTa's specials on `texts`, save it to `out_dir`, return it."""
    from tokenizers import AddedToken, ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    # <mask> is added after training so that it gets the last id, as in roberta-base (50264).
    bpe.train_from_iterator(
        list(texts),
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        show_progress=False,
    )
    bpe.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0))
    tok = RobertaTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        # as in roberta-base: "<mask>" swallows the space before it
        mask_token=AddedToken("<mask>", lstrip=True, rstrip=False),
        model_max_length=512,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(out_dir))
    return tok


def encode(texts: list[str] | str, tokenizer, max_len: int = 50) -> dict[str, torch.Tensor]:
    """`ids` and `masks` Long[N, max_len]: `<s> ... </s>` truncated, then padded to exactly max_len."""
    if isinstance(texts, str):
        texts = [texts]
    enc = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_len, return_tensors="pt")
    return {"ids": enc["input_ids"].long(), "masks": enc["attention_mask"].long()}
