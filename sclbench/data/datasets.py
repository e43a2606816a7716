"""torch Datasets over records: annotations are parsed once (by the readers), workers only decode.

Each dataset returns per-sample dicts for `sclbench.data.collate`. Images become Float[1,3,H,W] and
clips Float[F,3,H,W], so one code path serves both. Negatives (ITM image, retrieval captions) are
drawn from a generator seeded by (seed, epoch, index): reproducible, independent of worker count.
With `skip_corrupt=True` a sample whose image/video fails to decode comes back as a marker that
the collate drops and lists under `skipped`; otherwise the DataError (with the path) propagates.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset

from sclbench.common.tokenizer import encode
from sclbench.data.formats.vqa import AnswerVocab
from sclbench.data.records import CaptionRecord, ImageSource, NLVR2Record, SkipCounter, VideoRecord, VQARecord
from sclbench.data.transforms import ClipTransform
from sclbench.data.video import read_clip
from sclbench.errors import DataError


class Visuals:
    """Load an ImageSource or a clip path as Float[F,3,H,W] with one transform (F=1 for images)."""

    def __init__(self, transform, num_frames: int = 4, frame_mode: str = "uniform", cache: bool = False) -> None:
        self.transform = transform
        self.clip_transform = ClipTransform(transform)
        self.num_frames = num_frames
        self.frame_mode = frame_mode
        # Memoise decoded tensors: only correct for a deterministic transform and frame choice (the
        # caller decides); meant for small data seen for many epochs (the demo), per process.
        self.cache: dict[str, torch.Tensor] | None = {} if cache else None

    def __call__(self, source: ImageSource | Path) -> torch.Tensor:
        key = source.where if isinstance(source, ImageSource) else str(source)
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        if isinstance(source, ImageSource):
            out = self.transform(source.open()).unsqueeze(0)
        else:
            out = self.clip_transform(read_clip(source, self.num_frames, self.frame_mode))
        if self.cache is not None:
            self.cache[key] = out
        return out


class _Base(Dataset):
    def __init__(self, tokenizer, max_len: int, skip_corrupt: bool, seed: int) -> None:
        self.tokenizer, self.max_len, self.skip_corrupt, self.seed = tokenizer, max_len, skip_corrupt, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw different negatives each epoch (call from the training loop, like a sampler)."""
        self.epoch = epoch

    def _rng(self, index: int) -> random.Random:
        return random.Random(f"{self.seed}/{self.epoch}/{index}")

    def _text(self, text: str) -> dict:
        if self.tokenizer is None:  # evaluation: the model's own tokenizer runs on the batch (BatchText)
            return {"text": text}
        enc = encode([text], self.tokenizer, self.max_len)
        return {"text": text, "text_ids": enc["ids"][0], "text_masks": enc["masks"][0]}

    def __getitem__(self, index: int) -> dict:
        try:
            return self.sample(index)
        except DataError as err:
            if not self.skip_corrupt:
                raise
            return {"skipped": str(err), "index": index}


class BatchText:
    """A collate that adds `batch["text"]`: the evaluated model's tokenizer (`Preprocess.text`) on the
    batch's strings. Per batch, not per sample: a tokenizer that pads to the longest string of its call
    gives one tensor per batch. A class (not a closure) so that loader workers can receive it."""

    def __init__(self, text: Callable[[list[str]], dict[str, torch.Tensor]], collate_fn: Callable[[list[dict]], dict]):
        self.text, self.collate_fn = text, collate_fn

    def __call__(self, samples: list[dict]) -> dict:
        batch = self.collate_fn(samples)
        if len(batch["index"]):
            batch["text"] = dict(self.text(list(batch["texts"])))
        return batch


def drop_undecodable(records: list, visuals: Visuals, skip: SkipCounter) -> list:
    """The records whose media all decode; the others counted in `skip` under "corrupt".

    For evaluations that encode a whole gallery before scoring (retrieval), where a sample cannot be
    dropped half-way: under the skip option, call this on the split first (one extra decode per
    item), so an undecodable image or clip is left out and counted instead of stopping the run.
    """
    kept = []
    for record in records:
        sources = (
            [record.image_0, record.image_1]
            if isinstance(record, NLVR2Record)
            else [record.image]
            if isinstance(record, VQARecord)
            else [_media(record)]
        )
        try:
            for source in sources:
                visuals(source)
        except DataError as err:
            skip.add("corrupt", str(err))
            continue
        kept.append(record)
    return kept


def _media(record) -> ImageSource | Path:
    return record.image if isinstance(record, CaptionRecord) else record.video


def _key(record) -> str:
    return record.image_id if isinstance(record, CaptionRecord) else record.video_id


class CaptionDataset(_Base):
    """Image or video + caption pairs (pre-training, retrieval).

    per_caption=True: one sample per (record, caption) — training. per_caption=False: one sample per
    record with its first caption — evaluation over images/videos. neg_images: add one random other
    image/clip (ITM). neg_texts=K: add K random captions of other images (retrieval training).
    neg_distinct=False draws the ITM negative uniformly over all items, so it may be the sample's
    own image, as the official pre-training datasets do (`get_false_image`); True (the default, and
    always for the text negatives) excludes the positive image.
    """

    def __init__(
        self,
        records: list[CaptionRecord | VideoRecord],
        visuals: Visuals,
        tokenizer,
        max_len: int = 50,
        *,
        per_caption: bool = True,
        neg_images: bool = False,
        neg_texts: int = 0,
        seed: int = 0,
        skip_corrupt: bool = False,
        neg_distinct: bool = True,
    ) -> None:
        super().__init__(tokenizer, max_len, skip_corrupt, seed)
        if not records:
            raise DataError("no records to build a caption dataset from; check the split and data root")
        if (neg_images or neg_texts) and len({_key(r) for r in records}) < 2:
            raise DataError("negatives need at least two different images/videos in the split")
        self.records, self.visuals = records, visuals
        self.neg_images, self.neg_texts, self.neg_distinct = neg_images, neg_texts, neg_distinct
        self.items = [
            (r, c)
            for r, rec in enumerate(records)
            for c in (range(len(rec.captions)) if per_caption else range(min(1, len(rec.captions))))
        ]

    def __len__(self) -> int:
        return len(self.items)

    def _other(self, rng: random.Random, key: str) -> int:
        while True:  # terminates: at least two distinct keys exist (checked in __init__)
            item = rng.randrange(len(self.items))
            if _key(self.records[self.items[item][0]]) != key:
                return item

    def sample(self, index: int) -> dict:
        r, c = self.items[index]
        record = self.records[r]
        out = {"index": index, **self._text(record.captions[c]), "image": self.visuals(_media(record))}
        rng = self._rng(index)
        if self.neg_images:
            other = self._other(rng, _key(record)) if self.neg_distinct else rng.randrange(len(self.items))
            out["neg_image"] = self.visuals(_media(self.records[self.items[other][0]]))
        if self.neg_texts:
            texts = []
            for _ in range(self.neg_texts):
                nr, nc = self.items[self._other(rng, _key(record))]
                texts.append(self.records[nr].captions[nc])
            enc = encode(texts, self.tokenizer, self.max_len)
            out["neg_text_ids"], out["neg_text_masks"] = enc["ids"], enc["masks"]
        return out


def caption_index(records: list[CaptionRecord | VideoRecord]) -> tuple[list[str], list[int]]:
    """All captions of a split (texts) and, for each, the index of its image/video record."""
    texts, owner = [], []
    for i, record in enumerate(records):
        texts.extend(record.captions)
        owner.extend([i] * len(record.captions))
    return texts, owner


class VQADataset(_Base):
    """One sample per question: image, question text, soft-score target over the vocabulary.
    tokenizer None (evaluation of any model): the text stays a string for the model's `BatchText`."""

    def __init__(
        self,
        records: list[VQARecord],
        vocab: AnswerVocab,
        visuals: Visuals,
        tokenizer,
        max_len: int = 50,
        *,
        drop_unanswerable: bool = False,
        seed: int = 0,
        skip_corrupt: bool = False,
    ) -> None:
        super().__init__(tokenizer, max_len, skip_corrupt, seed)
        # The official training set drops questions none of whose answers is in the vocabulary.
        self.records = [r for r in records if vocab.scores(r)] if drop_unanswerable else list(records)
        self.vocab, self.visuals = vocab, visuals

    def __len__(self) -> int:
        return len(self.records)

    def sample(self, index: int) -> dict:
        r = self.records[index]
        return {
            "index": index,
            **self._text(r.question),
            "image": self.visuals(r.image),
            "vqa_target": self.vocab.target(r),
            "question_id": r.question_id,
        }


class NLVR2Dataset(_Base):
    """One sample per statement: both images, the sentence, the label (-100 when unknown).
    tokenizer None (evaluation of any model): the text stays a string for the model's `BatchText`."""

    def __init__(
        self,
        records: list[NLVR2Record],
        visuals: Visuals,
        tokenizer,
        max_len: int = 50,
        *,
        seed: int = 0,
        skip_corrupt: bool = False,
    ) -> None:
        super().__init__(tokenizer, max_len, skip_corrupt, seed)
        self.records, self.visuals = list(records), visuals

    def __len__(self) -> int:
        return len(self.records)

    def sample(self, index: int) -> dict:
        r = self.records[index]
        label = -100 if r.label is None else int(r.label)
        return {
            "index": index,
            **self._text(r.sentence),
            "image_0": self.visuals(r.image_0),
            "image_1": self.visuals(r.image_1),
            "label": label,
            "identifier": r.identifier,
        }
