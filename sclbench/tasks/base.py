"""The Task protocol and the registry: one adapter per benchmark family, driven by a YAML card.

An adapter turns a card (`tasks/<name>.yaml`) + a data root into datasets, batches, a loss for the
trainer and an `evaluate` that returns metrics and per-sample predictions. The engine knows tasks
only through this interface; the CLI only calls it.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from sclbench.adapters.interface import EvalModel, Preprocess
from sclbench.cards import TaskCard, load_card
from sclbench.data.collate import collate
from sclbench.data.datasets import Visuals
from sclbench.data.records import SkipCounter
from sclbench.data.transforms import build_transform
from sclbench.errors import ConfigError, DataError
from sclbench.model import SCLConfig, SCLModel
from sclbench.tasks.precision import EvalPrecision, eval_precision, resolve_precision

_REGISTRY: dict[str, type[Task]] = {}


def register(*families: str) -> Callable[[type[Task]], type[Task]]:
    def wrap(cls: type[Task]) -> type[Task]:
        for family in families:
            _REGISTRY[family] = cls
        return cls

    return wrap


def get_task(name: str, overrides: list[str] | None = None, **kwargs: Any) -> Task:
    """The adapter for `tasks/<name>.yaml` (e.g. "vqa", "f30k", "msrvtt"). The adapters are registered by
    then: importing this module runs `sclbench/tasks/__init__.py` first, which imports every adapter."""
    card = load_card(name, overrides, valid_keys=settings_read_by_code())
    if card.family not in _REGISTRY:
        raise ConfigError(f"task card {name!r} names unknown family {card.family!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[card.family](card, **kwargs)


# Settings the code reads with a default, so that a card may leave them out and an override may still
# set them; every setting a card holds is valid too. Anything else is a typo (see cards.load_card).
OPTIONAL_SETTINGS = frozenset(
    {
        "data.root",
        "data.cache_images",
        "data.num_frames",
        "data.format",
        "train.transform",
        "train.frame_mode",
        "train.neg_texts",
        "train.con_weight",
        "train.chunk_size",
        "eval.transform",
        "eval.mode",
        "eval.k",
        "eval.fusion",
        "eval.ties",
        "train.gather_grad",
        "data.captions",
        "data.dedup_captions",
        "eval.precision",
        "eval.tf32",
        "eval.chunk_pairs",
        "eval.pair_batch_size",
        "eval.shared_fusion",
        "metrics.main",
        "description",
    }
)


def settings_read_by_code() -> set[str]:
    import dataclasses

    from sclbench.engine.trainer import TrainConfig

    return (
        set(OPTIONAL_SETTINGS)
        | {f"train.{f.name}" for f in dataclasses.fields(TrainConfig)}
        | {f"model.{f.name}" for f in dataclasses.fields(SCLConfig)}
    )


@dataclass
class Evaluation:
    """What `Task.evaluate` returns: metrics (percent), per-sample predictions and how they were made."""

    task: str
    split: str
    metrics: dict[str, float]
    scorer: str
    predictions: list[dict[str, Any]] = field(default_factory=list)
    protocol: dict[str, Any] = field(default_factory=dict)
    num_samples: int = 0
    wall_time_s: float = 0.0
    skipped: dict[str, Any] = field(default_factory=dict)
    # Metrics per group of samples (VQA: per_answer_type, per_question_type; percent); {} elsewhere.
    breakdown: dict[str, Any] = field(default_factory=dict)
    # What `submission()` writes beyond the predictions (retrieval: the score matrices); not in the record.
    arrays: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def throughput(self) -> float:
        return self.num_samples / self.wall_time_s if self.wall_time_s else 0.0


class Task(ABC):
    """Base adapter. Subclasses set `model_task`, `main_metric` and implement the data/loss/eval hooks."""

    model_task: str = "pretrain"  # which SCLConfig task preset gives the heads
    default_main_metric: str = "accuracy"  # when the card names no metrics.main

    def __init__(
        self,
        card: TaskCard,
        data_root: str | Path | None = None,
        tokenizer: Any = None,
        model_config: SCLConfig | None = None,
        seed: int = 0,
        skip_corrupt: bool = False,
    ):
        self.card = card
        self.name = card.name
        root = data_root or card.get("data.root")
        if not root:
            raise ConfigError(f"no data root for {self.name}: pass --data-root DIR (or set data.root in the card)")
        self.root = Path(root).expanduser()
        # Checked here, first: otherwise a mistyped --data-root surfaces later as an unrelated error
        # (e.g. "cannot load tokenizer 'roberta-base'", since the tokenizer is looked for under it).
        if not self.root.is_dir():
            raise DataError(
                f"data root {self.root} for {self.name} does not exist or is not a folder: "
                "pass --data-root DIR (the folder holding the benchmark's published files)"
            )
        self.tokenizer = tokenizer
        self.model_config = model_config
        self.seed = seed
        self.skip = SkipCounter() if skip_corrupt else None
        self.limit: int | None = None  # keep only the first N records of every split (quick runs)
        self._records: dict[str, list] = {}

    # ---- configuration ------------------------------------------------------------------------
    @property
    def main_metric(self) -> str:  # type: ignore[override]
        """The selection metric (higher is better): the card's `metrics.main`, else the family's."""
        return str(self.card.get("metrics.main") or type(self).default_main_metric)

    # ---- data validation (before any checkpoint work) -------------------------------------------
    def role_records(self, role: str) -> list:
        """Records of the split(s) that play `role` (train / val / test)."""
        split_records = getattr(self, "split_records", None)
        if split_records:
            return split_records(role)
        split = self.card.get(f"splits.{role}")
        names = [role] if split is None else split if isinstance(split, list) else [split]  # None: pre-training
        return [r for name in names for r in self.records(name)]

    def validate_data(self, roles: list[str]) -> dict[str, int]:
        """Parse the annotation files of these roles and check their media paths (the readers do),
        so that a data problem is reported before a checkpoint is resolved, hashed or loaded."""
        return {role: len(self.role_records(role)) for role in roles}

    def model_overrides(self) -> dict[str, Any]:
        """Model settings this task sets on top of a (pre-trained) config: the card's `model.*`
        entries (official resolutions; the model factory applies them to the official sizes only)."""
        return self.card.section("model")

    def split_name(self, role: str) -> str:
        """The published split that plays `role` (train / val / test), from the card."""
        split = self.card.get(f"splits.{role}")
        if split is None:
            raise ConfigError(f"task card {self.name} defines no {role!r} split")
        return split

    @property
    def max_len(self) -> int:
        return self.model_config.max_text_len if self.model_config else 50

    def visuals(self, train: bool) -> Visuals:
        if self.model_config is None:
            raise ConfigError("set task.model_config before building datasets (the image size comes from it)")
        name = self.card.get("train.transform" if train else "eval.transform", "clip_randaug" if train else "eval")
        frames = int(self.card.get("data.num_frames", 1))
        mode = self.card.get("train.frame_mode", "random") if train else "uniform"
        # data.cache_images: keep decoded tensors in memory when they cannot change between epochs.
        deterministic = name == "eval" and (frames == 1 or mode == "uniform")
        cache = bool(self.card.get("data.cache_images", False)) and deterministic
        return Visuals(
            build_transform(name, self.model_config.image_size), num_frames=frames, frame_mode=mode, cache=cache
        )

    def eval_visuals(self, preprocess: Preprocess) -> Visuals:
        """Images / clips as an evaluated model wants them: its transform, its frames per clip (else the
        card's data.num_frames), uniformly spaced; `data.cache_images` when its transform is deterministic."""
        frames = preprocess.num_frames or int(self.card.get("data.num_frames", 1))
        cache = bool(self.card.get("data.cache_images", False)) and preprocess.deterministic
        return Visuals(preprocess.image, num_frames=frames, frame_mode="uniform", cache=cache)

    def eval_model(self, model: Any, options: dict[str, Any], family: str | None = None) -> EvalModel:
        """The model as the interface `evaluate` talks to: an SCLModel (in-training validation, tests)
        wrapped with this task's tokenizer and eval transform; an EvalModel as it is. With `family`, it
        must implement that family's interface (`interface` names the class, for the message)."""
        from sclbench.adapters.interface import supports
        from sclbench.adapters.scl import as_eval_model

        wrapped = as_eval_model(
            model, self.tokenizer, self.card.get("eval.transform", "eval"), options.get("checkpoint_sha256")
        )
        if not isinstance(wrapped, EvalModel):
            raise ConfigError(f"{self.name}: cannot evaluate a {type(model).__name__} (not an sclbench EvalModel)")
        if family is not None and not supports(wrapped, family):
            interface = {"vqa": "VQAModel", "nlvr2": "NLVR2Model"}.get(family, "RetrievalModel")
            raise ConfigError(
                f"{self.name}: model {wrapped.name!r} ({type(wrapped).__name__}) does not implement {interface}"
            )
        return wrapped

    # ---- data ------------------------------------------------------------------------------------
    def records(self, split: str) -> list:
        """Records of a published split (cached: annotation files are parsed once)."""
        if split not in self._records:
            records = self.read_records(split)
            self._records[split] = records[: self.limit] if self.limit else records
            if not self._records[split]:
                raise DataError(f"{self.name}: split {split!r} under {self.root} holds no samples")
        return self._records[split]

    @abstractmethod
    def read_records(self, split: str) -> list:
        """Plain records of one published split (a format reader's output)."""

    @abstractmethod
    def build_dataset(self, split: str, train: bool) -> Dataset:
        """The torch Dataset of the split that plays `split` (train / val / test) in the card."""

    def collate(self, samples: list[dict]) -> dict:
        return collate(samples)

    def observe(self, batch: dict) -> None:
        """Count samples the skip option dropped (in the main process: workers cannot update it)."""
        if self.skip is not None:
            self.skip.add_batch(batch)

    def annotation_files(self) -> list[Path]:
        """Files whose content defines the benchmark (hashed into the result's data fingerprint)."""
        return sorted(
            p for p in self.root.rglob("*") if p.suffix in (".json", ".jsonl", ".csv", ".txt", ".tsv", ".pkl")
        )

    # ---- training and evaluation ---------------------------------------------------------------
    @abstractmethod
    def loss(self, model: SCLModel, batch: dict, ctx: Any = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean loss over the micro-batch and float logs, for the trainer."""

    def evaluate(
        self, model: SCLModel, split: str, batch_size: int = 32, num_workers: int | None = None, **options: Any
    ) -> Evaluation:
        raise ConfigError(f"task {self.name} has no evaluation protocol (evaluate a fine-tuning task instead)")

    def submission(self, evaluation: Evaluation, out_dir: Path) -> Path | None:
        """Write the benchmark's official submission file, where it has one."""
        return None

    # ---- shared evaluation loop ----------------------------------------------------------------
    def eval_loader(
        self,
        dataset: Dataset,
        batch_size: int,
        num_workers: int | None,
        device: torch.device | str = "cpu",
        collate_fn: Callable[[list[dict]], dict] | None = None,
    ) -> DataLoader:
        """num_workers None: the device's default (engine/loader.py: CPUs per local rank on CUDA, 0 on CPU).
        collate_fn: instead of the task's own (e.g. one that runs the model's tokenizer on the batch)."""
        from sclbench.engine.loader import loader_settings
        from sclbench.engine.sampler import ShardedEvalSampler

        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=ShardedEvalSampler(len(dataset)),
            collate_fn=collate_fn or self.collate,
            **loader_settings(device, num_workers).kwargs(),
        )

    def eval_precision(self, model: SCLModel, options: dict[str, Any]) -> EvalPrecision:
        """The evaluate options `precision` / `tf32`, else the card's eval.precision / eval.tf32."""
        return eval_precision(options, self.card, model)

    def requested_protocol(self, options: dict[str, Any], device_type: str) -> dict[str, Any]:
        """The protocol entries an evaluation with these options will record, known before it runs
        (for skipping an evaluation whose record exists: compare them with the record's protocol)."""
        return resolve_precision(options, self.card, device_type).protocol()

    def run_eval(
        self,
        model: SCLModel,
        dataset: Dataset,
        batch_size: int,
        num_workers: int | None,
        step: Callable[[SCLModel, dict], list[dict]],
        precision: EvalPrecision | None = None,
        collate_fn: Callable[[list[dict]], dict] | None = None,
    ) -> tuple[list[dict], float]:
        """Run `step` over this rank's shard (no grad, eval mode, under `precision`'s autocast / TF32
        setting; fp32 when None); all ranks' outputs, in order."""
        from sclbench.engine.sampler import gather_in_order
        from sclbench.engine.utils import to_device

        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        start = time.perf_counter()
        outputs: list[dict] = []
        precision = precision or EvalPrecision(device_type=device.type)
        with torch.no_grad(), precision.context():
            for batch in self.eval_loader(dataset, batch_size, num_workers, device, collate_fn):
                self.observe(batch)
                if not len(batch["index"]):
                    continue
                outputs.extend(step(model, to_device(batch, device)))
        model.train(was_training)
        return gather_in_order(outputs), time.perf_counter() - start


def list_tasks() -> list[str]:
    from sclbench.cards import available_cards

    return available_cards()
