"""Random SCL features and every (image, text) pair, for scoring tests of the retrieval engine."""

import torch

from sclbench.adapters.scl_retrieval import scl_features
from sclbench.tasks.retrieval_scoring import Features, RetrievalOptions, candidate_pairs

TINY_FRAME_TOKENS = 17  # the tiny model's frame: its CLS token and 4 x 4 patches


def random_features(
    hidden: int, n_img: int, n_txt: int, length: int, pad_every: int, seed: int, frames: int = 1
) -> tuple[Features, torch.Tensor]:
    """(Features, exhaustive pairs): texts padded after 5 tokens every `pad_every`-th; each image or
    clip `frames` frames of the tiny model's tokens."""
    torch.manual_seed(seed)
    masks = torch.ones(n_txt, length, dtype=torch.long)
    masks[::pad_every, 5:] = 0
    texts, media = scl_features(
        torch.randn(n_txt, length, hidden),
        masks,
        torch.randn(n_txt, 8),
        torch.randn(n_img, frames * TINY_FRAME_TOKENS, hidden),
        torch.randn(n_img, 8),
    )
    pairs, _, _ = candidate_pairs(torch.randn(n_img, n_txt), RetrievalOptions(mode="exhaustive"))
    return Features(texts, media), pairs
