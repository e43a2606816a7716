"""The embedded default: the whole suite on a synthetic mini-benchmark, no data and no weights needed.

`sclbench demo` generates the benchmark in the published formats, pre-trains a tiny SCL model with
the semantic-completion objectives on images and videos, fine-tunes it on each task whose card has a
`demo:` section (the six published ones; their order, steps and overrides are there), selecting on
validation splits, evaluates each on its held-out split and prints the leaderboard
with chance beside every number, and the blind baseline (what one modality alone scores: VQA's
question-only answer, with the model's paired p-value against it). `OUT/stage_times.json` says where
the seconds went (generation, pre-training, each fine-tune and evaluation, wall and CPU). `--ablation`
adds a model pre-trained without MGSC/MLTC and compares the two sample by sample (paired bootstrap),
with the test size that comparison would need to see a 2-point effect. Everything is seeded: the same
seed gives the same numbers, whatever the number of worker processes (each job runs in its own process
with one thread).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The cards' demo sections and the leaderboard live beside this module (re-exported: the CLI and
# the tests import them from here).
from sclbench.app.demo_board import (  # noqa: F401
    ablation_comparison,
    blind,
    chance,
    leaderboard,
    print_ablation,
    print_leaderboard,
    queries_needed,
)
from sclbench.app.demo_cards import DemoTask, demo_tasks, pretrain_overrides, without_data  # noqa: F401
from sclbench.common.processes import run_calls as _run_all
from sclbench.errors import ConfigError
from sclbench.results import ResultRecord, collect

VARIANTS = {"scl": ["objectives=[mlm,itm,itc,mgsc,mltc]"], "no-completion": ["objectives=[mlm,itm,itc]"]}


@dataclass(frozen=True)
class DemoPlan:
    scale: float  # size of the synthetic benchmark (1.0: 100 F30K training images, 60 VQA images, ...)
    pretrain_steps: int
    finetune_steps: int  # the unit: each task fine-tunes its card's demo.step_factor times as many steps
    chunk: int = 16  # pre-training samples per modality-pure micro-batch (2 per step)
    batch: int = 32
    lr: float = 1e-3

    def steps(self, task: str) -> int:
        return round(self.finetune_steps * demo_tasks()[task].step_factor)

    def pretrain_overrides(self) -> list[str]:
        # The completion terms at a tenth of their official weights: at full weight MGSC/MLTC (~13 of
        # the ~20 loss) stall ITC and ITM at this size; at a tenth they speed ITC up (measured against
        # the same run without them). Recorded in each record's recipe, like every override here.
        return [
            f"train.chunk_size={self.chunk}",
            *self.common,
            "train.video_transform=eval",
            "completion.global_weight=0.1",
            "completion.local_weight=0.02",
        ]

    @property
    def common(self) -> list[str]:
        # Small-model settings: plain resizing instead of RandAugment (32 px images learn faster without
        # it) with decoded tensors cached, 2 evenly spaced frames per clip, and a larger init of the
        # text encoder so that its CLS token carries content from the first step (at RoBERTa's 0.02
        # the 64-wide model's CLS output is the same for every caption, a long contrastive plateau).
        # No dropout anywhere: at 64 wide, the preset's 0.1 holds the pre-training's ITC on its plateau
        # (chance) for the whole budget and costs every fine-tune recall.
        # Measured with gathered terms at full weight on one process (local_slice; the cards' default
        # scales them to the official 8-process weight, 1/8 here).
        return [
            "train.transform=eval",
            "data.cache_images=true",
            "train.frame_mode=uniform",
            "data.num_frames=2",
            "model.text_init_std=0.1",
            "model.drop_rate=0",
            "train.gather_grad=local_slice",
        ]

    def train_overrides(self, task: str) -> list[str]:
        # A higher lr than the official (pre-trained, 350M-param) recipe, one lr for every group, and
        # one negative caption for retrieval (the contrastive term does most of the learning).
        # The per-task parts (the card's demo section): retrieval and NLVR2 take half the batch; NLVR2 a
        # smaller body lr; retrieval one negative caption; COCO/LSMDC select on validation.
        # Steps (`step_factor`): the contrastive loss of every retrieval task sits on a plateau for its
        # first ~80 steps; the video tasks learn from 2 frames of 32 px and need the most updates after it.
        spec = demo_tasks()[task]
        batch = self.batch // 2 if spec.half_batch else self.batch
        lr, head = self.lr / spec.lr_divisor if spec.lr_divisor != 1 else self.lr, spec.lr_mult_head
        return [
            *self.common,
            f"train.global_batch_size={batch}",
            f"train.per_device_batch_size={batch}",
            f"train.lr={lr}",
            f"train.lr_mult_head={head}",
            "train.lr_mult_cross_modal=1",
            "train.warmup=0.1",
            *([f"train.neg_texts={spec.neg_texts}"] if spec.neg_texts is not None else []),
            *([f"protocol.selection={spec.selection}"] if spec.selection else []),
        ]


QUICK = DemoPlan(scale=1.0, pretrain_steps=150, finetune_steps=200)
FULL = DemoPlan(scale=2.0, pretrain_steps=300, finetune_steps=400)


def mark_synthetic(path: str | Path, marker: dict | None) -> None:
    """Label a record as made on synthetic data (tables then never set it against paper numbers)."""
    record = ResultRecord.load(path)
    if marker and not record.extra.get("synthetic_data"):
        record.extra["synthetic_data"] = marker
        record.save(Path(path).parents[1])  # same file; its predictions file is left as it is


def _log(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold cyan]demo[/] {message}")


def demo_workers() -> int:
    """Processes that pre-train / fine-tune side by side: one per CPU, at most 2 by default.

    Each runs one thread, so a task's numbers do not depend on how many run at once (float
    reductions depend on the thread count, not on the neighbours); `SCLBENCH_DEMO_WORKERS` overrides.
    """
    given = os.environ.get("SCLBENCH_DEMO_WORKERS")
    if given:
        return max(1, int(given))
    return max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def _pretrain_variant(variant: str, plan: DemoPlan, data: Path, out: Path, seed: int) -> Path:
    from sclbench.app.jobs import pretrain

    _threads()
    objectives = VARIANTS[variant][0].split("=")[1].strip("[]")
    _log(f"pre-training a tiny SCL model ({variant}: {objectives}), {plan.pretrain_steps} steps")
    pre_dir = out / "runs" / f"pretrain-{variant}"
    pretrain(
        "pretrain",
        None,
        str(data / "pretrain"),
        pre_dir,
        tokenizer=str(data / "tokenizer"),
        overrides=pretrain_overrides() + VARIANTS[variant] + plan.pretrain_overrides(),
        preset="tiny",
        max_steps=plan.pretrain_steps,
        global_batch_size=2,
        per_device_batch_size=1,
        lr=plan.lr,
        lr_mult_head=1,
        lr_mult_cross_modal=1,
        warmup=0.1,
        seed=seed,
        resume=False,
        log_every=20,
    )
    return pre_dir / "final"


def _finetune_task(
    task: str, variant: str, plan: DemoPlan, data: Path, out: Path, results: Path, seed: int, started: float
) -> dict[str, Any]:
    """Fine-tune and evaluate one task; returns the record's path and the seconds each part took."""
    from sclbench.app.jobs import evaluate, finetune
    from sclbench.data.synthetic import synthetic_marker

    _threads()
    _log(f"fine-tuning {task} from pretrain-{variant}, {plan.steps(task)} steps ({time.time() - started:.0f} s so far)")
    run_dir = out / "runs" / variant / task
    overrides = task_overrides(task, plan)
    begun, cpu = time.time(), time.process_time()
    finetune(
        task,
        str(out / "runs" / f"pretrain-{variant}" / "final"),
        str(data / task),
        run_dir,
        overrides=overrides,
        preset="tiny",
        max_steps=plan.steps(task),
        eval_every_steps=max(plan.steps(task) // 2, 1),
        seed=seed,
        resume=False,
        log_every=20,
    )
    trained = time.time()
    best = run_dir / "best" if (run_dir / "best" / "config.json").is_file() else run_dir / "final"
    _, path = evaluate(
        task,
        str(best),
        "test",
        str(data / task),
        results,
        overrides=overrides,
        preset="tiny",
        checkpoint_name=f"demo-{variant}",
        seed=seed,
        device="cpu",
    )
    if path is not None:
        mark_synthetic(path, synthetic_marker(data / task))
    # CPU seconds too: on a busy machine they say what the job costs, the wall seconds what it took here
    return {
        "path": path,
        "finetune_s": trained - begun,
        "evaluate_s": time.time() - trained,
        "cpu_s": time.process_time() - cpu,
    }


def _threads() -> None:
    import torch

    # Fixed thread count: float reductions (and so the last digits) depend on it; one thread, because
    # the tiny model gains nothing from two and two busy processes of two threads each crawl.
    torch.set_num_threads(int(os.environ.get("SCLBENCH_DEMO_THREADS", "1")))


def task_overrides(task: str, plan: DemoPlan) -> list[str]:
    """Every override a demo fine-tune (and its evaluation) of `task` runs with."""
    return list(demo_tasks()[task].overrides) + plan.train_overrides(task)


def run_demo(
    out: str | Path = "demo_out",
    quick: bool = False,
    seed: int = 0,
    ablation: bool = False,
    results_dir: str | Path | None = None,
    tasks: tuple[str, ...] | None = None,
    workers: int | None = None,
) -> list[ResultRecord]:
    """Run everything; returns the result records (also written under `results_dir`).

    tasks: a subset of the demo's tasks (`demo_tasks()`) to fine-tune (tests build just the model they need).
    workers: processes side by side (default `demo_workers()`); the numbers do not depend on it.
    """
    specs = demo_tasks()
    chosen = tuple(specs) if tasks is None else tasks
    unknown = sorted(set(chosen) - set(specs))
    if unknown:
        raise ConfigError(f"unknown demo task(s) {', '.join(unknown)}; choose from {', '.join(specs)}")
    # A card with a demo: section the synthetic benchmark has no data for: named, it is an error; found
    # among the cards (a user's), it is left out with a note (else a data-root error minutes later).
    missing = without_data(chosen)
    if missing and tasks is not None:
        raise ConfigError(
            "demo task(s) without synthetic data: "
            + "; ".join(f"task card {name!r}: {why}" for name, why in missing.items())
        )
    for name, why in missing.items():
        _log(f"left out: task card {name!r} has a demo: section, but {why}")
    tasks = tuple(t for t in chosen if t not in missing)
    from sclbench.data.synthetic import generate

    _threads()
    plan = QUICK if quick else FULL
    workers = demo_workers() if workers is None else workers
    out = Path(out)
    results = Path(results_dir) if results_dir else out / "results"
    started = time.time()
    _log(f"generating the synthetic mini-benchmark (scale {plan.scale}, seed {seed}) in {out / 'data'}")
    data = generate(out / "data", seed=seed, scale=plan.scale, workers=workers)
    stages: dict[str, Any] = {"generate_s": time.time() - started}
    variants = ("scl", "no-completion") if ablation else ("scl",)
    _log(f"{workers} worker process(es) of one thread each")
    order = sorted(((t, v) for v in variants for t in tasks), key=lambda tv: -specs[tv[0]].cost)
    calls = [(_finetune_task, t, v, plan, data, out, results, seed, started) for t, v in order]
    # One pre-training runs here, on one core: the fine-tune workers start meanwhile on the other (a
    # fresh interpreter importing torch and the jobs takes ~5 s), so that the fine-tunes start at once.
    early = workers > 1 and len(variants) == 1 and len(calls) > 1
    with _worker_pool(min(workers, len(calls))) if early else contextlib.nullcontext() as pool:
        mark, cpu = time.time(), time.process_time()
        _run_all([(_pretrain_variant, v, plan, data, out, seed) for v in variants], workers)
        stages["pretrain_s"] = time.time() - mark
        if len(variants) == 1:  # run in this process (several: in workers, not counted here)
            stages["pretrain_cpu_s"] = time.process_time() - cpu
        mark = time.time()
        if pool is None:
            done = _run_all(calls, workers)
        else:  # submitted in `order` (the longest first); results in that order, the first failure raised
            done = [f.result() for f in [pool.submit(*call) for call in calls]]
        stages["finetune_all_s"] = time.time() - mark
    stages["tasks"] = {f"{v}/{t}": {k: x for k, x in d.items() if k != "path"} for (t, v), d in zip(order, done)}
    stages["total_s"] = time.time() - started
    stages["workers"] = workers
    write_stage_times(out / "stage_times.json", stages)
    _log(f"done in {stages['total_s']:.0f} s ({stage_summary(stages)}); records in {results}")
    return [r for r in collect(results) if r.checkpoint_name.startswith("demo-")]


@contextlib.contextmanager
def _worker_pool(size: int) -> Iterator[ProcessPoolExecutor]:
    """`size` spawned worker processes, started now and warmed up (imports done) in the background."""
    import multiprocessing

    # spawn, as sclbench.common.processes.run_calls: forking a process that holds torch's pools is unsafe
    with ProcessPoolExecutor(max_workers=size, mp_context=multiprocessing.get_context("spawn")) as pool:
        for _ in range(size):  # each submit starts one more worker while none is idle
            pool.submit(_warm_up)
        yield pool


def _warm_up() -> None:
    import sclbench.app.jobs  # noqa: F401  (torch, the model, the tasks: what every fine-tune imports first)


def write_stage_times(path: Path, stages: dict[str, Any]) -> None:
    """Wall seconds of each stage (generation, pre-training, every fine-tune and its evaluation, the
    whole run): where the demo's time goes, on this machine. Not part of any record (timings vary)."""
    import json

    rounded = json.loads(json.dumps(stages), parse_float=lambda x: round(float(x), 1))
    path.write_text(json.dumps(rounded, indent=1) + "\n")


def stage_summary(stages: dict[str, Any]) -> str:
    """One line: generation, pre-training, fine-tuning wall seconds, then each task's own.

    Examples:
        >>> stage_summary({"generate_s": 9.6, "pretrain_s": 40.2, "finetune_all_s": 70.0,
        ...                "tasks": {"scl/vqa": {"finetune_s": 20.4, "evaluate_s": 1.2}}})
        'generate 10 s, pre-train 40 s, fine-tune 70 s (scl/vqa 20+1)'
    """
    each = ", ".join(f"{k} {v['finetune_s']:.0f}+{v['evaluate_s']:.0f}" for k, v in stages.get("tasks", {}).items())
    return (
        f"generate {stages['generate_s']:.0f} s, pre-train {stages['pretrain_s']:.0f} s, "
        f"fine-tune {stages['finetune_all_s']:.0f} s ({each})"
    )
