"""Two small non-SCL retrieval models for the engine's tests (also `--model tests/adapters/toy_retrieval.py:FACTORY`).

- `EmbeddingOnly`: a bag-of-words text encoder and a pooled CNN image encoder; no cross-encoder, so the
  engine ranks by the dot product of its embeddings.
- `ToyCrossEncoder`: the same embeddings plus a cross-encoder that reads per-word vectors of the text
  and a per-item vector of the image/clip (`score_pairs`), and keeps a per-text entry on the host.
Both compute each pair's score from that pair's rows alone, so `direct_*` below recompute them one
item or one pair at a time, without the engine.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch
from torch import nn

from sclbench.adapters import Preprocess, RetrievalModel

SIZE = 16


class ToTensor:
    """PIL image -> Float[3, SIZE, SIZE] in [0, 1] (a class: loader workers receive it pickled)."""

    def __call__(self, image) -> torch.Tensor:
        array = np.asarray(image.convert("RGB").resize((SIZE, SIZE)), dtype=np.float32) / 255.0
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()


class HashWords:
    """Lower-cased words hashed into ids 1..vocab-1 (0 = padding), padded to the call's longest text."""

    def __init__(self, vocab: int = 257, max_len: int = 12):
        self.vocab, self.max_len = vocab, max_len

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        rows = [
            [1 + zlib.crc32(w.encode()) % (self.vocab - 1) for w in t.lower().split()][: self.max_len] for t in texts
        ]
        ids = torch.zeros(len(rows), max(1, *(len(r) for r in rows)), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return {"ids": ids}


class EmbeddingOnly(RetrievalModel):
    name = "toy-embedding"

    def __init__(self, dim: int = 8, seed: int = 0, frames: int | None = None, identity: dict | None = None):
        super().__init__()
        torch.manual_seed(seed)
        self.frames, self._identity = (
            frames,
            {"toy": type(self).__name__, "seed": seed} if identity is None else identity,
        )
        self.conv = nn.Conv2d(3, dim, 4, stride=4)
        self.words = nn.Embedding(257, dim, padding_idx=0)

    def preprocess(self) -> Preprocess:
        return Preprocess(ToTensor(), HashWords(), self.frames, {"size": SIZE}, deterministic=True)

    def identity(self) -> dict:
        return dict(self._identity)

    def media_vector(self, pixels: torch.Tensor) -> torch.Tensor:  # [B, F, 3, H, W] -> [B, D]
        b, f = pixels.shape[:2]
        return self.conv(pixels.flatten(0, 1)).mean((2, 3)).view(b, f, -1).mean(1)

    def word_vectors(self, ids: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, L, D], zero at padding
        return self.words(ids) * (ids > 0).unsqueeze(-1).float()

    def embed_texts(self, text: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        words = self.word_vectors(text["ids"])
        return {"embedding": nn.functional.normalize(words.sum(1), dim=-1)}

    def embed_media(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"embedding": nn.functional.normalize(self.media_vector(pixels), dim=-1)}


class ToyCrossEncoder(EmbeddingOnly):
    name = "toy-cross"
    has_pair_scorer = True
    host_entries = ("length",)

    def embed_texts(self, text: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        words = self.word_vectors(text["ids"])
        return {
            "embedding": nn.functional.normalize(words.sum(1), dim=-1),
            "words": words,
            "length": (text["ids"] > 0).sum(1),
        }

    def embed_media(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        vector = self.media_vector(pixels)
        return {"embedding": nn.functional.normalize(vector, dim=-1), "vector": vector}

    def score_pairs(self, texts, media, text_of, media_of) -> torch.Tensor:
        if texts["length"].device.type != "cpu":  # a host entry arrives on the host
            raise AssertionError("host entry 'length' was moved to the device")
        return pair_score(texts["words"][text_of], media["vector"][media_of])


def pair_score(words: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """[P, L, D] word vectors x [P, D] media vectors -> [P]: the best-matching word, squashed."""
    return torch.tanh((words * vector[:, None]).sum(-1)).max(1).values


@torch.no_grad()
def direct_embeddings(model: EmbeddingOnly, texts: list[str], pixels: list[torch.Tensor]):
    """(text embeddings [T, D], media embeddings [M, D]), one item at a time."""
    pre = model.preprocess()
    t = torch.cat([model.embed_texts(pre.text([s]))["embedding"] for s in texts])
    m = torch.cat([model.embed_media(p[None])["embedding"] for p in pixels])
    return t, m


@torch.no_grad()
def direct_pair_scores(model: ToyCrossEncoder, texts: list[str], pixels: list[torch.Tensor]) -> torch.Tensor:
    """[M, T] cross-encoder scores, one pair at a time (texts padded as the engine pads them: together)."""
    words = model.word_vectors(model.preprocess().text(texts)["ids"])
    vectors = torch.cat([model.media_vector(p[None]) for p in pixels])
    return torch.stack(
        [torch.stack([pair_score(words[t : t + 1], v[None])[0] for t in range(len(texts))]) for v in vectors]
    )


def build_embedding(ckpt=None, family=None):
    return EmbeddingOnly(seed=int(ckpt) if ckpt else 0)


def build_cross(ckpt=None, family=None):
    return ToyCrossEncoder(seed=int(ckpt) if ckpt else 0)
