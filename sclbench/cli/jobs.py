"""`sclbench finetune`, `sclbench eval`, `sclbench pretrain`: parse options, call sclbench.app.jobs."""

from __future__ import annotations

from pathlib import Path

import typer

from sclbench.app.catalog import task_names
from sclbench.cli._params import COUNT, INPUT_DIR, NON_NEGATIVE, OUTPUT_DIR, SEED, utf8_text

CKPT_HELP = "checkpoint: a registered name (`sclbench ckpt list`), an official .ckpt, or an sclbench directory"
TASK_HELP = f"task card name (`sclbench tasks` lists them): {task_names()}; your own with --cards DIR"
OVERRIDES_HELP = "card overrides KEY=VALUE, e.g. train.lr=1e-5 (unknown keys are refused)"
DATA_ROOT_HELP = "folder with the benchmark's published files (default: the card's data.root)"
PRESET_HELP = "model size when no --ckpt is given: base (official sizes) or tiny (tests, demo)"
TOKENIZER_HELP = "tokenizer folder or hub id (default: the one saved with the checkpoint / named by its config)"
PRECISION_HELP = "fp32, bf16 (autocast) or fp16 (CUDA only); default bf16 on CUDA, fp32 on CPU"
TRUST_HELP = (
    "read --ckpt and the run folder's checkpoints even when they pickle more than tensors and plain "
    "containers: that can run code, so only for files you trust"
)
SKIP_HELP = "skip (and count in the record) unreadable or missing images/videos instead of stopping"
WORKERS_HELP = (
    "data-loading worker processes (default: on CUDA the CPUs of this process per local rank, minus one, "
    "at most 8; 0 on CPU)"
)
MODEL_HELP = (
    "the model: scl (SCL and METER checkpoints, the default), a built-in adapter (vilt, blip, clip; --ckpt a hub "
    "id or local folder), or your own as package.module:factory or path/to/file.py:factory (README: Any model)"
)
COMPILE_HELP = (
    "torch.compile the model's stages (compiling takes minutes; recorded): faster steps on a GPU, the "
    "same numbers up to float rounding"
)


def _text(path: Path | None) -> str | None:
    """The library takes folders as text (a card's data.root is text too)."""
    return None if path is None else str(path)


def _print_metrics(title: str, metrics: dict, path: Path | None) -> None:
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
    task: str = typer.Argument(..., help=TASK_HELP),
    overrides: list[str] | None = typer.Argument(None, help=OVERRIDES_HELP),
    ckpt: str | None = typer.Option(None, "--ckpt", help=CKPT_HELP + "; none = train from scratch"),
    data_root: Path | None = typer.Option(None, "--data-root", help=DATA_ROOT_HELP, **INPUT_DIR),
    out: Path | None = typer.Option(None, "--out", help="run folder (default runs/<task>)", **OUTPUT_DIR),
    preset: str = typer.Option("base", "--preset", help=PRESET_HELP),
    tokenizer: str | None = typer.Option(None, "--tokenizer", help=TOKENIZER_HELP),
    max_steps: int | None = typer.Option(None, "--max-steps", help="stop after this many optimizer steps", **COUNT),
    max_epochs: int | None = typer.Option(
        None, "--max-epochs", help="epochs (default: the card's train.max_epochs)", **COUNT
    ),
    limit: int | None = typer.Option(None, "--limit", help="use only the first N records of each split", **COUNT),
    precision: str | None = typer.Option(None, "--precision", help=PRECISION_HELP + " for training"),
    grad_checkpointing: bool | None = typer.Option(
        None, "--grad-checkpointing/--no-grad-checkpointing", help="recompute activations in backward (less memory)"
    ),
    eval_every: int | None = typer.Option(
        None, "--eval-every", help="validate every N steps (default: the card's val_check_interval)", **COUNT
    ),
    save_every: int | None = typer.Option(
        None, "--save-every", help="checkpoint every N steps (and at the end)", **COUNT
    ),
    num_workers: int | None = typer.Option(None, "--num-workers", help=WORKERS_HELP, **NON_NEGATIVE),
    seed: int = typer.Option(0, "--seed", help="random seed (recorded; the same seed gives the same run)", **SEED),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="continue from the run folder's last checkpoint"),
    skip_corrupt: bool = typer.Option(False, "--skip-corrupt", help=SKIP_HELP),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help=TRUST_HELP),
    compile: bool = typer.Option(False, "--compile/--no-compile", help=COMPILE_HELP),
) -> None:
    """Fine-tune on a benchmark with the card's official hyper-parameters; select on its val split."""
    from sclbench.app.jobs import finetune as run

    summary = run(
        task,
        ckpt,
        _text(data_root),
        out or Path("runs") / task,
        overrides=overrides,
        preset=preset,
        tokenizer=tokenizer,
        limit=limit,
        resume=resume,
        max_steps=max_steps,
        max_epochs=max_epochs,
        precision=precision,
        grad_checkpointing=grad_checkpointing,
        eval_every_steps=eval_every,
        save_every_steps=save_every,
        num_workers=num_workers,
        seed=seed,
        skip_corrupt=skip_corrupt,
        trust_pickle=trust_pickle,
        compile=compile or None,
    )
    typer.echo(
        f"done: {summary.get('step')} steps; best {summary.get('select_metric')} = "
        f"{summary.get('best_metric')} (step {summary.get('best_step')}); best checkpoint: "
        f"{summary.get('best_dir')}"
    )


def evaluate(
    task: str = typer.Argument(..., help=TASK_HELP),
    overrides: list[str] | None = typer.Argument(None, help="card overrides KEY=VALUE, e.g. eval.k=256"),
    ckpt: str | None = typer.Option(None, "--ckpt", help=CKPT_HELP),
    model: str = typer.Option("scl", "--model", help=MODEL_HELP),
    split: str = typer.Option("test", "--split", help="val (selection) or test (report once)"),
    data_root: Path | None = typer.Option(None, "--data-root", help=DATA_ROOT_HELP, **INPUT_DIR),
    results: Path = typer.Option(Path("results"), "--results", help="where result records are written", **OUTPUT_DIR),
    name: str | None = typer.Option(
        None, "--name", help="checkpoint name in the record (default: file name)", parser=utf8_text
    ),
    preset: str = typer.Option("base", "--preset", help=PRESET_HELP),
    tokenizer: str | None = typer.Option(None, "--tokenizer", help=TOKENIZER_HELP),
    limit: int | None = typer.Option(None, "--limit", help="use only the first N records of the split", **COUNT),
    batch_size: int = typer.Option(32, "--batch-size", help="evaluation batch size per process", **COUNT),
    num_workers: int | None = typer.Option(None, "--num-workers", help=WORKERS_HELP, **NON_NEGATIVE),
    precision: str | None = typer.Option(
        None, "--precision", help=PRECISION_HELP + " unless the card sets eval.precision"
    ),
    tf32: bool | None = typer.Option(None, "--tf32/--no-tf32", help="TF32 matmuls for fp32 on CUDA (default on)"),
    mode: str | None = typer.Option(None, "--mode", help="retrieval: exhaustive or two-stage (card default)"),
    k: int | None = typer.Option(None, "--k", help="retrieval: candidates re-ranked per query", **COUNT),
    fusion: str | None = typer.Option(None, "--fusion", help="retrieval: itm or itm+itc"),
    ties: str = typer.Option("gt_last", "--ties", help="retrieval tie rule: gt_last, gt_first, index"),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", **OUTPUT_DIR, help="retrieval: on-disk feature and score cache (resumable)"
    ),
    skip_existing: bool = typer.Option(
        False, "--skip-existing", help="do nothing when a record of this task, split, checkpoint and protocol exists"
    ),
    submission: Path | None = typer.Option(None, "--submission", help="folder for EvalAI / NLVR2 files", **OUTPUT_DIR),
    skip_corrupt: bool = typer.Option(False, "--skip-corrupt", help=SKIP_HELP),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help=TRUST_HELP),
    compile: bool = typer.Option(False, "--compile/--no-compile", help=COMPILE_HELP),
) -> None:
    """Evaluate a checkpoint (SCL, METER, or any model with --model): print the metrics and write a result
    record (+ per-sample predictions)."""
    from sclbench.app.jobs import evaluate as run
    from sclbench.app.jobs import is_main_process

    ev, path = run(
        task,
        ckpt,
        split,
        _text(data_root),
        results,
        overrides=overrides,
        preset=preset,
        tokenizer=tokenizer,
        limit=limit,
        batch_size=batch_size,
        num_workers=num_workers,
        checkpoint_name=name,
        submission_dir=submission,
        skip_corrupt=skip_corrupt,
        skip_existing=skip_existing,
        precision=precision,
        tf32=tf32,
        mode=mode,
        k=k,
        fusion=fusion,
        ties=ties,
        cache_dir=_text(cache_dir),
        trust_pickle=trust_pickle,
        compile=compile,
        model=model,
    )
    if is_main_process():
        if ev is None:
            typer.echo(f"skipped: {path} already holds this evaluation (--skip-existing)")
        else:
            _print_metrics(f"{task} / {split} ({ev.scorer})", ev.metrics, path)


def pretrain(
    overrides: list[str] | None = typer.Argument(None, help="card overrides, e.g. objectives=[mlm,itm,itc,mgsc]"),
    card: str = typer.Option("pretrain", "--config", help="pre-training card name or path (tasks/pretrain.yaml)"),
    ckpt: str | None = typer.Option(None, "--ckpt", help=CKPT_HELP + "; to continue pre-training"),
    data_root: Path | None = typer.Option(
        None, "--data-root", help="folder holding the corpora of the card", **INPUT_DIR
    ),
    out: Path = typer.Option(Path("runs/pretrain"), "--out", help="run folder", **OUTPUT_DIR),
    preset: str = typer.Option("base", "--preset", help=PRESET_HELP),
    tokenizer: str | None = typer.Option(None, "--tokenizer", help=TOKENIZER_HELP),
    vision_init: str | None = typer.Option(
        None, "--vision-init", help="vision encoder start (registered name or path; card default CLIP)"
    ),
    text_init: str | None = typer.Option(
        None, "--text-init", help="text encoder start (registered name or path; card default roberta-base)"
    ),
    random_init: bool = typer.Option(False, "--random-init", help="random encoders instead of CLIP + RoBERTa"),
    max_steps: int | None = typer.Option(None, "--max-steps", help="stop after this many optimizer steps", **COUNT),
    limit: int | None = typer.Option(None, "--limit", help="use only the first N records of each corpus", **COUNT),
    precision: str | None = typer.Option(None, "--precision", help=PRECISION_HELP),
    grad_checkpointing: bool | None = typer.Option(
        None, "--grad-checkpointing/--no-grad-checkpointing", help="recompute activations in backward (less memory)"
    ),
    save_every: int | None = typer.Option(
        None, "--save-every", help="checkpoint every N steps (and at the end)", **COUNT
    ),
    num_workers: int | None = typer.Option(None, "--num-workers", help=WORKERS_HELP, **NON_NEGATIVE),
    seed: int = typer.Option(0, "--seed", help="random seed", **SEED),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="continue from the run folder's last checkpoint"),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help=TRUST_HELP),
    compile: bool = typer.Option(False, "--compile/--no-compile", help=COMPILE_HELP),
) -> None:
    """Pre-train with MLM, ITM, ITC and semantic completion (MGSC, MLTC) on image and video corpora."""
    from sclbench.app.jobs import pretrain as run

    overrides = list(overrides or [])
    if random_init:
        overrides.append("encoder_init=null")
    overrides += [f"encoder_init.vision={vision_init}"] if vision_init else []
    overrides += [f"encoder_init.text={text_init}"] if text_init else []
    summary = run(
        card,
        ckpt,
        _text(data_root),
        out,
        overrides=overrides,
        preset=preset,
        tokenizer=tokenizer,
        limit=limit,
        resume=resume,
        max_steps=max_steps,
        precision=precision,
        grad_checkpointing=grad_checkpointing,
        save_every_steps=save_every,
        num_workers=num_workers,
        seed=seed,
        trust_pickle=trust_pickle,
        compile=compile or None,
    )
    typer.echo(f"done: {summary.get('step')} steps; weights in {Path(out) / 'final'}")


def tasks(as_json: bool = typer.Option(False, "--json", help="print machine-readable JSON")) -> None:
    """Every task card: description, splits by role, main metric, the papers' numbers."""
    from sclbench.app.catalog import print_task_catalog, task_catalog

    rows = task_catalog()
    if as_json:
        import json

        typer.echo(json.dumps(rows, indent=2))
    else:
        print_task_catalog(rows)


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune)
    app.command("eval")(evaluate)
    app.command("pretrain")(pretrain)
    app.command("tasks")(tasks)
