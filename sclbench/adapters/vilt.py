"""ViLT (Kim et al., ICML 2021) through transformers: VQA, NLVR2 and F30K/COCO retrieval, as ViLT's own
evaluation code does them.

Facts this adapter relies on (ViLT's repository and transformers' port of it):
- Images keep their aspect ratio: the shorter side goes to 384 (the processor's `size.shortest_edge`),
  the longer is capped at 1333/800 of that, both rounded down to a multiple of 32, with no crop. Images
  of one batch therefore differ in size, and the model reads a pixel mask. sclbench's batches are
  fixed-shape, so `preprocess().image` places each processed image in the top-left corner of a square
  canvas as large as the largest image the processor can produce and fills the rest with NaN; the model
  recovers the pixel mask from the NaNs (a normalised pixel is never NaN) and zeroes them, which is
  exactly what the processor's own padding gives (zeros, mask 0). The patch positions are interpolated
  per image to its own valid grid, so the canvas size changes nothing.
- Text: bert-base-uncased's tokenizer, padded and cut to 40 tokens (`max_position_embeddings`).
- VQA: a classifier over ViLT's own answer vocabulary (`config.id2label`, 3,129 answers); the answer is
  the argmax, returned as a string for the official scorer to grade.
- NLVR2: ViltForImagesAndTextClassification runs the statement with each image (image token types 1 and
  2) and classifies the two pooled outputs concatenated; P(true) is the softmax of the label "True".
- Retrieval: ViLT has no unimodal first stage; its paper scores every (image, text) pair with the
  rank head (`rank_output`, one logit). `embed_media` computes the text-independent patch embeddings
  once per image (`visual_embed`: patches, interpolated positions, the [CLS] patch) and `score_pairs`
  runs the transformer on each pair from them. The "embedding" entry the engine requires is a
  placeholder (one zero per item) and `has_first_stage = False` tells the engine so: it scores every
  pair (mode "exhaustive", ViLT's own protocol, recorded as such) whatever mode was asked, rather than
  pick two-stage candidates from a similarity that means nothing.
"""

from __future__ import annotations

from typing import Any

import torch

from sclbench.adapters.hf import (
    ProcessorImage,
    ProcessorText,
    Source,
    compile_submodules,
    frames_as_images,
    load_config,
    load_model,
    load_processor,
    resolve_source,
    size_of,
)
from sclbench.adapters.interface import NLVR2Batch, NLVR2Model, Preprocess, RetrievalModel, VQABatch, VQAModel
from sclbench.errors import CheckpointError, ConfigError

# The released fine-tuned weights, by task family (dandelin's ports on the hub).
DEFAULTS = {
    "vqa": "dandelin/vilt-b32-finetuned-vqa",
    "nlvr2": "dandelin/vilt-b32-finetuned-nlvr2",
    "retrieval": "dandelin/vilt-b32-finetuned-flickr30k",
}
LONGER_OVER_SHORTER = 1333 / 800  # the processor's cap on the longer side, relative to the shorter


class CanvasImage(ProcessorImage):
    """The processor's image (no padding) in the top-left corner of a `side` x `side` canvas of NaN."""

    def __init__(self, image_processor: Any, side: int):
        super().__init__(image_processor, do_pad=False)
        self.side = side

    def __call__(self, image: Any) -> torch.Tensor:
        pixels = super().__call__(image)
        h, w = pixels.shape[1:]
        if h > self.side or w > self.side:  # a processor configured unlike ViLT's resize (never cropped silently)
            raise CheckpointError(
                f"the ViLT image processor made a {h}x{w} image, larger than the {self.side}-pixel canvas its "
                "size.shortest_edge and size_divisor imply; the checkpoint's preprocessor_config.json is not ViLT's"
            )
        canvas = torch.full((pixels.shape[0], self.side, self.side), float("nan"), dtype=pixels.dtype)
        canvas[:, :h, :w] = pixels
        return canvas


def canvas_side(image_processor: Any) -> int:
    """The largest height or width the ViLT image processor gives (its `resize`: the longer side capped at
    1333/800 of the shorter side's target, then rounded down to `size_divisor`)."""
    shorter = size_of(image_processor.size, "shortest_edge")
    if shorter is None:
        raise CheckpointError("this ViLT processor has no size.shortest_edge (ViLT resizes by the shorter side)")
    divisor = int(getattr(image_processor, "size_divisor", None) or 1)
    return int(LONGER_OVER_SHORTER * shorter) // divisor * divisor


def unmask(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Canvas pixels [B, 3, H, W] -> (pixels with NaN set to 0, pixel mask [B, H, W] of 1 = image)."""
    valid = ~torch.isnan(pixels[:, 0])
    return torch.nan_to_num(pixels, nan=0.0), valid.long()


class ViltBase:
    """What the three ViLT adapters share: preprocessing and identity. `self.model` is the transformers model."""

    name = "vilt"

    def _setup(self, model: Any, processor: Any, source: Source) -> None:
        self.model, self.processor, self.source = model, processor, source
        self.max_text_len = int(model.config.max_position_embeddings)
        self.side = canvas_side(processor.image_processor)

    def preprocess(self) -> Preprocess:
        ip = self.processor.image_processor
        return Preprocess(
            image=CanvasImage(ip, self.side),
            text=ProcessorText(self.processor.tokenizer, self.max_text_len),
            deterministic=True,
            describe={
                "image_processor": type(ip).__name__,
                "shortest_edge": size_of(ip.size, "shortest_edge"),
                "size_divisor": getattr(ip, "size_divisor", None),
                "canvas": self.side,
                "tokenizer": getattr(self.processor.tokenizer, "name_or_path", None),
                "max_text_len": self.max_text_len,
            },
        )

    def identity(self) -> dict[str, Any]:
        return {"model_class": type(self.model).__name__, **self.source.identity(self.model.config)}

    def compile_for_eval(self, **options: Any) -> None:
        self.__dict__["compiled_methods"] = compile_submodules(self.model, ["vilt.encoder"], options)


class ViltVQA(ViltBase, VQAModel):
    def __init__(self, model: Any, processor: Any, source: Source):
        super().__init__()
        self._setup(model, processor, source)
        labels = model.config.id2label
        self.answers = [str(labels[i]) for i in range(len(labels))]

    @torch.no_grad()
    def vqa_logits(self, batch: VQABatch) -> torch.Tensor:
        """Scores over ViLT's own answers [B, len(self.answers)] (not the card's vocabulary)."""
        pixels, mask = unmask(frames_as_images(batch.pixels))
        return self.model(
            input_ids=batch.text["input_ids"],
            attention_mask=batch.text["attention_mask"],
            pixel_values=pixels,
            pixel_mask=mask,
        ).logits

    def answer_vqa(self, batch: VQABatch) -> list[str]:
        return [self.answers[i] for i in self.vqa_logits(batch).argmax(-1).tolist()]


def true_label(config: Any) -> int:
    """The index of the label "True" of a ViLT NLVR2 head (index 1 of two unnamed labels)."""
    for label, index in (config.label2id or {}).items():
        if str(label).lower() == "true":
            return int(index)
    if config.num_labels == 2:
        return 1
    raise CheckpointError(f"the ViLT NLVR2 head has {config.num_labels} labels and none is named 'True'")


class ViltNLVR2(ViltBase, NLVR2Model):
    def __init__(self, model: Any, processor: Any, source: Source):
        super().__init__()
        self._setup(model, processor, source)
        self.true_index = true_label(model.config)

    @torch.no_grad()
    def nlvr2_prob_true(self, batch: NLVR2Batch) -> torch.Tensor:
        left, left_mask = unmask(frames_as_images(batch.pixels_0))
        right, right_mask = unmask(frames_as_images(batch.pixels_1))
        logits = self.model(
            input_ids=batch.text["input_ids"],
            attention_mask=batch.text["attention_mask"],
            pixel_values=torch.stack([left, right], dim=1),  # [B, 2 images, 3, H, W]
            pixel_mask=torch.stack([left_mask, right_mask], dim=1),
        ).logits
        return logits.float().softmax(-1)[:, self.true_index]


class ViltRetrieval(ViltBase, RetrievalModel):
    has_pair_scorer = True
    has_first_stage = False  # the engine scores every pair (see the module docstring)

    def __init__(self, model: Any, processor: Any, source: Source):
        super().__init__()
        self._setup(model, processor, source)
        patch = int(model.config.patch_size)
        self.max_patches = (self.side // patch) ** 2 + 1  # every patch of a full canvas, and [CLS]

    def embed_texts(self, text: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ids = text["input_ids"]
        return {"embedding": no_embedding(ids), "input_ids": ids, "attention_mask": text["attention_mask"]}

    @torch.no_grad()
    def embed_media(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        values, mask = unmask(frames_as_images(pixels))
        embeddings = self.model.vilt.embeddings
        patches, patch_mask, _ = embeddings.visual_embed(
            values, mask, max_image_length=self.model.config.max_image_length
        )
        # visual_embed puts [CLS] and the valid patches first and pads each batch to its own longest image;
        # pad every batch to one length (masked rows) so that the engine can concatenate them.
        b, n, d = patches.shape
        out = patches.new_zeros(b, max(self.max_patches, n), d)
        out[:, :n] = patches
        out_mask = patch_mask.new_zeros(b, out.shape[1])
        out_mask[:, :n] = patch_mask
        return {"embedding": no_embedding(out), "patches": out, "patch_mask": out_mask}

    @torch.no_grad()
    def score_pairs(
        self,
        texts: dict[str, torch.Tensor],
        media: dict[str, torch.Tensor],
        text_of: torch.Tensor,
        media_of: torch.Tensor,
    ) -> torch.Tensor:
        patch_mask = media["patch_mask"][media_of]
        # Masked rows change nothing (their attention weight is 0): keep up to the last valid one.
        used = int(patch_mask.nonzero()[:, 1].max()) + 1 if patch_mask.any() else 1
        out = self.model(
            input_ids=texts["input_ids"][text_of],
            attention_mask=texts["attention_mask"][text_of],
            image_embeds=media["patches"][media_of][:, :used],
            pixel_mask=patch_mask[:, :used],
        )
        return out.logits[:, 0].float()


def no_embedding(rows: torch.Tensor) -> torch.Tensor:
    """The placeholder first-stage embedding of a model without one: one zero per item ([B, 1])."""
    return torch.zeros(len(rows), 1, dtype=torch.float32, device=rows.device)


def build(ckpt: str | None = None, family: str = "retrieval") -> ViltBase:
    """The ViLT adapter of a task family from a hub id, a registered name or a save_pretrained folder."""
    from transformers import ViltForImageAndTextRetrieval, ViltForImagesAndTextClassification, ViltForQuestionAnswering

    classes = {
        "vqa": (ViltForQuestionAnswering, ViltVQA, "ViLT VQA model"),
        "nlvr2": (ViltForImagesAndTextClassification, ViltNLVR2, "ViLT NLVR2 model"),
        "retrieval": (ViltForImageAndTextRetrieval, ViltRetrieval, "ViLT retrieval model"),
    }
    if family not in classes:
        raise ConfigError(f"--model vilt has no {family} adapter (it evaluates {', '.join(classes)})")
    hf_class, adapter, what = classes[family]
    source = resolve_source(ckpt, DEFAULTS[family], "vilt")
    config = load_config(source, "vilt", what)
    model = load_model(hf_class, source, config, what)
    return adapter(model, load_processor(source, what), source)
