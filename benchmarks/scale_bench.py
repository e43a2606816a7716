"""Evaluation-at-scale benchmarks (issue 13), each comparison measured side by side in one process:

* bf16 vs fp32 autocast: cross-encoder pairs/s on CPU, and what bf16 changes in the scores and R@K;
* pair-independent fusion parts once per text/image (`shared_fusion`) vs `fuse` per pair: passes/s,
  timed interleaved per pair batch (median of per-batch ratios, wall and CPU time) and in FLOPs;
* peak memory of a COCO-5K-size (5,000 images x 25,000 texts, k = 256) two-stage evaluation on
  synthetic features: candidates, score matrices and the first chunks of the scoring (whole chunks of
  the engine's own loop: every further chunk costs time, not memory), in a fresh subprocess.

    python -m benchmarks.scale_bench [--quick] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.common import machine_info, ratio
from sclbench.adapters.scl_retrieval import scl_features
from sclbench.metrics import retrieval_recall
from sclbench.model import SCLConfig, SCLModel
from sclbench.model.factory import assemble
from sclbench.tasks.precision import EvalPrecision
from sclbench.tasks.retrieval_scoring import Features, RetrievalOptions, candidate_pairs, score_chunks, score_pairs

HERE = Path(__file__).resolve().parent
PER_IMAGE = 5

# Model sizes: the test/demo tiny model, and one with the official fusion depth (6 + 6 co-attention
# layers) and 145 image tokens at a third of the base width, so that per-pair costs are shaped like
# the base model's without its CPU hours.
SIZES = {
    "tiny": {},
    "mid": dict(hidden_size=256, num_heads=4, cross_intermediate_size=1024, num_top_layer=6, image_size=96),
}


def model_of(size: str) -> SCLModel:
    torch.manual_seed(0)
    return assemble(SCLConfig.tiny("f30k", **SIZES[size]))[0].eval()


def synthetic_features(model: SCLModel, n_img: int, seed: int = 0) -> Features:
    """Unimodal features of n_img images x 5 captions each, contrastive features near their image's."""
    cfg, n_txt = model.config, n_img * PER_IMAGE
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(10, cfg.max_text_len + 1, (n_txt,), generator=g)
    masks = (torch.arange(cfg.max_text_len)[None] < lengths[:, None]).long()
    v_proj = F.normalize(torch.randn(n_img, 32, generator=g), dim=-1)
    t_proj = F.normalize(v_proj.repeat_interleave(PER_IMAGE, 0) + 0.1 * torch.randn(n_txt, 32, generator=g), dim=-1)
    return Features(
        *scl_features(
            torch.randn(n_txt, cfg.max_text_len, cfg.hidden_size, generator=g),
            masks,
            t_proj,
            torch.randn(n_img, cfg.num_patches + 1, cfg.hidden_size, generator=g),
            v_proj,
        )
    )


def _rate(fn: Any, n: int, repeats: int) -> float:
    """Best-of-`repeats` items/s (the machine is shared: the fastest run is the least disturbed)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def pairs_of(feats: Features, k: int) -> torch.Tensor:
    sim = feats.media["embedding"] @ feats.texts["embedding"].t()
    return candidate_pairs(sim, RetrievalOptions(mode="two-stage", k=k))[0]


def _flops(fn: Any) -> int:
    """Floating-point operations of one call (torch's FlopCounterMode: matmuls, attention): the work,
    whatever the load of the machine."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _spread(values: list[float]) -> dict:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {
        "median": round(statistics.median(values), 3),
        "q1": round(q[0], 3),
        "q3": round(q[2], 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "n": len(values),
    }


def shared_fusion(size: str, n_img: int, k: int, pair_batch: int, rounds: int) -> dict:
    """passes/s of two-stage scoring, per-pair `fuse` ("before") vs shared parts ("after").

    Interleaved at the grain of one pair batch: every round times each batch with both variants back
    to back, in alternating order (A B, B A, ...), and a speedup is before/after on the same batch
    within a fraction of a second, so the load of a shared machine (which changes over seconds) hits
    both sides of each ratio. Reported: the median and quartiles of those ratios, in wall time and in
    this thread's CPU time, and the FLOP ratio (the work saved, independent of load)."""
    model = model_of(size)
    feats = synthetic_features(model, n_img)
    pairs = pairs_of(feats, k)
    batches = [pairs[s : s + pair_batch] for s in range(0, len(pairs), pair_batch)]
    out: dict[str, Any] = {
        "size": size,
        "image_tokens": model.config.num_patches + 1,
        "fusion_layers": model.config.num_top_layer,
        "pairs": len(pairs),
        "pair_batch": pair_batch,
        "distinct_images_per_batch": round(statistics.mean(b[:, 0].unique().numel() for b in batches), 1),
        "distinct_texts_per_batch": round(statistics.mean(b[:, 1].unique().numel() for b in batches), 1),
        "rounds": rounds,
    }
    names = ("before_per_pair", "after_shared")
    opts = {name: RetrievalOptions(pair_batch_size=pair_batch, shared_fusion=name == "after_shared") for name in names}
    for name in names:
        score_pairs(model, feats, batches[0], opts[name])  # warm-up
    wall, cpu = {name: 0.0 for name in names}, {name: 0.0 for name in names}
    ratios, cpu_ratios, scores = [], [], {name: [None] * len(batches) for name in names}
    for r in range(rounds):
        for i, batch in enumerate(batches):
            took: dict[str, tuple[float, float]] = {}
            for name in names if (r + i) % 2 == 0 else names[::-1]:
                start, start_cpu = time.perf_counter(), time.thread_time()
                scores[name][i] = score_pairs(model, feats, batch, opts[name])
                took[name] = (time.perf_counter() - start, time.thread_time() - start_cpu)
                wall[name] += took[name][0]
                cpu[name] += took[name][1]
            ratios.append(took["before_per_pair"][0] / took["after_shared"][0])
            cpu_ratios.append(took["before_per_pair"][1] / took["after_shared"][1])
    for name in names:
        out[f"{name}_passes_per_s"] = round(rounds * len(pairs) / wall[name], 1)
        out[f"{name}_cpu_s_per_round"] = round(cpu[name] / rounds, 3)
    out["speedup"] = round(statistics.median(ratios), 3)
    out["speedup_spread"] = _spread(ratios)
    out["cpu_time_speedup"] = round(statistics.median(cpu_ratios), 3)
    out["cpu_time_speedup_spread"] = _spread(cpu_ratios)
    flops = {name: _flops(lambda: score_pairs(model, feats, pairs, opts[name])) for name in names}  # noqa: B023
    out["flop_ratio"] = ratio(flops["before_per_pair"], flops["after_shared"], 3)
    out["gflops_per_pass"] = {name: round(flops[name] / len(pairs) / 1e9, 4) for name in names}
    diff = torch.cat(scores["after_shared"]) - torch.cat(scores["before_per_pair"])
    out["max_abs_score_diff"] = float(diff.abs().max())
    return out


def precision(size: str, n_img: int, k: int, pair_batch: int, repeats: int) -> dict:
    """CPU pairs/s of fp32 vs bf16 autocast on the same pairs, and the effect of bf16 on the numbers."""
    model = model_of(size)
    feats = synthetic_features(model, n_img)
    pairs = pairs_of(feats, k)
    opts = RetrievalOptions(pair_batch_size=pair_batch)
    out: dict[str, Any] = {"size": size, "pairs": len(pairs), "pair_batch": pair_batch}
    scores = {}
    for name in ("fp32", "bf16"):
        prec = EvalPrecision(name)
        score_pairs(model, feats, pairs[:pair_batch], opts, precision=prec)
        out[f"{name}_pairs_per_s"] = round(
            _rate(
                lambda: scores.__setitem__(name, score_pairs(model, feats, pairs, opts, precision=prec)),  # noqa: B023
                len(pairs),
                repeats,
            ),
            1,
        )
    out["bf16_over_fp32"] = ratio(out["bf16_pairs_per_s"], out["fp32_pairs_per_s"])
    out["fidelity"] = fidelity(feats, pairs, scores["fp32"], scores["bf16"])
    return out


def fidelity(feats: Features, pairs: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> dict:
    """How far bf16 scores are from fp32 ones, and what that does to the rankings and R@K (percent)."""
    n_img, n_txt = len(feats.media["embedding"]), len(feats.texts["embedding"])

    def matrices(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        full = torch.full((n_img, n_txt), float("-inf"))
        full[pairs[:, 0], pairs[:, 1]] = scores
        return full, full.t()

    (i2t_a, t2i_a), (i2t_b, t2i_b) = matrices(a), matrices(b)
    txt2img = [t // PER_IMAGE for t in range(n_txt)]
    img2txt = [list(range(i * PER_IMAGE, (i + 1) * PER_IMAGE)) for i in range(n_img)]
    ra, rb = retrieval_recall(i2t_a, t2i_a, txt2img, img2txt), retrieval_recall(i2t_b, t2i_b, txt2img, img2txt)
    spread = float(a.std())
    return {
        "max_abs_score_diff": round(float((a - b).abs().max()), 5),
        "score_std": round(spread, 5),
        "top1_text_changed": round(float((i2t_a.argmax(1) != i2t_b.argmax(1)).float().mean()), 4),
        "top1_image_changed": round(float((t2i_a.argmax(1) != t2i_b.argmax(1)).float().mean()), 4),
        "recall_fp32": {k: round(v, 2) for k, v in ra.items()},
        "recall_delta_max": round(max(abs(ra[k] - rb[k]) for k in ra), 2),
    }


# ---- peak memory at COCO-5K size (in a subprocess, so that its peak RSS is its own) ----------------
def _peak_memory_child(n_img: int, k: int, pair_batch: int, chunk_pairs: int, chunks: int) -> dict:
    torch.set_num_threads(1)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = model_of("tiny")
    feats = synthetic_features(model, n_img)
    after_features = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # (max RSS: grows only)
    opts = RetrievalOptions(mode="two-stage", k=k, pair_batch_size=pair_batch, chunk_pairs=chunk_pairs)
    sim = feats.media["embedding"] @ feats.texts["embedding"].t()
    pairs, i2t_mask, t2i_mask = candidate_pairs(sim, opts)
    n_pairs = len(pairs)
    start = time.perf_counter()
    scored, _ = score_chunks(model, feats, pairs[: chunks * opts.chunk_size], opts)
    secs = time.perf_counter() - start
    # The engine's assembly of the [I, T] matrices (unscored candidates filled with zeros).
    scores = torch.zeros(n_pairs)
    scores[: len(scored)] = scored
    full = torch.full(sim.shape, float("-inf"))
    full[pairs[:, 0], pairs[:, 1]] = scores
    i2t = torch.where(i2t_mask, full, torch.tensor(float("-inf")))
    t2i = torch.where(t2i_mask, full, torch.tensor(float("-inf"))).t()
    del i2t, t2i
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cfg = model.config
    n_tok = cfg.num_patches + 1 + cfg.max_text_len
    all_pairs_gb = n_pairs * n_tok * cfg.hidden_size * 4 / 1e9  # one fp32 activation of every pair at once
    return {
        "n_images": n_img,
        "n_texts": n_img * PER_IMAGE,
        "k": k,
        "cross_encoder_passes": n_pairs,
        "chunk_pairs": opts.chunk_size,
        "pair_batch": pair_batch,
        "chunks_scored": chunks,
        "scored_pairs_per_s": round(len(scored) / secs, 1),
        "projected_scoring_min": round(n_pairs / (len(scored) / secs) / 60, 1),
        "peak_rss_mb": round(peak / 1024, 1),
        "rss_after_imports_mb": round(base / 1024, 1),
        "features_rss_mb": round((after_features - base) / 1024, 1),
        "one_activation_of_all_pairs_gb": round(all_pairs_gb, 1),
    }


def peak_memory(n_img: int, k: int, pair_batch: int, chunk_pairs: int, chunks: int) -> dict:
    code = (
        "import json, sys; from benchmarks.scale_bench import _peak_memory_child as f; "
        f"print(json.dumps(f({n_img}, {k}, {pair_batch}, {chunk_pairs}, {chunks})))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=HERE.parent,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1", "SCLBENCH_NO_PROGRESS": "1"},
    )
    if proc.returncode:
        return {"skipped": f"failed: {(proc.stderr.strip().splitlines() or ['?'])[-1][:300]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


PLANS = {  # sized for a few minutes on a shared 2-CPU machine (bf16 autocast is slow on CPUs without AMX)
    "full": dict(
        shared=[("tiny", 40, 8, 256), ("mid", 12, 4, 64)],
        precision=[("tiny", 24, 4, 256), ("mid", 8, 2, 64)],
        memory=(5000, 256, 256, 4096, 2),
        repeats=2,
        interleaved=(10, 3),
    ),
    "quick": dict(
        shared=[("tiny", 12, 4, 32)],
        precision=[("tiny", 12, 4, 32)],
        memory=(200, 16, 64, 256, 2),
        repeats=1,
        interleaved=(2,),
    ),
}
SECTIONS = ("shared_fusion", "precision", "peak_memory")


def _previous_sections(path: Path, sections: set[str]) -> dict[str, Any]:
    """`sections` of the report at `path` (if any), with the machine facts of the run that measured them."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    kept = {s: old[s] for s in sections if s in old}
    measured = old.get("measured", {})
    kept["measured"] = {s: measured.get(s, old.get("machine")) for s in kept}
    return kept


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, default=list(SECTIONS))
    args = parser.parse_args(argv)
    plan = PLANS["quick" if args.quick else "full"]
    torch.set_num_threads(1)  # 2 shared CPUs: one thread measured faster and steadier (see run.py)
    began = time.perf_counter()
    rep: dict[str, Any] = {
        "benchmark": "evaluation at scale",
        "mode": "quick" if args.quick else "full",
        "machine": machine_info(),
        "torch_threads": 1,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "scale_quick" if args.quick else "scale"
    runs = {
        "shared_fusion": lambda: [shared_fusion(*c, rounds=n) for c, n in zip(plan["shared"], plan["interleaved"])],
        "precision": lambda: [precision(*c, repeats=plan["repeats"]) for c in plan["precision"]],
        "peak_memory": lambda: peak_memory(*plan["memory"]),
    }
    path = args.out / f"{name}.json"
    # --only keeps the other sections of the last report, each with the machine facts it was measured on.
    kept = _previous_sections(path, set(SECTIONS) - set(args.only))
    for section in args.only:
        print(f"scale_bench: {section}", file=sys.stderr, flush=True)
        rep[section] = runs[section]()
        rep.setdefault("measured", {})[section] = rep["machine"]
        rep["total_wall_s"] = round(time.perf_counter() - began, 1)
        # Written after every section, so that a run stopped early keeps what it measured.
        path.write_text(
            json.dumps({**kept, **rep, "measured": {**kept.get("measured", {}), **rep["measured"]}}, indent=2) + "\n"
        )
    print(json.dumps(rep, indent=2))
    return rep


if __name__ == "__main__":
    main()
