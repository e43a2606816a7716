"""Child processes for the fault tests: they write records or checkpoints and can be told to stall at
one exact point of a write (inside the fsync of a named file, i.e. after the bytes are written to the
temporary file and before it is renamed into place), so that the parent's SIGKILL lands there.

    python fault_child.py records-stall ROOT STALL_ON MARKER    # save version A, then stall saving B
    python fault_child.py records-loop ROOT MARKER              # save A/B alternately until killed
    python fault_child.py records-many ROOT TAG START N         # wait for START, then save N records
    python fault_child.py train OUT [--stall-on NAME --marker FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "engine"))


def stall_fsync_on(name: str, marker: Path) -> None:
    """Make the fsync of a file whose name contains `name` announce itself and hang (this process only)."""
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if name in os.readlink(f"/proc/self/fd/{fd}"):
            marker.write_text(os.readlink(f"/proc/self/fd/{fd}"))
            time.sleep(600)  # the parent kills us here
        real_fsync(fd)

    os.fsync = fsync  # common.io.atomic_write calls os.fsync through the module: it sees this one


def record(version: str, n_predictions: int = 2000):
    from sclbench.results import ResultRecord

    rec = ResultRecord(
        "vqa",
        "test-dev",
        {"accuracy": 70.0 if version == "A" else 71.0},
        "vqaEval-official",
        checkpoint={"name": "ckpt"},
        notes=version,
    )
    return rec, [{"id": i, "version": version, "pad": "x" * 200} for i in range(n_predictions)]


def records_stall(root: Path, stall_on: str, marker: Path) -> None:
    rec, preds = record("A")
    rec.save(root, predictions=preds)
    stall_fsync_on(stall_on, marker)
    rec, preds = record("B")
    rec.save(root, predictions=preds)


def records_loop(root: Path, marker: Path) -> None:
    n = 0
    while True:
        rec, preds = record("AB"[n % 2], n_predictions=10000)  # ~2 MB: a kill often lands mid-write
        rec.save(root, predictions=preds)
        if n == 0:
            marker.write_text("saved")
        n += 1


def records_many(root: Path, tag: str, start: Path, n: int) -> None:
    from sclbench.results import ResultRecord

    while not start.exists():
        time.sleep(0.01)
    for i in range(n):
        # Keys of its own (task split / checkpoint by tag), and keys both processes write ("shared-*").
        ckpt = f"shared-{i % 3}" if i % 4 == 0 else f"{tag}-{i}"
        rec = ResultRecord("f30k", "test", {"r_mean": float(i)}, "recall", checkpoint={"name": ckpt}, notes=tag)
        rec.save(root, predictions=[{"id": j, "writer": tag, "i": i, "pad": "y" * 100} for j in range(300)])


def train(out: Path, stall_on: str | None, marker: Path | None) -> None:
    from engine_toy import ToyDataset, collate, make_loss_fn, tiny_model

    from sclbench.engine.trainer import TrainConfig, Trainer

    if stall_on:
        stall_fsync_on(stall_on, marker)
    cfg = TrainConfig(
        lr=1e-3,
        warmup=0.25,
        max_steps=6,
        global_batch_size=8,
        per_device_batch_size=8,
        save_every_steps=2,
        keep_last=3,
        out_dir=str(out),
        seed=5,
        log_every=1,
        tensorboard=False,
        device="cpu",
    )
    trainer = Trainer(tiny_model(), make_loss_fn(), ToyDataset(32), collate, cfg)
    summary = trainer.fit(resume=True)
    torch.save(trainer.model.state_dict(), out / "final_weights.pt")
    (out / "summary.json").write_text(json.dumps(summary))


def main() -> None:
    torch.set_num_threads(1)
    os.environ.setdefault("SCLBENCH_NO_PROGRESS", "1")
    p = argparse.ArgumentParser()
    p.add_argument("job")
    p.add_argument("args", nargs="*")
    p.add_argument("--stall-on")
    p.add_argument("--marker")
    a = p.parse_args()
    if a.job == "records-stall":
        records_stall(Path(a.args[0]), a.args[1], Path(a.args[2]))
    elif a.job == "records-loop":
        records_loop(Path(a.args[0]), Path(a.args[1]))
    elif a.job == "records-many":
        records_many(Path(a.args[0]), a.args[1], Path(a.args[2]), int(a.args[3]))
    elif a.job == "train":
        train(Path(a.args[0]), a.stall_on, Path(a.marker) if a.marker else None)
    else:
        raise SystemExit(f"unknown job {a.job}")


if __name__ == "__main__":
    main()
