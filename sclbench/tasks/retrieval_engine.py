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
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from sclbench.data.tokenizer import encode
from sclbench.engine import distributed as D
from sclbench.engine.sampler import gather_in_order, shard_bounds
from sclbench.errors import ConfigError
from sclbench.model import SCLModel, VisionFeatures

MODES = ("exhaustive", "two-stage")
FUSIONS = ("itm", "itm+itc")


@dataclass
class RetrievalOptions:
    mode: str = "two-stage"
    k: int = 128
    fusion: str = "itm"
    pair_batch_size: int = 64
    encode_batch_size: int = 32
    num_workers: int = 0
    cache_dir: str | None = None  # on-disk unimodal feature cache (keyed by checkpoint + data)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"retrieval mode {self.mode!r}: choose one of {MODES}")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"retrieval fusion {self.fusion!r}: choose one of {FUSIONS}")
        if self.k < 1:
            raise ConfigError("retrieval k must be >= 1")


@dataclass
class Features:
    text_embeds: torch.Tensor  # [T, L, D] after cross_modal_text_transform
    text_masks: torch.Tensor  # [T, L]
    text_proj: torch.Tensor  # [T, C] normalised contrastive features
    vision_embeds: torch.Tensor  # [I, N, D] after cross_modal_image_transform
    vision_proj: torch.Tensor  # [I, C]
    num_frames: int


class _Media(Dataset):
    def __init__(self, sources: Sequence[Any], visuals: Any):
        self.sources, self.visuals = sources, visuals

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.visuals(self.sources[i])


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-8)


@torch.no_grad()
def encode_features(model: SCLModel, texts: list[str], tokenizer: Any, media: Sequence[Any], visuals: Any,
                    opts: RetrievalOptions, cache_key: str | None = None) -> Features:
    """Unimodal features of every text and image/clip (cached on disk when asked)."""
    cache = Path(opts.cache_dir) / f"{cache_key}.pt" if opts.cache_dir and cache_key else None
    if cache is not None and cache.is_file():
        return Features(**torch.load(cache, map_location="cpu", weights_only=True))
    device = next(model.parameters()).device
    has_con = hasattr(model, "language_proj")
    enc = encode(texts, tokenizer, model.config.max_text_len)
    t_emb, t_proj = [], []
    for start in range(0, len(texts), opts.encode_batch_size):
        ids = enc["ids"][start:start + opts.encode_batch_size].to(device)
        masks = enc["masks"][start:start + opts.encode_batch_size].to(device)
        emb = model.encode_text(ids, masks)
        t_emb.append(emb.cpu())
        t_proj.append(_normalize(model.language_proj(emb[:, 0])).cpu() if has_con else emb[:, 0].cpu())
    v_emb, v_proj, frames = [], [], 1
    loader = DataLoader(_Media(media, visuals), batch_size=opts.encode_batch_size, num_workers=opts.num_workers)
    for images in loader:
        vision = model.encode_vision(images.to(device))
        frames = vision.num_frames
        v_emb.append(vision.embeds.cpu())
        v_proj.append(_normalize(model.vision_proj(vision.cls)).cpu() if has_con else vision.cls.cpu())
    feats = Features(torch.cat(t_emb), enc["masks"], torch.cat(t_proj), torch.cat(v_emb), torch.cat(v_proj), frames)
    if cache is not None and D.is_main():
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}")
        torch.save(feats.__dict__, tmp)
        tmp.replace(cache)
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


@torch.no_grad()
def score_pairs(model: SCLModel, feats: Features, pairs: torch.Tensor, opts: RetrievalOptions,
                progress: Any = None) -> torch.Tensor:
    """Cross-encoder score (rank_output of the fused pair) for each (image, text) pair, in order."""
    device = next(model.parameters()).device
    out = torch.empty(len(pairs))
    for start in range(0, len(pairs), opts.pair_batch_size):
        chunk = pairs[start:start + opts.pair_batch_size]
        img, txt = chunk[:, 0], chunk[:, 1]
        # Cut the chunk's texts to its longest one: padded positions are masked keys everywhere and
        # padded queries feed nothing that is read (only the CLS is pooled), so the scores do not
        # change, while the co-attention stops paying for padding (~30% of tiny-model scoring time).
        masks = feats.text_masks[txt]
        length = int(masks.any(0).nonzero().max()) + 1  # trailing all-padding columns only
        vision = VisionFeatures(feats.vision_embeds[img].to(device), feats.num_frames)
        fused = model.fuse(feats.text_embeds[txt, :length].to(device), masks[:, :length].to(device), vision)
        out[start:start + len(chunk)] = model.rank_output(fused.cls_feats).squeeze(-1).float().cpu()
        if progress is not None:
            progress(len(chunk))
    return out


def retrieval_scores(model: SCLModel, feats: Features, opts: RetrievalOptions) -> dict[str, Any]:
    """Score matrices `i2t` [I, T] (text retrieval) and `t2i` [T, I] (image retrieval) + statistics."""
    sim = feats.vision_proj.float() @ feats.text_proj.float().t()
    pairs, i2t_mask, t2i_mask = candidate_pairs(sim, opts)
    start, end = shard_bounds(len(pairs), D.rank(), D.world_size())
    began = time.perf_counter()
    with _Progress(end - start, "cross-encoder pairs") as bar:
        local = score_pairs(model, feats, pairs[start:end], opts, bar.advance)
    scores = torch.cat([torch.as_tensor(s) for s in gather_in_order([local])]) if D.world_size() > 1 else local
    elapsed = time.perf_counter() - began
    full = torch.full(sim.shape, float("-inf"))
    full[pairs[:, 0], pairs[:, 1]] = scores + (sim[pairs[:, 0], pairs[:, 1]] if opts.fusion == "itm+itc" else 0.0)
    i2t = torch.where(i2t_mask, full, torch.tensor(float("-inf")))
    t2i = torch.where(t2i_mask, full, torch.tensor(float("-inf"))).t()
    return {"i2t": i2t, "t2i": t2i, "itc": sim, "cross_encoder_passes": int(len(pairs)),
            "pairs_per_s": len(pairs) / elapsed if elapsed else 0.0, "scoring_time_s": elapsed}


def features_cache_key(*parts: Any) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:24]


class _Progress:
    """A rich progress bar with pairs/s on rank 0 (off with SCLBENCH_NO_PROGRESS=1 or no TTY)."""

    def __init__(self, total: int, label: str):
        self.total, self.label, self.bar, self.task = total, label, None, None

    def __enter__(self) -> _Progress:
        import sys

        if D.is_main() and os.environ.get("SCLBENCH_NO_PROGRESS") != "1" and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}"),
                                TimeRemainingColumn(), transient=True)
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

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()
