"""The user-level jobs, as library functions the CLI and the demo call: fine-tune, evaluate, pre-train.

Each resolves a checkpoint (path or registered name), a tokenizer and a task card, then hands over
to the engine (training) or the task adapter (evaluation) and writes a result record.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sclbench.data.tokenizer import load_tokenizer
from sclbench.engine import distributed as D
from sclbench.engine.trainer import Trainer, TrainConfig
from sclbench.engine.utils import seed_everything
from sclbench.errors import CheckpointError, ConfigError
from sclbench.model.hub import ResolvedCheckpoint, resolve
from sclbench.model import SCLConfig, SCLModel
from sclbench.model.checkpoint import CONFIG_NAME, WEIGHTS_NAME, extract_state_dict, load_into, read_checkpoint
from sclbench.results import ResultRecord, environment_info, fingerprint_files
from sclbench.tasks.base import Evaluation, Task, get_task

TRAIN_KEYS = {f.name for f in dataclasses.fields(TrainConfig)}


@dataclass
class LoadedModel:
    model: SCLModel
    tokenizer: Any
    checkpoint: ResolvedCheckpoint | None
    zero_shot: bool = False
    report: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


# ---- tokenizer and model ------------------------------------------------------------------------
def find_tokenizer(option: str | None, ckpt_dir: Path | None, task: Task, config_name: str) -> Any:
    """--tokenizer, else the checkpoint directory's own, else the data's (synthetic layout), else config."""
    candidates = [option] if option else []
    if ckpt_dir is not None and (ckpt_dir / "tokenizer.json").is_file():
        candidates.append(str(ckpt_dir))
    for guess in (task.root / "tokenizer", task.root.parent / "tokenizer"):
        if (guess / "tokenizer.json").is_file():
            candidates.append(str(guess))
    candidates.append(config_name or "roberta-base")
    return load_tokenizer(candidates[0])


def _fit_vocab(config: SCLConfig, tokenizer: Any) -> SCLConfig:
    """A tokenizer of another size than the config's (the tiny model's own BPE) sets the vocabulary."""
    if len(tokenizer) != config.vocab_size or tokenizer.mask_token_id != config.mask_token_id:
        config = dataclasses.replace(config, vocab_size=len(tokenizer), mask_token_id=tokenizer.mask_token_id,
                                     pad_token_id=tokenizer.pad_token_id)
    return config


def load_model(task: Task, ckpt: str | None, preset: str = "base", tokenizer: str | None = None) -> LoadedModel:
    """The model for `task` from nothing (preset), an sclbench directory, or an official checkpoint."""
    resolved = resolve(ckpt) if ckpt else None
    path = resolved.path if resolved else None
    if path is not None and path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            raise CheckpointError(f"{path} is a directory without {CONFIG_NAME}: not an sclbench checkpoint")
        base = SCLConfig.load(path / CONFIG_NAME)
        tok = find_tokenizer(tokenizer, path, task, base.tokenizer)
        config = task.configure_model(base)
        model = SCLModel(config)
        from safetensors.torch import load_file

        sd = load_file(str(path / WEIGHTS_NAME))
        report = load_into(model, sd, str(path))
    elif path is not None:
        obj = read_checkpoint(path)
        sd = extract_state_dict(obj, str(path))
        base = SCLConfig.base(task.model_task)
        if "vision_transformer.visual.temporal_embed" in sd:
            base.use_temporal_embed = True
        tok = find_tokenizer(tokenizer, None, task, base.tokenizer)
        model = SCLModel(task.configure_model(_fit_vocab(base, tok)))
        report = load_into(model, sd, str(path))
    else:
        tok = find_tokenizer(tokenizer, None, task, "" if preset == "tiny" else "roberta-base")
        model = SCLModel(task.configure_model(_fit_vocab(SCLConfig.preset(preset, task.model_task), tok)))
        return LoadedModel(model, tok, None, zero_shot=False, report="freshly initialised")
    zero_shot = any("rank_output :=" in a for a in report.adapted)
    return LoadedModel(model, tok, resolved, zero_shot=zero_shot, report=report.summary())


def prepare(task_name: str, ckpt: str | None, data_root: str | None, overrides: list[str] | None = None,
            preset: str = "base", tokenizer: str | None = None, seed: int = 0, limit: int | None = None,
            skip_corrupt: bool = False) -> tuple[Task, LoadedModel]:
    task = get_task(task_name, overrides, data_root=data_root, seed=seed, skip_corrupt=skip_corrupt)
    task.limit = limit
    seed_everything(seed)  # freshly initialised weights (a new model, new heads) depend on the seed
    loaded = load_model(task, ckpt, preset, tokenizer)
    task.tokenizer, task.model_config = loaded.tokenizer, loaded.model.config
    return task, loaded


# ---- jobs ---------------------------------------------------------------------------------------
def train_config(task: Task, out_dir: str | Path, **options: Any) -> TrainConfig:
    """The card's official hyper-parameters, then explicit options (None = keep)."""
    values = {k: v for k, v in task.card.section("train").items() if k in TRAIN_KEYS}
    values.update({k: v for k, v in options.items() if v is not None and k in TRAIN_KEYS})
    values.setdefault("select_metric", task.main_metric)
    values["out_dir"] = str(out_dir)
    return TrainConfig(**values)


def finetune(task_name: str, ckpt: str | None, data_root: str | None, out_dir: str | Path,
             overrides: list[str] | None = None, preset: str = "base", tokenizer: str | None = None,
             limit: int | None = None, eval_batch_size: int = 32, resume: bool = True, skip_corrupt: bool = False,
             **train_options: Any) -> dict[str, Any]:
    """Fine-tune on the card's train split, select on its val split; returns the trainer summary."""
    seed = int(train_options.get("seed") or 0)
    task, loaded = prepare(task_name, ckpt, data_root, overrides, preset, tokenizer, seed, limit, skip_corrupt)
    cfg = train_config(task, out_dir, **train_options)
    train_set = task.build_dataset("train", train=True)

    def evaluate_fn(model: SCLModel) -> dict[str, float]:
        return task.evaluate(model, "val", batch_size=eval_batch_size, num_workers=cfg.num_workers).metrics

    selectable = task.card.get("splits.val") != task.card.get("splits.test")
    if not selectable:  # e.g. MSRVTT 1k-A: no validation split, and selecting on test is not allowed
        print(f"{task.name}: the val split is the test split; no checkpoint selection (final weights are used)")
        cfg.select_metric = None
    trainer = Trainer(loaded.model, task.loss, train_set, task.collate, cfg, evaluate_fn if selectable else None)
    summary = trainer.fit(resume=resume)
    if D.is_main():
        out = Path(out_dir)
        for sub in ("best", "final"):
            if (out / sub / CONFIG_NAME).is_file():
                loaded.tokenizer.save_pretrained(str(out / sub))
        if not (out / "final" / CONFIG_NAME).is_file():
            loaded.model.save_pretrained(out / "final", tokenizer=loaded.tokenizer)
    summary["load_report"] = loaded.report
    return summary


def evaluate(task_name: str, ckpt: str | None, split: str, data_root: str | None,
             results_dir: str | Path = "results", overrides: list[str] | None = None, preset: str = "base",
             tokenizer: str | None = None, limit: int | None = None, batch_size: int = 32, num_workers: int = 0,
             checkpoint_name: str | None = None, submission_dir: str | Path | None = None,
             device: str | None = None, seed: int = 0, skip_corrupt: bool = False,
             **eval_options: Any) -> tuple[Evaluation, Path | None]:
    """Evaluate on the card's `split` role (val / test), write the record (rank 0); returns both."""
    if split not in ("val", "test"):
        raise ConfigError(f"--split {split!r}: use val (model selection) or test (report once)")
    device_obj = D.init_distributed() if device is None else torch.device(device)
    task, loaded = prepare(task_name, ckpt, data_root, overrides, preset, tokenizer, seed, limit, skip_corrupt)
    model = loaded.model.to(device_obj)
    sha = loaded.checkpoint.sha256 if loaded.checkpoint else None
    started = time.perf_counter()
    ev = task.evaluate(model, split, batch_size=batch_size, num_workers=num_workers, zero_shot=loaded.zero_shot,
                       checkpoint_sha256=sha, **eval_options)
    wall = time.perf_counter() - started
    published = task.card.get(f"splits.{split}", split)
    published = "+".join(published) if isinstance(published, list) else str(published)
    ckpt_record = loaded.checkpoint.as_record() if loaded.checkpoint else {"name": "untrained", "sha256": None}
    if checkpoint_name:
        ckpt_record["name"] = checkpoint_name
    record = ResultRecord(
        task=task.name, split=published, metrics=ev.metrics, scorer=ev.scorer,
        protocol={"role": split, **ev.protocol, "limit": limit, "skipped": ev.skipped or None},
        config={"model": model.config.to_dict(), "card": task.card.data, "overrides": overrides or []},
        checkpoint=ckpt_record, data_fingerprint=fingerprint_files(task.annotation_files()),
        world_size=D.world_size(), wall_time_s=round(wall, 3), throughput=round(ev.throughput, 3), seed=seed,
        **environment_info(),
    )
    path = None
    if D.is_main():
        path = record.save(results_dir, predictions=ev.predictions)
        if submission_dir is not None:
            task.submission(ev, Path(submission_dir))
    return ev, path


def pretrain(card: str, ckpt: str | None, data_root: str | None, out_dir: str | Path,
             overrides: list[str] | None = None, preset: str = "base", tokenizer: str | None = None,
             limit: int | None = None, resume: bool = True, **train_options: Any) -> dict[str, Any]:
    """Pre-train (or continue pre-training) with the SCL objectives; the card lists the corpora."""
    seed = int(train_options.get("seed") or 0)
    task, loaded = prepare(card, ckpt, data_root, overrides, preset, tokenizer, seed, limit)
    cfg = train_config(task, out_dir, **train_options)
    cfg.select_metric = None  # no validation split: the official "val" was augmented training data
    trainer = Trainer(loaded.model, task.loss, task.build_dataset("train"), task.collate, cfg)
    summary = trainer.fit(resume=resume)
    if D.is_main():
        loaded.model.save_pretrained(Path(out_dir) / "final", tokenizer=loaded.tokenizer,
                                     meta={"objectives": task.card.get("objectives"), "steps": summary.get("step")})
    return summary
