"""The retrieval engine on models that are not SCL (tests/adapters/toy_retrieval.py): an embedding-only
model and a toy cross-encoder, through `evaluate`, the CLI and torchrun with 2 processes. Their scores
equal what the models compute pair by pair; exhaustive equals two-stage with k covering every
candidate; the feature cache is keyed by the model's identity; the top-10 lists agree with the ranks
under every tie rule; the score file (`eval --submission`) reads back to the recorded ranks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from sclbench.app.jobs import get_task
from sclbench.errors import ConfigError, SCLBenchError
from sclbench.metrics import retrieval_ranks, retrieval_recall
from sclbench.metrics.retrieval import gt_ranks
from sclbench.tasks import retrieval_scoring as engine
from sclbench.tasks.retrieval_predictions import top_candidates
from tests.adapters.toy_retrieval import (
    EmbeddingOnly,
    ToyCrossEncoder,
    direct_embeddings,
    direct_pair_scores,
)

ROOT = Path(__file__).resolve().parents[2]
TOY = Path(__file__).with_name("toy_retrieval.py")


def task_and_data(root: Path, name: str = "f30k", limit: int | None = 6):
    task = get_task(name, [], data_root=str(root / name))
    task.limit = limit
    records = task.split_records("test")
    texts = [c for r in records for c in r.captions]
    owner = [i for i, r in enumerate(records) for _ in r.captions]
    return task, records, texts, owner


def pixels_of(task, model, records) -> list[torch.Tensor]:
    visuals = task.eval_visuals(model.preprocess())
    return [visuals(task.media(r)) for r in records]


def check_top_lists(preds: list[dict], owner: list[int], kind: str) -> None:
    """Every query's top list is best first, at most 10 long, and its first ground truth sits at `rank`."""
    for p in preds:
        top, query = p["top"], p["id"]
        assert len(top) <= 10 and [s for _, s in top] == sorted((s for _, s in top), reverse=True)
        if query.startswith("text/"):
            truth = {f"{kind}/{owner[int(query[5:])]}"}
        else:
            i = int(query.split("/")[1])
            truth = {f"text/{t}" for t, o in enumerate(owner) if o == i}
        hits = [n for n, (cand, _) in enumerate(top) if cand in truth]
        assert (hits[0] == p["rank"]) if hits else p["rank"] >= len(top), p


# ---- the embedding-only model ------------------------------------------------------------------------
def test_embedding_only_model_is_ranked_by_its_embeddings(synth_root):
    task, records, texts, owner = task_and_data(synth_root)
    model = EmbeddingOnly().eval()
    ev = task.evaluate(model, "test", batch_size=4, mode="two-stage", k=2)
    t, m = direct_embeddings(model, texts, pixels_of(task, model, records))
    sim = m @ t.T
    assert ev.metrics == pytest.approx(retrieval_recall(sim, sim.T, txt2img=owner), abs=1e-9)
    # Both modes reduce to the dot-product ranking; the record says what was done.
    proto = ev.protocol
    assert (proto["mode"], proto["k"], proto["fusion"], proto["cross_encoder_passes"]) == ("embedding", None, "itc", 0)
    assert proto["cluster_unit"] == "image" and proto["num_texts"] == len(texts)
    assert torch.allclose(ev.arrays["i2t"], sim, atol=1e-6) and torch.equal(ev.arrays["i2t"], ev.arrays["t2i"])
    ranks = retrieval_ranks(ev.arrays["i2t"], ev.arrays["t2i"].T, txt2img=owner)
    assert [p["rank"] for p in ev.predictions] == [*ranks["tr"].tolist(), *ranks["ir"].tolist()]
    image_preds, text_preds = ev.predictions[: len(records)], ev.predictions[len(records) :]
    assert [p["media_id"] for p in image_preds] == [r.image_id for r in records]
    assert [p["text"] for p in text_preds] == texts
    assert [p["unit"] for p in text_preds] == [f"image/{records[o].image_id}" for o in owner]
    assert all(len(p["top"]) == 10 for p in image_preds) and all(len(p["top"]) == len(records) for p in text_preds)
    check_top_lists(ev.predictions, owner, "image")


# ---- the toy cross-encoder ---------------------------------------------------------------------------
def test_cross_encoder_scores_modes_and_fusion(synth_root):
    task, records, texts, owner = task_and_data(synth_root)
    model = ToyCrossEncoder().eval()
    run = lambda **o: task.evaluate(model, "test", batch_size=4, pair_batch_size=5, chunk_pairs=7, **o)  # noqa: E731
    exhaustive = run(mode="exhaustive")
    covering = run(mode="two-stage", k=len(texts))
    assert exhaustive.metrics == covering.metrics and exhaustive.predictions == covering.predictions
    assert torch.equal(exhaustive.arrays["i2t"], covering.arrays["i2t"])  # the same pairs in the same chunks
    assert covering.protocol["cross_encoder_passes"] == len(records) * len(texts)
    direct = direct_pair_scores(model, texts, pixels_of(task, model, records))
    assert torch.allclose(exhaustive.arrays["i2t"], direct, atol=1e-6)
    assert direct.std() > 0  # pairs differ: the comparison is not between constants
    check_top_lists(exhaustive.predictions, owner, "image")

    small = run(mode="two-stage", k=2)
    passes = small.protocol["cross_encoder_passes"]
    assert max(2 * len(records), 2 * len(texts)) <= passes < len(records) * len(texts)
    i2t, t2i = small.arrays["i2t"], small.arrays["t2i"]
    candidates = torch.isfinite(i2t)
    assert int(candidates.sum(1).min()) == 2 and not torch.equal(i2t, t2i)  # each direction its own candidates
    assert torch.allclose(i2t[candidates], direct[candidates], atol=1e-6)
    check_top_lists(small.predictions, owner, "image")

    fused = run(mode="exhaustive", fusion="itm+itc")
    t, m = direct_embeddings(model, texts, pixels_of(task, model, records))
    assert torch.allclose(fused.arrays["i2t"], direct + m @ t.T, atol=1e-5)


def test_features_are_cached_under_the_models_identity(synth_root, tmp_path):
    task, records, texts, _ = task_and_data(synth_root, limit=3)

    def run(model, cache):
        return task.evaluate(model.eval(), "test", batch_size=4, mode="exhaustive", cache_dir=str(cache))

    first = run(ToyCrossEncoder(seed=0), tmp_path / "a")
    again = run(ToyCrossEncoder(seed=0), tmp_path / "a")
    assert first.protocol["resumed"]["features"] is False and again.protocol["resumed"]["features"] is True
    assert again.protocol["resumed"]["reused_chunks"] == again.protocol["resumed"]["chunks"] > 0
    assert again.metrics == first.metrics and torch.equal(again.arrays["i2t"], first.arrays["i2t"])
    # Other weights under another identity: nothing reused, other scores.
    other = run(ToyCrossEncoder(seed=1), tmp_path / "a")
    assert other.protocol["resumed"]["features"] is False and other.protocol["resumed"]["reused_chunks"] == 0
    assert not torch.equal(other.arrays["i2t"], first.arrays["i2t"])
    assert len(list((tmp_path / "a").glob("features-*.pt"))) == 2
    # A model without an identity is never cached.
    anonymous = run(ToyCrossEncoder(seed=0, identity={}), tmp_path / "b")
    assert anonymous.protocol["resumed"] is None and not (tmp_path / "b").exists()


def test_video_retrieval_with_a_toy_model(synth_root):
    task, records, texts, owner = task_and_data(synth_root, "msrvtt", limit=4)
    model = ToyCrossEncoder(frames=2).eval()
    ev = task.evaluate(model, "test", batch_size=2, mode="exhaustive")
    pixels = pixels_of(task, model, records)
    assert pixels[0].shape[0] == 2  # the model's frames per clip, not the card's
    direct = direct_pair_scores(model, texts, pixels)
    assert torch.allclose(ev.arrays["i2t"], direct, atol=1e-6)
    assert ev.protocol["cluster_unit"] == "video"
    text_preds, video_preds = ev.predictions[: len(texts)], ev.predictions[len(texts) :]
    assert [p["unit"] for p in text_preds] == [f"video/{records[o].video_id}" for o in owner]
    assert [(p["id"], p["media_id"]) for p in video_preds] == [
        (f"video/{i}", r.video_id) for i, r in enumerate(records)
    ]
    check_top_lists(ev.predictions, owner, "video")


# ---- top lists and ranks, on constructed scores --------------------------------------------------------
@pytest.mark.parametrize("ties", ["gt_last", "gt_first", "index"])
@pytest.mark.parametrize("levels", [1, 2, 3, 50])  # 1: every score tied; 50: few ties
@pytest.mark.parametrize("n_candidates", [4, 10, 23])
def test_top_lists_agree_with_ranks_under_every_tie_rule(ties, levels, n_candidates):
    g = torch.Generator().manual_seed(levels * 100 + n_candidates)
    n_queries = 30
    scores = torch.randint(levels, (n_queries, n_candidates), generator=g).float()
    scores[torch.rand(n_queries, n_candidates, generator=g) < 0.2] = float("-inf")  # non-candidates
    truth = [sorted(torch.randperm(n_candidates, generator=g)[: 1 + q % 3].tolist()) for q in range(n_queries)]
    lookup = torch.zeros(n_queries, n_candidates, dtype=torch.bool)
    for q, cands in enumerate(truth):
        lookup[q, cands] = True
    ranks = gt_ranks(scores, truth, ties)
    tops = top_candidates(scores, lambda q, c: lookup[q[:, 0]].gather(1, c), ties)
    for q, (top, rank) in enumerate(zip(tops, ranks)):
        finite = int(torch.isfinite(scores[q]).sum())
        assert len(top) == min(10, finite)
        assert [s for _, s in top] == sorted(scores[q][torch.isfinite(scores[q])].tolist(), reverse=True)[: len(top)]
        hits = [n for n, (c, _) in enumerate(top) if c in truth[q]]
        assert (hits[0] == rank) if hits else rank >= len(top)


# ---- the score file ------------------------------------------------------------------------------------
def test_submission_score_file_reads_back_to_the_recorded_ranks(synth_root, tmp_path):
    task, records, texts, owner = task_and_data(synth_root)
    ev = task.evaluate(ToyCrossEncoder().eval(), "test", batch_size=4, mode="two-stage", k=2)
    path = task.submission(ev, tmp_path)
    assert path.name == "f30k_scores_test.npz"
    with np.load(path, allow_pickle=False) as saved:
        arrays = {k: saved[k] for k in saved.files}
    assert set(arrays) == {"i2t", "t2i", "media_ids"}
    assert arrays["i2t"].dtype == arrays["t2i"].dtype == np.float32
    assert arrays["i2t"].shape == arrays["t2i"].shape == (len(records), len(texts))
    assert arrays["media_ids"].dtype.kind == "U" and arrays["media_ids"].tolist() == [r.image_id for r in records]
    assert np.isneginf(arrays["i2t"]).any() and (np.isneginf(arrays["i2t"]) != np.isneginf(arrays["t2i"])).any()
    ranks = retrieval_ranks(torch.from_numpy(arrays["i2t"]), torch.from_numpy(arrays["t2i"]).T, txt2img=owner)
    assert [p["rank"] for p in ev.predictions] == [*ranks["tr"].tolist(), *ranks["ir"].tolist()]


# ---- engine hooks -----------------------------------------------------------------------------------
def test_pair_batch_from_the_model_or_the_default():
    feats = engine.Features({"embedding": torch.zeros(3, 2)}, {"embedding": torch.zeros(2, 2)})
    opts = engine.RetrievalOptions(chunk_pairs=12)
    assert engine.sized(opts, ToyCrossEncoder(), feats).pair_batch_size == engine.DEFAULT_PAIR_BATCH

    class Sized(ToyCrossEncoder):
        def pair_batch_size(self, device, texts, media):
            return 5

    chosen = engine.sized(opts, Sized(), feats)
    assert chosen.pair_batch_size == 5 and chosen.chunk_size == 15  # whole pair batches per chunk
    assert engine.sized(engine.RetrievalOptions(pair_batch_size=7), Sized(), feats).pair_batch_size == 7


def test_host_reads_per_pair_batch_do_not_grow():
    """SCL's pair batches read only host tensors (unique, the text length): 4 host reads per batch, as
    before the engine spoke the interface; the one device read is the scores' copy (CUDA only)."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.host_syncs import SyncCounter
    from sclbench.model import SCLConfig, SCLModel
    from tests.tasks.random_features import random_features

    torch.manual_seed(0)
    model = SCLModel(SCLConfig.tiny("f30k")).eval()
    feats, pairs = random_features(model.config.hidden_size, n_img=4, n_txt=12, length=8, pad_every=3, seed=2)
    opts = engine.RetrievalOptions(pair_batch_size=16)
    with SyncCounter() as counter:
        engine.score_pairs(model, feats, pairs, opts)
    batches = -(-len(pairs) // 16)
    assert len(counter.events) <= 4 * batches, Counter(counter.events)


class NoEmbedding(ToyCrossEncoder):
    def embed_texts(self, text):
        return {"words": self.word_vectors(text["ids"])}


class RaggedRows(ToyCrossEncoder):
    def embed_media(self, pixels):
        out = super().embed_media(pixels)
        return {**out, "vector": out["vector"][:-1]}


@pytest.mark.parametrize(
    "model,message", [(NoEmbedding(), "with an 'embedding' entry"), (RaggedRows(), "one row per item")]
)
def test_malformed_model_outputs_are_one_clear_error(synth_root, model, message):
    task, *_ = task_and_data(synth_root, limit=3)
    with pytest.raises(SCLBenchError, match=message):
        task.evaluate(model.eval(), "test", batch_size=4)


# ---- the CLI, one process and torchrun with two ----------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # ~40 s: torchrun starts two processes that import torch and sclbench
@pytest.mark.parametrize("factory", ["build_cross", "build_embedding"])
def test_two_processes_equal_one_through_the_cli(synth_root, tmp_path, factory):
    from sclbench.cli import main

    args = [
        "eval",
        "f30k",
        "eval.chunk_pairs=8",
        "eval.pair_batch_size=4",
        "--model",
        f"{TOY}:{factory}",
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
    ]
    assert main([*args, "--results", str(tmp_path / "one"), "--submission", str(tmp_path / "sub1")]) == 0
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
        *args,
        "--results",
        str(tmp_path / "two"),
        "--submission",
        str(tmp_path / "sub2"),
    ]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]

    def load(results: Path) -> tuple[dict, list]:
        (path,) = (results / "f30k").glob("*.json")
        rec = json.loads(path.read_text())
        return rec, (path.parent / rec["predictions_file"]).read_text().splitlines()

    (one, p1), (two, p2) = load(tmp_path / "one"), load(tmp_path / "two")
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert two["metrics"] == one["metrics"] and p2 == p1 and two["protocol"] == one["protocol"]
    assert one["protocol"]["mode"] == ("two-stage" if factory == "build_cross" else "embedding")
    with (
        np.load(tmp_path / "sub1" / "f30k_scores_test.npz") as a,
        np.load(tmp_path / "sub2" / "f30k_scores_test.npz") as b,
    ):
        assert all(np.array_equal(a[k], b[k]) for k in ("i2t", "t2i", "media_ids"))


def test_ranks_must_agree_on_every_entry():
    """Entry names, per-item shapes and dtypes gathered from the ranks: ranks that encoded nothing say
    nothing; any disagreement is one error naming both ranks."""
    from sclbench.tasks.retrieval_features import _agree

    spec = {"embedding": ((8,), "float32"), "tokens": ((5, 4), "bfloat16")}
    assert _agree([None, spec, None, spec], "text") == spec and _agree([None, None], "media") == {}
    for other in (
        {**spec, "tokens": ((6, 4), "bfloat16")},
        {**spec, "tokens": ((5, 4), "float32")},
        {"embedding": ((8,), "float32")},
    ):
        with pytest.raises(SCLBenchError, match="rank 0 .* rank 2"):
            _agree([spec, None, other], "text")


class ShapeShifter(ToyCrossEncoder):
    """Pads each batch's words to its own longest text: per-item shapes that differ between batches."""

    def embed_texts(self, text):
        out = super().embed_texts(text)
        width = int(out["length"].max())
        return {**out, "words": out["words"][:, :width]}


def test_an_entry_whose_shape_changes_between_batches_is_refused(synth_root):
    task, *_ = task_and_data(synth_root, limit=3)
    with pytest.raises(SCLBenchError, match="'words' is .* per item in one batch"):
        task.evaluate(ShapeShifter().eval(), "test", batch_size=2)


def test_a_score_that_already_adds_the_similarity_refuses_fusion_itm_itc(synth_root):
    """BLIP's pair score is ITM + ITC: adding the similarity again would count it twice."""
    task, _, _, _ = task_and_data(synth_root)
    model = ToyCrossEncoder().eval()
    model.score_includes_first_stage = True
    task.evaluate(model, "test", batch_size=4, mode="exhaustive", fusion="itm")  # its own protocol runs
    with pytest.raises(ConfigError, match="already adds the contrastive similarity"):
        task.evaluate(model, "test", batch_size=4, mode="exhaustive", fusion="itm+itc")
