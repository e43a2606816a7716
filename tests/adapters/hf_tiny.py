"""Tiny randomly initialised transformers models (ViLT, BLIP, CLIP) saved with their processors into a folder,
built offline: the tokenizers come from vocabulary files written here, nothing is downloaded."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import torch
from PIL import Image

WORDS = (
    "a an the is are of in on at to and with two three one red blue green white black dog cat man woman "
    "people person car street table there left right image images picture photo what how many color yes no "
    "sitting standing running playing next front behind small large big shirt water grass tree"
).split()


def bert_vocab(folder: Path, extra: tuple[str, ...] = ()) -> Path:
    """A WordPiece vocabulary: the BERT specials, some words, every letter and digit whole and as '##x'."""
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *extra, *WORDS, *chars, *[f"##{c}" for c in chars]]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vocab.txt"
    path.write_text("\n".join(dict.fromkeys(tokens)) + "\n")
    return path


def bert_tokenizer(folder: Path, extra: tuple[str, ...] = ()):
    from transformers import BertTokenizer

    return BertTokenizer(str(bert_vocab(folder, extra)), do_lower_case=True)


def clip_tokenizer(folder: Path):
    """A byte-level BPE vocabulary of single characters (plain and word-final) and a few merges."""
    from transformers import CLIPTokenizer

    chars = sorted(set(string.ascii_lowercase + string.digits + string.punctuation))
    vocab: dict[str, int] = {}
    for c in chars:
        vocab.setdefault(c, len(vocab))
    for c in chars:
        vocab.setdefault(c + "</w>", len(vocab))
    merges = ["t h", "th e</w>", "a n", "o n</w>", "i n</w>", "o f</w>"]
    for m in merges:
        vocab.setdefault(m.replace(" ", ""), len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="<|endoftext|>")


def images(n: int, seed: int = 0) -> list[Image.Image]:
    """RGB images of different sizes and aspect ratios (landscape, portrait, square, tiny)."""
    rng = np.random.default_rng(seed)
    sizes = [(64, 40), (40, 64), (50, 50), (90, 30), (20, 24), (33, 77)]
    return [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
        for w, h in (sizes[i % len(sizes)] for i in range(n))
    ]


def save_vilt(folder: Path, head: str, num_labels: int = 7) -> Path:
    """A ViLT of 2 layers, width 32, 16-pixel patches, processor shorter side 32 (canvas 48)."""
    from transformers import (
        ViltConfig,
        ViltForImageAndTextRetrieval,
        ViltForImagesAndTextClassification,
        ViltForQuestionAnswering,
        ViltImageProcessor,
        ViltProcessor,
    )

    tokenizer = bert_tokenizer(folder / "vocab")
    kwargs = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=16,
        max_position_embeddings=40,
        initializer_range=0.5,  # large random weights: outputs that differ between inputs
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    if head == "vqa":
        labels = ["yes", "no", "2", "red", "dog", "two", "left"][:num_labels]
        config = ViltConfig(**kwargs, id2label=dict(enumerate(labels)), label2id={a: i for i, a in enumerate(labels)})
        cls = ViltForQuestionAnswering
    elif head == "nlvr2":
        config = ViltConfig(
            **kwargs,
            modality_type_vocab_size=3,
            num_images=2,
            id2label={0: "False", 1: "True"},
            label2id={"False": 0, "True": 1},
        )
        cls = ViltForImagesAndTextClassification
    else:
        config = ViltConfig(**kwargs)
        cls = ViltForImageAndTextRetrieval
    torch.manual_seed(0)
    model = cls(config).eval()
    processor = ViltProcessor(ViltImageProcessor(size={"shortest_edge": 32}, size_divisor=16), tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def save_blip(folder: Path, head: str, enc_token: bool = True) -> Path:
    """A BLIP of 2+2 layers, width 32, 32-pixel images of 16-pixel patches; [DEC] and [ENC] in the vocabulary."""
    from transformers import (
        BlipConfig,
        BlipForImageTextRetrieval,
        BlipForQuestionAnswering,
        BlipImageProcessor,
        BlipProcessor,
    )

    extra = ("[DEC]", "[ENC]") if enc_token else ("[DEC]",)
    tokenizer = bert_tokenizer(folder / "vocab", extra)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    if enc_token:
        tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        encoder_hidden_size=32,
        initializer_range=0.5,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        bos_token_id=tokenizer.convert_tokens_to_ids("[DEC]"),
        sep_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=16,
        attention_dropout=0.0,
        initializer_range=0.5,
    )
    config = BlipConfig(text_config=text, vision_config=vision, projection_dim=16, image_text_hidden_size=16)
    cls = BlipForQuestionAnswering if head == "vqa" else BlipForImageTextRetrieval
    torch.manual_seed(0)
    model = cls(config).eval()
    processor = BlipProcessor(BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def save_clip(folder: Path) -> Path:
    """A CLIP of 2+2 layers, width 32, 32-pixel images of 16-pixel patches, 16-dim projections."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = clip_tokenizer(folder / "vocab")
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=77,
        eos_token_id=eos,
        pad_token_id=eos,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|startoftext|>"),
    )
    vision = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=16
    )
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    torch.manual_seed(0)
    model = CLIPModel(config).eval()
    processor = CLIPProcessor(
        CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}), tokenizer
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
