"""Retrieval scoring for any `RetrievalModel`: exhaustive or two-stage, sharded across ranks.

1. Per-item features are computed once (`encode_features`): every text through `embed_texts`, every
   image/clip through `embed_media` (never re-encoding an image per text batch, as the official SCL
   evaluation did).
2. Candidate pairs: all (image, text) pairs ("exhaustive", the official SCL protocol), or the top-k
   texts of each image and the top-k images of each text by the first stage's `embedding` dot product
   ("two-stage", ALBEF/BLIP; k = 128 F30K/MSRVTT/LSMDC, 256 COCO). The union is scored, each pair once.
3. Each pair goes through the model's cross-encoder, `score_pairs` (fusion "itm"), optionally plus the
   first-stage similarity ("itm+itc", BLIP/LAVIS). Non-candidates score -inf.
A model without a cross-encoder (`has_pair_scorer` False) is ranked by the first stage alone: both
modes are then the same dot-product ranking, recorded as mode "embedding".
Pairs are processed in a canonical order (image-major) and fixed chunks, so a two-stage run whose k
covers every candidate computes exactly the same numbers as an exhaustive one.

At scale: each of W ranks encodes 1/W of the texts and images and the features are gathered once, in
order, as tensors (see `retrieval_features`); score chunks (a fixed number of pair batches, sized by
the model's `pair_batch_size(device, texts, media)` when it has one, unless set) are dealt to ranks,
gathered as one tensor and, with a cache folder, written as they are computed so that a killed
evaluation resumes (see `retrieval_cache`). Each pair batch hands `score_pairs` the distinct texts and
images it uses, once each, so that a model computes their pair-independent part once (SCL: the first
co-attention layer's, see `adapters/scl_retrieval.py`).

Optional hooks a model may define, read by this engine only: `host_entries` (entries kept and handed
over in host memory), `pair_batch_size(device, texts, media)`, `scoring_settings()` (what besides the
features changes its pair scores: part of the score-cache key) and `has_first_stage = False` (its
`embedding` is a placeholder: every pair is scored, mode "exhaustive", e.g. ViLT).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from sclbench.adapters.interface import RetrievalModel
from sclbench.adapters.scl import as_eval_model
from sclbench.engine import distributed as D
from sclbench.engine.sampler import shard_bounds
from sclbench.errors import ConfigError
from sclbench.tasks.precision import EvalPrecision
from sclbench.tasks.retrieval_cache import ScoreChunks, digest, load_tensors, media_fingerprint, save_tensors
from sclbench.tasks.retrieval_features import (  # noqa: F401  (re-exported: the engine's public names)
    DEFAULT_PAIR_BATCH,
    EMBEDDING,
    FUSIONS,
    MODES,
    Features,
    RetrievalOptions,
    encode_shard,
    gather_features,
    host_entries,
    place,
)

EMBEDDING_MODE = "embedding"  # the recorded mode of a model without a cross-encoder


def as_retrieval_model(
    model: Any, tokenizer: Any = None, transform: str = "eval", checkpoint_sha256: str | None = None
) -> RetrievalModel:
    """`model` when it implements the retrieval interface; a bare `SCLModel` wrapped (`as_eval_model`)."""
    wrapped = as_eval_model(model, tokenizer, transform, checkpoint_sha256)
    if not isinstance(wrapped, RetrievalModel):
        raise ConfigError(
            f"{type(model).__name__} does not implement the retrieval interface "
            "(subclass sclbench.adapters.RetrievalModel: embed_texts, embed_media, optionally score_pairs)"
        )
    return wrapped


def _fp32(precision: EvalPrecision | None, model: Any) -> EvalPrecision:
    return precision or EvalPrecision(device_type=model.device.type)


_encode_shard = encode_shard  # (the older private name)


@torch.no_grad()
def encode_features(
    model: Any,
    texts: list[str],
    tokenizer: Any,
    media: Sequence[Any],
    visuals: Any,
    opts: RetrievalOptions,
    cache_key: Any = None,
    precision: EvalPrecision | None = None,
) -> Features:
    """Per-item features of every text and image/clip: each rank encodes 1/W of them, gathered once in
    order as tensors (see retrieval_features). Texts go through `model.preprocess().text` (all at
    once, so that every row has one width); `visuals` loads media with the model's image transform and
    frames. `tokenizer` only serves a bare `SCLModel` (wrapped with it). With `opts.cache_dir` and a
    `cache_key` (the caller's identity of model + data), the features are cached on disk under a key
    that also hashes the preprocessed texts, the media files and the precision."""
    model = as_retrieval_model(model, tokenizer)
    precision = _fp32(precision, model)
    device = model.device
    host = host_entries(model)
    enc = model.preprocess().text(list(texts))
    key = None
    if cache_key is not None:
        names = sorted(enc)
        key = digest(
            cache_key,
            names,
            *[enc[name] for name in names],
            media_fingerprint(media),
            precision.protocol(),
            getattr(visuals, "num_frames", None),
        )
    path = Path(opts.cache_dir) / f"features-{key}.pt" if opts.cache_dir and key else None
    saved = load_tensors(path) if path else None
    if saved is not None and isinstance(saved.get("texts"), dict) and isinstance(saved.get("media"), dict):
        return place(Features(saved["texts"], saved["media"], key, reused=True), device, opts, host)
    with precision.context():
        local = encode_shard(model, enc, media, visuals, opts)
    text_entries, media_entries = gather_features(local, len(texts), len(media), device, opts, host)
    del local
    feats = Features(text_entries, media_entries, key)
    if path and D.is_main():
        save_tensors(path, {"texts": feats.texts, "media": feats.media})
    return feats


def candidate_pairs(sim: torch.Tensor, opts: RetrievalOptions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pairs [P, 2] image-major unique, i2t candidate mask [I, T], t2i candidate mask [I, T])."""
    n_img, n_txt = sim.shape
    if opts.mode == "exhaustive":
        full = torch.ones(n_img, n_txt, dtype=torch.bool)
        return full.nonzero(), full, full
    i2t = torch.zeros(n_img, n_txt, dtype=torch.bool)
    i2t.scatter_(1, sim.topk(min(opts.k, n_txt), dim=1).indices, True)
    t2i = torch.zeros(n_img, n_txt, dtype=torch.bool)
    t2i.scatter_(0, sim.topk(min(opts.k, n_img), dim=0).indices, True)
    return (i2t | t2i).nonzero(), i2t, t2i  # nonzero() is row-major: image-major order


def _rows(
    entries: dict[str, torch.Tensor], idx: torch.Tensor, device: torch.device, host: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Rows `idx` of every entry: host entries on the host, the others on `device` (read from the
    device or from (pinned) host memory)."""
    out = {}
    for name, t in entries.items():
        out[name] = t[idx] if name in host else t[idx.to(t.device)].to(device, non_blocking=True)
    return out


def sized(opts: RetrievalOptions, model: Any, feats: Features) -> RetrievalOptions:
    """`opts` with its pair batch sized by the model (or the default) when it was left open (None)."""
    if opts.pair_batch_size is not None:
        return opts
    sizer = getattr(model, "pair_batch_size", None)
    size = sizer(model.device, feats.texts, feats.media) if callable(sizer) else None
    return dataclasses.replace(opts, pair_batch_size=int(size or DEFAULT_PAIR_BATCH))


@torch.no_grad()
def score_pairs(
    model: Any,
    feats: Features,
    pairs: torch.Tensor,
    opts: RetrievalOptions,
    progress: Any = None,
    precision: EvalPrecision | None = None,
) -> torch.Tensor:
    """Cross-encoder score (`model.score_pairs`) of each (image, text) pair, in order, on the host."""
    model = as_retrieval_model(model)
    opts = sized(opts, model, feats)
    device, host = model.device, host_entries(model)
    out = torch.empty(len(pairs))
    with _fp32(precision, model).context():
        for start in range(0, len(pairs), opts.pair_batch_size):
            chunk = pairs[start : start + opts.pair_batch_size]
            img, txt = chunk[:, 0], chunk[:, 1]
            if opts.shared_fusion:  # distinct texts / images once; pairs index them
                img, img_of = torch.unique(img, return_inverse=True)
                txt, txt_of = torch.unique(txt, return_inverse=True)
            else:  # a row per pair
                img_of = txt_of = torch.arange(len(chunk))
            scores = model.score_pairs(
                _rows(feats.texts, txt, device, host),
                _rows(feats.media, img, device, host),
                txt_of.to(device),
                img_of.to(device),
            )
            out[start : start + len(chunk)] = scores.float().cpu()
            if progress is not None:
                progress(len(chunk))
    return out


def score_chunks(
    model: Any,
    feats: Features,
    pairs: torch.Tensor,
    opts: RetrievalOptions,
    precision: EvalPrecision | None = None,
) -> tuple[torch.Tensor, dict[str, int]]:
    """Scores of all `pairs` (every rank gets them all): fixed chunks dealt to ranks in order, each
    read from / written to the score cache when there is one. Returns (scores, resume statistics)."""
    model = as_retrieval_model(model)
    precision, opts = _fp32(precision, model), sized(opts, model, feats)
    size = opts.chunk_size
    n_chunks = -(-len(pairs) // size)
    settings = getattr(model, "scoring_settings", None)
    key = (
        None
        if feats.key is None
        else digest(
            feats.key,
            opts.mode,
            opts.k,
            opts.pair_batch_size,
            size,
            opts.shared_fusion,
            precision.protocol(),
            settings() if callable(settings) else {},
            pairs,
        )
    )
    store = ScoreChunks(opts.cache_dir if key else None, key or "", n_chunks)
    c0, c1 = shard_bounds(n_chunks, D.rank(), D.world_size())
    local, reused, reused_pairs = [], 0, 0
    todo = sum(min(size, len(pairs) - c * size) for c in range(c0, c1))
    with _Progress(todo, "cross-encoder pairs") as bar:
        for c in range(c0, c1):
            chunk = pairs[c * size : (c + 1) * size]
            scores = store.load(c, len(chunk))
            if scores is None:
                scores = score_pairs(model, feats, chunk, opts, bar.advance, precision)
                store.save(c, scores)
            else:
                reused, reused_pairs = reused + 1, reused_pairs + len(chunk)
                bar.advance(len(chunk))
            local.append(scores)
    mine = torch.cat(local) if local else torch.empty(0)
    world = D.world_size()
    # Every rank's pair count is known from the chunk deal: the scores gather as one tensor.
    counts = [
        min(b * size, len(pairs)) - min(a * size, len(pairs))
        for a, b in (shard_bounds(n_chunks, r, world) for r in range(world))
    ]
    scores = D.all_gather_rows(mine, torch.empty(len(pairs)), counts) if world > 1 else mine
    stats = {
        "chunks": n_chunks,
        "chunk_pairs": size,
        "reused_chunks": sum(D.all_gather_counts(reused)),
        "reused_pairs": sum(D.all_gather_counts(reused_pairs)),
    }
    return scores, stats


def retrieval_scores(
    model: Any, feats: Features, opts: RetrievalOptions, precision: EvalPrecision | None = None
) -> dict[str, Any]:
    """Score matrices `i2t` [I, T] (text retrieval) and `t2i` [T, I] (image retrieval) + statistics;
    `mode` is what was done: the options' mode, or "embedding" for a model without a cross-encoder."""
    model = as_retrieval_model(model)
    began = time.perf_counter()
    sim = feats.media[EMBEDDING].float() @ feats.texts[EMBEDDING].float().t()
    if not model.has_pair_scorer:  # the first stage is the ranking: no candidates, no pair passes
        elapsed = time.perf_counter() - began
        stats = {"chunks": 0, "chunk_pairs": 0, "reused_chunks": 0, "reused_pairs": 0}
        return {
            "i2t": sim,
            "t2i": sim.t().contiguous(),
            "itc": sim,
            "mode": EMBEDDING_MODE,
            "cross_encoder_passes": 0,
            "computed_passes": 0,
            "score_cache": stats,
            "pairs_per_s": 0.0,
            "scoring_time_s": elapsed,
        }
    opts = sized(opts, model, feats)
    if opts.fusion == "itm+itc" and getattr(model, "score_includes_first_stage", False):
        raise ConfigError(
            f"fusion itm+itc with --model {getattr(model, 'name', type(model).__name__)}: its pair score already "
            "adds the contrastive similarity; use eval.fusion=itm (its own protocol)"
        )
    if not getattr(model, "has_first_stage", True):  # e.g. ViLT: its `embedding` is a placeholder; score all pairs
        opts = dataclasses.replace(opts, mode="exhaustive")
    pairs, i2t_mask, t2i_mask = candidate_pairs(sim, opts)
    began = time.perf_counter()
    scores, stats = score_chunks(model, feats, pairs, opts, precision)
    elapsed = time.perf_counter() - began
    computed = len(pairs) - stats["reused_pairs"]
    full = torch.full(sim.shape, float("-inf"))
    full[pairs[:, 0], pairs[:, 1]] = scores + (sim[pairs[:, 0], pairs[:, 1]] if opts.fusion == "itm+itc" else 0.0)
    i2t = torch.where(i2t_mask, full, torch.tensor(float("-inf")))
    t2i = torch.where(t2i_mask, full, torch.tensor(float("-inf"))).t()
    return {
        "i2t": i2t,
        "t2i": t2i,
        "itc": sim,
        "mode": opts.mode,
        "cross_encoder_passes": len(pairs),
        "computed_passes": int(computed),
        "score_cache": stats,
        "pairs_per_s": computed / elapsed if elapsed else 0.0,
        "scoring_time_s": elapsed,
    }


def features_cache_key(*parts: Any) -> str:
    return digest(*parts)


class _Progress:
    """A rich progress bar with pairs/s on rank 0 (off with SCLBENCH_NO_PROGRESS=1 or no TTY)."""

    def __init__(self, total: int, label: str):
        self.total, self.label, self.bar, self.task = total, label, None, None

    def __enter__(self) -> _Progress:
        import sys

        if D.is_main() and os.environ.get("SCLBENCH_NO_PROGRESS") != "1" and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total, rate="")
            self.start = time.perf_counter()
        return self

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, n)
            done = self.bar.tasks[0].completed
            rate = done / max(time.perf_counter() - self.start, 1e-9)
            self.bar.update(self.task, rate=f"{rate:,.0f} pairs/s")

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
