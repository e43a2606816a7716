"""Pre-training on image-text and video-text corpora with the SCL objectives.

One vision encoder serves both kinds of data, so one run can mix COCO/VG/SBU/CC3M images with
WebVid-style clips (the official code never wired this up, scl-official.md §8.28). Batches are
modality-pure: images of all image corpora mixed in one batch (the official ConcatDataset), clips in
their own batches. As the official DistributedSampler does, batches are re-formed every epoch from a
(seed, epoch) permutation (`train.batch_forming: fixed` keeps the chunks of epoch 0 instead), and the
trainer distributes whole batches (its per-device batch is one batch). Each sample's ITM negative is
drawn from its own corpus (`train.itm_negatives: modality` draws from all corpora of its kind).
Corpora with `format: shards` are streamed from webdataset shards (sclbench.data.streaming).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from sclbench.common.seeding import derive_seed
from sclbench.data import shards as S
from sclbench.data.collate import collate
from sclbench.data.datasets import CaptionDataset, Visuals
from sclbench.data.formats import pretrain as fmt
from sclbench.data.masking import MaskSpec
from sclbench.data.streaming import Corpus, StreamingBatches
from sclbench.data.transforms import build_transform
from sclbench.engine.sampler import SeededDataset
from sclbench.errors import ConfigError
from sclbench.model import SCLModel
from sclbench.objectives.completion import CompletionConfig
from sclbench.objectives.pretrain import OBJECTIVES, PretrainConfig, PretrainObjective
from sclbench.tasks.base import Task, register

IMAGE_READERS = {"coco": fmt.read_coco_pretrain, "vg": fmt.read_vg, "sbu": fmt.read_sbu, "cc3m": fmt.read_cc3m}
VIDEO_CORPORA = ("webvid",)
FORMATS = ("files", "shards")
BATCH_FORMING = ("epoch", "fixed")
NEGATIVE_POOLS = ("corpus", "modality")
# The CVPR (v1) code is the only official one that pre-trains on video: itm, mlm, con, scl (global
# completion with tube masking, no local term), at 224 px (scl/config.py "224 for video").
VIDEO_OBJECTIVES = ("mlm", "itm", "itc", "mgsc")


class ChunkedDataset(Dataset):
    """Item i = a collated batch of samples of ONE kind (image or video), formed per epoch.

    `groups` maps a kind to its datasets (one per corpus, or one per kind) and batch size; each epoch
    the (dataset, item) pairs of a kind are permuted from (seed, epoch) and cut into batches (the tail
    that does not fill one is dropped), so the number of items is the same every epoch."""

    def __init__(self, groups: dict[str, tuple[list[Dataset], int]], seed: int = 0, reform_every_epoch: bool = True):
        self.groups, self.seed, self.reform = groups, seed, reform_every_epoch
        self.chunks: list[tuple[str, list[tuple[int, int]]]] = []
        self.epoch = -1
        self.set_epoch(0)
        if not self.chunks:
            raise ConfigError(
                f"every modality has fewer samples than one batch ({ {k: size for k, (_, size) in groups.items()} })"
            )

    def set_epoch(self, epoch: int) -> None:
        for datasets, _ in self.groups.values():
            for dataset in datasets:
                if hasattr(dataset, "set_epoch"):
                    dataset.set_epoch(epoch)  # negatives are drawn per (seed, epoch, index)
        forming_epoch = epoch if self.reform else 0
        if forming_epoch == self.epoch:
            return
        self.epoch = forming_epoch
        rng = random.Random(derive_seed(self.seed, forming_epoch))
        self.chunks = []
        for kind, (datasets, size) in self.groups.items():
            items = [(d, i) for d, dataset in enumerate(datasets) for i in range(len(dataset))]
            rng.shuffle(items)
            self.chunks.extend((kind, items[s : s + size]) for s in range(0, len(items) - size + 1, size))

    def __len__(self) -> int:
        return len(self.chunks)

    def item_kinds(self) -> list[int]:
        """Each item's kind as an int (the same every epoch: the kinds' chunk counts do not change), so
        that on several processes the trainer's sampler gives all ranks one kind per micro-step."""
        ids = {kind: i for i, kind in enumerate(self.groups)}
        return [ids[kind] for kind, _ in self.chunks]

    def probe_items(self) -> list[int]:
        """The first item of each kind when batches of several kinds mix (images and clips use different
        parameters): the trainer's parameter-use probe (engine/used_params.py) looks at one of each."""
        first: dict[str, int] = {}
        for i, (kind, _) in enumerate(self.chunks):
            first.setdefault(kind, i)
        return sorted(first.values()) if len(first) > 1 else []

    def __getitem__(self, i: int) -> dict:
        kind, items = self.chunks[i]
        datasets = self.groups[kind][0]
        return collate([datasets[d][j] for d, j in items])


class PretrainBatches(SeededDataset):
    """The trainer's seeded wrapper that also passes the epoch on (re-forms the batches, re-draws the
    negatives); the trainer uses a SeededDataset as given instead of wrapping it again."""

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.dataset.set_epoch(epoch)


@register("pretrain")
class PretrainTask(Task):
    default_main_metric = "loss"

    @property
    def model_task(self) -> str:  # type: ignore[override]
        return "pretrain_video" if self.has_video else "pretrain"

    @property
    def has_video(self) -> bool:
        return any(c["name"] in VIDEO_CORPORA for c in self.corpora)

    @property
    def corpora(self) -> list[dict[str, Any]]:
        corpora = self.card.get("data.corpora") or []
        if not corpora:
            raise ConfigError(f"task card {self.name}: list the corpora under data.corpora")
        for c in corpora:
            if c.get("name") not in (*IMAGE_READERS, *VIDEO_CORPORA):
                raise ConfigError(
                    f"unknown corpus {c.get('name')!r}; known: {sorted(IMAGE_READERS) + list(VIDEO_CORPORA)}"
                )
            if c.get("format", "files") not in FORMATS:
                raise ConfigError(f"corpus {c['name']}: format {c.get('format')!r}; choose {' or '.join(FORMATS)}")
        return corpora

    def option(self, key: str, choices: tuple[str, ...]) -> str:
        value = str(self.card.get(key, choices[0]))
        if value not in choices:
            raise ConfigError(f"task card {self.name}: {key} is {value!r}; choose one of {', '.join(choices)}")
        return value

    def model_overrides(self) -> dict[str, Any]:
        """The card's model settings, with the official video resolution (`model.video_image_size`)
        when every corpus is video (the factory applies resolutions to the base sizes only). The
        official run has one image_size (288, "224 for video"): a mixed run keeps 288 for both."""
        overrides = self.card.section("model")
        video_size = overrides.pop("video_image_size", None)
        if video_size and all(c["name"] in VIDEO_CORPORA for c in self.corpora):
            overrides["image_size"] = int(video_size)
        return overrides

    def read_records(self, split: str) -> list:
        raise ConfigError("pre-training reads corpora, not splits: use build_dataset('train')")

    def split_records(self, role: str) -> list:
        """All records of the file corpora (parsed once, cached); shard corpora: their index is read."""
        if role != "train":
            raise ConfigError(f"pre-training has no {role!r} data: its corpora are training data")
        for c in self.corpora:
            if c.get("format", "files") == "shards":
                S.read_index(self.corpus_root(c), c["name"])
        return [r for c in self.corpora if c.get("format", "files") == "files" for r in self.corpus_records(c)]

    def corpus_root(self, corpus: dict[str, Any]) -> Path:
        return self.root / corpus.get("root", corpus["name"])

    def corpus_records(self, corpus: dict[str, Any]) -> list:
        key = f"corpus:{corpus['name']}:{corpus.get('root', corpus['name'])}"
        if key not in self._records:
            self._records[key] = self._read_corpus(corpus)
        return self._records[key]

    def _read_corpus(self, corpus: dict[str, Any]) -> list:
        root = self.corpus_root(corpus)
        if corpus["name"] == "webvid":
            records = fmt.read_webvid(
                root / corpus.get("meta", "webvid_train.tsv"), root / corpus.get("videos", "videos"), skip=self.skip
            )
        else:
            records = IMAGE_READERS[corpus["name"]](root, skip=self.skip)
        return records[: self.limit] if self.limit else records

    def _visuals(self, kind: str, transform) -> Visuals:
        if kind == "image":
            return Visuals(transform, num_frames=1, frame_mode="uniform")
        # clips: the official video_train_transform_keys ["video_randaug"], card key train.video_transform
        clip = build_transform(self.card.get("train.video_transform", "video_randaug"), self.model_config.image_size)
        return Visuals(
            clip,
            num_frames=int(self.card.get("data.num_frames", 4)),
            frame_mode=self.card.get("train.frame_mode", "random"),
        )

    def batch_sizes(self) -> dict[str, int]:
        """Per-device batch of each kind: official per_gpu_batchsize 16, video_per_gpu_batchsize 6."""
        size = int(self.card.get("train.chunk_size", 16))
        return {"image": size, "video": int(self.card.get("train.video_chunk_size", size))}

    def build_dataset(self, split: str = "train", train: bool = True) -> Dataset:
        transform = build_transform(self.card.get("train.transform", "pretrain_train"), self.model_config.image_size)
        pool = self.option("train.itm_negatives", NEGATIVE_POOLS)
        distinct = bool(self.card.get("train.itm_negative_distinct", False))
        streamed = any(c.get("format", "files") == "shards" for c in self.corpora)
        corpora: list[Corpus] = []
        for c in self.corpora:
            kind = "video" if c["name"] in VIDEO_CORPORA else "image"
            if c.get("format", "files") == "shards":
                corpora.append(Corpus(c["name"], kind, index=S.read_index(self.corpus_root(c), c["name"])))
            else:
                corpora.append(
                    Corpus(
                        c["name"],
                        kind,
                        dataset=self._caption_dataset(self.corpus_records(c), kind, transform, distinct),
                    )
                )
        if pool == "modality" and not streamed:  # one negative pool per kind (sclbench < 0.3)
            merged = {}
            for kind in {c.kind for c in corpora}:
                records = [r for c in corpora if c.kind == kind for r in c.dataset.records]
                merged[kind] = Corpus(kind, kind, dataset=self._caption_dataset(records, kind, transform, distinct))
            corpora = list(merged.values())
        elif pool == "modality":
            raise ConfigError(
                "train.itm_negatives: modality is not available with shard corpora (a stream "
                "draws negatives from its own corpus); use corpus"
            )
        sizes = self.batch_sizes()
        if streamed:
            return StreamingBatches(
                corpora,
                {k: self._visuals(k, transform) for k in ("image", "video")},
                self.tokenizer,
                self.max_len,
                sizes,
                seed=self.seed,
                shuffle_buffer=int(self.card.get("data.shuffle_buffer", 1000)),
                negative_pool=int(self.card.get("data.negative_pool", 256)),
                neg_distinct=distinct,
                skip_corrupt=self.skip is not None,
            )
        groups: dict[str, tuple[list[Dataset], int]] = {}
        for corpus in corpora:
            groups.setdefault(corpus.kind, ([], sizes[corpus.kind]))[0].append(corpus.dataset)
        reform = self.option("train.batch_forming", BATCH_FORMING) == "epoch"
        return PretrainBatches(ChunkedDataset(groups, self.seed, reform_every_epoch=reform), self.seed)

    def _caption_dataset(self, records: list, kind: str, transform, distinct: bool) -> CaptionDataset:
        return CaptionDataset(
            records,
            self._visuals(kind, transform),
            self.tokenizer,
            self.max_len,
            per_caption=True,
            neg_images=True,
            seed=self.seed,
            skip_corrupt=self.skip is not None,
            neg_distinct=distinct,
        )

    def collate(self, samples: list[dict]) -> dict:
        return samples[0]  # items are already whole batches

    def objective(self, video: bool = False) -> PretrainObjective:
        key = "video_objectives" if video else "objectives"
        objectives = tuple(self.card.get(key, VIDEO_OBJECTIVES if video else OBJECTIVES))
        completion = CompletionConfig(**self.card.section("completion"))
        # train.gather_grad (official | exact, objectives/losses.py): passed only when the card sets it.
        gather = {"gather_grad": str(v)} if (v := self.card.get("train.gather_grad")) is not None else {}
        cfg = PretrainConfig(
            objectives=objectives,
            mlm_prob=float(self.card.get("mlm_prob", 0.15)),
            con_weight=float(self.card.get("con_weight", 0.5)),
            completion=completion,
            **gather,
        )
        return PretrainObjective(cfg, MaskSpec.from_tokenizer(self.tokenizer))

    def loss(self, model: SCLModel, batch: dict, ctx: Any = None) -> tuple[torch.Tensor, dict[str, float]]:
        self.observe(batch)
        if not hasattr(self, "_objectives"):
            self._objectives = {False: self.objective(False), True: self.objective(True)}
        video = batch["images"].shape[1] > 1  # [B, F, 3, H, W]: clips have F > 1 frames
        return self._objectives[video](model, batch, ctx)

    def annotation_files(self) -> list[Path]:
        return sorted(
            p for c in self.corpora for p in self.corpus_root(c).rglob("*") if p.suffix in (".json", ".csv", ".tsv")
        )
