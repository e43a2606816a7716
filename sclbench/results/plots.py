"""Plots people would rather look at than read: training curves and recall@K curves, as PNG files.

Needs matplotlib (`pip install sclbench[plot]`); drawn with the Agg backend, so no display is needed.
"""

from __future__ import annotations

from pathlib import Path

from sclbench.common.io import atomic_write, read_jsonl
from sclbench.errors import SCLBenchError
from sclbench.results.record import ResultRecord


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise SCLBenchError("plotting needs matplotlib: pip install 'sclbench[plot]'") from err
    return plt


def save_figure(plt, fig, out: str | Path, dpi: int = 110) -> Path:
    """tight layout, the folder made, the PNG written, the figure closed (shared by every sclbench plot)."""
    fig.tight_layout()
    out = Path(out)
    try:  # atomic: a failed write (full disk, read-only) keeps the previous figure and says so
        atomic_write(out, lambda fh: fig.savefig(fh, format=out.suffix.lstrip(".") or "png", dpi=dpi))
    finally:
        plt.close(fig)
    return out


def read_log(path: str | Path) -> list[dict]:
    path = Path(path)
    if path.is_dir():
        path = path / "log.jsonl"
    if not path.is_file():
        raise SCLBenchError(f"no training log at {path} (a run folder holds log.jsonl)")
    rows = [row for _, row in read_jsonl(path)]
    if not rows:
        raise SCLBenchError(f"{path} is empty: the run has logged nothing yet")
    return rows


def plot_training(run: str | Path, out: str | Path) -> Path:
    """Loss terms over steps (left) and validation metrics over steps (right) of one run."""
    plt = pyplot()
    rows = read_log(run)
    train = [r for r in rows if r.get("kind") == "train"]
    evals = [r for r in rows if r.get("kind") == "eval"]
    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(11, 4))
    loss_keys = sorted({k for r in train for k in r if k == "loss" or k.endswith("_loss")})
    for key in loss_keys:
        points = [(r["step"], r[key]) for r in train if isinstance(r.get(key), (int, float))]
        if points:
            ax_loss.plot(*zip(*points), label=key, lw=2 if key == "loss" else 1)
    ax_loss.set(xlabel="step", ylabel="loss", title="training losses")
    ax_loss.legend(fontsize=7)
    metric_keys = sorted(
        {
            k
            for r in evals
            for k in r
            if k not in ("kind", "step", "epoch")
            and isinstance(r[k], (int, float))
            and not k.endswith(("medr", "meanr", "rsum"))
        }
    )
    for key in metric_keys:
        ax_eval.plot([r["step"] for r in evals if key in r], [r[key] for r in evals if key in r], marker="o", label=key)
    ax_eval.set(xlabel="step", ylabel="%", title="validation")
    if metric_keys:
        ax_eval.legend(fontsize=7)
    fig.suptitle(str(run))
    return save_figure(plt, fig, out)


def plot_recall(records: list[ResultRecord], out: str | Path) -> Path:
    """Recall@K against K for every retrieval record (one line per record and direction)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = 0
    for record in records:
        for prefix in ("tr", "ir", "t2v", "v2t"):
            ks = sorted(
                int(m.split("_r")[1])
                for m in record.metrics
                if m.startswith(prefix + "_r") and m.split("_r")[1].isdigit()
            )
            if ks:
                ax.plot(
                    ks,
                    [record.metrics[f"{prefix}_r{k}"] for k in ks],
                    marker="o",
                    label=f"{record.task}/{record.split} {record.checkpoint_name} {prefix}",
                )
                drawn += 1
    if not drawn:
        plt.close(fig)
        raise SCLBenchError("no retrieval metrics (tr_r*/ir_r*/t2v_r*/v2t_r*) in these records")
    ax.set(xlabel="K", ylabel="recall@K (%)", ylim=(0, 100), title="retrieval recall@K")
    ax.legend(fontsize=6)
    return save_figure(plt, fig, out)
