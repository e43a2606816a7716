"""Retrieval scoring with the cross-encoder, exhaustive or two-stage, sharded across ranks.

1. Unimodal features are computed once: every text through RoBERTa, every image/clip through the
   ViT (never re-encoding an image per text batch, as the official evaluation did).
2. Candidate pairs: all (image, text) pairs ("exhaustive", the official SCL protocol), or the top-k
   texts of each image and the top-k images of each text by contrastive similarity ("two-stage",
   ALBEF/BLIP; k = 128 F30K/MSRVTT/LSMDC, 256 COCO). The union is scored, each pair once.
3. Each pair goes through the co-attention stack and `rank_output` (fusion "itm"), optionally plus
   the contrastive similarity ("itm+itc", BLIP/LAVIS). Non-candidates score -inf.
Pairs are processed in a canonical order (image-major) and fixed chunks, so a two-stage run whose k
covers every candidate computes exactly the same numbers as an exhaustive one.

At scale: each of W ranks encodes 1/W of the texts and images and the features are gathered once, in
order, as tensors, and kept in the evaluation precision on the device when they fit (see
`retrieval_features`); score chunks (a fixed number of pair batches, sized to the device unless set)
are dealt to ranks, gathered as one tensor and, with a cache folder, written as they are computed so
that a killed evaluation resumes (see `retrieval_cache`). Within a pair batch, the pair-independent
part of the first co-attention layer is computed once per distinct text and image
(`SCLModel.text_stream_inputs` / `vision_stream_inputs`), not once per pair, and the last layer only
at the positions the score reads (`retrieval_fusion`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from sclbench.common.tokenizer import encode
from sclbench.engine import distributed as D
from sclbench.engine.sampler import shard_bounds
from sclbench.model import SCLModel, VisionFeatures
from sclbench.tasks.precision import EvalPrecision
from sclbench.tasks.retrieval_cache import ScoreChunks, digest, load_tensors, media_fingerprint, save_tensors
from sclbench.tasks.retrieval_features import (  # noqa: F401  (re-exported: the engine's public names)
    FUSIONS,
    MODES,
    Features,
    RetrievalOptions,
    encode_shard,
    gather_features,
    pair_batch_for,
    place,
)
from sclbench.tasks.retrieval_fusion import fused_cls


def _fp32(precision: EvalPrecision | None, model: SCLModel) -> EvalPrecision:
    return precision or EvalPrecision(device_type=next(model.parameters()).device.type)


_encode_shard = encode_shard  # (the older private name)


@torch.no_grad()
def encode_features(
    model: SCLModel,
    texts: list[str],
    tokenizer: Any,
    media: Sequence[Any],
    visuals: Any,
    opts: RetrievalOptions,
    cache_key: Any = None,
    precision: EvalPrecision | None = None,
) -> Features:
    """Unimodal features of every text and image/clip: each rank encodes 1/W of them, gathered once in
    order as tensors (see retrieval_features). With `opts.cache_dir` and a `cache_key` (the caller's
    identity of checkpoint + data), they are cached on disk under a key that also hashes the token
    ids, the media files and the precision."""
    precision = _fp32(precision, model)
    device = next(model.parameters()).device
    enc = encode(texts, tokenizer, model.config.max_text_len)
    key = None
    if cache_key is not None:
        key = digest(
            cache_key,
            enc["ids"],
            enc["masks"],
            media_fingerprint(media),
            precision.protocol(),
            getattr(visuals, "num_frames", None),
        )
    path = Path(opts.cache_dir) / f"features-{key}.pt" if opts.cache_dir and key else None
    saved = load_tensors(path) if path else None
    if saved is not None:
        return place(Features(**{**saved, "key": key, "reused": True}), device, opts)
    with precision.context():
        local = encode_shard(model, enc, media, visuals, opts)
    (t_emb, t_proj, v_emb, v_proj), frames = gather_features(
        local, len(texts), len(media), enc["ids"].shape[1], device, opts
    )
    del local
    feats = Features(t_emb, enc["masks"], t_proj, v_emb, v_proj, frames, key)
    if path and D.is_main():
        save_tensors(path, {k: v for k, v in feats.__dict__.items() if k not in ("key", "reused")})
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


def _rows(t: torch.Tensor, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Rows `idx` of a feature tensor on the device or in (pinned) host memory, on `device`."""
    return t[idx.to(t.device)].to(device, non_blocking=True)


def _fused_cls(
    model: SCLModel, feats: Features, img: torch.Tensor, txt: torch.Tensor, length: int, opts: RetrievalOptions
) -> torch.Tensor:
    """cls_feats of the pairs (img[b], txt[b]); texts cut to `length` tokens."""
    device = next(model.parameters()).device
    if not opts.shared_fusion:
        vision = VisionFeatures(_rows(feats.vision_embeds, img, device), feats.num_frames)
        masks = feats.text_masks[txt, :length].to(device)
        return model.fuse(_rows(feats.text_embeds, txt, device)[:, :length], masks, vision).cls_feats
    # Distinct texts / images of the batch go through the pair-independent part once; pairs index them.
    uimg, img_of = torch.unique(img, return_inverse=True)
    utxt, txt_of = torch.unique(txt, return_inverse=True)
    image = model.vision_stream_inputs(VisionFeatures(_rows(feats.vision_embeds, uimg, device), feats.num_frames))
    text = model.text_stream_inputs(
        _rows(feats.text_embeds, utxt, device)[:, :length], feats.text_masks[utxt, :length].to(device)
    )
    return fused_cls(model, text, txt_of.to(device), image, img_of.to(device), feats.num_frames, opts.readout_only)


# Part of every score-cache key: scores written before the ITM head ran in fp32 are never reused.
SCORE_HEAD = "rank_output-fp32"


def _itm_scores(model: SCLModel, cls: torch.Tensor) -> torch.Tensor:
    """`rank_output` in fp32, outside autocast. Under bf16 the logit itself would be rounded to 8
    significant bits: pairs whose scores differ by less than that become ties, which the tie rule
    counts against the model (gt_last: the ground truth loses every tie; measured on the demo COCO
    model: text R@1 30 -> 20 under bf16, 55 with gt_first, none of it a ranking change). The head is one
    [2D -> 1] linear: fp32 costs nothing, and fp32 evaluations compute exactly what they did."""
    with torch.autocast(cls.device.type, enabled=False):
        return model.rank_output(cls.float()).squeeze(-1).float().cpu()


def sized(opts: RetrievalOptions, model: SCLModel, feats: Features) -> RetrievalOptions:
    """`opts` with its pair batch sized to the device when it was left to the engine (None)."""
    if opts.pair_batch_size is not None:
        return opts
    cfg = model.config
    size = pair_batch_for(
        next(model.parameters()).device,
        feats.text_embeds.shape[1],
        feats.vision_embeds.shape[1],
        cfg.hidden_size,
        cfg.cross_intermediate_size,
        feats.vision_embeds.element_size(),
    )
    return dataclasses.replace(opts, pair_batch_size=size)


@torch.no_grad()
def score_pairs(
    model: SCLModel,
    feats: Features,
    pairs: torch.Tensor,
    opts: RetrievalOptions,
    progress: Any = None,
    precision: EvalPrecision | None = None,
) -> torch.Tensor:
    """Cross-encoder score (rank_output of the fused pair) for each (image, text) pair, in order."""
    opts = sized(opts, model, feats)
    out = torch.empty(len(pairs))
    with _fp32(precision, model).context():
        for start in range(0, len(pairs), opts.pair_batch_size):
            chunk = pairs[start : start + opts.pair_batch_size]
            img, txt = chunk[:, 0], chunk[:, 1]
            # Cut the batch's texts to its longest one: padded positions are masked keys everywhere and
            # padded queries feed nothing that is read (only the CLS is pooled), so the scores do not
            # change, while the co-attention stops paying for padding (~30% of tiny-model scoring time).
            length = int(feats.text_masks[txt].any(0).nonzero().max()) + 1  # trailing all-padding columns only
            cls = _fused_cls(model, feats, img, txt, length, opts)
            out[start : start + len(chunk)] = _itm_scores(model, cls)
            if progress is not None:
                progress(len(chunk))
    return out


def score_chunks(
    model: SCLModel,
    feats: Features,
    pairs: torch.Tensor,
    opts: RetrievalOptions,
    precision: EvalPrecision | None = None,
) -> tuple[torch.Tensor, dict[str, int]]:
    """Scores of all `pairs` (every rank gets them all): fixed chunks dealt to ranks in order, each
    read from / written to the score cache when there is one. Returns (scores, resume statistics)."""
    precision, opts = _fp32(precision, model), sized(opts, model, feats)
    size = opts.chunk_size
    n_chunks = -(-len(pairs) // size)
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
            opts.readout_only,
            precision.protocol(),
            SCORE_HEAD,
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
    model: SCLModel, feats: Features, opts: RetrievalOptions, precision: EvalPrecision | None = None
) -> dict[str, Any]:
    """Score matrices `i2t` [I, T] (text retrieval) and `t2i` [T, I] (image retrieval) + statistics."""
    opts = sized(opts, model, feats)
    sim = feats.vision_proj.float() @ feats.text_proj.float().t()
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
