"""Retrieval-evaluation benchmarks: exhaustive vs two-stage vs two-stage on cached features, the
agreement of R@K, the scaling of cost with the set size, and a base-size fusion measurement.

Everything goes through the library's own engine (`encode_features`, `candidate_pairs`,
`score_pairs`, `retrieval_scores`) on synthetic images and captions, so the numbers are those of
`sclbench eval` minus data loading.
"""

from __future__ import annotations

import math
import os
import tempfile
from typing import Any

import torch

from benchmarks.common import HashTokenizer, SeededImages, f30k_links, ratio, synthetic_captions, timed
from sclbench.adapters.scl_retrieval import scl_features
from sclbench.metrics import retrieval_recall
from sclbench.model import SCLConfig, SCLModel
from sclbench.model.factory import assemble
from sclbench.tasks.retrieval_scoring import (
    Features,
    RetrievalOptions,
    candidate_pairs,
    encode_features,
    retrieval_scores,
    score_pairs,
)

os.environ.setdefault("SCLBENCH_NO_PROGRESS", "1")  # a progress bar would only add noise to timings
PER_IMAGE = 5  # captions per image, as in F30K/COCO


def tiny_model(task: str = "f30k") -> SCLModel:
    torch.manual_seed(0)
    return assemble(SCLConfig.tiny(task))[0].eval()


def encode(model: SCLModel, n_img: int, opts: RetrievalOptions, key: str | None = None) -> tuple[Features, float]:
    cfg = model.config
    texts = synthetic_captions(n_img * PER_IMAGE, seed=1)
    return timed(
        lambda: encode_features(
            model,
            texts,
            HashTokenizer(cfg.vocab_size),
            list(range(n_img)),
            SeededImages(cfg.image_size),
            opts,
            cache_key=key,
        )
    )


def recall(res: dict[str, Any], n_img: int) -> dict[str, float]:
    txt2img, img2txt = f30k_links(n_img, PER_IMAGE)
    return retrieval_recall(res["i2t"], res["t2i"], txt2img, img2txt)


def _row(name: str, passes: int, encode_s: float, scoring_s: float, wall_s: float, **extra: Any) -> dict:
    return {
        "mode": name,
        "cross_encoder_passes": passes,
        "encode_s": round(encode_s, 3),
        "scoring_s": round(scoring_s, 3),
        "wall_s": round(wall_s, 3),
        "pairs_per_s": round(passes / scoring_s, 1) if scoring_s else None,
        **extra,
    }


def compare_modes(model: SCLModel, n_img: int, k: int, pair_batch: int, exhaustive_max_pairs: int) -> dict:
    """One set, three ways. Exhaustive is run in full when it has <= `exhaustive_max_pairs` pairs;
    otherwise its first `exhaustive_max_pairs` pairs (image-major, the engine's order) are scored and
    the scoring time is extrapolated linearly in pairs (every pair costs the same: fixed chunks of
    the same model), plus its measured encoding time."""
    n_txt = n_img * PER_IMAGE
    two = RetrievalOptions(mode="two-stage", k=k, pair_batch_size=pair_batch)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as cache_dir:
        cached = RetrievalOptions(mode="two-stage", k=k, pair_batch_size=pair_batch, cache_dir=cache_dir)
        results = {}
        # Cold: features are computed (and written to the cache); warm: they are read back.
        for name in ("two-stage", "two-stage (cached features)"):
            feats, enc_s = encode(model, n_img, cached, key=f"bench-{n_img}")
            res, wall = timed(lambda: retrieval_scores(model, feats, two))  # noqa: B023 (called at once)
            results[name] = res
            rows.append(
                _row(
                    name,
                    res["cross_encoder_passes"],
                    enc_s,
                    res["scoring_time_s"],
                    enc_s + wall,
                    recall=recall(res, n_img),
                )
            )
    feats, enc_s = encode(model, n_img, RetrievalOptions(encode_batch_size=two.encode_batch_size))
    total = n_img * n_txt
    exh = RetrievalOptions(mode="exhaustive", pair_batch_size=pair_batch)
    if total <= exhaustive_max_pairs:
        res, wall = timed(lambda: retrieval_scores(model, feats, exh))
        rows.insert(
            0,
            _row(
                "exhaustive",
                total,
                enc_s,
                res["scoring_time_s"],
                enc_s + wall,
                recall=recall(res, n_img),
                extrapolated=False,
            ),
        )
    else:
        # Whole chunks only, so the subset runs exactly the batches the full run would start with.
        subset = max(pair_batch, exhaustive_max_pairs // pair_batch * pair_batch)
        pairs = torch.cartesian_prod(torch.arange(n_img), torch.arange(n_txt))[:subset]
        _, sub_s = timed(lambda: score_pairs(model, feats, pairs, exh))
        scoring = sub_s * total / subset
        rows.insert(
            0,
            _row(
                "exhaustive",
                total,
                enc_s,
                scoring,
                enc_s + scoring,
                extrapolated=True,
                measured_pairs=subset,
                measured_scoring_s=round(sub_s, 3),
            ),
        )
    cold, warm = results["two-stage"], results["two-stage (cached features)"]
    same = torch.equal(cold["i2t"], warm["i2t"]) and torch.equal(cold["t2i"], warm["t2i"])
    e, t, c = rows
    return {
        "n_images": n_img,
        "n_texts": n_txt,
        "k": k,
        "pair_batch_size": pair_batch,
        "rows": rows,
        "passes_ratio": ratio(e["cross_encoder_passes"], t["cross_encoder_passes"]),
        "wall_ratio": ratio(e["wall_s"], t["wall_s"]),
        "wall_ratio_cached": ratio(e["wall_s"], c["wall_s"]),
        "cached_scores_identical": same,
    }


def agreement(model: SCLModel, n_img: int, k_small: int, pair_batch: int) -> dict:
    """R@K of exhaustive vs two-stage: bit-identical score matrices when k covers every candidate,
    and the R@K of a small k next to them (two-stage can only differ there)."""
    feats, _ = encode(model, n_img, RetrievalOptions())
    n_txt = n_img * PER_IMAGE
    out = {"n_images": n_img, "n_texts": n_txt}
    exh = retrieval_scores(model, feats, RetrievalOptions(mode="exhaustive", pair_batch_size=pair_batch))
    full = retrieval_scores(model, feats, RetrievalOptions(mode="two-stage", k=n_txt, pair_batch_size=pair_batch))
    small = retrieval_scores(model, feats, RetrievalOptions(mode="two-stage", k=k_small, pair_batch_size=pair_batch))
    r_exh, r_full, r_small = recall(exh, n_img), recall(full, n_img), recall(small, n_img)
    out["covering_k"] = {
        "k": n_txt,
        "scores_identical": torch.equal(exh["i2t"], full["i2t"]) and torch.equal(exh["t2i"], full["t2i"]),
        "recall_identical": r_exh == r_full,
    }
    out["small_k"] = {
        "k": k_small,
        "passes": small["cross_encoder_passes"],
        "recall_identical": r_exh == r_small,
        "max_recall_diff": round(max(abs(r_exh[m] - r_small[m]) for m in r_exh), 3),
    }
    out["recall_exhaustive"] = r_exh
    return out


def scaling(model: SCLModel, sizes: list[int], k: int, pair_batch: int, count_sizes: list[int]) -> dict:
    """Scoring cost vs set size at fixed k. Measured (both modes run) at `sizes`; pass counts only
    (candidate generation, no cross-encoder) at the larger `count_sizes`. The log-log slope of passes
    is the growth exponent: 2 = quadratic, 1 = linear."""
    rows = []
    for n in sizes:
        feats, _ = encode(model, n, RetrievalOptions())
        row = {"n_images": n, "n_texts": n * PER_IMAGE, "measured": True}
        for mode in ("exhaustive", "two-stage"):
            res = retrieval_scores(model, feats, RetrievalOptions(mode=mode, k=k, pair_batch_size=pair_batch))
            row[mode] = {"passes": res["cross_encoder_passes"], "scoring_s": round(res["scoring_time_s"], 3)}
        rows.append(row)
    g = torch.Generator().manual_seed(0)
    for n in count_sizes:
        # Pass counts depend only on the top-k sets; random unit vectors stand in for the features.
        sim = torch.nn.functional.normalize(torch.randn(n, 32, generator=g), dim=-1)
        sim = sim @ torch.nn.functional.normalize(torch.randn(n * PER_IMAGE, 32, generator=g), dim=-1).t()
        pairs, _, _ = candidate_pairs(sim, RetrievalOptions(mode="two-stage", k=k))
        rows.append(
            {
                "n_images": n,
                "n_texts": n * PER_IMAGE,
                "measured": False,
                "exhaustive": {"passes": n * n * PER_IMAGE},
                "two-stage": {"passes": int(len(pairs))},
            }
        )

    def slope(mode: str, key: str, subset: list[dict]) -> float | None:
        pts = [(r["n_images"], r[mode][key]) for r in subset if r[mode].get(key)]
        if len(pts) < 2:
            return None
        (x0, y0), (x1, y1) = pts[0], pts[-1]
        return round(math.log(y1 / y0) / math.log(x1 / x0), 2)

    measured = [r for r in rows if r["measured"]]
    return {
        "k": k,
        "rows": rows,
        "growth_exponent": {
            "exhaustive_passes": slope("exhaustive", "passes", rows),
            "two_stage_passes": slope("two-stage", "passes", [r for r in rows if r["n_images"] * PER_IMAGE > k]),
            "exhaustive_time": slope("exhaustive", "scoring_s", measured),
            "two_stage_time": slope("two-stage", "scoring_s", [r for r in measured if r["n_images"] * PER_IMAGE > k]),
        },
    }


def base_fusion(image_size: int, n_pairs: int, pair_batch: int, passes: dict[str, int]) -> dict:
    """Cross-encoder pairs/s of the base model (co-attention + rank head only) on random unimodal
    features, and the F30K-size times it implies for the pass counts measured with the tiny model."""
    torch.manual_seed(0)
    model = assemble(SCLConfig.base("f30k", image_size=image_size))[0].eval()
    cfg = model.config
    n_tok = cfg.num_patches + 1
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(12, 24, (n_pairs,), generator=g)  # F30K captions: ~12-24 RoBERTa tokens
    masks = (torch.arange(cfg.max_text_len)[None] < lengths[:, None]).long()
    feats = Features(
        *scl_features(
            torch.randn(n_pairs, cfg.max_text_len, cfg.hidden_size, generator=g),
            masks,
            torch.zeros(n_pairs, 1),
            torch.randn(n_pairs, n_tok, cfg.hidden_size, generator=g),
            torch.zeros(n_pairs, 1),
        )
    )
    pairs = torch.stack([torch.arange(n_pairs), torch.arange(n_pairs)], 1)
    opts = RetrievalOptions(pair_batch_size=pair_batch)
    score_pairs(model, feats, pairs[:pair_batch], opts)  # warm-up: first-call allocations
    _, secs = timed(lambda: score_pairs(model, feats, pairs, opts))
    rate = n_pairs / secs
    return {
        "image_size": image_size,
        "image_tokens": n_tok,
        "pairs": n_pairs,
        "pair_batch_size": pair_batch,
        "pairs_per_s": round(rate, 3),
        "projected_hours": {mode: round(p / rate / 3600, 1) for mode, p in passes.items()},
    }
