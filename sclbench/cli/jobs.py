"""`sclbench finetune`, `sclbench eval`, `sclbench pretrain`: parse options, call sclbench.jobs."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

CKPT_HELP = "checkpoint: a registered name (checkpoints.yaml), an official .ckpt, or an sclbench directory"


def _print_metrics(title: str, metrics: dict, path: Optional[Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, (int, float)):
            table.add_row(key, f"{value:.2f}")
    console = Console()
    console.print(table)
    if path is not None:
        console.print(f"result record: {path}")


def finetune(
    task: str = typer.Argument(..., help="task card name: vqa, nlvr2, f30k, coco, msrvtt, lsmdc"),
    overrides: Optional[List[str]] = typer.Argument(None, help="card overrides, e.g. train.lr=1e-5"),
    ckpt: Optional[str] = typer.Option(None, "--ckpt", help=CKPT_HELP + "; none = train from scratch"),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="folder with the benchmark's published files"),
    out: Optional[Path] = typer.Option(None, "--out", help="run folder (default runs/<task>)"),
    preset: str = typer.Option("base", help="model size when no checkpoint is given: base or tiny"),
    tokenizer: Optional[str] = typer.Option(None, help="tokenizer folder or hub id (default: the checkpoint's)"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="stop after this many optimizer steps"),
    max_epochs: Optional[int] = typer.Option(None, "--max-epochs"),
    limit: Optional[int] = typer.Option(None, "--limit", help="use only the first N records of each split"),
    precision: Optional[str] = typer.Option(None, help="fp32, bf16 or fp16 (CUDA)"),
    grad_checkpointing: Optional[bool] = typer.Option(None, "--grad-checkpointing/--no-grad-checkpointing"),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="validate every N steps (and at the end)"),
    save_every: Optional[int] = typer.Option(None, "--save-every", help="checkpoint every N steps (and at the end)"),
    num_workers: int = typer.Option(0, "--num-workers"),
    seed: int = typer.Option(0),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="continue from the run folder's last checkpoint"),
    skip_corrupt: bool = typer.Option(False, "--skip-corrupt", help="skip (and count) unreadable images/videos"),
) -> None:
    """Fine-tune on a benchmark with the card's official hyper-parameters; select on its val split."""
    from sclbench.app.jobs import finetune as run

    summary = run(task, ckpt, data_root, out or Path("runs") / task, overrides=overrides, preset=preset,
                  tokenizer=tokenizer, limit=limit, resume=resume, max_steps=max_steps, max_epochs=max_epochs,
                  precision=precision, grad_checkpointing=grad_checkpointing, eval_every_steps=eval_every,
                  save_every_steps=save_every, num_workers=num_workers, seed=seed, skip_corrupt=skip_corrupt)
    typer.echo(f"done: {summary.get('step')} steps; best {summary.get('select_metric')} = "
               f"{summary.get('best_metric')}; best checkpoint: {summary.get('best_dir')}")


def evaluate(
    task: str = typer.Argument(..., help="task card name: vqa, nlvr2, f30k, coco, msrvtt, lsmdc"),
    overrides: Optional[List[str]] = typer.Argument(None, help="card overrides, e.g. eval.k=256"),
    ckpt: Optional[str] = typer.Option(None, "--ckpt", help=CKPT_HELP),
    split: str = typer.Option("test", help="val (selection) or test (report once)"),
    data_root: Optional[str] = typer.Option(None, "--data-root"),
    results: Path = typer.Option(Path("results"), "--results", help="where result records are written"),
    name: Optional[str] = typer.Option(None, "--name", help="checkpoint name in the record (default: file name)"),
    preset: str = typer.Option("base", help="model size when no checkpoint is given"),
    tokenizer: Optional[str] = typer.Option(None),
    limit: Optional[int] = typer.Option(None, "--limit"),
    batch_size: int = typer.Option(32, "--batch-size"),
    num_workers: int = typer.Option(0, "--num-workers"),
    mode: Optional[str] = typer.Option(None, help="retrieval: exhaustive or two-stage (card default)"),
    k: Optional[int] = typer.Option(None, help="retrieval: candidates re-ranked per query"),
    fusion: Optional[str] = typer.Option(None, help="retrieval: itm or itm+itc"),
    ties: str = typer.Option("gt_last", help="retrieval tie rule: gt_last, gt_first, index"),
    cache_dir: Optional[str] = typer.Option(None, "--cache-dir", help="retrieval: on-disk feature cache"),
    submission: Optional[Path] = typer.Option(None, "--submission", help="folder for EvalAI / NLVR2 files"),
    skip_corrupt: bool = typer.Option(False, "--skip-corrupt", help="skip (and count) unreadable images/videos"),
) -> None:
    """Evaluate a checkpoint: print the metrics and write a result record (+ per-sample predictions)."""
    from sclbench.app.jobs import evaluate as run

    ev, path = run(task, ckpt, split, data_root, results, overrides=overrides, preset=preset, tokenizer=tokenizer,
                   limit=limit, batch_size=batch_size, num_workers=num_workers, checkpoint_name=name,
                   submission_dir=submission, mode=mode, k=k, fusion=fusion, ties=ties, cache_dir=cache_dir,
                   skip_corrupt=skip_corrupt)
    from sclbench.engine import distributed as D

    if D.is_main():
        _print_metrics(f"{task} / {split} ({ev.scorer})", ev.metrics, path)


def pretrain(
    overrides: Optional[List[str]] = typer.Argument(None, help="card overrides, e.g. objectives=[mlm,itm,itc,mgsc]"),
    card: str = typer.Option("pretrain", "--config", help="pre-training card name or path (tasks/pretrain.yaml)"),
    ckpt: Optional[str] = typer.Option(None, "--ckpt", help=CKPT_HELP + "; to continue pre-training"),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="folder holding the corpora of the card"),
    out: Path = typer.Option(Path("runs/pretrain"), "--out"),
    preset: str = typer.Option("base", help="model size when no checkpoint is given: base or tiny"),
    tokenizer: Optional[str] = typer.Option(None),
    max_steps: Optional[int] = typer.Option(None, "--max-steps"),
    limit: Optional[int] = typer.Option(None, "--limit", help="use only the first N records of each corpus"),
    precision: Optional[str] = typer.Option(None),
    grad_checkpointing: Optional[bool] = typer.Option(None, "--grad-checkpointing/--no-grad-checkpointing"),
    save_every: Optional[int] = typer.Option(None, "--save-every"),
    num_workers: int = typer.Option(0, "--num-workers"),
    seed: int = typer.Option(0),
    resume: bool = typer.Option(True, "--resume/--no-resume"),
) -> None:
    """Pre-train with MLM, ITM, ITC and semantic completion (MGSC, MLTC) on image and video corpora."""
    from sclbench.app.jobs import pretrain as run

    summary = run(card, ckpt, data_root, out, overrides=overrides, preset=preset, tokenizer=tokenizer, limit=limit,
                  resume=resume, max_steps=max_steps, precision=precision, grad_checkpointing=grad_checkpointing,
                  save_every_steps=save_every, num_workers=num_workers, seed=seed)
    typer.echo(f"done: {summary.get('step')} steps; weights in {Path(out) / 'final'}")


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune)
    app.command("eval")(evaluate)
    app.command("pretrain")(pretrain)
