"""Retrieval features and scores cross ranks as tensors: uneven and empty shards, bf16 and fp32,
chunked rounds; no feature is ever pickled (`all_gather_object` refuses tensors over 4 KB here); a
2-process evaluation equals 1 process. Plus where features live and how pairs are batched."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from sclbench.adapters.scl_retrieval import pair_batch_for
from sclbench.engine import distributed as D
from sclbench.tasks import retrieval_features as RF

ROOT = Path(__file__).resolve().parents[2]
GUARD_BYTES = 4096

# Installed in every rank of the torchrun test: pickled collectives may carry small metadata only.
GUARD = f"""
import io, pickle, sys
import torch, torch.distributed as dist

class _Refuse(pickle.Pickler):
    def reducer_override(self, obj):
        if isinstance(obj, torch.Tensor) and obj.numel() * obj.element_size() > {GUARD_BYTES}:
            raise AssertionError(f"a {{tuple(obj.shape)}} tensor went through a pickling collective")
        return NotImplemented

def _check(obj):
    _Refuse(io.BytesIO()).dump(obj)

for name in ("all_gather_object", "broadcast_object_list", "gather_object", "scatter_object_list"):
    original = getattr(dist, name)
    def guarded(*args, _original=original, **kwargs):
        for a in args:
            _check(a)
        return _original(*args, **kwargs)
    setattr(dist, name, guarded)
from sclbench.cli import main
sys.exit(main(sys.argv[1:]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_guard_refuses_a_feature_tensor():
    namespace: dict = {}
    exec(GUARD.split("for name in")[0], namespace)  # the pickler part only
    namespace["_check"]({"frames": torch.tensor(1), "ids": list(range(10))})  # metadata passes
    with pytest.raises(AssertionError, match="pickling collective"):
        namespace["_check"]([(torch.zeros(40, 8, 16), 3)])  # a feature shard does not


# ---- the gather itself, in 3 gloo processes ---------------------------------------------------------
CASES = [
    (5, torch.float32, None),  # uneven: 2 + 2 + 1
    (5, torch.bfloat16, 1),  # bf16 on gloo, one row per round
    (2, torch.bfloat16, 2),
]  # more ranks than rows: rank 2's shard is empty


def _full(n: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.arange(n * 6, dtype=torch.float32).reshape(n, 2, 3).to(dtype)


def _gather_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from sclbench.engine.sampler import shard_bounds

        results = []
        for n, dtype, chunk_rows in CASES:
            full = _full(n, dtype)
            a, b = shard_bounds(n, rank, world)
            counts = [shard_bounds(n, r, world)[1] - shard_bounds(n, r, world)[0] for r in range(world)]
            out = torch.full((n, 2, 3), -1.0).to(dtype)
            D.all_gather_rows(full[a:b], out, counts, chunk_rows=chunk_rows)
            # The engine's path: shapes and dtype from the ranks that have rows, an empty shard included.
            # Any model's entries: an embedding, token features, host-kept masks and a bool entry.
            masks = (full[a:b, :, 0] > 2).long()
            local = (
                {"embedding": torch.ones(b - a, 4), "tokens": full[a:b], "masks": masks},
                {"embedding": torch.ones(b - a, 4), "tokens": full[a:b], "flag": masks.bool()},
            )
            texts, media = RF.gather_features(local, n, n, torch.device("cpu"), RF.RetrievalOptions(), ("masks",))
            results.append(
                {
                    "out": out,
                    "t_emb": texts["tokens"],
                    "v_emb": media["tokens"],
                    "t_proj": texts["embedding"],
                    "masks": texts["masks"],
                    "flag": media["flag"],
                    "counts": D.all_gather_counts(b - a),
                }
            )
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow  # ~40 s: three spawned processes import torch and sclbench
def test_all_gather_rows_uneven_and_empty_shards(tmp_path):
    world = 3
    mp.start_processes(_gather_worker, args=(world, free_port(), str(tmp_path)), nprocs=world, start_method="spawn")
    for rank in range(world):
        for (n, dtype, _), got in zip(CASES, torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)):
            full = _full(n, dtype)
            assert torch.equal(got["out"], full)
            assert got["t_emb"].dtype == dtype and torch.equal(got["t_emb"], full) and torch.equal(got["v_emb"], full)
            assert got["t_proj"].shape == (n, 4) and got["t_proj"].dtype == torch.float32
            assert torch.equal(got["masks"], (full[:, :, 0] > 2).long())
            assert got["flag"].dtype == torch.bool and torch.equal(got["flag"], full[:, :, 0] > 2)
            assert sum(got["counts"]) == n


def test_one_process_gather_is_a_copy_and_checks_shapes():
    local = torch.randn(4, 3)
    out = D.all_gather_rows(local, torch.empty(4, 3))
    assert torch.equal(out, local)
    with pytest.raises(ValueError, match="does not hold"):
        D.all_gather_rows(local, torch.empty(5, 3))


# ---- a whole evaluation: torchrun with the guard vs one process ------------------------------------
@pytest.mark.slow
def test_two_rank_eval_gathers_tensors_only_and_equals_one_process(synth_root, tmp_path):
    from sclbench.app import jobs
    from sclbench.cli import main

    torch.manual_seed(0)
    _, loaded = jobs.prepare(
        "f30k", None, str(synth_root / "f30k"), [], preset="tiny", tokenizer=str(synth_root / "tokenizer")
    )
    ckpt = loaded.model.save_pretrained(tmp_path / "ckpt", tokenizer=loaded.tokenizer)
    # 5 images (shards 3 + 2), 25 captions (13 + 12), bf16 features, two-stage k=3, pair batches of 4.
    args = [
        "eval",
        "f30k",
        "eval.chunk_pairs=8",
        "eval.pair_batch_size=4",
        "--ckpt",
        str(ckpt),
        "--data-root",
        str(synth_root / "f30k"),
        "--split",
        "test",
        "--limit",
        "5",
        "--batch-size",
        "2",
        "--k",
        "3",
        "--precision",
        "bf16",
    ]
    assert main([*args, "--results", str(tmp_path / "one")]) == 0
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "SCLBENCH_NO_PROGRESS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    guard = tmp_path / "guarded_main.py"
    guard.write_text(GUARD)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        str(guard),
        *args,
        "--results",
        str(tmp_path / "two"),
    ]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]

    def load(results: Path) -> tuple[dict, list]:
        (path,) = (results / "f30k").glob("*.json")
        rec = json.loads(path.read_text())
        return rec, (path.parent / rec["predictions_file"]).read_text().splitlines()

    (one, p1), (two, p2) = load(tmp_path / "one"), load(tmp_path / "two")
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert two["metrics"] == one["metrics"] and p2 == p1
    assert two["protocol"] == one["protocol"] and one["protocol"]["precision"] == "bf16"


# ---- placement and pair batches ---------------------------------------------------------------------
class _Props:
    def __init__(self, gib: float):
        self.total_memory = int(gib * 2**30)


@pytest.mark.parametrize("gib,expected", [(80, 512), (24, 128), (4, 64), (1000, 1024)])
def test_pair_batch_sized_to_the_device(monkeypatch, gib, expected):
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: _Props(gib))
    # base at 384 px: 40 text + 577 image tokens, D 768, FFN 3072, bf16
    assert pair_batch_for(torch.device("cuda", 0), 40, 577, 768, 3072, 2) == expected
    assert pair_batch_for(torch.device("cpu"), 40, 577, 768, 3072, 2) == RF.DEFAULT_PAIR_BATCH


@pytest.mark.parametrize(
    "free_gib,memory,home",
    [
        (40, "auto", "device"),
        (8, "auto", "pinned"),
        (40, "host", "pinned"),
        (1, "device", "device"),
    ],
)
def test_features_on_the_device_when_they_fit(monkeypatch, free_gib, memory, home):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (int(free_gib * 2**30), 80 * 2**30))
    coco_bf16 = 2 * (25_000 * 40 * 768 + 5_000 * 577 * 768)  # ~5.9 GB
    assert RF.feature_home(coco_bf16, torch.device("cuda", 0), memory) == home
    assert RF.feature_home(coco_bf16, torch.device("cpu"), memory) == "device"  # CPU: ordinary memory


def test_unknown_feature_memory_is_a_config_error():
    from sclbench.errors import ConfigError

    with pytest.raises(ConfigError, match="feature_memory"):
        RF.RetrievalOptions(feature_memory="disk")
