"""BLIP (Li et al., ICML 2022) through transformers: F30K/COCO retrieval and VQA, as BLIP's own evaluation
code (salesforce/BLIP: train_retrieval.py `evaluation`, models/blip_vqa.py, data/utils.py) does them.

Facts this adapter relies on:
- Captions are normalised as BLIP's `pre_caption` does (lower case; . ! " ( ) * # : ; ~ become spaces;
  runs of spaces collapse; at most 30 words for the retrieval sets), then tokenised padded and cut to 35.
  Questions as its `pre_question` (lower case, those characters removed, at most 50 words), padded to the
  longest question of the batch and cut to 35.
- Retrieval, first stage: the unimodal text encoder's [CLS] through `text_proj` and the ViT's [CLS]
  through `vision_proj`, each L2-normalised (the "embedding"); ranked by their dot product, with no
  temperature. Second stage: the text encoder with cross-attention to the image's patch states, whose
  [CLS] goes through `itm_head`; BLIP's evaluation ranks each candidate by the ITM logit of "match"
  (index 1, not a softmax) PLUS the first-stage similarity, which `score_pairs` returns, so the engine's
  fusion "itm" gives BLIP's score (fusion "itm+itc" would add the similarity twice).
  Candidates: the top k_test by similarity, 256 for COCO and 128 for Flickr30K (configs/retrieval_coco.yaml
  and retrieval_flickr.yaml), which are the sclbench cards' two-stage k for those tasks.
- For the ITM pass (and for VQA's question encoder) BLIP's code replaces the first token, [CLS], by its
  [ENC] token. transformers' BlipForImageTextRetrieval does not; this adapter does when the checkpoint's
  tokenizer knows "[ENC]" (recorded in `describe()` as `enc_token_id`), and leaves [CLS] otherwise.
- VQA, `--model blip`: answers are generated (beam search of 3 beams, at most 10 tokens including the
  start token, at least 1), as BLIP's `inference='generate'`.
- VQA, `--model sclbench.adapters.blip:build_rank`: BLIP's released VQA config ranks candidate answers
  instead (`inference: rank`, k_test 128), which this reproduces over the card's answer vocabulary (BLIP
  ranks its own 3,128-answer list): each answer is tokenised with the decoder's start token first and
  padded to the longest answer; the 128 answers whose first token is likeliest after the start token
  are kept, and each is scored by minus its decoder loss summed over its tokens, with BLIP's label
  smoothing of 0.1 (models/med.py), the question states attended with the question's mask; the best
  score is the answer (returned as scores over the vocabulary, -inf outside the 128).
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn.functional as F

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
from sclbench.adapters.interface import Preprocess, RetrievalModel, VQABatch, VQAModel
from sclbench.errors import ConfigError

DEFAULTS = {"retrieval": "Salesforce/blip-itm-base-coco", "vqa": "Salesforce/blip-vqa-base"}
MAX_TEXT_LEN = 35  # BLIP tokenises captions and questions to at most 35 tokens
CAPTION_WORDS, QUESTION_WORDS = 30, 50
GENERATE = {"num_beams": 3, "max_length": 10, "min_length": 1}
RANK_K = 128  # configs/vqa.yaml k_test: candidate answers scored in full per question
LABEL_SMOOTHING = 0.1  # BLIP's decoder loss, which its answer ranking reuses
RANK_ROWS = 512  # (question, answer) rows per decoder pass: bounds the [rows, length, vocab] logits
_PUNCTUATION = re.compile(r"[.!\"()*#:;~]")


def pre_caption(caption: str, max_words: int = CAPTION_WORDS) -> str:
    """BLIP's caption normalisation (data/utils.py pre_caption), in sclbench's words."""
    text = re.sub(r"\s{2,}", " ", _PUNCTUATION.sub(" ", caption.lower())).rstrip("\n").strip(" ")
    return " ".join(text.split(" ")[:max_words])


def pre_question(question: str, max_words: int = QUESTION_WORDS) -> str:
    """BLIP's question normalisation (data/utils.py pre_question)."""
    text = _PUNCTUATION.sub("", question.lower()).rstrip(" ")
    return " ".join(text.split(" ")[:max_words])


def enc_token_id(tokenizer: Any) -> int | None:
    """The id of BLIP's [ENC] token in this tokenizer, or None when it has none."""
    token_id = tokenizer.convert_tokens_to_ids("[ENC]")
    return None if token_id is None or token_id == tokenizer.unk_token_id else int(token_id)


class BlipBase:
    name = "blip"

    def _setup(self, model: Any, processor: Any, source: Source, normalise: Any) -> None:
        self.model, self.processor, self.source, self.normalise = model, processor, source, normalise
        self.enc_id = enc_token_id(processor.tokenizer)

    def preprocess(self) -> Preprocess:
        ip = self.processor.image_processor
        return Preprocess(
            image=ProcessorImage(ip),
            text=ProcessorText(self.processor.tokenizer, MAX_TEXT_LEN, self.normalise),
            deterministic=True,
            describe={
                "image_processor": type(ip).__name__,
                "image_size": [size_of(ip.size, "height"), size_of(ip.size, "width")],
                "tokenizer": getattr(self.processor.tokenizer, "name_or_path", None),
                "max_text_len": MAX_TEXT_LEN,
                "text_normalise": self.normalise.__name__,
                "enc_token_id": self.enc_id,
            },
        )

    def identity(self) -> dict[str, Any]:
        return {"model_class": type(self.model).__name__, **self.source.identity(self.model.config)}

    def with_enc_token(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.enc_id is None:
            return input_ids
        ids = input_ids.clone()
        ids[:, 0] = self.enc_id
        return ids


class BlipRetrieval(BlipBase, RetrievalModel):
    has_pair_scorer = True
    score_includes_first_stage = True

    def __init__(self, model: Any, processor: Any, source: Source):
        super().__init__()
        self._setup(model, processor, source, pre_caption)

    @torch.no_grad()
    def embed_texts(self, text: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        states = self.model.text_encoder(input_ids=text["input_ids"], attention_mask=text["attention_mask"])
        cls = states.last_hidden_state[:, 0]
        return {
            "embedding": F.normalize(self.model.text_proj(cls).float(), dim=-1),
            "input_ids": text["input_ids"],
            "attention_mask": text["attention_mask"],
        }

    @torch.no_grad()
    def embed_media(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        states = self.model.vision_model(pixel_values=frames_as_images(pixels)).last_hidden_state
        return {"embedding": F.normalize(self.model.vision_proj(states[:, 0]).float(), dim=-1), "patches": states}

    @torch.no_grad()
    def score_pairs(
        self,
        texts: dict[str, torch.Tensor],
        media: dict[str, torch.Tensor],
        text_of: torch.Tensor,
        media_of: torch.Tensor,
    ) -> torch.Tensor:
        patches = media["patches"][media_of]
        states = self.model.text_encoder(
            input_ids=self.with_enc_token(texts["input_ids"][text_of]),
            attention_mask=texts["attention_mask"][text_of],
            encoder_hidden_states=patches,
            encoder_attention_mask=torch.ones(patches.shape[:-1], dtype=torch.long, device=patches.device),
        ).last_hidden_state
        itm = self.model.itm_head(states[:, 0])[:, 1].float()
        itc = (texts["embedding"][text_of].float() * media["embedding"][media_of].float()).sum(-1)
        return itm + itc

    def compile_for_eval(self, **options: Any) -> None:
        names = ["vision_model", "text_encoder"]
        self.__dict__["compiled_methods"] = compile_submodules(self.model, names, options)


class BlipVQA(BlipBase, VQAModel):
    def __init__(self, model: Any, processor: Any, source: Source, inference: str = "generate"):
        super().__init__()
        self._setup(model, processor, source, pre_question)
        self.inference = inference
        self._answer_cache: tuple[tuple[str, ...], torch.Tensor, torch.Tensor] | None = None

    def describe(self) -> dict[str, Any]:
        extra = {"k": RANK_K, "label_smoothing": LABEL_SMOOTHING} if self.inference == "rank" else GENERATE
        return {**super().describe(), "inference": self.inference, **extra}

    def question_inputs(self, questions: list[str]) -> dict[str, torch.Tensor]:
        """BLIP's question tensors: normalised, padded to the batch's longest, [ENC] first."""
        enc = self.processor.tokenizer(
            [pre_question(q) for q in questions],
            padding="longest",
            truncation=True,
            max_length=MAX_TEXT_LEN,
            return_tensors="pt",
        ).to(self.device)
        return {"input_ids": self.with_enc_token(enc["input_ids"]), "attention_mask": enc["attention_mask"]}

    @torch.no_grad()
    def answer_vqa(self, batch: VQABatch) -> list[str] | torch.Tensor:
        # The question is re-tokenised from the strings: BLIP pads to the batch's longest question, and the
        # answer decoder attends to every position (padding included), so the padding is part of the protocol.
        inputs = self.question_inputs(batch.questions)
        if self.inference == "rank":
            return self.rank_scores(inputs, frames_as_images(batch.pixels), batch.vocabulary)
        tokens = self.model.generate(pixel_values=frames_as_images(batch.pixels), **inputs, **GENERATE)
        return [a.strip() for a in self.processor.tokenizer.batch_decode(tokens, skip_special_tokens=True)]

    def answer_tensors(self, vocabulary: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The vocabulary as decoder inputs: [start] answer [SEP], padded to the longest (kept per vocabulary)."""
        key = tuple(vocabulary)
        if self._answer_cache is None or self._answer_cache[0] != key:
            enc = self.processor.tokenizer(list(vocabulary), padding="longest", return_tensors="pt")
            ids = enc["input_ids"].clone()
            ids[:, 0] = self.model.config.text_config.bos_token_id
            self._answer_cache = (key, ids, enc["attention_mask"])
        _, ids, mask = self._answer_cache
        return ids.to(self.device), mask.to(self.device)

    def rank_scores(self, inputs: dict[str, torch.Tensor], pixels: torch.Tensor, vocabulary: list[str]) -> torch.Tensor:
        """BLIP's `rank_answer` over `vocabulary`: [B, V] scores, -inf outside each question's top k."""
        images = self.model.vision_model(pixel_values=pixels).last_hidden_state
        states = self.model.text_encoder(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            encoder_hidden_states=images,
            encoder_attention_mask=torch.ones(images.shape[:-1], dtype=torch.long, device=images.device),
        ).last_hidden_state
        q_mask = inputs["attention_mask"]
        ids, mask = self.answer_tensors(vocabulary)
        b, k = len(states), min(RANK_K, len(ids))
        decoder = self.model.text_decoder
        start = decoder(input_ids=ids[:1, :1].expand(b, 1), encoder_hidden_states=states, encoder_attention_mask=q_mask)
        first = start.logits[:, 0].float().softmax(-1).index_select(1, ids[:, 1])  # P(each answer's first token)
        top = first.topk(k, dim=1).indices  # [B, k]
        rows = top.flatten()
        owner = torch.arange(b, device=rows.device).repeat_interleave(k)
        pad = self.processor.tokenizer.pad_token_id
        losses = []
        for c in range(0, len(rows), RANK_ROWS):
            r, q = rows[c : c + RANK_ROWS], owner[c : c + RANK_ROWS]
            logits = decoder(
                input_ids=ids[r],
                attention_mask=mask[r],
                encoder_hidden_states=states[q],
                encoder_attention_mask=q_mask[q],
            ).logits
            targets = ids[r][:, 1:].masked_fill(ids[r][:, 1:] == pad, -100)
            loss = F.cross_entropy(
                logits[:, :-1].float().flatten(0, 1),
                targets.flatten(),
                reduction="none",
                label_smoothing=LABEL_SMOOTHING,
                ignore_index=-100,
            )
            losses.append(loss.view(len(r), -1).sum(1))
        scores = torch.full((b, len(ids)), float("-inf"), device=states.device)
        return scores.scatter_(1, top, -torch.cat(losses).view(b, k))

    def compile_for_eval(self, **options: Any) -> None:
        self.__dict__["compiled_methods"] = compile_submodules(self.model, ["vision_model", "text_encoder"], options)


def build_rank(ckpt: str | None = None, family: str = "vqa") -> BlipVQA:
    """BLIP VQA ranking the card's answer vocabulary as BLIP's own evaluation (`inference: rank`):
    `--model sclbench.adapters.blip:build_rank`."""
    if family != "vqa":
        raise ConfigError(f"sclbench.adapters.blip:build_rank is for VQA, not {family} (use --model blip)")
    model = build(ckpt, family)
    model.inference = "rank"
    return model


def build(ckpt: str | None = None, family: str = "retrieval") -> BlipBase:
    """The BLIP adapter of a task family from a hub id, a registered name or a save_pretrained folder."""
    from transformers import BlipForImageTextRetrieval, BlipForQuestionAnswering

    classes = {
        "retrieval": (BlipForImageTextRetrieval, BlipRetrieval, "BLIP image-text retrieval (ITM) model"),
        "vqa": (BlipForQuestionAnswering, BlipVQA, "BLIP VQA model"),
    }
    if family not in classes:
        raise ConfigError(
            f"--model blip has no {family} adapter (transformers ships BLIP for retrieval and VQA, not NLVR2's "
            "two-image model)"
        )
    hf_class, adapter, what = classes[family]
    source = resolve_source(ckpt, DEFAULTS[family], "blip")
    config = load_config(source, "blip", what)
    model = load_model(hf_class, source, config, what)
    return adapter(model, load_processor(source, what), source)
