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

from sclbench.common.processes import run_calls as _run_all
from sclbench.errors import ConfigError
from sclbench.metrics.chance import chance_level
from sclbench.results import ResultRecord, collect
from sclbench.results.stats import format_p, number_stats

VARIANTS = {"scl": ["objectives=[mlm,itm,itc,mgsc,mltc]"], "no-completion": ["objectives=[mlm,itm,itc]"]}


@dataclass(frozen=True)
class DemoTask:
    """A task's place and settings in the demo: its card's `demo:` section (see the packaged cards)."""

    name: str
    order: float
    shown: tuple[str, ...]  # what the leaderboard shows (the record holds every metric)
    step_factor: float  # fine-tuning steps relative to the plan's finetune_steps
    cost: float  # rough seconds at QUICK, one thread: the longest start first, so workers finish together
    overrides: tuple[str, ...] = ()  # card overrides that fit the synthetic splits
    half_batch: bool = False  # retrieval and NLVR2: half the demo's batch
    lr_divisor: float = 1  # a smaller lr for the body than the demo's
    lr_mult_head: float = 1
    neg_texts: int | None = None  # negative captions per sample (retrieval)
    selection: str | None = None  # protocol.selection, where the card's default is not the best validation


def demo_tasks() -> dict[str, DemoTask]:
    """The fine-tuning tasks of the demo, in leaderboard order: every card (packaged or the user's) with a
    `demo:` section, pre-training aside."""
    from sclbench.cards import available_cards, load_card

    found = []
    for name in available_cards():
        card = load_card(name)
        section = card.get("demo")
        if not isinstance(section, dict) or card.family == "pretrain":
            continue
        try:
            found.append(
                DemoTask(
                    name=name,
                    **{
                        **section,
                        "shown": tuple(section.get("shown") or ()),
                        "overrides": tuple(section.get("overrides") or ()),
                    },
                )
            )
        except TypeError as err:  # a key DemoTask does not have, or a required one missing
            raise ConfigError(f"task card {name!r}: demo section: {err}") from None
    return {t.name: t for t in sorted(found, key=lambda t: (t.order, t.name))}


def pretrain_overrides() -> list[str]:
    """The pre-training card's demo overrides (its synthetic corpora)."""
    from sclbench.cards import load_card

    return list(load_card("pretrain").get("demo.overrides") or [])


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
    tasks = tuple(specs) if tasks is None else tasks
    unknown = sorted(set(tasks) - set(specs))
    if unknown:
        raise ConfigError(f"unknown demo task(s) {', '.join(unknown)}; choose from {', '.join(specs)}")
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


# ---- the leaderboard: every number with its interval and its p-value against chance ----------------
def chance(record: ResultRecord, metric: str) -> float | None:
    """The expected value of `metric` for a scorer that ranks/answers uniformly at random."""
    return chance_level(record.task, metric, record.protocol)


def blind(record: ResultRecord, metric: str) -> tuple[float | None, str, float | None]:
    """(value, what it is, one-sided p of the record beating it) of the number's blind baseline: what
    the answer scores from one modality alone.

    VQA: the question-only baseline the task recorded (the most frequent training answer per question),
    paired with the model question by question. NLVR2: the best any statement-only answer reaches on
    these samples (50 by design: each statement is true of one of its pairs and false of the other).
    Retrieval: a query without the other modality ranks its candidates at chance.
    """
    from sclbench.metrics.blind import paired_p_value, sentence_only_accuracy

    if record.task == "vqa" and metric == "accuracy":
        value = record.protocol.get("question_only_accuracy")
        if value is None:
            return None, "question-only", None
        pairs = [
            (p["scores"]["accuracy"], p["scores"]["question_only"])
            for p in _predictions(record)
            if isinstance(p.get("scores"), dict) and {"accuracy", "question_only"} <= set(p["scores"])
        ]
        p_value = paired_p_value([a for a, _ in pairs], [b for _, b in pairs]) if pairs else None
        return float(value), "question-only", p_value
    if record.task == "nlvr2" and metric == "accuracy":
        scored = [p for p in _predictions(record) if "identifier" in p and "accuracy" in (p.get("scores") or {})]
        # the label is the prediction when it scored 1, its opposite when it scored 0
        labels = [bool(p["prediction"]) == (p["scores"]["accuracy"] == 1) for p in scored]
        if not scored:
            return 50.0, "statement-only (by design)", None
        return sentence_only_accuracy([p["identifier"] for p in scored], labels), "statement-only (best)", None
    return chance(record, metric), "one modality: chance", None


def _predictions(record: ResultRecord) -> list[dict[str, Any]]:
    try:
        return record.read_predictions() or []
    except Exception:  # a record whose predictions file is gone still renders, without the pairing
        return []


def leaderboard(records: list[ResultRecord]) -> list[dict[str, Any]]:
    """One row per (task, shown metric): each variant's value, its 95% interval and p vs chance, and
    the blind baseline (`blind`) with each variant's paired p against it where there is one."""
    rows = []
    by_key = {(r.task, r.checkpoint_name): r for r in records}
    variants = sorted({r.checkpoint_name for r in records})
    for task, spec in demo_tasks().items():
        for metric in spec.shown:
            row: dict[str, Any] = {"task": task, "metric": metric}
            ref = None
            for v in variants:
                rec = by_key.get((task, v))
                row[v] = rec.metrics.get(metric) if rec else None
                if rec is not None and metric in rec.metrics:
                    st = number_stats(rec, metric)
                    row[f"{v} ci"], row[f"{v} p"] = st.ci, st.p_value
                    row[f"{v} p blind"] = blind(rec, metric)[2]
                ref = ref or rec
            if ref is None:
                continue
            row["split"] = ref.split
            row["chance"] = chance(ref, metric)
            row["blind"], row["blind kind"], _ = blind(ref, metric)
            rows.append(row)
    return rows


def ablation_comparison(
    records: list[ResultRecord],
    with_: str = "demo-scl",
    without: str = "demo-no-completion",
    resamples: int = 2000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Per shown metric: (with MGSC/MLTC) - (without), its paired 95% bootstrap interval over the test
    samples (the same samples on both sides, matched by id) and a plain verdict."""
    from sclbench.results.check import paired_bootstrap

    by_key = {(r.task, r.checkpoint_name): r for r in records}
    rows = []
    for task, spec in demo_tasks().items():
        a, b = by_key.get((task, with_)), by_key.get((task, without))
        if a is None or b is None:
            continue
        preds_a, preds_b = a.read_predictions() or [], b.read_predictions() or []
        for metric in spec.shown:
            if metric not in a.metrics or metric not in b.metrics:
                continue
            row: dict[str, Any] = {
                "task": task,
                "metric": metric,
                "with": a.metrics[metric],
                "without": b.metrics[metric],
                "delta": a.metrics[metric] - b.metrics[metric],
            }
            va, vb = _by_id(preds_a, metric), _by_id(preds_b, metric)
            shared = sorted(set(va) & set(vb))
            ci = paired_bootstrap([va[i] for i in shared], [vb[i] for i in shared], resamples, seed) if shared else None
            row["ci"], row["n"] = ci, len(shared)
            diffs = [va[i] - vb[i] for i in shared]
            row["queries_needed"] = queries_needed(diffs, EFFECT_POINTS) if shared else None
            if ci is None:
                row["verdict"] = "cannot tell (no per-sample scores)"
            elif ci[0] > 0 or ci[1] < 0:
                row["verdict"] = f"completion {'helps' if ci[0] > 0 else 'hurts'} (significant)"
            else:
                row["verdict"] = "no significant difference"
            rows.append(row)
    return rows


# The size of effect the ablation should be able to see: a few R@1 points, the order of the gains the
# SCL paper attributes to its completion objectives on retrieval.
EFFECT_POINTS = 2.0


def queries_needed(
    diffs: list[float], effect_points: float = EFFECT_POINTS, z_alpha: float = 1.96, z_power: float = 0.84
) -> int | None:
    """Paired test samples needed to detect a mean difference of `effect_points` (two-sided 5%, 80%
    power), from the spread of the per-sample differences measured here: n = ((z_a + z_b) sd / effect)^2.
    For 0/1 hits the variance is about the fraction of discordant samples. None if nothing differed."""
    import math

    n = len(diffs)
    if n < 2:
        return None
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    if var == 0:
        return None
    return math.ceil(((z_alpha + z_power) * math.sqrt(var) / (effect_points / 100.0)) ** 2)


def _by_id(predictions: list[dict[str, Any]], metric: str) -> dict[str, float]:
    """Per-sample scores of `metric` keyed by sample id (so two runs pair sample by sample)."""
    from sclbench.results.stats import per_sample

    out = {}
    for p in predictions:
        value = per_sample([p], metric)
        if value:
            out[str(p.get("id"))] = value[0]
    return out


def print_ablation(records: list[ResultRecord]) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = ablation_comparison(records)
    if not rows:
        return
    table = Table(title="ablation: pre-training with MGSC/MLTC minus without (same data, steps, seed)")
    need = f"n for {EFFECT_POINTS:g} pts"
    for col in ("task", "metric", "with", "without", "Δ", "95% paired CI", "n", need, "verdict"):
        table.add_column(col, justify="right" if col in ("with", "without", "Δ", "n", need) else "left")
    for r in rows:
        ci = "-" if r["ci"] is None else f"\\[{r['ci'][0]:+.1f}, {r['ci'][1]:+.1f}]"
        needed = "-" if r.get("queries_needed") is None else f"{r['queries_needed']:,}"
        table.add_row(
            r["task"],
            r["metric"],
            f"{r['with']:.1f}",
            f"{r['without']:.1f}",
            f"{r['delta']:+.1f}",
            ci,
            str(r["n"]),
            needed,
            r["verdict"],
        )
    table.caption = (
        f"n for {EFFECT_POINTS:g} pts: paired test samples that would detect a {EFFECT_POINTS:g}-point "
        "difference (5%, 80% power) given the per-sample spread measured here"
    )
    Console().print(table)


def print_leaderboard(records: list[ResultRecord]) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = leaderboard(records)
    variants = sorted({r.checkpoint_name for r in records})
    table = Table(
        title="sclbench demo: tiny SCL model on the synthetic mini-benchmark (test splits)",
        caption=(
            "\\[a, b]: 95% bootstrap interval; p: one-sided vs chance (bold: p < 0.01); blind: the score from "
            "one modality alone (VQA: the most frequent training answer per question, with the model's one-sided "
            "p against it, paired over questions; NLVR2: the best statement-only score, 50 by design; "
            "retrieval: chance)"
        ),
    )
    for col in ("task", "split", "metric", *variants, "chance", "blind"):
        table.add_column(col, justify="left" if col in ("task", "split", "metric") else "right")
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731

    def cell(row: dict[str, Any], v: str) -> str:
        text, ci, p = fmt(row[v]), row.get(f"{v} ci"), row.get(f"{v} p")
        if ci is not None:
            text += f" [{ci[0]:.1f}, {ci[1]:.1f}]"
        if p is not None:
            shown = format_p(p)
            shown = f"p{shown}" if shown.startswith("<") else f"p={shown}"
            text += f" {shown}" if p >= 0.01 else f" [bold]{shown}[/]"
        return text

    def blind_cell(row: dict[str, Any]) -> str:
        if row.get("blind kind") == "one modality: chance":
            return "= chance"
        text = f"{fmt(row.get('blind'))} {row.get('blind kind', '')}"
        for v in variants:
            p = row.get(f"{v} p blind")
            if p is not None:
                shown = format_p(p)
                shown = f"p{shown}" if shown.startswith("<") else f"p={shown}"
                text += f" {shown}" if p >= 0.01 else f" [bold]{shown}[/]"
        return text

    for row in rows:
        table.add_row(
            row["task"],
            row["split"],
            row["metric"],
            *(cell(row, v) for v in variants),
            fmt(row["chance"]),
            blind_cell(row),
        )
    Console().print(table)
