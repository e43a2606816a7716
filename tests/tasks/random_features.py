"""Random unimodal features and every (image, text) pair, for scoring tests of the retrieval engine."""

import torch

from sclbench.tasks.retrieval_scoring import Features, RetrievalOptions, candidate_pairs


def random_features(hidden: int, n_img: int, n_txt: int, length: int, pad_every: int, seed: int):
    """(Features, exhaustive pairs): texts padded after 5 tokens every `pad_every`-th, 10 image tokens."""
    torch.manual_seed(seed)
    masks = torch.ones(n_txt, length, dtype=torch.long)
    masks[::pad_every, 5:] = 0
    feats = Features(
        torch.randn(n_txt, length, hidden),
        masks,
        torch.randn(n_txt, 8),
        torch.randn(n_img, 10, hidden),
        torch.randn(n_img, 8),
        1,
    )
    pairs, _, _ = candidate_pairs(torch.randn(n_img, n_txt), RetrievalOptions(mode="exhaustive"))
    return feats, pairs
