"""CLIP (Radford et al., ICML 2021) through transformers: zero-shot image-text and video-text retrieval by
embeddings alone (no cross-encoder).

Facts this adapter relies on:
- Images: the processor's resize of the shorter side, centre crop and normalisation (224 for the released
  models). Texts: CLIP's BPE tokenizer, padded and cut to 77 tokens (its context length); the text
  feature is read at the end-of-text token, which padding after it does not move.
- The embedding is the projected feature L2-normalised; images and captions are ranked by cosine
  similarity (the logit scale multiplies every score alike and changes no rank).
- Video: each frame goes through the image tower; the clip's embedding is the mean of the per-frame
  normalised embeddings, normalised again, as CLIP4Clip's parameter-free "meanP" similarity and the
  usual zero-shot CLIP baselines on MSRVTT and LSMDC. The frames per clip are the task card's
  (`data.num_frames`); CLIP4Clip samples up to 12 (override `data.num_frames=12` for its setting).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from sclbench.adapters.hf import (
    ProcessorImage,
    ProcessorText,
    Source,
    compile_submodules,
    load_config,
    load_model,
    load_processor,
    resolve_source,
    size_of,
)
from sclbench.adapters.interface import Preprocess, RetrievalModel
from sclbench.errors import ConfigError

DEFAULT = "openai/clip-vit-base-patch32"


class ClipRetrieval(RetrievalModel):
    name = "clip"
    has_pair_scorer = False
    zero_shot = True  # never fine-tuned on the benchmark: the record meets the papers' zero-shot rows

    def __init__(self, model: Any, processor: Any, source: Source):
        super().__init__()
        self.model, self.processor, self.source = model, processor, source
        self.max_text_len = int(model.config.text_config.max_position_embeddings)

    def preprocess(self) -> Preprocess:
        ip = self.processor.image_processor
        return Preprocess(
            image=ProcessorImage(ip),
            text=ProcessorText(self.processor.tokenizer, self.max_text_len),
            deterministic=True,
            describe={
                "image_processor": type(ip).__name__,
                "shortest_edge": size_of(ip.size, "shortest_edge"),
                "crop_size": [size_of(ip.crop_size, "height"), size_of(ip.crop_size, "width")],
                "tokenizer": getattr(self.processor.tokenizer, "name_or_path", None),
                "max_text_len": self.max_text_len,
                "video_pooling": "mean of normalised frame embeddings, normalised",
            },
        )

    def identity(self) -> dict[str, Any]:
        return {"model_class": type(self.model).__name__, **self.source.identity(self.model.config)}

    @torch.no_grad()
    def embed_texts(self, text: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.model.get_text_features(input_ids=text["input_ids"], attention_mask=text["attention_mask"])
        features = out.pooler_output if hasattr(out, "pooler_output") else out
        return {"embedding": F.normalize(features.float(), dim=-1)}

    @torch.no_grad()
    def embed_media(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        b, f = pixels.shape[:2]
        out = self.model.get_image_features(pixel_values=pixels.flatten(0, 1))
        frames = F.normalize((out.pooler_output if hasattr(out, "pooler_output") else out).float(), dim=-1)
        return {"embedding": F.normalize(frames.view(b, f, -1).mean(1), dim=-1)}

    def compile_for_eval(self, **options: Any) -> None:
        names = ["vision_model", "text_model"]
        self.__dict__["compiled_methods"] = compile_submodules(self.model, names, options)


def build(ckpt: str | None = None, family: str = "retrieval") -> ClipRetrieval:
    """The CLIP adapter (retrieval only) from a hub id, a registered name or a save_pretrained folder."""
    from transformers import CLIPModel

    if family != "retrieval":
        raise ConfigError(f"--model clip has no {family} adapter (CLIP is evaluated on image and video retrieval)")
    source = resolve_source(ckpt, DEFAULT, "clip")
    config = load_config(source, "clip", "CLIP model")
    model = load_model(CLIPModel, source, config, "CLIP model")
    return ClipRetrieval(model, load_processor(source, "CLIP model"), source)
