"""`torchrun --nproc_per_node=2 sclbench eval` (CPU, gloo, 1 thread each): each rank encodes half of
the texts and images, the features are gathered once in order, and the record, predictions and
cached features equal those of one process."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sclbench.app import jobs
from sclbench.cli import main

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(results: Path) -> tuple[dict, list[dict]]:
    (path,) = (results / "f30k").glob("*.json")
    rec = json.loads(path.read_text())
    return rec, [json.loads(line) for line in (path.parent / rec["predictions_file"]).read_text().splitlines()]


def test_two_rank_sharded_encoding_equals_one_process(synth_root, tmp_path):
    torch.manual_seed(0)
    _, loaded = jobs.prepare(
        "f30k", None, str(synth_root / "f30k"), [], preset="tiny", tokenizer=str(synth_root / "tokenizer")
    )
    ckpt = loaded.model.save_pretrained(tmp_path / "ckpt", tokenizer=loaded.tokenizer)
    # 3 images (shards of 2 and 1) and 15 captions (8 and 7); two-stage k=2: a few dozen pairs.
    args = [
        "f30k",
        "eval.chunk_pairs=4",
        "eval.pair_batch_size=4",
        "--ckpt",
        str(ckpt),
        "--data-root",
        str(synth_root / "f30k"),
        "--split",
        "test",
        "--limit",
        "3",
        "--batch-size",
        "2",
        "--k",
        "2",
    ]
    assert main(["eval", *args, "--results", str(tmp_path / "one"), "--cache-dir", str(tmp_path / "c1")]) == 0
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "SCLBENCH_NO_PROGRESS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "",
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
        "--results",
        str(tmp_path / "two"),
        "--cache-dir",
        str(tmp_path / "c2"),
    ]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]

    (one, p1), (two, p2) = load(tmp_path / "one"), load(tmp_path / "two")
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert two["metrics"] == one["metrics"]
    assert p2 == p1
    assert two["protocol"] == one["protocol"]  # same passes, chunks, precision; nothing reused
    # Same cache key (independent of the world size) and the same gathered features.
    (f1,), (f2,) = list((tmp_path / "c1").glob("features-*.pt")), list((tmp_path / "c2").glob("features-*.pt"))
    assert f1.name == f2.name
    a, b = torch.load(f1, weights_only=True), torch.load(f2, weights_only=True)
    # Every entry each side holds (SCL: texts' embedding, tokens and masks; media's embedding and tokens),
    # the same names in both files, of the same shape and dtype, equal up to the gather's float noise.
    assert set(a) == set(b) == {"texts", "media"}
    assert set(a["texts"]) >= {"embedding", "tokens", "masks"} and set(a["media"]) >= {"embedding", "tokens"}
    for side in ("texts", "media"):
        assert set(a[side]) == set(b[side]), side
        for name, x in a[side].items():
            y, where = b[side][name], f"{side}/{name}"
            assert x.shape == y.shape and x.dtype == y.dtype and len(x), where
            assert torch.allclose(x.float(), y.float(), atol=1e-6), where
    # Score chunks: each written once (by the rank that owned it), the same numbers.
    (s1,), (s2,) = list((tmp_path / "c1").glob("scores-*")), list((tmp_path / "c2").glob("scores-*"))
    chunks1, chunks2 = sorted(s1.glob("chunk-*.pt")), sorted(s2.glob("chunk-*.pt"))
    assert [c.name for c in chunks1] == [c.name for c in chunks2] and len(chunks1) == one["protocol"]["resumed"][
        "chunks"
    ]
