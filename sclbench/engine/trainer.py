"""The training loop: one code path for 1 process and N torchrun processes, exact resume.

How an objective or task plugs in:

    def loss_fn(model, batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        out = model(batch["text_ids"], batch["text_masks"], batch["images"],
                    mask_mode="drop", mask_ratio=0.8, generator=ctx.generator(1))
        loss = ...
        return loss, {"itm_acc": acc}   # logs: detached 0-d device tensors (or floats, which cost a sync)

`batch` is what `collate_fn` returns, already moved to the device. `loss` is the MEAN over the
micro-batch (the trainer divides by the accumulation factor and DDP averages over ranks, so the
gradient is that of the mean over the global batch). All randomness an objective draws should come
from `ctx.generator(...)`, a function of (seed, step, micro-step, rank, salt): it then survives a
resume unchanged. `evaluate_fn(model) -> dict[str, float]` is called on EVERY rank (it shards the
VALIDATION split itself, e.g. with ShardedEvalSampler); the best checkpoint is selected on
`select_metric` of that dict. Never pass a test split here: a test split is evaluated once, at the
end, outside the trainer.

When it validates: every `val_check_interval` of an epoch (the official PyTorch-Lightning setting: 1.0
= at each epoch's end, 0.1 = ten times per epoch, counted from the epoch's start), or every
`eval_every_steps` optimizer steps when that is set (it wins), and always after the last step.

A loss (or gradient norm) that is not finite on any rank stops the run (the official run used
Lightning's `terminate_on_nan`) without a host sync per step: each step flags it on the device, the
flag is read with the log record (one read per `log_every` steps) and before every checkpoint, best
export and validation. So no NaN weights are ever written, and the error names the first bad step and
the last good checkpoint to resume from. With fused AdamW (the CUDA default) a non-finite step's update
is also skipped on the device, so the weights in memory stay finite; with another optimizer the steps
up to the check update (the run stops before writing them).

Host syncs per step: none from the trainer (logs stay on the device; see `_after_step`); with fp16,
GradScaler reads its inf flag each step unless the optimizer is fused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, default_collate

from sclbench.common.io import read_jsonl
from sclbench.common.seeding import derive_seed
from sclbench.engine import distributed as D
from sclbench.engine.checkpointing import (
    TrainState,
    export_best,
    latest,
    load_checkpoint,
    recover_best,
    restore,
    rng_state,
    save_checkpoint,
    training_payload,
)
from sclbench.engine.loader import loader_settings
from sclbench.engine.logs import MetricLogger
from sclbench.engine.optim import build_optimizer
from sclbench.engine.sampler import SeededDataset, TrainSampler
from sclbench.engine.schedule import build_scheduler, total_steps
from sclbench.engine.used_params import ParameterUse, probe_parameter_use
from sclbench.engine.utils import seed_everything, to_device
from sclbench.errors import ConfigError, SCLBenchError

LossFn = Callable[[nn.Module, Any, "StepContext"], "tuple[torch.Tensor, dict[str, float]]"]


@dataclass
class TrainConfig:
    lr: float = 1e-4
    weight_decay: float = 0.01
    lr_mult_head: float = 1.0
    lr_mult_cross_modal: float = 1.0
    fixed_groups: bool = False  # True: our fix of the official grouping quirks (see optim.py)
    warmup: int | float = 0.1  # int: steps; float: fraction of the total steps
    schedule: str = "linear"  # "linear" (official polynomial power 1, end lr 0) or "cosine"
    max_steps: int | None = None  # overrides max_epochs when set
    max_epochs: int = 10
    global_batch_size: int = 32
    per_device_batch_size: int = 8  # accumulation = global / (per_device x world size)
    # "fp32" | "bf16" (autocast, CPU or GPU) | "fp16" (CUDA + GradScaler); None: bf16 on CUDA, fp32 elsewhere
    precision: str | None = None
    tf32: bool = True  # CUDA: TF32 tensor-core matmuls/convolutions for the fp32 ops (fp32 mode and outside autocast)
    grad_checkpointing: bool = False
    max_grad_norm: float | None = None
    # Fraction of an epoch between validations (official name and meaning; 1.0 = every epoch end).
    val_check_interval: float | None = None
    eval_every_steps: int | None = None  # in optimizer steps; wins over val_check_interval when set
    save_every_steps: int | None = None  # also saved at the end
    keep_last: int = 3
    out_dir: str = "runs/default"
    seed: int = 0
    num_workers: int | None = None  # None: from the CPUs per local rank on CUDA, 0 on CPU (engine/loader.py)
    log_every: int = 10
    select_metric: str | None = None  # a key of evaluate_fn's dict (validation split only)
    select_mode: str = "max"  # "max" or "min"
    find_unused_parameters: bool = False  # also turned on by itself when the used parameters vary by batch
    device: str | None = None  # None: cuda:LOCAL_RANK if available, else cpu; "cpu" forces CPU + gloo
    tensorboard: bool = True  # used only when tensorboard is installed
    compile: bool = False  # torch.compile the model's stages (SCLModel.compile_stages): training and validation

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StepContext:
    """What an objective may know about the step it computes (for deterministic randomness)."""

    step: int
    epoch: int
    seed: int
    rank: int
    world_size: int
    device: torch.device
    micro_step: int = 0

    def generator(self, *salt: int, device: torch.device | str | None = None) -> torch.Generator:
        """A fresh generator seeded by (seed, step, micro_step, rank, *salt); use one salt per use."""
        g = torch.Generator(device=device or self.device)
        g.manual_seed(derive_seed(self.seed, self.step, self.micro_step, self.rank, *salt))
        return g


class LossModule(nn.Module):
    """The model plus the loss, so that DDP wraps a forward that computes the loss (its gradient
    hooks then see every parameter the objective uses, heads included)."""

    def __init__(self, model: nn.Module, loss_fn: LossFn):
        super().__init__()
        self.model = model
        self.__dict__["loss_fn"] = loss_fn  # not a submodule: a loss holds no trainable state

    def forward(self, batch: Any, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        return self.loss_fn(self.model, batch, ctx)


def _short_list(names: list[str], limit: int = 6) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


class NonFiniteLossError(SCLBenchError, FloatingPointError):
    """The training loss (or gradient norm) became NaN/inf; the run stopped before updating weights."""


def validation_interval(val_check_interval: float | None, steps_per_epoch: int) -> int | None:
    """Optimizer steps between validations inside an epoch, as Lightning turns a float
    `val_check_interval` into batches: int(batches per epoch x fraction), at least 1."""
    if val_check_interval is None:
        return None
    if isinstance(val_check_interval, bool) or not 0 < float(val_check_interval) <= 1:
        raise ConfigError(
            f"train.val_check_interval {val_check_interval!r}: a fraction of an epoch in (0, 1] "
            "(1.0 = every epoch); for a number of steps use eval_every_steps"
        )
    return max(1, int(steps_per_epoch * float(val_check_interval)))


def _changed_settings(saved: dict[str, Any], cfg: TrainConfig, world: int) -> list[str]:
    """Settings whose change makes a resumed run differ from the interrupted one."""
    keys = (
        "lr",
        "lr_mult_head",
        "lr_mult_cross_modal",
        "weight_decay",
        "warmup",
        "schedule",
        "max_steps",
        "max_epochs",
        "global_batch_size",
        "seed",
        "precision",
        "num_workers",
    )
    old = saved.get("train", {})
    changed = [f"{k}: {old[k]} -> {getattr(cfg, k)}" for k in keys if k in old and old[k] != getattr(cfg, k)]
    if saved.get("world_size", world) != world:
        changed.append(f"world size: {saved['world_size']} -> {world}")
    return changed


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        train_dataset: Any,
        collate_fn: Callable | None,
        config: TrainConfig,
        evaluate_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    ):
        cfg = self.config = config
        if cfg.precision not in (None, "fp32", "bf16", "fp16"):
            raise ConfigError(f"precision {cfg.precision!r}: choose fp32, bf16 or fp16")
        if cfg.select_mode not in ("max", "min"):
            raise ConfigError(f"select_mode {cfg.select_mode!r}: choose max or min")
        self.device = D.init_distributed(cfg.device)
        # The GPU default is bf16 autocast (fp32 weights and optimizer); --precision fp32 is one option away.
        cfg.precision = cfg.precision or ("bf16" if self.device.type == "cuda" else "fp32")
        if self.device.type == "cuda":  # process-wide: the trainer owns the process
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(cfg.tf32)
        if cfg.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("precision fp16 needs a CUDA device; use bf16 (or fp32) on CPU")
        self.rank, self.world = D.rank(), D.world_size()
        micro_total = cfg.per_device_batch_size * self.world
        if cfg.global_batch_size % micro_total:
            raise ConfigError(
                f"global_batch_size {cfg.global_batch_size} is not a multiple of "
                f"per_device_batch_size {cfg.per_device_batch_size} x {self.world} processes"
            )
        self.accumulation = cfg.global_batch_size // micro_total

        self.model, self.evaluate_fn = model.to(self.device), evaluate_fn
        # A stream of whole micro-batches (sclbench.data.streaming.StreamingBatches) splits itself by
        # rank and worker and resumes itself: set_epoch(epoch, start_batch), batches_per_epoch.
        self.streaming = isinstance(train_dataset, IterableDataset)
        if self.streaming and cfg.per_device_batch_size != 1:
            raise ConfigError(
                "a streamed training set yields whole batches: set per_device_batch_size 1 "
                "(its batch size is the stream's)"
            )
        if self.streaming:
            self.dataset, self.sampler = train_dataset, None
            self.steps_per_epoch = train_dataset.batches_per_epoch // self.accumulation
        else:
            self.dataset = (
                train_dataset if isinstance(train_dataset, SeededDataset) else SeededDataset(train_dataset, cfg.seed)
            )
            kinds = getattr(self.dataset, "item_kinds", None)  # batches of several kinds: one kind per micro-step
            self.sampler = TrainSampler(
                len(self.dataset),
                cfg.global_batch_size,
                cfg.per_device_batch_size,
                cfg.seed,
                self.rank,
                self.world,
                with_epoch=True,
                kinds=kinds() if callable(kinds) else None,
            )
            self.steps_per_epoch = self.sampler.steps_per_epoch
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"the train split has {len(self.dataset)} samples, fewer than one global "
                f"batch ({cfg.global_batch_size}): lower global_batch_size"
            )
        self.val_interval = validation_interval(cfg.val_check_interval, self.steps_per_epoch)
        self.total_steps = total_steps(
            cfg.max_steps, self.steps_per_epoch * self.accumulation, cfg.max_epochs, self.accumulation
        )
        self.loader_settings = loader_settings(self.device, cfg.num_workers, streaming=self.streaming, persistent=True)
        self.loader = DataLoader(
            # Streamed: batch_sampler None and the default batch_size 1, so collate_fn gets [batch].
            self.dataset,
            batch_sampler=self.sampler,
            collate_fn=collate_fn,
            **self.loader_settings.kwargs(),
            # Its own generator: creating an iterator must not consume the global (dropout) RNG.
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        self.module: nn.Module = LossModule(model, loss_fn)
        # Before the optimizer and DDP: parameters the loss never reaches are frozen for this job.
        self.parameter_use = self._probe_parameter_use(collate_fn)
        if cfg.grad_checkpointing:  # after the probe (a re-run forward could hide parameters from it)
            model.set_gradient_checkpointing(True)
        if cfg.compile:  # after the probe too: it runs eagerly, compilation waits for the first step
            model.compile_stages()
        fused = self.device.type == "cuda"  # one kernel for all parameters (torch's fused AdamW is CUDA-tested)
        self.optimizer = build_optimizer(model, cfg, fused=fused)
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, cfg.warmup, cfg.schedule)
        self.scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
        self.ddp = self._ddp_settings()
        if self.world > 1:
            self.module = nn.parallel.DistributedDataParallel(
                self.module, device_ids=[self.device.index] if self.device.type == "cuda" else None, **self.ddp
            )
        self.runtime = {
            "device": str(self.device),
            "world_size": self.world,
            "accumulation": self.accumulation,
            "precision": cfg.precision,
            "tf32": bool(cfg.tf32) and self.device.type == "cuda",
            "compile": bool(cfg.compile),
            "loader": self.loader_settings.to_dict(),
            "optimizer": "AdamW (fused)" if fused else "AdamW (foreach)",
            "ddp": dict(self.ddp) if self.world > 1 else None,
            "parameters": self.parameter_use.to_dict(),
        }
        self.out_dir = Path(cfg.out_dir)
        # First non-finite step and value per row (loss, gradient norm), -1 = none: see _note_non_finite.
        self._first_bad = torch.full((2, 2), -1.0, dtype=torch.float64, device=self.device)

    # ---- set-up: which parameters train, how DDP syncs -------------------------------------------
    def _probe_batches(self, collate_fn: Callable | None) -> list[Callable[[], Any]]:
        """This rank's first micro-batch of epoch 0 and, for a dataset mixing kinds of batches
        (`probe_items()`: pre-training's images and clips), one batch of each kind; built lazily."""
        collate = collate_fn or default_collate
        if self.streaming:

            def first_streamed() -> Any:
                self.dataset.set_epoch(0, 0)
                return collate([next(iter(self.dataset))])

            return [first_streamed]
        self.dataset.set_epoch(0)
        self.sampler.set_epoch(0, 0)
        first = next(iter(self.sampler))
        batches = [lambda: collate([self.dataset[i] for i in first])]
        n, per_device = len(self.dataset), self.config.per_device_batch_size
        for item in getattr(self.dataset, "probe_items", lambda: [])():
            indices = [(0, (item + k) % n) for k in range(per_device)]
            batches.append(lambda indices=indices: collate([self.dataset[i] for i in indices]))
        return batches

    def _probe_parameter_use(self, collate_fn: Callable | None) -> ParameterUse:
        ctx = StepContext(0, 0, self.config.seed, self.rank, self.world, self.device, 0)

        def run(module: nn.Module, batch: Any) -> torch.Tensor:
            with self._autocast():
                return module(to_device(batch, self.device), ctx)[0]

        was_training = self.model.training
        self.model.train()
        try:
            use = probe_parameter_use(self.module, self.model, self._probe_batches(collate_fn), run, self.device)
        finally:
            self.model.train(was_training)
        if use.frozen and D.is_main():
            print(f"frozen for this job (its loss never reaches them): {_short_list(use.frozen)}")
        return use

    def _ddp_settings(self) -> dict[str, Any]:
        """DDP options: gradients as views of the all-reduce buckets (no copy, one gradient-sized
        buffer less); unused-parameter search only when the used parameters vary by batch; a static
        graph only without accumulation: torch's static_graph + no_sync is broken (pytorch/pytorch#187732;
        on torch 2.14.1 the first no_sync backward fails an `expect_autograd_hooks_` INTERNAL ASSERT)."""
        cfg, varying = self.config, self.parameter_use.varying
        if varying and self.world > 1 and not cfg.find_unused_parameters and D.is_main():
            print(
                f"the loss reaches some parameters on some batches only ({_short_list(varying)}): DDP looks for "
                "unused parameters every step (find_unused_parameters)"
            )
        find_unused = bool(cfg.find_unused_parameters or varying)
        return {
            "find_unused_parameters": find_unused,
            "gradient_as_bucket_view": True,
            "static_graph": not find_unused and self.accumulation == 1,
        }

    # ---- one optimizer step ----------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.config.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.config.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _optimizer_step(self, batches: Any, state: TrainState) -> tuple[torch.Tensor, dict[str, Any]]:
        """One optimizer step. No host sync: the loss, the logs (device tensors, or floats from a loss
        that gives floats) and the non-finite flags stay on the device until `_after_step` reads them."""
        cfg, acc = self.config, self.accumulation
        loss_sum = torch.zeros((), device=self.device)
        logs: dict[str, Any] = defaultdict(float)
        for micro in range(acc):
            batch = to_device(next(batches), self.device)
            ctx = StepContext(state.step, state.epoch, cfg.seed, self.rank, self.world, self.device, micro)
            # Gradients are all-reduced only on the last micro-step of the accumulation window.
            last = micro == acc - 1
            sync = contextlib.nullcontext() if last or self.world == 1 else self.module.no_sync()
            with sync:
                with self._autocast():
                    loss, step_logs = self._forward(batch, ctx)
                scaled = loss.float() / acc  # equal-size micro-batches: the mean of means is the mean
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            loss_sum += loss.detach().float()
            for key, value in step_logs.items():
                logs[key] += (value.detach().float().reshape(()) if torch.is_tensor(value) else float(value)) / acc
        bad = self._note_non_finite(loss_sum / acc, 0, state)
        if cfg.max_grad_norm is not None:
            if self.scaler:
                self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            logs["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm).detach().float()
            if self.scaler is None:  # with fp16 the grad scaler skips inf/NaN steps itself
                bad = bad | self._note_non_finite(logs["grad_norm"], 1, state)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self._update_unless(bad)
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return loss_sum / acc, logs

    def _forward(self, batch: Any, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        try:
            return self.module(batch, ctx)
        except RuntimeError as err:
            if "Expected to have finished reduction" not in str(err):
                raise
            raise SCLBenchError(
                f"step {ctx.step}: the previous step's loss left trainable parameters without a gradient, although "
                f"the probe of the first batches reached them ({self.parameter_use.probes} probes; parameters "
                "reached by some batches only are handled): this job's loss uses different parameters on "
                "different batches. Set train.find_unused_parameters=true"
            ) from err

    # ---- non-finite loss: flagged on the device every step, read once per log interval ---------------
    def _note_non_finite(self, value: torch.Tensor, row: int, state: TrainState) -> torch.Tensor:
        """Record on the device the first step (and value) where `value` (row 0: loss, 1: gradient norm)
        was not finite; returns this step's flag. No host read."""
        value = value.detach().to(torch.float64)
        bad = ~torch.isfinite(value)
        first = self._first_bad[row]
        new = bad & (first[0] < 0)
        first.copy_(torch.where(new, torch.stack([torch.full_like(value, state.step + 1), value]), first))
        return bad

    def _update_unless(self, bad: torch.Tensor) -> None:
        """optimizer.step(), skipped ON THE DEVICE when this step's loss or gradient norm is not finite if
        the optimizer can (fused AdamW, the CUDA default, reads `found_inf` as under a GradScaler): the
        weights in memory then stay finite too. Otherwise the step updates and the run stops at the next
        check (`_check_finite`), which comes before any checkpoint, export or validation."""
        if not getattr(self.optimizer, "_step_supports_amp_scaling", False):
            self.optimizer.step()
            return
        self.optimizer.found_inf = bad.to(torch.float32)
        try:
            self.optimizer.step()
        finally:
            del self.optimizer.found_inf

    def _non_finite_flag(self) -> torch.Tensor:
        return (self._first_bad[:, 0] >= 0).any().to(torch.float32)

    def _check_finite(self, state: TrainState, flag: float | None = None) -> None:
        """Stop if any rank saw a non-finite loss or gradient norm since the start. `flag`: the
        all-reduced flag when the caller read it already (the log record's one sync); else one
        all-reduce and one read here (before a checkpoint, an export or a validation off the log steps)."""
        if flag is None:
            flag = float(D.all_reduce_mean(self._non_finite_flag().reshape(1)))
        if flag == 0:
            return
        (loss_step, loss_value), (grad_step, grad_value) = self._first_bad.tolist()
        last = latest(self.out_dir)
        where = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
        loss_first = loss_step >= 0 and (grad_step < 0 or loss_step <= grad_step)
        if loss_step >= 0 or grad_step >= 0:
            what, step, value = (
                ("loss", loss_step, loss_value) if loss_first else ("gradient norm", grad_step, grad_value)
            )
            seen, step = f"{value}", int(step)
        else:
            what, seen, step = "loss", "finite here but not on another rank", state.step
        epoch = (step - 1) // self.steps_per_epoch
        skipped = getattr(self.optimizer, "_step_supports_amp_scaling", False) and self.scaler is None
        memory = "its update was skipped" if skipped else "the weights in memory may hold NaN"
        raise NonFiniteLossError(
            f"training {what} is {seen} at step {step} (epoch {epoch}): stopped at step {state.step} before "
            f"writing anything, so no NaN weights were saved ({memory}); {where}. Resume from it with a lower lr, "
            "bf16 instead of fp16 or max_grad_norm set, or check that step's data"
        )

    def current_lr(self) -> float:
        """The base-group lr the NEXT step uses (config lr x schedule multiplier)."""
        group = self.optimizer.param_groups[0]
        return self.config.lr * group["lr"] / group["initial_lr"] if group["initial_lr"] else 0.0

    # ---- evaluation, checkpoints -----------------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        """Run evaluate_fn in eval mode without gradients. Its RNG use is isolated, so training is
        identical whether or how often it evaluates; rank 0's metrics are the ones every rank sees."""
        py, npy = random.getstate(), np.random.get_state()
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            self.model.eval()
            try:
                metrics = self.evaluate_fn(self.model)
            finally:
                self.model.train()
        random.setstate(py)
        np.random.set_state(npy)
        return D.broadcast_object({k: float(v) for k, v in metrics.items()})

    def _is_better(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value > best if self.config.select_mode == "max" else value < best

    def _select(self, metrics: dict[str, float], state: TrainState) -> None:
        name = self.config.select_metric
        if name is None:
            return
        if name not in metrics:
            raise ConfigError(f"select_metric {name!r} is not among the validation metrics {sorted(metrics)}")
        if self._is_better(metrics[name], state.best_metric):
            state.best_metric, state.best_step, state.best_epoch = metrics[name], state.step, state.epoch
            if D.is_main():
                export_best(
                    self.model,
                    self.out_dir,
                    meta={
                        "step": state.step,
                        "epoch": state.epoch,
                        "select_metric": name,
                        "value": metrics[name],
                        "split": "validation",
                        "metrics": metrics,
                    },
                )
            D.barrier()

    def save(self, state: TrainState) -> Path:
        rngs = D.gather_objects(rng_state())  # every rank's generators: all resume exactly
        path = None
        if D.is_main():
            payload = training_payload(
                self.model,
                self.optimizer,
                self.scheduler,
                self.scaler,
                state,
                rngs,
                {"train": self.config.to_dict(), "world_size": self.world},
            )
            path = save_checkpoint(self.out_dir, payload, state.step, self.config.keep_last)
        D.barrier()
        return D.broadcast_object(path)

    # ---- the loop --------------------------------------------------------------------------------
    def fit(self, resume: bool = True, trust_pickle: bool = False) -> dict[str, Any]:
        """Train to `total_steps`, resuming from the newest checkpoint in out_dir when `resume` (a run
        that already finished returns at once). `resume=False` refuses an out_dir that holds
        checkpoints (rather than mixing two runs' files). Returns a summary: step, epoch, total_steps,
        best_metric / best_step / best_dir, last_checkpoint, log, resumed_from, world_size, wall_s, and the
        selection: selected_step / selected_epoch / selected_from ("best" on the validation metric, or
        "final" weights), val_check_interval / val_interval_steps, history (every validation's metrics)."""
        cfg, t_start = self.config, time.time()
        state, resumed_from = TrainState(), None
        ckpt = latest(self.out_dir)
        if ckpt is not None and not resume:
            raise ConfigError(
                f"{self.out_dir} holds checkpoints of an earlier run ({ckpt.name}): resume it, "
                "or choose another out_dir"
            )
        if ckpt is not None:
            payload = load_checkpoint(ckpt, trust_pickle=trust_pickle)  # --trust-pickle: a file the user trusts
            state = restore(payload, self.model, self.optimizer, self.scheduler, self.scaler, self.rank)
            resumed_from = str(ckpt)
            changed = _changed_settings(payload.get("config", {}), self.config, self.world)
            if D.is_main():
                recover_best(self.out_dir)
        else:
            seed_everything(cfg.seed + self.rank)
        logger = MetricLogger(self.out_dir, D.is_main(), self.total_steps, state.step, cfg.tensorboard)
        if resumed_from:
            logger.print(f"resumed from {resumed_from} at step {state.step}")
            if changed:
                logger.print(
                    f"warning: settings differ from the checkpointed run ({', '.join(changed)}); "
                    "the run continues but is not the one that was interrupted"
                )
        self.model.train()
        window = {"loss": torch.zeros((), device=self.device), "logs": defaultdict(float), "n": 0, "t": time.time()}
        try:
            while state.step < self.total_steps:
                if self.streaming:  # it skips the consumed micro-batches itself
                    self.dataset.set_epoch(state.epoch, state.batch_in_epoch * self.accumulation)
                else:
                    self.sampler.set_epoch(state.epoch, state.batch_in_epoch)
                    self.dataset.set_epoch(state.epoch)
                batches = iter(self.loader)
                for _ in range(self.steps_per_epoch - state.batch_in_epoch):
                    if state.step >= self.total_steps:
                        break
                    lr = self.current_lr()
                    loss, logs = self._optimizer_step(batches, state)
                    state.step += 1
                    state.batch_in_epoch += 1
                    if state.batch_in_epoch == self.steps_per_epoch:
                        state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                    self._after_step(state, lr, loss, logs, window, logger)
                del batches  # shut its workers down before the next epoch's start
        finally:
            logger.close()
        last = latest(self.out_dir)
        best = self.out_dir / "best"
        selected = state.best_step is not None and cfg.select_metric is not None
        return {
            "step": state.step,
            "epoch": state.epoch,
            "total_steps": self.total_steps,
            "select_metric": cfg.select_metric,
            "best_metric": state.best_metric,
            "best_step": state.best_step,
            "best_dir": str(best) if best.is_dir() else None,
            "last_checkpoint": str(last) if last else None,
            "selected_from": "best" if selected else "final",
            "selected_step": state.best_step if selected else state.step,
            "selected_epoch": state.best_epoch if selected else state.epoch,
            "val_check_interval": cfg.val_check_interval,
            "val_interval_steps": self._eval_every(),
            "history": self._history(logger.path),
            "log": str(logger.path),
            "resumed_from": resumed_from,
            "world_size": self.world,
            "runtime": self.runtime,
            "wall_s": time.time() - t_start,
        }

    def _eval_every(self) -> int | None:
        return self.config.eval_every_steps or self.val_interval

    def _should_validate(self, state: TrainState) -> bool:
        """After the last step; else every eval_every_steps global steps; else every val_interval steps
        counted from the start of the epoch (Lightning resets its counter each epoch)."""
        if self.evaluate_fn is None:
            return False
        if state.step == self.total_steps:
            return True
        if self.config.eval_every_steps:
            return state.step % self.config.eval_every_steps == 0
        if self.val_interval:
            in_epoch = state.batch_in_epoch or self.steps_per_epoch  # 0 right after an epoch's last step
            return in_epoch % self.val_interval == 0
        return False

    def _history(self, log_path: Path) -> list[dict[str, Any]]:
        """Every validation of this run (resumed segments included) from the log, on every rank."""
        rows = None
        if D.is_main() and log_path.is_file():
            rows = [
                {k: v for k, v in rec.items() if k != "kind"}
                for _, rec in read_jsonl(log_path)
                if rec.get("kind") == "eval"
            ]
        return D.broadcast_object(rows or [])

    def _after_step(
        self,
        state: TrainState,
        lr: float,
        loss: torch.Tensor,
        logs: dict[str, Any],
        window: dict[str, Any],
        logger: MetricLogger,
    ) -> None:
        cfg, step, final = self.config, state.step, state.step == self.total_steps
        window["loss"] += loss
        for key, value in logs.items():
            window["logs"][key] += value  # device tensors (or floats): summed on the device, no sync
        window["n"] += 1
        logger.advance(step)
        checked = False
        # Conditions depend on the step only, so every rank joins the same collectives.
        if step % max(1, cfg.log_every) == 0 or final:
            keys = sorted(window["logs"])
            # The one host read of the interval: mean loss, every log and the non-finite flag together.
            local = torch.stack(
                [window["loss"].float()]
                + [
                    torch.as_tensor(window["logs"][k], dtype=torch.float32).to(self.device, non_blocking=True)
                    for k in keys
                ]
                + [self._non_finite_flag() * window["n"]]
            )
            values = (D.all_reduce_mean(local) / window["n"]).tolist()
            self._check_finite(state, values[-1])
            checked = True
            elapsed = max(time.time() - window["t"], 1e-9)
            logger.write(
                {
                    "kind": "train",
                    "step": step,
                    "epoch": state.epoch,
                    "lr": lr,
                    "loss": values[0],
                    **dict(zip(keys, values[1:-1])),
                    "samples_per_s": window["n"] * cfg.global_batch_size / elapsed,
                }
            )
            window.update(loss=torch.zeros((), device=self.device), logs=defaultdict(float), n=0, t=time.time())
        validate = self._should_validate(state)
        save = final or (cfg.save_every_steps and step % cfg.save_every_steps == 0)
        if (validate or save) and not checked:
            self._check_finite(state)  # nothing is exported or saved from a run that went non-finite
        if validate:
            metrics = self.evaluate()
            logger.write({"kind": "eval", "step": step, "epoch": state.epoch, **metrics})
            self._select(metrics, state)
            window["t"] = time.time()  # evaluation time is not training throughput
        if save:
            self.save(state)
