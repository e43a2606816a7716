"""The embedded default: the whole suite on a synthetic mini-benchmark, no data and no weights needed.

`sclbench demo` generates the benchmark in the published formats, pre-trains a tiny SCL model with
the semantic-completion objectives on images and videos, fine-tunes it on each of the six tasks
(selecting on validation splits), evaluates each on its held-out split and prints the leaderboard
with chance beside every number. `--ablation` adds a row pre-trained without MGSC/MLTC, to show
what completion learning buys. Everything is seeded: the same seed gives the same numbers.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sclbench.errors import ConfigError
from sclbench.metrics.chance import chance_level
from sclbench.results import ResultRecord, collect
from sclbench.results.stats import format_p, number_stats

TASKS = ("vqa", "nlvr2", "f30k", "coco", "msrvtt", "lsmdc")
# What the leaderboard shows per task (the record holds every metric).
SHOWN = {"vqa": ("accuracy",), "nlvr2": ("accuracy",), "f30k": ("tr_r1", "ir_r1"), "coco": ("tr_r1", "ir_r1"),
         "msrvtt": ("t2v_r1", "v2t_r1"), "lsmdc": ("t2v_r1", "v2t_r1")}
VARIANTS = {"scl": ["objectives=[mlm,itm,itc,mgsc,mltc]"], "no-completion": ["objectives=[mlm,itm,itc]"]}

# Card overrides that fit the synthetic splits. VQA: test-dev has no public answers, so the demo
# reports the part of val2014 that is neither trained on nor used for selection (minival).
SYNTH_OVERRIDES: dict[str, list[str]] = {
    "vqa": ["data.minival_images=10", "splits.train=[train]", "splits.test=trainable_val"],
    "pretrain": ["data.corpora=[{name: coco, root: ../coco}, {name: vg, root: vg}, {name: sbu, root: sbu},"
                 " {name: cc3m, root: cc3m}, {name: webvid, root: webvid}]"],
}


@dataclass(frozen=True)
class DemoPlan:
    scale: float  # size of the synthetic benchmark (1.0: 100 F30K training images, 60 VQA images, ...)
    pretrain_steps: int
    finetune_steps: int  # VQA; the others get twice as many steps of half the batch
    chunk: int = 16  # pre-training samples per modality-pure micro-batch (2 per step)
    batch: int = 32
    lr: float = 1e-3

    def steps(self, task: str) -> int:
        # NLVR2 (compositional statements about two images) needs the most updates: smaller batches.
        return self.finetune_steps * (2 if task in RETRIEVAL or task == "nlvr2" else 1)

    def pretrain_overrides(self) -> list[str]:
        return [f"train.chunk_size={self.chunk}", *self.common]

    @property
    def common(self) -> list[str]:
        # Small-model settings: plain resizing instead of RandAugment (32 px images learn faster without
        # it) with decoded tensors cached, 2 evenly spaced frames per clip, and a larger init of the
        # text encoder so that its CLS token carries content from the first step (at RoBERTa's 0.02
        # the 64-wide model's CLS output is the same for every caption, a long contrastive plateau).
        return ["train.transform=eval", "data.cache_images=true", "train.frame_mode=uniform", "data.num_frames=2",
                "model.text_init_std=0.1"]

    def train_overrides(self, task: str) -> list[str]:
        # A higher lr than the official (pre-trained, 350M-param) recipe, one lr for every group, and
        # one negative caption for retrieval (the contrastive term does most of the learning).
        batch = self.batch // 2 if task in RETRIEVAL or task == "nlvr2" else self.batch
        return [*self.common, f"train.global_batch_size={batch}", f"train.per_device_batch_size={batch}",
                f"train.lr={self.lr}", "train.lr_mult_head=1", "train.lr_mult_cross_modal=1", "train.warmup=0.1",
                *(["train.neg_texts=1"] if task in RETRIEVAL else [])]


RETRIEVAL = ("f30k", "coco", "msrvtt", "lsmdc")
QUICK = DemoPlan(scale=1.0, pretrain_steps=30, finetune_steps=200)
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


def run_demo(out: str | Path = "demo_out", quick: bool = False, seed: int = 0, ablation: bool = False,
             results_dir: str | Path | None = None, tasks: tuple[str, ...] = TASKS) -> list[ResultRecord]:
    """Run everything; returns the result records (also written under `results_dir`).

    tasks: a subset of TASKS to fine-tune (tests build just the model they need).
    """
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise ConfigError(f"unknown demo task(s) {', '.join(unknown)}; choose from {', '.join(TASKS)}")
    import torch

    from sclbench.data.synthetic import generate, synthetic_marker
    from sclbench.app.jobs import evaluate, finetune, pretrain

    # Fixed thread count: float reductions (and so the last digits) depend on it; one thread, because
    # the tiny model gains nothing from two and two busy processes of two threads each crawl.
    torch.set_num_threads(int(os.environ.get("SCLBENCH_DEMO_THREADS", "1")))
    plan = QUICK if quick else FULL
    out = Path(out)
    results = Path(results_dir) if results_dir else out / "results"
    started = time.perf_counter()
    _log(f"generating the synthetic mini-benchmark (scale {plan.scale}, seed {seed}) in {out / 'data'}")
    data = generate(out / "data", seed=seed, scale=plan.scale)
    variants = ("scl", "no-completion") if ablation else ("scl",)
    for variant in variants:
        objectives = VARIANTS[variant][0].split("=")[1].strip("[]")
        _log(f"pre-training a tiny SCL model ({variant}: {objectives}), {plan.pretrain_steps} steps")
        pre_dir = out / "runs" / f"pretrain-{variant}"
        pretrain("pretrain", None, str(data / "pretrain"), pre_dir, tokenizer=str(data / "tokenizer"),
                 overrides=SYNTH_OVERRIDES["pretrain"] + VARIANTS[variant] + plan.pretrain_overrides(),
                 preset="tiny", max_steps=plan.pretrain_steps, global_batch_size=2, per_device_batch_size=1,
                 lr=plan.lr, lr_mult_head=1, lr_mult_cross_modal=1, warmup=0.1, seed=seed, resume=False, log_every=20)
        for task in tasks:
            _log(f"fine-tuning {task} from pretrain-{variant}, {plan.steps(task)} steps "
                 f"({time.perf_counter() - started:.0f} s so far)")
            run_dir = out / "runs" / variant / task
            overrides = SYNTH_OVERRIDES.get(task, []) + plan.train_overrides(task)
            finetune(task, str(pre_dir / "final"), str(data / task), run_dir, overrides=overrides, preset="tiny",
                     max_steps=plan.steps(task), eval_every_steps=max(plan.steps(task) // 2, 1),
                     seed=seed, resume=False, log_every=20)
            best = run_dir / "best" if (run_dir / "best" / "config.json").is_file() else run_dir / "final"
            _, path = evaluate(task, str(best), "test", str(data / task), results, overrides=overrides,
                               preset="tiny", checkpoint_name=f"demo-{variant}", seed=seed, device="cpu")
            if path is not None:
                mark_synthetic(path, synthetic_marker(data / task))
    _log(f"done in {time.perf_counter() - started:.0f} s; records in {results}")
    return [r for r in collect(results) if r.checkpoint_name.startswith("demo-")]


# ---- the leaderboard: every number with its interval and its p-value against chance ----------------
def chance(record: ResultRecord, metric: str) -> float | None:
    """The expected value of `metric` for a scorer that ranks/answers uniformly at random."""
    return chance_level(record.task, metric, record.protocol)


def leaderboard(records: list[ResultRecord]) -> list[dict[str, Any]]:
    """One row per (task, shown metric): each variant's value, its 95% interval and p vs chance."""
    rows = []
    by_key = {(r.task, r.checkpoint_name): r for r in records}
    variants = sorted({r.checkpoint_name for r in records})
    for task in TASKS:
        for metric in SHOWN[task]:
            row: dict[str, Any] = {"task": task, "metric": metric}
            ref = None
            for v in variants:
                rec = by_key.get((task, v))
                row[v] = rec.metrics.get(metric) if rec else None
                if rec is not None and metric in rec.metrics:
                    st = number_stats(rec, metric)
                    row[f"{v} ci"], row[f"{v} p"] = st.ci, st.p_value
                ref = ref or rec
            if ref is None:
                continue
            row["split"] = ref.split
            row["chance"] = chance(ref, metric)
            rows.append(row)
    return rows


def ablation_comparison(records: list[ResultRecord], with_: str = "demo-scl", without: str = "demo-no-completion",
                        resamples: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """Per shown metric: (with MGSC/MLTC) - (without), its paired 95% bootstrap interval over the test
    samples (the same samples on both sides, matched by id) and a plain verdict."""
    from sclbench.results.check import paired_bootstrap

    by_key = {(r.task, r.checkpoint_name): r for r in records}
    rows = []
    for task in TASKS:
        a, b = by_key.get((task, with_)), by_key.get((task, without))
        if a is None or b is None:
            continue
        preds_a, preds_b = a.read_predictions() or [], b.read_predictions() or []
        for metric in SHOWN[task]:
            if metric not in a.metrics or metric not in b.metrics:
                continue
            row: dict[str, Any] = {"task": task, "metric": metric, "with": a.metrics[metric],
                                   "without": b.metrics[metric], "delta": a.metrics[metric] - b.metrics[metric]}
            va, vb = _by_id(preds_a, metric), _by_id(preds_b, metric)
            shared = sorted(set(va) & set(vb))
            ci = paired_bootstrap([va[i] for i in shared], [vb[i] for i in shared], resamples, seed) if shared else None
            row["ci"], row["n"] = ci, len(shared)
            if ci is None:
                row["verdict"] = "cannot tell (no per-sample scores)"
            elif ci[0] > 0 or ci[1] < 0:
                row["verdict"] = f"completion {'helps' if ci[0] > 0 else 'hurts'} (significant)"
            else:
                row["verdict"] = "no significant difference"
            rows.append(row)
    return rows


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
    for col in ("task", "metric", "with", "without", "Δ", "95% paired CI", "n", "verdict"):
        table.add_column(col, justify="right" if col in ("with", "without", "Δ", "n") else "left")
    for r in rows:
        ci = "-" if r["ci"] is None else f"\\[{r['ci'][0]:+.1f}, {r['ci'][1]:+.1f}]"
        table.add_row(r["task"], r["metric"], f"{r['with']:.1f}", f"{r['without']:.1f}", f"{r['delta']:+.1f}", ci,
                      str(r["n"]), r["verdict"])
    Console().print(table)


def print_leaderboard(records: list[ResultRecord]) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = leaderboard(records)
    variants = sorted({r.checkpoint_name for r in records})
    table = Table(title="sclbench demo: tiny SCL model on the synthetic mini-benchmark (test splits)",
                  caption="\\[a, b]: 95% bootstrap interval; p: one-sided vs chance (bold: p < 0.01)")
    for col in ("task", "split", "metric", *variants, "chance"):
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

    for row in rows:
        table.add_row(row["task"], row["split"], row["metric"], *(cell(row, v) for v in variants), fmt(row["chance"]))
    Console().print(table)
