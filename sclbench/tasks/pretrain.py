"""Pre-training on image-text and video-text corpora with the SCL objectives.

One vision encoder serves both kinds of data, so one run can mix COCO/VG/SBU/CC3M images with
WebVid-style clips (the official code never wired this up, scl-official.md §8.28). Batches are kept
modality-pure: the samples of each corpus kind are cut into fixed chunks of `chunk_size`, and the
trainer shuffles and distributes whole chunks (its per-device batch is one chunk).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from sclbench.data.collate import collate
from sclbench.data.datasets import CaptionDataset, Visuals
from sclbench.data.formats import pretrain as fmt
from sclbench.data.masking import MaskSpec
from sclbench.data.transforms import build_transform
from sclbench.errors import ConfigError
from sclbench.model import SCLModel
from sclbench.objectives.completion import CompletionConfig
from sclbench.objectives.pretrain import OBJECTIVES, PretrainConfig, PretrainObjective
from sclbench.tasks.base import Task, register

IMAGE_READERS = {"coco": fmt.read_coco_pretrain, "vg": fmt.read_vg, "sbu": fmt.read_sbu, "cc3m": fmt.read_cc3m}
VIDEO_CORPORA = ("webvid",)


class ChunkedDataset(Dataset):
    """Item i = a collated batch of `chunk_size` samples from ONE of the datasets (fixed, seeded)."""

    def __init__(self, datasets: list[Dataset], chunk_size: int, seed: int = 0):
        self.datasets = datasets
        self.chunks: list[tuple[int, list[int]]] = []
        rng = random.Random(seed)
        for d, dataset in enumerate(datasets):
            order = list(range(len(dataset)))
            rng.shuffle(order)
            for start in range(0, len(order) - chunk_size + 1, chunk_size):
                self.chunks.append((d, order[start:start + chunk_size]))
        if not self.chunks:
            raise ConfigError(f"every corpus is smaller than one chunk of {chunk_size} samples")

    def set_epoch(self, epoch: int) -> None:
        for dataset in self.datasets:
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> dict:
        d, indices = self.chunks[i]
        return collate([self.datasets[d][j] for j in indices])


@register("pretrain")
class PretrainTask(Task):
    main_metric = "loss"

    @property
    def model_task(self) -> str:  # type: ignore[override]
        return "pretrain_video" if any(c["name"] in VIDEO_CORPORA for c in self.corpora) else "pretrain"

    @property
    def corpora(self) -> list[dict[str, Any]]:
        corpora = self.card.get("data.corpora") or []
        if not corpora:
            raise ConfigError(f"task card {self.name}: list the corpora under data.corpora")
        for c in corpora:
            if c.get("name") not in (*IMAGE_READERS, *VIDEO_CORPORA):
                raise ConfigError(f"unknown corpus {c.get('name')!r}; known: {sorted(IMAGE_READERS) + list(VIDEO_CORPORA)}")
        return corpora

    def read_records(self, split: str) -> list:
        raise ConfigError("pre-training reads corpora, not splits: use build_dataset('train')")

    def corpus_records(self, corpus: dict[str, Any]) -> list:
        root = self.root / corpus.get("root", corpus["name"])
        if corpus["name"] == "webvid":
            return fmt.read_webvid(root / corpus.get("meta", "webvid_train.tsv"), root / corpus.get("videos", "videos"),
                                   skip=self.skip)
        return IMAGE_READERS[corpus["name"]](root, skip=self.skip)

    def build_dataset(self, split: str = "train", train: bool = True) -> ChunkedDataset:
        size = self.model_config.image_size
        name = self.card.get("train.transform", "pretrain_train")
        transform = build_transform(name, size)
        video_mode = self.card.get("train.frame_mode", "random")
        cache = bool(self.card.get("data.cache_images", False)) and name == "eval"  # deterministic only
        images, videos = [], []
        for corpus in self.corpora:
            records = self.corpus_records(corpus)
            records = records[: self.limit] if self.limit else records
            (videos if corpus["name"] in VIDEO_CORPORA else images).extend(records)
        datasets = []
        for records, frames, mode in ((images, 1, "uniform"), (videos, int(self.card.get("data.num_frames", 4)), video_mode)):
            if records:
                visuals = Visuals(transform, num_frames=frames, frame_mode=mode, cache=cache and mode == "uniform")
                datasets.append(CaptionDataset(records, visuals,
                                               self.tokenizer, self.max_len, per_caption=True, neg_images=True,
                                               seed=self.seed, skip_corrupt=self.skip is not None))
        return ChunkedDataset(datasets, int(self.card.get("train.chunk_size", 16)), self.seed)

    def collate(self, samples: list[dict]) -> dict:
        return samples[0]  # items are already whole batches

    def objective(self) -> PretrainObjective:
        objectives = tuple(self.card.get("objectives", OBJECTIVES))
        completion = CompletionConfig(**self.card.section("completion"))
        cfg = PretrainConfig(objectives=objectives, mlm_prob=float(self.card.get("mlm_prob", 0.15)),
                             con_weight=float(self.card.get("con_weight", 0.5)), completion=completion)
        return PretrainObjective(cfg, MaskSpec.from_tokenizer(self.tokenizer))

    def loss(self, model: SCLModel, batch: dict, ctx: Any = None) -> tuple[torch.Tensor, dict[str, float]]:
        self.observe(batch)
        if not hasattr(self, "_objective"):
            self._objective = self.objective()
        return self._objective(model, batch, ctx)

    def annotation_files(self) -> list[Path]:
        return sorted(p for c in self.corpora for p in (self.root / c.get("root", c["name"])).rglob("*")
                      if p.suffix in (".json", ".csv", ".tsv"))
