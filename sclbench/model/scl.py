"""SCLModel: the SCL network of the paper's figure.

    text ids ──RoBERTa──► cross_modal_text_transform ──┐               ┌─► text pooler ─┐
                                                       ├─ co-attention ┤                ├─► cls_feats
    frames ──CLIP ViT───► cross_modal_image_transform ─┘   (6 + 6)     └─► image pooler ┘

`encode_text` and `encode_vision` run the unimodal towers (so retrieval can cache them), `fuse` runs
the co-attention stack, and `forward` chains the three. Attribute names are the official ones so
that released checkpoints load with `from_official_checkpoint` and can be exported back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sclbench.model.config import SCLConfig
from sclbench.model.fusion import CrossLayer, Pooler, additive_mask, co_attention
from sclbench.model.heads import build_heads, init_weights
from sclbench.model.text import build_text_encoder
from sclbench.model.vision import VisionEncoder, VisualTokens

# The methods `SCLModel.compile_stages` compiles: every tensor-heavy entry point.
COMPILED_STAGES = (
    "encode_text",
    "encode_images",
    "vision_tower",
    "fuse",
    "fuse_prepared",
    "text_stream_inputs",
    "vision_stream_inputs",
)


@dataclass
class VisionFeatures:
    """Unimodal vision output after `cross_modal_image_transform`.

    embeds: [B, F + F*K, D] (frame-CLS tokens first); num_frames: F; ids_mask / ids_keep: what masking
    did (see VisualTokens).
    """

    embeds: torch.Tensor
    num_frames: int
    ids_mask: torch.Tensor | None = None
    ids_keep: torch.Tensor | None = None

    @property
    def cls(self) -> torch.Tensor:
        """Unimodal clip feature for contrastive learning: mean of the frame-CLS tokens, [B, D]."""
        return self.embeds[:, : self.num_frames].mean(1)

    def repeat(self, n: int) -> VisionFeatures:
        """Each clip repeated n times along the batch (one per candidate caption)."""
        rep = lambda t: None if t is None else t.repeat_interleave(n, dim=0)  # noqa: E731
        return VisionFeatures(rep(self.embeds), self.num_frames, rep(self.ids_mask), rep(self.ids_keep))

    def index(self, idx: torch.Tensor | slice) -> VisionFeatures:
        sel = lambda t: None if t is None else t[idx]  # noqa: E731
        return VisionFeatures(sel(self.embeds), self.num_frames, sel(self.ids_mask), sel(self.ids_keep))


@dataclass
class StreamInputs:
    """The pair-independent part of one stream's way through the first co-attention layer.

    states: the stream's input with token types [B, L, D]; mask: its additive key mask (None for image
    tokens); self_out: the first layer's self-attention block output; query: its cross-attention query
    projection; key / value: the OTHER stream's first-layer cross-attention projections of `states`.
    Everything here depends on one text or one image only, so retrieval computes it once per text / image
    instead of once per pair.
    """

    states: torch.Tensor
    mask: torch.Tensor | None
    self_out: torch.Tensor
    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor

    def index(self, idx: torch.Tensor) -> StreamInputs:
        sel = lambda t: None if t is None else t[idx]  # noqa: E731
        return StreamInputs(
            sel(self.states), sel(self.mask), sel(self.self_out), sel(self.query), sel(self.key), sel(self.value)
        )


@dataclass
class SCLOutput:
    """Fused features. Shapes: text_feats [B, L, D]; image_feats [B, F + F*K, D]; cls_feats [B, 2D]."""

    text_feats: torch.Tensor
    image_feats: torch.Tensor
    cls_feats: torch.Tensor
    cls_feats_text: torch.Tensor  # text pooler output [B, D]
    cls_feats_image: torch.Tensor  # image pooler output [B, D]
    num_frames: int = 1
    ids_mask: torch.Tensor | None = None
    ids_keep: torch.Tensor | None = None

    @property
    def cross_text_feat(self) -> torch.Tensor:
        """Fused text CLS token (before the pooler), [B, D]."""
        return self.text_feats[:, 0]

    @property
    def cross_image_feat(self) -> torch.Tensor:
        """Fused image CLS token(s) before the pooler: [B, D] for images, [B, F, D] for clips."""
        if self.num_frames == 1:
            return self.image_feats[:, 0]
        return self.image_feats[:, : self.num_frames]

    @property
    def frame_cls_feats(self) -> torch.Tensor:
        """Fused frame-CLS tokens, always [B, F, D]."""
        return self.image_feats[:, : self.num_frames]

    def __getitem__(self, key: str) -> Any:  # dict-style access, as the official `infer` returned
        return getattr(self, key)


class SCLModel(nn.Module):
    def __init__(self, config: SCLConfig):
        super().__init__()
        self.config = config
        h = config.hidden_size
        self.text_transformer = build_text_encoder(config)
        self.vision_transformer = VisionEncoder(config)
        self.cross_modal_text_transform = nn.Linear(h, h)
        self.cross_modal_image_transform = nn.Linear(config.vision_width, h)
        self.token_type_embeddings = nn.Embedding(config.num_token_types, h)
        self.cross_modal_image_layers = nn.ModuleList([CrossLayer(config) for _ in range(config.num_top_layer)])
        self.cross_modal_text_layers = nn.ModuleList([CrossLayer(config) for _ in range(config.num_top_layer)])
        self.cross_modal_image_pooler = Pooler(h)
        self.cross_modal_text_pooler = Pooler(h)
        for module in (
            self.cross_modal_text_transform,
            self.cross_modal_image_transform,
            self.token_type_embeddings,
            self.cross_modal_image_layers,
            self.cross_modal_text_layers,
            self.cross_modal_image_pooler,
            self.cross_modal_text_pooler,
        ):
            module.apply(init_weights)
        build_heads(self, config)
        for name in ("mlm_score", "itm_score", "vqa_classifier", "nlvr2_classifier"):
            if hasattr(self, name):
                getattr(self, name).apply(init_weights)
        if hasattr(self, "rank_output"):
            self.init_rank_output_from_itm()
        self.gradient_checkpointing = False

    # ---- construction helpers --------------------------------------------------------------------
    @torch.no_grad()
    def init_rank_output_from_itm(self) -> None:
        """rank_output := the ITM head's "match" row (official irtr set-up), and freeze itm_score."""
        self.rank_output.weight.copy_(self.itm_score.fc.weight[1:])
        self.rank_output.bias.copy_(self.itm_score.fc.bias[1:])
        for p in self.itm_score.parameters():
            p.requires_grad_(False)

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        self.gradient_checkpointing = enabled
        self.vision_transformer.visual.transformer.gradient_checkpointing = enabled
        text = self.text_transformer
        # transformers >= 5.x renamed the API (the old names warn and go away in v6); keep both working.
        if hasattr(text, "activation_checkpointing_enable"):
            on, off = text.activation_checkpointing_enable, text.activation_checkpointing_disable
        else:
            on, off = text.gradient_checkpointing_enable, text.gradient_checkpointing_disable
        if enabled:
            on({"use_reentrant": False})
        else:
            off()

    # The loaders behind the two `from_*` doors live in `sclbench.model.factory`, the one place a model is
    # built. The factory sits above this module (it constructs SCLModel), so it installs them here when
    # `sclbench.model` is imported, instead of this module importing it back.
    _builders: dict[str, Callable[..., Any]] = {}

    @classmethod
    def install_builders(cls, **builders: Callable[..., Any]) -> None:
        cls._builders.update(builders)

    @classmethod
    def _builder(cls, name: str) -> Callable[..., Any]:
        if name not in cls._builders:  # only if sclbench/model/__init__.py stopped importing the factory
            raise RuntimeError(f"SCLModel has no {name!r} loader installed: import sclbench.model.factory first")
        return cls._builders[name]

    @classmethod
    def from_official_checkpoint(
        cls,
        path_or_state_dict: str | Path | dict,
        task: str = "pretrain",
        image_size: int | None = None,
        config: SCLConfig | None = None,
        **kwargs: Any,
    ) -> SCLModel:
        """Build the `base` model of `task` and load an official SCL Lightning checkpoint into it.

        See `sclbench.model.factory.load_official` for what is loaded and reported.
        """
        model, _ = cls._builder("official")(
            path_or_state_dict, task=task, image_size=image_size, config=config, **kwargs
        )
        return model

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kwargs: Any) -> SCLModel:
        """Load a `save_pretrained` directory (see `sclbench.model.factory.load_pretrained`)."""
        return cls._builder("pretrained")(directory, **kwargs)

    def save_pretrained(self, directory: str | Path, tokenizer: Any = None, **kwargs: Any) -> Path:
        from sclbench.model.checkpoint import save_pretrained

        return save_pretrained(self, directory, tokenizer=tokenizer, **kwargs)

    # ---- the three stages ------------------------------------------------------------------------
    def encode_text(self, text_ids: torch.Tensor, text_masks: torch.Tensor) -> torch.Tensor:
        """RoBERTa then cross_modal_text_transform: [B, L, D]."""
        hidden = self.text_transformer(input_ids=text_ids, attention_mask=text_masks).last_hidden_state
        return self.cross_modal_text_transform(hidden)

    def encode_vision(
        self,
        images: torch.Tensor,
        mask_mode: str | None = None,
        mask_ratio: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> VisionFeatures:
        """CLIP ViT over frames then cross_modal_image_transform (see VisualTransformer.embed)."""
        if mask_mode is None:
            return self.encode_images(images)
        # Masked views draw their patches from a torch.Generator, which torch.compile cannot trace:
        # the (cheap) embedding and masking run eagerly, the tower is its own compiled stage.
        tokens: VisualTokens = self.vision_transformer.visual.embed(images, mask_mode, mask_ratio, generator)
        return VisionFeatures(self.vision_tower(tokens.tokens), tokens.num_frames, tokens.ids_mask, tokens.ids_keep)

    def encode_images(self, images: torch.Tensor) -> VisionFeatures:
        """`encode_vision` without masking: embedding and tower in one (compilable) stage."""
        tokens = self.vision_transformer.visual.embed(images)
        return VisionFeatures(self.vision_tower(tokens.tokens), tokens.num_frames)

    def vision_tower(self, tokens: torch.Tensor) -> torch.Tensor:
        """Embedded tokens [B, F, N, D] -> ViT blocks, ln_post and cross_modal_image_transform."""
        return self.cross_modal_image_transform(self.vision_transformer(tokens))

    def fuse(
        self,
        text_embeds: torch.Tensor,
        text_masks: torch.Tensor,
        vision: VisionFeatures,
        image_token_type_idx: int = 1,
    ) -> SCLOutput:
        """Token types, co-attention layers and poolers. Image tokens are never padded."""
        x = text_embeds + self.token_type_embeddings(torch.zeros_like(text_masks))
        image_type = torch.full(vision.embeds.shape[:2], image_token_type_idx, device=text_embeds.device)
        y = vision.embeds + self.token_type_embeddings(image_type)
        # Image tokens are never padded: their key mask is None (the official all-ones mask adds 0).
        x, y = co_attention(
            self.cross_modal_text_layers,
            self.cross_modal_image_layers,
            x,
            y,
            additive_mask(text_masks, x.dtype),
            None,
            checkpointing=self.gradient_checkpointing and self.training,
        )
        cls_text = self.cross_modal_text_pooler(x)
        cls_image = self.cross_modal_image_pooler(y, vision.num_frames)
        return SCLOutput(
            text_feats=x,
            image_feats=y,
            cls_feats=torch.cat([cls_text, cls_image], dim=-1),
            cls_feats_text=cls_text,
            cls_feats_image=cls_image,
            num_frames=vision.num_frames,
            ids_mask=vision.ids_mask,
            ids_keep=vision.ids_keep,
        )

    # ---- fusion split into pair-independent and pair-dependent parts (retrieval scoring) ------------
    def text_stream_inputs(self, text_embeds: torch.Tensor, text_masks: torch.Tensor) -> StreamInputs:
        """Per-text part of `fuse` (token type, first-layer self-attention and cross-attention query,
        the image stream's cross-attention keys/values of the text)."""
        x = text_embeds + self.token_type_embeddings(torch.zeros_like(text_masks))
        mask = additive_mask(text_masks, x.dtype)
        first_text, first_image = self.cross_modal_text_layers[0], self.cross_modal_image_layers[0]
        cross, h = first_image.crossattention.self, first_text.attention(x, x, mask)
        return StreamInputs(x, mask, h, first_text.crossattention.self.query(h), cross.key(x), cross.value(x))

    def vision_stream_inputs(self, vision: VisionFeatures, image_token_type_idx: int = 1) -> StreamInputs:
        """Per-image part of `fuse` (see `text_stream_inputs`)."""
        image_type = torch.full(vision.embeds.shape[:2], image_token_type_idx, device=vision.embeds.device)
        y = vision.embeds + self.token_type_embeddings(image_type)
        first_text, first_image = self.cross_modal_text_layers[0], self.cross_modal_image_layers[0]
        cross, h = first_text.crossattention.self, first_image.attention(y, y, None)
        return StreamInputs(y, None, h, first_image.crossattention.self.query(h), cross.key(y), cross.value(y))

    def fuse_prepared(self, text: StreamInputs, image: StreamInputs, num_frames: int = 1) -> SCLOutput:
        """`fuse` of pairs (row b of `text` with row b of `image`) from their stream inputs: the same
        numbers as `fuse` up to float rounding; for inference (no gradient checkpointing)."""
        first_text, first_image = self.cross_modal_text_layers[0], self.cross_modal_image_layers[0]
        x = first_text.forward_after_self_attention(text.self_out, text.query, image.key, image.value, image.mask)
        y = first_image.forward_after_self_attention(image.self_out, image.query, text.key, text.value, text.mask)
        x, y = co_attention(
            self.cross_modal_text_layers[1:], self.cross_modal_image_layers[1:], x, y, text.mask, image.mask
        )
        cls_text = self.cross_modal_text_pooler(x)
        cls_image = self.cross_modal_image_pooler(y, num_frames)
        return SCLOutput(
            text_feats=x,
            image_feats=y,
            cls_feats=torch.cat([cls_text, cls_image], dim=-1),
            cls_feats_text=cls_text,
            cls_feats_image=cls_image,
            num_frames=num_frames,
        )

    def forward(
        self,
        text_ids: torch.Tensor,
        text_masks: torch.Tensor,
        images: torch.Tensor | VisionFeatures,
        image_token_type_idx: int = 1,
        mask_mode: str | None = None,
        mask_ratio: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> SCLOutput:
        """Full pass: images [B,3,H,W] or clips [B,F,3,H,W] (or precomputed VisionFeatures)."""
        vision = (
            images
            if isinstance(images, VisionFeatures)
            else self.encode_vision(images, mask_mode, mask_ratio, generator)
        )
        return self.fuse(self.encode_text(text_ids, text_masks), text_masks, vision, image_token_type_idx)

    # ---- torch.compile ---------------------------------------------------------------------------
    def compile_stages(self, **options: Any) -> SCLModel:
        """torch.compile every stage the tasks, objectives and retrieval call (`COMPILED_STAGES`), in place.

        The stages, not `forward` alone, because training and evaluation call them directly (retrieval
        caches unimodal features, NLVR2 fuses one text with two images, the objectives mix masked and
        full views). Each stage traces to one graph without a break (tests/model/test_compile.py: no
        host read of a tensor, no data-dependent shape); the heads stay eager (one or two matmuls).
        Weights, state_dict and checkpoints are unchanged; `options` go to torch.compile. The compiled
        stages are bound to this instance: copy or pickle a model before compiling it, not after.
        """
        for name in COMPILED_STAGES:
            setattr(self, name, torch.compile(getattr(type(self), name).__get__(self), **options))
        self.compiled = True
        return self

    @property
    def is_compiled(self) -> bool:
        return bool(self.__dict__.get("compiled", False))

    # ---- small conveniences used by objectives, tasks and retrieval ------------------------------
    def contrastive_features(
        self, text_embeds: torch.Tensor, vision: VisionFeatures
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected unimodal CLS features (text, image), not normalised: [B, C] each."""
        return self.language_proj(text_embeds[:, 0]), self.vision_proj(vision.cls)

    def nlvr2_logits(
        self, text_ids: torch.Tensor, text_masks: torch.Tensor, images_0: torch.Tensor, images_1: torch.Tensor
    ) -> torch.Tensor:
        """Two passes (token types 1 and 2), concatenated pooled features -> [B, 2]."""
        text = self.encode_text(text_ids, text_masks)
        out0 = self.fuse(text, text_masks, self.encode_vision(images_0), image_token_type_idx=1)
        out1 = self.fuse(text, text_masks, self.encode_vision(images_1), image_token_type_idx=2)
        return self.nlvr2_classifier(torch.cat([out0.cls_feats, out1.cls_feats], dim=-1))

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
