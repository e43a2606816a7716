"""Run `torchrun --nproc_per_node=N -m sclbench ...` (as `python -m torch.distributed.run`) on the CPU with
gloo and one thread per process, as the README's multi-GPU commands do; read what a run wrote."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "SCLBENCH_NO_PROGRESS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "",  # CPU + gloo even on a GPU machine
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }


def torchrun(args: list[str], log: Path, nproc: int = 2, timeout: float = 300) -> str:
    """`torchrun --nproc_per_node=nproc -m sclbench ARGS`; returns the output, fails the test on rc != 0."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nproc}",
        f"--master_port={free_port()}",
        "-m",
        "sclbench",
        *args,
    ]
    with open(log, "w") as out:
        rc = subprocess.run(cmd, env=env(), stdout=out, stderr=subprocess.STDOUT, timeout=timeout).returncode
    text = log.read_text()
    assert rc == 0, text[-4000:]
    # A rank that leaves its process group to interpreter shutdown can abort after a finished job
    # (SIGABRT from the backend's threads); the CLI leaves the group first, and no rank may say otherwise.
    assert "terminate called" not in text, text[-4000:]
    return text


def train_log(out: Path) -> list[dict]:
    """The run's training records (kind "train"), in step order."""
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("kind") == "train"]
