"""Evaluation at scale: precision recorded and honoured; retrieval features encoded 1/W per rank;
score chunks resumed after a SIGKILL to the identical record; stale caches never read."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sclbench.app import jobs
from sclbench.cli import main
from sclbench.engine import distributed as D
from sclbench.errors import ConfigError
from sclbench.tasks import retrieval_scoring as engine
from sclbench.tasks.precision import EvalPrecision

ROOT = Path(__file__).resolve().parents[2]
# Volatile record fields: timing; the code version (a shared working tree may be committed to between
# the runs of a test); and (protocol.resumed, see `stable`) what a rerun reused from the cache.
VOLATILE = ("wall_time_s", "throughput", "created", "created_at", "timestamp", "git_commit")


@pytest.fixture(scope="module")
def f30k_ckpt(synth_root, tmp_path_factory):
    torch.manual_seed(0)
    _, loaded = jobs.prepare(
        "f30k", None, str(synth_root / "f30k"), [], preset="tiny", tokenizer=str(synth_root / "tokenizer")
    )
    return loaded.model.save_pretrained(tmp_path_factory.mktemp("ckpt") / "f30k", tokenizer=loaded.tokenizer)


def eval_args(ckpt: Path, data: Path, results: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "f30k",
        "eval.chunk_pairs=4",
        "eval.pair_batch_size=4",
        "--ckpt",
        str(ckpt),
        "--data-root",
        str(data),
        "--split",
        "test",
        "--mode",
        "exhaustive",
        "--batch-size",
        "4",
        "--limit",
        "3",
        "--results",
        str(results),
        "--cache-dir",
        str(cache),
        *extra,
    ]


def load_record(results: Path) -> tuple[dict, list[dict]]:
    (path,) = (results / "f30k").glob("*.json")
    rec = json.loads(path.read_text())
    preds = [json.loads(line) for line in (path.parent / rec["predictions_file"]).read_text().splitlines()]
    return rec, preds


def differences(a, b, path: str = "") -> list[str]:
    """Paths where two JSON values differ (a readable failure instead of a truncated dict diff)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"[:300]]


def stable(rec: dict) -> dict:
    out = {k: v for k, v in rec.items() if k not in VOLATILE}
    out["protocol"] = {k: v for k, v in rec["protocol"].items() if k != "resumed"}
    return out


# ---- precision -------------------------------------------------------------------------------------
def test_precision_is_recorded_and_honoured(synth_root, f30k_ckpt, tmp_path):
    fp32, _ = jobs.evaluate(
        "f30k", str(f30k_ckpt), "test", str(synth_root / "f30k"), tmp_path / "a", device="cpu", mode="exhaustive"
    )
    bf16, path = jobs.evaluate(
        "f30k",
        str(f30k_ckpt),
        "test",
        str(synth_root / "f30k"),
        tmp_path / "b",
        device="cpu",
        mode="exhaustive",
        precision="bf16",
    )
    assert (fp32.protocol["precision"], fp32.protocol["tf32"]) == ("fp32", False)  # TF32 is CUDA-only
    assert (bf16.protocol["precision"], bf16.protocol["tf32"]) == ("bf16", False)
    assert json.loads(path.read_text())["protocol"]["precision"] == "bf16"
    # Honoured: bf16 autocast changes the cross-encoder scores (slightly), so the score matrices differ.
    task = jobs.prepare("f30k", str(f30k_ckpt), str(synth_root / "f30k"), [])[0]
    model = jobs.prepare("f30k", str(f30k_ckpt), str(synth_root / "f30k"), [])[1].model.eval()
    texts = [c for r in task.split_records("test") for c in r.captions]
    media = [r.image for r in task.split_records("test")]
    opts = engine.RetrievalOptions(mode="exhaustive")
    scores = {}
    for p in ("fp32", "bf16"):
        prec = EvalPrecision(p)
        feats = engine.encode_features(model, texts, task.tokenizer, media, task.visuals(False), opts, None, prec)
        scores[p] = engine.retrieval_scores(model, feats, opts, prec)["i2t"]
    diff = (scores["fp32"] - scores["bf16"]).abs().max().item()
    assert 0 < diff < 0.5, diff
    # What a skip-existing check compares before running: the entries the record will hold.
    requested = task.requested_protocol({"mode": "exhaustive", "precision": "bf16", "zero_shot": False}, "cpu")
    assert requested == {k: bf16.protocol[k] for k in requested}
    assert set(requested) >= {"mode", "k", "fusion", "ties", "zero_shot", "precision", "tf32"}
    assert requested != task.requested_protocol({"mode": "exhaustive", "zero_shot": False}, "cpu")


def test_precision_checks():
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        EvalPrecision("fp16", device_type="cpu")
    with pytest.raises(ConfigError, match="choose one of"):
        EvalPrecision("fp8")
    assert EvalPrecision("fp32", tf32=True, device_type="cuda").protocol() == {"precision": "fp32", "tf32": True}
    assert EvalPrecision("fp32", tf32=False, device_type="cuda").protocol()["tf32"] is False
    # Under bf16 autocast TF32 still applies to the ops autocast keeps in fp32 (and is recorded so).
    assert EvalPrecision("bf16", device_type="cuda").protocol()["tf32"] is True
    assert EvalPrecision("bf16", tf32=False, device_type="cuda").protocol()["tf32"] is False
    assert EvalPrecision("bf16", device_type="cpu").protocol()["tf32"] is False


@pytest.mark.parametrize("task", ["nlvr2", "vqa"])
def test_precision_in_pair_classification_tasks(synth_root, tmp_path, task):
    overrides = ["data.minival_images=4"] if task == "vqa" else []
    torch.manual_seed(0)
    t, loaded = jobs.prepare(
        task, None, str(synth_root / task), overrides, preset="tiny", tokenizer=str(synth_root / "tokenizer")
    )
    t.limit = 6 if task == "nlvr2" else None  # (VQA: the minival split needs the whole small val)
    model = loaded.model.eval()
    fp32 = t.evaluate(model, "val", batch_size=4)
    bf16 = t.evaluate(model, "val", batch_size=4, precision="bf16")
    assert fp32.protocol["precision"] == "fp32" and bf16.protocol["precision"] == "bf16"
    key = "prob_true" if task == "nlvr2" else "soft_score"
    if task == "nlvr2":  # probabilities move under bf16 autocast: the option reaches the model
        assert [p[key] for p in fp32.predictions] != [p[key] for p in bf16.predictions]
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        t.evaluate(model, "val", batch_size=4, precision="fp16")


# ---- sharded encoding (in process, ranks simulated) -----------------------------------------------
def test_each_rank_encodes_its_share_and_the_shares_make_the_whole(synth_root, f30k_ckpt, monkeypatch):
    task, loaded = jobs.prepare("f30k", str(f30k_ckpt), str(synth_root / "f30k"), [])
    model = engine.as_retrieval_model(loaded.model.eval(), task.tokenizer)
    records = task.split_records("test")[:5]  # an odd count: the two shards differ in size
    texts = [c for r in records for c in r.captions]
    enc = model.preprocess().text(texts)
    opts = engine.RetrievalOptions(encode_batch_size=3)
    media = [r.image for r in records]
    full = engine.encode_features(model, texts, None, media, task.visuals(False), opts)
    parts = []
    for rank in range(2):
        monkeypatch.setattr(D, "rank", lambda r=rank: r)
        monkeypatch.setattr(D, "world_size", lambda: 2)
        parts.append(engine._encode_shard(model, enc, media, task.visuals(False), opts))
    # 25 texts, 5 images
    assert [len(p[0]["tokens"]) for p in parts] == [13, 12] and [len(p[1]["tokens"]) for p in parts] == [3, 2]
    for side, whole in ((0, full.texts), (1, full.media)):
        for name in ("tokens", "embedding"):
            assert torch.allclose(torch.cat([p[side][name] for p in parts]), whole[name], atol=1e-6)


# ---- resumable scoring ---------------------------------------------------------------------------
KILLER = """
import os, signal, sys
import sclbench.tasks.retrieval_cache as rc
saved, original = [0], rc.ScoreChunks.save
def save(self, chunk, scores):
    original(self, chunk, scores)  # the chunk is durable (atomic write), then the process dies
    saved[0] += 1
    if saved[0] == int(os.environ["KILL_AFTER_CHUNKS"]):
        os.kill(os.getpid(), signal.SIGKILL)
rc.ScoreChunks.save = save
from sclbench.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkilled_eval_resumes_to_the_identical_record(synth_root, f30k_ckpt, tmp_path):
    data, cache = synth_root / "f30k", tmp_path / "cache"
    env = {
        **os.environ,
        "KILL_AFTER_CHUNKS": "5",
        "OMP_NUM_THREADS": "1",
        "SCLBENCH_NO_PROGRESS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    # The uninterrupted run first (its cache then removed), so that both runs have the same arguments.
    assert main(eval_args(f30k_ckpt, data, tmp_path / "fresh", cache)) == 0
    shutil.rmtree(cache)
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, *eval_args(f30k_ckpt, data, tmp_path / "killed", cache)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (tmp_path / "killed" / "f30k").exists() or not list((tmp_path / "killed" / "f30k").glob("*.json"))
    (scores_dir,) = cache.glob("scores-*")
    assert len(list(scores_dir.glob("chunk-*.pt"))) == 5

    assert main(eval_args(f30k_ckpt, data, tmp_path / "resumed", cache)) == 0
    resumed, resumed_preds = load_record(tmp_path / "resumed")
    fresh, fresh_preds = load_record(tmp_path / "fresh")
    assert differences(stable(resumed), stable(fresh)) == []
    assert resumed_preds == fresh_preds
    n_pairs = fresh["protocol"]["cross_encoder_passes"]
    assert n_pairs == 45  # 3 images x 15 captions
    chunks = -(-n_pairs // 4)
    assert fresh["protocol"]["resumed"] == {
        "features": False,
        "chunks": chunks,
        "chunk_pairs": 4,
        "reused_chunks": 0,
        "reused_pairs": 0,
        "computed_passes": n_pairs,
    }
    # the killed run cached its features before scoring, and 5 chunks of 4 pairs
    assert resumed["protocol"]["resumed"] == {
        "features": True,
        "chunks": chunks,
        "chunk_pairs": 4,
        "reused_chunks": 5,
        "reused_pairs": 20,
        "computed_passes": n_pairs - 20,
    }


def test_changed_annotations_or_precision_invalidate_the_cache(synth_root, f30k_ckpt, tmp_path):
    data = tmp_path / "f30k"
    shutil.copytree(synth_root / "f30k", data)
    cache = tmp_path / "cache"
    assert main(eval_args(f30k_ckpt, data, tmp_path / "r1", cache)) == 0
    assert main(eval_args(f30k_ckpt, data, tmp_path / "r2", cache)) == 0
    first, again = load_record(tmp_path / "r1")[0], load_record(tmp_path / "r2")[0]
    assert again["protocol"]["resumed"]["features"] is True
    assert again["protocol"]["resumed"]["reused_chunks"] == again["protocol"]["resumed"]["chunks"]
    assert differences(stable(again), stable(first)) == []

    # Another precision: another key (nothing reused).
    bf16, _ = jobs.evaluate(
        "f30k",
        str(f30k_ckpt),
        "test",
        str(data),
        tmp_path / "r3",
        device="cpu",
        overrides=["eval.chunk_pairs=4", "eval.pair_batch_size=4"],
        batch_size=4,
        limit=3,
        mode="exhaustive",
        cache_dir=str(cache),
        precision="bf16",
    )
    assert bf16.protocol["resumed"]["features"] is False and bf16.protocol["resumed"]["reused_chunks"] == 0
    # Edit one caption of the annotation file: the cached features and scores must not be read.
    (ann,) = [p for p in data.rglob("*.json") if "images" in p.read_text()[:2000]]
    content = json.loads(ann.read_text())
    sentence = next(s for img in content["images"] if img["split"] == "test" for s in img["sentences"])
    sentence["raw"] = "a completely different caption about nothing"
    sentence["tokens"] = sentence["raw"].split()
    ann.write_text(json.dumps(content))
    assert main(eval_args(f30k_ckpt, data, tmp_path / "r4", cache)) == 0
    edited = load_record(tmp_path / "r4")[0]
    assert edited["protocol"]["resumed"]["features"] is False
    assert edited["protocol"]["resumed"]["reused_chunks"] == 0
    assert edited["data_fingerprint"] != first["data_fingerprint"]
    assert len(list(cache.glob("features-*.pt"))) >= 2
