"""SCL (and METER) as a `RetrievalModel`: the first stage from the contrastive projections, the
cross-encoder from the co-attention stack and `rank_output`.

Mixed into `adapters.scl.SCLEvalModel`, which holds the wrapped `SCLModel` as `self.scl`.
"""

from __future__ import annotations

import torch

from sclbench.adapters.interface import RetrievalModel


class SCLRetrieval(RetrievalModel):
    has_pair_scorer = True

    def embed_texts(self, text: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError("being moved here from tasks/retrieval_features.py")

    def embed_media(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError("being moved here from tasks/retrieval_features.py")
