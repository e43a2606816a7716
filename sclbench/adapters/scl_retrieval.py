"""SCL (and METER) as a `RetrievalModel`: the first stage from the contrastive projections, the
cross-encoder from the co-attention stack and `rank_output`.

Mixed into `adapters.scl.SCLEvalModel`, which holds the wrapped `SCLModel` as `self.scl`.

Per caption, `embed_texts` gives `embedding` (the normalised `language_proj` of the text CLS, fp32),
`tokens` ([L, D] after `cross_modal_text_transform`, in the evaluation precision) and `masks` ([L]).
Per image or clip, `embed_media` gives `embedding` (the normalised `vision_proj` of the mean frame-CLS
token) and `tokens` ([F + F*K, D], frame-CLS tokens first). A checkpoint without contrastive
projections ranks its first stage by the raw CLS features, as the engine always did.

`score_pairs` computes the pair-independent part of the first co-attention layer once per distinct
text and image of the pair batch (`SCLModel.text_stream_inputs` / `vision_stream_inputs`), the last
layer only at the positions the poolers read (`scl_fusion`, unless `readout_only` is False), and
`rank_output` in fp32 outside autocast. The texts of a batch are cut to its longest caption.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from sclbench.adapters.interface import RetrievalModel
from sclbench.adapters.scl_fusion import fused_cls
from sclbench.errors import SCLBenchError
from sclbench.model import VisionFeatures

MIN_PAIR_BATCH, MAX_PAIR_BATCH = 64, 1024


def normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-8)


def pair_batch_for(
    device: torch.device, text_len: int, media_tokens: int, hidden: int, intermediate: int, itemsize: int
) -> int:
    """Pairs per cross-encoder batch: 64 on CPU; on CUDA, the power of two whose activations (per
    pair: the five indexed first-layer stream tensors, ~6 layer temporaries of width D and the FFN's
    width-F block, over both streams' tokens) take about an eighth of the device's memory, within
    [64, 1024]. From the total memory (not the free memory) so that the same GPU always batches — and
    so caches and resumes — alike."""
    if device.type != "cuda":
        return MIN_PAIR_BATCH
    tokens = text_len + media_tokens
    per_pair = itemsize * tokens * (11 * hidden + intermediate)
    budget = torch.cuda.get_device_properties(device).total_memory / 8
    return int(min(MAX_PAIR_BATCH, max(MIN_PAIR_BATCH, 2 ** math.floor(math.log2(max(budget / per_pair, 1))))))


class SCLRetrieval(RetrievalModel):
    has_pair_scorer = True
    # The text masks stay in host memory: the pair batch's text length is read from them there
    # (no device sync per pair batch). The engine hands them to `score_pairs` on the host.
    host_entries = ("masks",)
    readout_only = True  # False: every position of the last layer (`SCLModel.fuse_prepared`), for comparison

    scl: Any  # the wrapped SCLModel (set by SCLEvalModel)

    def embed_texts(self, text: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        scl = self.scl
        tokens = scl.encode_text(text["ids"], text["masks"])
        cls = tokens[:, 0]
        embedding = normalize(scl.language_proj(cls).float()) if hasattr(scl, "language_proj") else cls.float()
        return {"embedding": embedding, "tokens": tokens, "masks": text["masks"]}

    def embed_media(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        scl = self.scl
        vision = scl.encode_vision(pixels)
        if vision.embeds.shape[1] != vision.num_frames * self._tokens_per_frame():
            raise SCLBenchError(
                f"SCL vision features hold {vision.embeds.shape[1]} tokens for {vision.num_frames} frames of "
                f"{self._tokens_per_frame()} tokens: the retrieval engine reads the frame count from the token count"
            )
        cls = vision.cls
        embedding = normalize(scl.vision_proj(cls).float()) if hasattr(scl, "vision_proj") else cls.float()
        return {"embedding": embedding, "tokens": vision.embeds}

    def _tokens_per_frame(self) -> int:
        """Frame-CLS token + patches: the frame count of a clip's features is their token count over this
        (a shape, so reading it costs no host read of a tensor)."""
        return int(self.scl.vision_transformer.visual.positional_embedding.shape[0])

    def num_frames(self, media_tokens: torch.Tensor) -> int:
        frames, rest = divmod(media_tokens.shape[1], self._tokens_per_frame())
        if rest or not frames:
            raise SCLBenchError(
                f"SCL media features of {media_tokens.shape[1]} tokens are not whole frames of "
                f"{self._tokens_per_frame()} tokens (frame-CLS + patches) for this model"
            )
        return frames

    def score_pairs(
        self,
        texts: dict[str, torch.Tensor],
        media: dict[str, torch.Tensor],
        text_of: torch.Tensor,
        media_of: torch.Tensor,
    ) -> torch.Tensor:
        scl, device = self.scl, self.device
        # Cut the batch's texts to its longest one: padded positions are masked keys everywhere and
        # padded queries feed nothing that is read (only the CLS is pooled), so the scores do not
        # change, while the co-attention stops paying for padding (~30% of tiny-model scoring time).
        masks = texts["masks"]
        length = int(masks.any(0).nonzero().max()) + 1  # trailing all-padding columns only (host tensor)
        frames = self.num_frames(media["tokens"])
        text = scl.text_stream_inputs(texts["tokens"][:, :length], masks[:, :length].to(device))
        image = scl.vision_stream_inputs(VisionFeatures(media["tokens"], frames))
        cls = fused_cls(scl, text, text_of, image, media_of, frames, self.readout_only)
        return self.itm_scores(cls)

    def itm_scores(self, cls: torch.Tensor) -> torch.Tensor:
        """`rank_output` in fp32, outside autocast. Under bf16 the logit itself would be rounded to 8
        significant bits: pairs whose scores differ by less than that become ties, which the tie rule
        counts against the model (gt_last: the ground truth loses every tie; measured on the demo COCO
        model: text R@1 30 -> 20 under bf16, 55 with gt_first, none of it a ranking change). The head is
        one [2D -> 1] linear: fp32 costs nothing, and fp32 evaluations compute exactly what they did."""
        with torch.autocast(cls.device.type, enabled=False):
            return self.scl.rank_output(cls.float()).squeeze(-1).float()

    def pair_batch_size(
        self, device: torch.device, texts: dict[str, torch.Tensor], media: dict[str, torch.Tensor]
    ) -> int:
        """The engine's pair batch when the options leave it open: sized by SCL's activation memory."""
        cfg = self.scl.config
        return pair_batch_for(
            device,
            texts["tokens"].shape[1],
            media["tokens"].shape[1],
            cfg.hidden_size,
            cfg.cross_intermediate_size,
            media["tokens"].element_size(),
        )

    def scoring_settings(self) -> dict[str, Any]:
        """What besides the features changes the pair scores (part of the score-cache key)."""
        return {"readout_only": bool(self.readout_only), "head": "rank_output-fp32"}


def scl_features(
    text_tokens: torch.Tensor,
    text_masks: torch.Tensor,
    text_embedding: torch.Tensor,
    media_tokens: torch.Tensor,
    media_embedding: torch.Tensor,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The (texts, media) entries `SCLRetrieval` reads, from tensors made elsewhere (benchmarks, tests)."""
    return (
        {"embedding": text_embedding, "tokens": text_tokens, "masks": text_masks},
        {"embedding": media_embedding, "tokens": media_tokens},
    )
