"""The user-level jobs, as library functions the CLI and the demo call: fine-tune, evaluate, pre-train.

Each reads the task card (strict overrides), validates the data it will read, builds the model through
the one factory (`sclbench.model.factory.create_model`), then hands over to the engine (training) or
the task adapter (evaluation) and writes a result record carrying the recipe.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from sclbench.adapters.registry import SCL
from sclbench.app.models import checkpoint_record, is_scl, prepare_any, record_name
from sclbench.app.selection import apply_selection
from sclbench.common.io import check_output_dir
from sclbench.common.runlock import run_folder_lock
from sclbench.engine import distributed as D
from sclbench.engine.loader import loader_settings
from sclbench.engine.trainer import TrainConfig, Trainer
from sclbench.engine.utils import seed_everything
from sclbench.errors import ConfigError
from sclbench.model import SCLModel
from sclbench.model.checkpoint import CONFIG_NAME
from sclbench.model.factory import LoadedModel, create_model
from sclbench.objectives.balance import loss_balance
from sclbench.results import ResultRecord, environment_info, fingerprint_files
from sclbench.tasks.base import Evaluation, Task, get_task

TRAIN_KEYS = {f.name for f in dataclasses.fields(TrainConfig)}

SELECTION_KEYS = (
    "select_metric",
    "best_metric",
    "selected_from",
    "selected_step",
    "selected_epoch",
    "val_check_interval",
    "val_interval_steps",
    "history",
)

# Heads an evaluated checkpoint must bring trained (retrieval may score a pre-trained model zero-shot).
EVAL_HEADS = {"vqa": ("vqa",), "nlvr2": ("nlvr2",)}

# Which roles' data a job reads (validated before any checkpoint work).
JOB_ROLES = {"finetune": ["train", "val"], "pretrain": ["train"]}


def is_main_process() -> bool:
    """True on the process that prints (rank 0 under torchrun, the only process otherwise)."""
    return D.is_main()


def encoder_init_of(task: Task, ckpt: str | None, preset: str) -> dict[str, str | None] | None:
    """The card's `encoder_init` (pre-training: CLIP + RoBERTa, as the official code starts) for a fresh
    base model; the tiny preset and continued pre-training (`--ckpt`) start from what they have."""
    init = task.card.get("encoder_init")
    if ckpt is not None or preset != "base" or not init:
        return None
    if not isinstance(init, dict) or set(init) - {"vision", "text"}:
        raise ConfigError(
            f"task card {task.name}: encoder_init must be {{vision: NAME, text: NAME}} (or null "
            f"for random encoders), got {init!r}"
        )
    return {k: (str(v) if v else None) for k, v in init.items()}


def prepare(
    task_name: str,
    ckpt: str | None,
    data_root: str | None,
    overrides: list[str] | None = None,
    preset: str = "base",
    tokenizer: str | None = None,
    seed: int = 0,
    limit: int | None = None,
    skip_corrupt: bool = False,
    roles: list[str] | None = None,
    trust_pickle: bool = False,
) -> tuple[Task, LoadedModel]:
    """The task (card + overrides, strict) and its model. The data of `roles` is read and checked
    first, so that a data problem surfaces before a checkpoint is resolved, hashed or loaded."""
    task = get_task(task_name, overrides, data_root=data_root, seed=seed, skip_corrupt=skip_corrupt)
    task.limit = limit
    if roles and "train" in roles and task.card.family != "pretrain":
        task.selection = apply_selection(task.card)  # the protocol's training splits (e.g. F30K train + val)
    if roles:
        task.validate_data(roles)
    seed_everything(seed)  # freshly initialised weights (a new model, new heads) depend on the seed
    evaluating = bool(roles) and "train" not in roles
    loaded = create_model(
        ckpt,
        task=task.model_task,
        preset=preset,
        model_overrides=task.model_overrides(),
        tokenizer=tokenizer,
        encoder_init=encoder_init_of(task, ckpt, preset),
        require_heads=EVAL_HEADS.get(task.card.family, ()) if evaluating else (),
        trust_pickle=trust_pickle,
    )
    task.tokenizer, task.model_config = loaded.tokenizer, loaded.model.config
    return task, loaded


def recipe(
    task: Task,
    overrides: list[str] | None,
    loaded: LoadedModel | None,
    world: int | None = None,
    model: str = SCL,
) -> dict[str, Any]:
    """What a run record says about how its numbers were made (see docs/fidelity.md); a training run
    (`world` = its process count) adds its loss balance: per-term weights and negatives. `loaded` None:
    a model built by its own factory (`--model`), which says where its weights came from itself."""
    out = {
        "card": task.card.name,
        "overrides": list(overrides or []),
        "init": loaded.init if loaded is not None else f"--model {model}: built by its own factory",
        "init_detail": loaded.meta.get("encoder_init") if loaded is not None else None,
        "train": task.card.section("train"),
        "eval": task.card.section("eval"),
        "data": {k: v for k, v in task.card.section("data").items() if k != "root"},
        "protocol": task.card.section("protocol"),
    }
    if world is not None:
        out["loss_balance"] = loss_balance(task.card, world)
    return out


# ---- jobs ---------------------------------------------------------------------------------------
def train_config(task: Task, out_dir: str | Path, **options: Any) -> TrainConfig:
    """The card's official hyper-parameters, then explicit options (None = keep)."""
    values = {k: v for k, v in task.card.section("train").items() if k in TRAIN_KEYS}
    values.update({k: v for k, v in options.items() if v is not None and k in TRAIN_KEYS})
    values.setdefault("select_metric", task.main_metric)
    values["out_dir"] = str(out_dir)
    return TrainConfig(**values)


def leave_process_group(finished: bool) -> None:
    """Leave torchrun's process group before the interpreter exits.

    A group left to interpreter shutdown can abort a rank *after* its job finished ("terminate called
    without an active exception" from the backend's threads: SIGABRT, so torchrun reports the run
    failed). A finished job waits for the other ranks first, so none leaves while another still talks
    to it; a failed one leaves at once (the others may never reach a barrier).
    """
    if not D.is_initialized():
        return
    try:
        if finished:
            D.barrier()
    finally:
        D.cleanup()


def _owns_run_folder(job: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """The job's `out_dir` (its 4th argument) is checked writable before any work, and locked for the
    whole run (a second run into it is refused naming the holder). Under torchrun rank 0 holds it."""

    @functools.wraps(job)
    def run(*args: Any, **kwargs: Any) -> dict[str, Any]:
        out_dir = kwargs["out_dir"] if "out_dir" in kwargs else args[3]
        check_output_dir(out_dir, "--out")
        if D.launch_rank() != 0:  # checks torchrun's variables before the run folder is touched
            return job(*args, **kwargs)
        with run_folder_lock(out_dir, "--out"):
            return job(*args, **kwargs)

    return run


@_owns_run_folder
def finetune(
    task_name: str,
    ckpt: str | None,
    data_root: str | None,
    out_dir: str | Path,
    overrides: list[str] | None = None,
    preset: str = "base",
    tokenizer: str | None = None,
    limit: int | None = None,
    eval_batch_size: int = 32,
    resume: bool = True,
    skip_corrupt: bool = False,
    trust_pickle: bool = False,
    **train_options: Any,
) -> dict[str, Any]:
    """Fine-tune on the card's train split, select on its val split; returns the trainer summary."""
    seed = int(train_options.get("seed") or 0)
    task, loaded = prepare(
        task_name,
        ckpt,
        data_root,
        overrides,
        preset,
        tokenizer,
        seed,
        limit,
        skip_corrupt,
        roles=JOB_ROLES["finetune"],
        trust_pickle=trust_pickle,
    )
    _log_init(task, loaded)
    cfg = train_config(task, out_dir, **train_options)
    train_set = task.build_dataset("train", train=True)

    def evaluate_fn(model: SCLModel) -> dict[str, float]:  # in-training validation, at the training precision
        return task.evaluate(
            model, "val", batch_size=eval_batch_size, num_workers=cfg.num_workers, precision=cfg.precision
        ).metrics

    selection = task.selection
    selectable = selection.select and task.card.get("splits.val") != task.card.get("splits.test")
    if not selectable:  # MSRVTT 1k-A (val is test), or a protocol that trains on its val split (F30K official)
        why = (
            "the val split is the test split"
            if selection.select
            else f"protocol {selection.name} trains on {'+'.join(selection.train)}"
        )
        print(f"{task.name}: {why}; no checkpoint selection (final weights are used)")
        cfg.select_metric = None
    trainer = Trainer(loaded.model, task.loss, train_set, task.collate, cfg, evaluate_fn if selectable else None)
    summary = trainer.fit(resume=resume, trust_pickle=trust_pickle)
    if D.is_main():
        out = Path(out_dir)
        if not (out / "final" / CONFIG_NAME).is_file():
            loaded.model.save_pretrained(out / "final", tokenizer=loaded.tokenizer)
        for sub in ("best", "final"):
            if (out / sub / CONFIG_NAME).is_file():
                loaded.tokenizer.save_pretrained(str(out / sub))
                if hasattr(task, "vocab"):  # VQA: the answer list travels with the classifier it indexes
                    task.vocab.save(out / sub / "answer_vocab.json")
        _write_run_meta(
            out,
            {
                "task": task.name,
                "recipe": recipe(task, overrides, loaded, D.world_size()),
                "selection": {"protocol": selection.to_dict(), **{k: summary.get(k) for k in SELECTION_KEYS}},
                "steps": summary.get("step"),
                "compile": bool(cfg.compile),
                # precision, TF32, loader, optimizer, DDP settings, frozen parameters
                "runtime": summary.get("runtime"),
            },
        )
    summary["selection"] = selection.to_dict()
    summary["load_report"] = loaded.report
    summary["init"] = loaded.init
    return summary


def _synthetic_extra(task: Task) -> dict[str, Any]:
    """Records made on the generated benchmark say so (tables never set them against paper numbers)."""
    from sclbench.data.synthetic import synthetic_marker

    marker = synthetic_marker(task.root)
    return {"synthetic_data": marker} if marker is not None else {}


def _log_init(task: Task, loaded: LoadedModel) -> None:
    if D.is_main():
        print(f"{task.name}: model initialisation: {loaded.init}")


def _write_run_meta(out: Path, meta: dict[str, Any]) -> None:
    """The recipe beside the weights (best/ and final/), so an evaluation record can carry it."""
    import json

    from sclbench.common.io import atomic_write
    from sclbench.model.checkpoint import META_NAME

    for sub in ("best", "final"):
        if (out / sub / CONFIG_NAME).is_file():
            path = out / sub / META_NAME
            old = json.loads(path.read_text()) if path.is_file() else {}
            atomic_write(path, json.dumps({**old, **meta}, indent=2, sort_keys=True, default=str) + "\n")


def _checkpoint_meta(loaded: LoadedModel) -> dict[str, Any]:
    import json

    from sclbench.model.checkpoint import META_NAME

    path = loaded.checkpoint.path if loaded.checkpoint else None
    if path is not None and path.is_dir() and (path / META_NAME).is_file():
        try:
            return json.loads((path / META_NAME).read_text())
        except ValueError:
            return {}
    return {}


def evaluate(
    task_name: str,
    ckpt: str | None,
    split: str,
    data_root: str | None,
    results_dir: str | Path = "results",
    overrides: list[str] | None = None,
    preset: str = "base",
    tokenizer: str | None = None,
    limit: int | None = None,
    batch_size: int = 32,
    num_workers: int | None = None,
    checkpoint_name: str | None = None,
    submission_dir: str | Path | None = None,
    device: str | None = None,
    seed: int = 0,
    skip_corrupt: bool = False,
    skip_existing: bool = False,
    trust_pickle: bool = False,
    compile: bool = False,
    model: str = SCL,
    **eval_options: Any,
) -> tuple[Evaluation | None, Path | None]:
    """Evaluate on the card's `split` role (val / test), write the record (rank 0); returns both.
    `model`: "scl" (SCL / METER checkpoints, sclbench's loader), a built-in adapter (vilt, blip, clip) or
    `package.module:factory`; every model goes through the same task protocol (`adapters.interface`).
    With `skip_existing`, an existing record of the same task, split, model, checkpoint and protocol
    options is returned as (None, its path) and nothing is computed."""
    if split not in ("val", "test"):
        raise ConfigError(f"--split {split!r}: use val (model selection) or test (report once)")
    spec = model or SCL
    if not is_scl(spec) and tokenizer is not None:
        raise ConfigError(f"--tokenizer applies to SCL checkpoints; --model {spec} brings its own preprocessing")
    eval_options = {k: v for k, v in eval_options.items() if v is not None}
    check_output_dir(results_dir, "--results")  # before any work: a read-only or file target fails now
    if submission_dir is not None:
        check_output_dir(submission_dir, "--submission")
    if skip_existing:
        done = existing_record(
            results_dir, task_name, split, ckpt, checkpoint_name, overrides, eval_options, limit, model=spec
        )
        if done is not None:
            return None, done
    device_obj = D.init_distributed() if device is None else torch.device(device)
    if is_scl(spec):
        task, loaded = prepare(
            task_name,
            ckpt,
            data_root,
            overrides,
            preset,
            tokenizer,
            seed,
            limit,
            skip_corrupt,
            roles=[split],
            trust_pickle=trust_pickle,
        )
        sha = loaded.checkpoint.sha256 if loaded.checkpoint else None
        options = {"zero_shot": loaded.zero_shot, "checkpoint_sha256": sha}
        net = task.eval_model(loaded.model.to(device_obj), options)
        ckpt_record = loaded.checkpoint.as_record() if loaded.checkpoint else {"name": "untrained", "sha256": None}
        if checkpoint_name:
            ckpt_record["name"] = checkpoint_name
        ckpt_record["model"] = SCL
        # The SCL config as before (tables and checks read it), and the interface's description beside it.
        model_config = {"model": loaded.model.config.to_dict(), "model_info": net.describe()}
        meta = _checkpoint_meta(loaded)
    else:
        loaded, meta = None, {}
        task, net = prepare_any(spec, task_name, ckpt, data_root, overrides, seed, limit, skip_corrupt, [split])
        # A model evaluated zero-shot by design (CLIP: `zero_shot = True`) meets the papers' zero-shot numbers.
        options = {"zero_shot": True} if getattr(net, "zero_shot", False) else {}
        net = net.to(device_obj)
        if D.is_main():
            print(f"{task.name}: --model {spec}: {type(net).__name__} from {ckpt or 'its factory'}")
        ckpt_record = checkpoint_record(spec, ckpt, net, checkpoint_name)
        model_config = {"model": net.describe()}
    if compile:  # torch.compile: SCL's stages (SCLModel.compile_stages), another model's family methods
        net.compile_for_eval()
    started = time.perf_counter()
    ev = task.evaluate(net, split, batch_size=batch_size, num_workers=num_workers, **options, **eval_options)
    wall = time.perf_counter() - started
    published = task.card.get(f"splits.{split}", split)
    published = "+".join(published) if isinstance(published, list) else str(published)
    record = ResultRecord(
        task=task.name,
        split=published,
        metrics=ev.metrics,
        scorer=ev.scorer,
        # compile changes float rounding only: in the protocol when on (older records lack the key).
        protocol={
            "role": split,
            **ev.protocol,
            "limit": limit,
            "skipped": ev.skipped or None,
            **({"compile": True} if compile else {}),
        },
        config={
            **model_config,
            "card": task.card.data,
            "overrides": overrides or [],
            "recipe": recipe(task, overrides, loaded, model=spec),
            "eval_options": eval_options,
            "trained_with": meta.get("recipe"),
            "compile": bool(compile),
            "trained_runtime": meta.get("runtime"),
            "runtime": {"device": str(device_obj), "loader": loader_settings(device_obj, num_workers).to_dict()},
        },
        checkpoint=ckpt_record,
        data_fingerprint=fingerprint_files(task.annotation_files()),
        world_size=D.world_size(),
        wall_time_s=round(wall, 3),
        throughput=round(ev.throughput, 3),
        seed=seed,
        breakdown=ev.breakdown,
        extra=_synthetic_extra(task),
        **environment_info(),
    )
    path = None
    if D.is_main():
        path = record.save(results_dir, predictions=ev.predictions)
        if submission_dir is not None:
            task.submission(ev, Path(submission_dir))
    return ev, path


def existing_record(
    results_dir: str | Path,
    task_name: str,
    role: str,
    ckpt: str | None,
    checkpoint_name: str | None,
    overrides: list[str] | None,
    eval_options: dict[str, Any],
    limit: int | None = None,
    model: str = SCL,
) -> Path | None:
    """The record of an evaluation made with the same task, split role, model, checkpoint name,
    overrides, protocol options and limit, if one exists under `results_dir` (records without a
    `checkpoint.model` were made by SCL)."""
    from sclbench.results import collect

    root = Path(results_dir)
    if not root.is_dir():
        return None
    spec = model or SCL
    if is_scl(spec):
        from sclbench.model.hub import registry_entry

        entry = registry_entry(ckpt) if ckpt and not Path(ckpt).exists() else None
        want_name = checkpoint_name or (entry["name"] if entry else Path(ckpt).name if ckpt else "untrained")
    else:
        want_name = record_name(spec, ckpt, checkpoint_name)
    for record in collect(root):
        config = record.config or {}
        same = (
            record.task == task_name
            and record.protocol.get("role") == role
            and record.protocol.get("limit") == limit
            and record.checkpoint_name == want_name
            and str(record.checkpoint.get("model") or SCL) == spec
            and list(config.get("overrides") or []) == list(overrides or [])
            and _protocol_options(config.get("eval_options")) == _protocol_options(eval_options)
        )
        if same and record.source is not None:
            return record.source
    return None


def _protocol_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """The evaluate options that change numbers (where a cache lives does not)."""
    return {k: v for k, v in (options or {}).items() if k != "cache_dir"}


@_owns_run_folder
def pretrain(
    card: str,
    ckpt: str | None,
    data_root: str | None,
    out_dir: str | Path,
    overrides: list[str] | None = None,
    preset: str = "base",
    tokenizer: str | None = None,
    limit: int | None = None,
    resume: bool = True,
    trust_pickle: bool = False,
    **train_options: Any,
) -> dict[str, Any]:
    """Pre-train (or continue pre-training) with the SCL objectives; the card lists the corpora."""
    seed = int(train_options.get("seed") or 0)
    task, loaded = prepare(
        card,
        ckpt,
        data_root,
        overrides,
        preset,
        tokenizer,
        seed,
        limit,
        roles=JOB_ROLES["pretrain"],
        trust_pickle=trust_pickle,
    )
    _log_init(task, loaded)
    cfg = train_config(task, out_dir, **train_options)
    cfg.select_metric = None  # no validation split: the official "val" was augmented training data
    trainer = Trainer(loaded.model, task.loss, task.build_dataset("train"), task.collate, cfg)
    summary = trainer.fit(resume=resume, trust_pickle=trust_pickle)
    if D.is_main():
        loaded.model.save_pretrained(
            Path(out_dir) / "final",
            tokenizer=loaded.tokenizer,
            meta={
                "objectives": task.card.get("objectives"),
                "steps": summary.get("step"),
                "recipe": recipe(task, overrides, loaded, D.world_size()),
            },
        )
    summary["init"] = loaded.init
    return summary
