"""`torchrun --nproc_per_node=2 -m sclbench eval` (CPU, gloo) gives the metrics of one process, on a
split whose size is odd, so that the two shards differ in size and padding would show."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sclbench.cli import main

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_eval(args: list[str], log: Path) -> None:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "SCLBENCH_NO_PROGRESS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "",  # CPU + gloo even on a GPU machine
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        "-m",
        "sclbench",
        "eval",
        *args,
    ]
    with open(log, "w") as out:
        rc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=300).returncode
    assert rc == 0, log.read_text()[-3000:]


def record(results: Path, task: str) -> dict:
    (path,) = (results / task).glob("*.json")
    return json.loads(path.read_text())


def predictions(results: Path, task: str) -> list[dict]:
    rec = record(results, task)
    return [json.loads(line) for line in (results / task / rec["predictions_file"]).read_text().splitlines()]


@pytest.mark.parametrize(
    "task,limit,extra",
    [
        ("nlvr2", 7, []),  # 7 dev statements: shards of 4 and 3
        ("f30k", 3, ["--mode", "exhaustive"]),  # 3 images x 5 captions: 45 pairs, shards of 23 and 22
    ],
)
def test_two_process_eval_equals_one_process(synth_root, tiny_checkpoint, tmp_path, task, limit, extra):
    args = [
        task,
        "--ckpt",
        str(tiny_checkpoint(task)),
        "--data-root",
        str(synth_root / task),
        "--split",
        "val",
        "--limit",
        str(limit),
        "--batch-size",
        "2",
        *extra,
    ]
    assert main(["eval", *args, "--results", str(tmp_path / "one")]) == 0
    torchrun_eval(args + ["--results", str(tmp_path / "two")], tmp_path / "torchrun.log")

    one, two = record(tmp_path / "one", task), record(tmp_path / "two", task)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert two["metrics"] == pytest.approx(one["metrics"], abs=1e-9)
    p1, p2 = predictions(tmp_path / "one", task), predictions(tmp_path / "two", task)
    # every example exactly once, in the same order (no duplicate padding, nothing dropped)
    assert [p["id"] for p in p2] == [p["id"] for p in p1]
    expected = limit if task == "nlvr2" else limit + 5 * limit  # f30k: images, then texts
    assert len(p1) == expected
    if task == "f30k":
        assert two["protocol"]["cross_encoder_passes"] == one["protocol"]["cross_encoder_passes"] == limit * 5 * limit
    else:
        assert [p["prob_true"] for p in p2] == pytest.approx([p["prob_true"] for p in p1], abs=1e-5)
