"""Retrieval evaluation options and the unimodal features every pair score reads.

Features are encoded 1/W per rank and gathered once, in order, as tensors (`all_gather_rows`: chunked
`all_gather_into_tensor`, never pickled). They stay in the evaluation precision (what the encoders
return under autocast: bf16 for a bf16 evaluation, fp32 for fp32) and live where scoring reads them:
on the evaluation device when they fit (their size against the device's free memory, leaving room for
the pair batches), else in pinned host memory (CUDA) — or in ordinary memory on a CPU evaluation.
The contrastive projections are small ([N, 256]) and stay fp32 on the host, where the candidate
selection and the metrics run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from sclbench.engine import distributed as D
from sclbench.engine.loader import loader_settings
from sclbench.engine.sampler import shard_bounds
from sclbench.errors import ConfigError

MODES = ("exhaustive", "two-stage")
FUSIONS = ("itm", "itm+itc")
FEATURE_MEMORY = ("auto", "device", "host")
# Of the device's free memory, features may take this share; the rest is for the pair batches.
DEVICE_FEATURE_SHARE = 0.5
GATHER_CHUNK_BYTES = 64 * 2**20  # rows sent per rank per gather round (bounds the receive buffer)
CPU_PAIR_BATCH = 64  # pair batch on CPU (and where no device size applies): the long-standing default


@dataclass
class RetrievalOptions:
    mode: str = "two-stage"
    k: int = 128
    fusion: str = "itm"
    pair_batch_size: int | None = None  # None: sized to the device (`pair_batch_for`); CPU 64
    encode_batch_size: int = 32
    num_workers: int | None = None  # None: the device's default (engine/loader.py)
    cache_dir: str | None = None  # on-disk feature + score-chunk cache (see retrieval_cache)
    chunk_pairs: int = 4096  # pairs per resumable score chunk (rounded up to whole pair batches)
    shared_fusion: bool = True  # pair-independent fusion parts once per text/image (False: `fuse` per pair)
    readout_only: bool = True  # last fusion layer only at the positions the poolers read (retrieval_fusion)
    feature_memory: str = "auto"  # auto: device if the features fit, else pinned host; or device / host

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"retrieval mode {self.mode!r}: choose one of {MODES}")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"retrieval fusion {self.fusion!r}: choose one of {FUSIONS}")
        if self.feature_memory not in FEATURE_MEMORY:
            raise ConfigError(f"retrieval feature_memory {self.feature_memory!r}: choose one of {FEATURE_MEMORY}")
        if self.k < 1:
            raise ConfigError("retrieval k must be >= 1")
        if (self.pair_batch_size is not None and self.pair_batch_size < 1) or self.chunk_pairs < 1:
            raise ConfigError("retrieval pair_batch_size and chunk_pairs must be >= 1")

    @property
    def chunk_size(self) -> int:
        """Pairs per score chunk: whole pair batches, so resumed and uninterrupted runs batch alike."""
        return -(-self.chunk_pairs // (self.pair_batch_size or CPU_PAIR_BATCH)) * (
            self.pair_batch_size or CPU_PAIR_BATCH
        )


@dataclass
class Features:
    text_embeds: torch.Tensor  # [T, L, D] after cross_modal_text_transform
    text_masks: torch.Tensor  # [T, L]
    text_proj: torch.Tensor  # [T, C] normalised contrastive features
    vision_embeds: torch.Tensor  # [I, N, D] after cross_modal_image_transform
    vision_proj: torch.Tensor  # [I, C]
    num_frames: int
    key: str | None = None  # cache key (None: not cacheable, e.g. in-training validation)
    reused: bool = field(default=False, compare=False)  # read from the cache rather than computed


def pair_batch_for(
    device: torch.device, text_len: int, media_tokens: int, hidden: int, intermediate: int, itemsize: int
) -> int:
    """Pairs per cross-encoder batch: 64 on CPU; on CUDA, the power of two whose activations (per
    pair: the five indexed first-layer stream tensors, ~6 layer temporaries of width D and the FFN's
    width-F block, over both streams' tokens) take about an eighth of the device's memory, within
    [64, 1024]. From the total memory (not the free memory) so that the same GPU always batches — and
    so caches and resumes — alike."""
    if device.type != "cuda":
        return CPU_PAIR_BATCH
    tokens = text_len + media_tokens
    per_pair = itemsize * tokens * (11 * hidden + intermediate)
    budget = torch.cuda.get_device_properties(device).total_memory / 8
    return int(min(1024, max(CPU_PAIR_BATCH, 2 ** math.floor(math.log2(max(budget / per_pair, 1))))))


class _Media(Dataset):
    def __init__(self, sources: Sequence[Any], visuals: Any):
        self.sources, self.visuals = sources, visuals

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.visuals(self.sources[i])


def normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-8)


class _Rows:
    """A [n, ...] tensor filled batch by batch: allocated once at the first batch's shape (no list of
    parts and no concatenation, which would hold the shard twice). `home(nbytes)` says where: "device"
    (where the batches are) or "pinned" host memory, so that a gallery too large for the device never
    sits there whole, even with one process (whose shard is the whole gallery)."""

    def __init__(self, n: int, home: Any = None):
        self.n, self.filled, self.tensor, self.home = n, 0, None, home

    def add(self, part: torch.Tensor) -> None:
        if self.tensor is None:
            shape = (self.n, *part.shape[1:])
            where = self.home(math.prod(shape) * part.element_size()) if self.home else "device"
            self.tensor = _empty(shape, part.dtype, part.device, where)
        self.tensor[self.filled : self.filled + len(part)] = part
        self.filled += len(part)

    def result(self) -> torch.Tensor:
        return self.tensor if self.tensor is not None else torch.empty(0)


@torch.no_grad()
def encode_shard(
    model: Any, enc: dict, media: Sequence[Any], visuals: Any, opts: RetrievalOptions
) -> tuple[torch.Tensor, ...]:
    """Features of this rank's 1/W of the texts and of the media (contiguous shards): the token
    features on the model's device in the encoder's output precision, the normalised projections
    fp32 on the host; and the number of frames."""
    device = next(model.parameters()).device
    has_con = hasattr(model, "language_proj")
    t0, t1 = shard_bounds(len(enc["ids"]), D.rank(), D.world_size())
    m0, m1 = shard_bounds(len(media), D.rank(), D.world_size())
    # The shard goes where the whole gallery will live (its bytes x W against the device's free memory).
    home = lambda shard_bytes: feature_home(shard_bytes * D.world_size(), device, opts.feature_memory)  # noqa: E731
    t_emb, t_proj = _Rows(t1 - t0, home), _Rows(t1 - t0)
    for start in range(t0, t1, opts.encode_batch_size):
        stop = min(start + opts.encode_batch_size, t1)
        emb = model.encode_text(enc["ids"][start:stop].to(device), enc["masks"][start:stop].to(device))
        t_emb.add(emb)
        t_proj.add(normalize(model.language_proj(emb[:, 0]).float()).cpu() if has_con else emb[:, 0].float().cpu())
    v_emb, v_proj, frames = _Rows(m1 - m0, home), _Rows(m1 - m0), 1
    loader = DataLoader(
        _Media(list(media[m0:m1]), visuals),
        batch_size=opts.encode_batch_size,
        **loader_settings(device, opts.num_workers).kwargs(),
    )
    for images in loader:
        vision = model.encode_vision(images.to(device, non_blocking=True))
        frames = vision.num_frames
        v_emb.add(vision.embeds)
        v_proj.add(normalize(model.vision_proj(vision.cls).float()).cpu() if has_con else vision.cls.float().cpu())
    return t_emb.result(), t_proj.result(), v_emb.result(), v_proj.result(), torch.tensor(frames)


def feature_home(nbytes: int, device: torch.device, memory: str = "auto") -> str:
    """Where `nbytes` of token features live: "device" (the evaluation device; always on CPU) or
    "pinned" (page-locked host memory, read by the pair batches with asynchronous copies)."""
    if device.type != "cuda" or memory == "device":
        return "device"
    if memory == "host":
        return "pinned"
    free, _ = torch.cuda.mem_get_info(device)
    return "device" if nbytes <= DEVICE_FEATURE_SHARE * free else "pinned"


def _empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, home: str) -> torch.Tensor:
    if home == "pinned":
        return torch.empty(shape, dtype=dtype, pin_memory=True)
    return torch.empty(shape, dtype=dtype, device=device)


def _gather(
    local: torch.Tensor, n: int, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, home: str
) -> torch.Tensor:
    """The rows of every rank's shard of `n` items (shard_bounds), in order, at `home`."""
    world = D.world_size()
    if not len(local):  # an empty shard: zero rows of the agreed shape
        local = torch.empty((0, *shape), dtype=dtype, device=device)
    if world == 1:  # the shard is the whole: no copy when it is already where it belongs
        if home == "device":
            return local.to(device, dtype)
        if local.is_pinned() and local.dtype == dtype:
            return local
    out = _empty((n, *shape), dtype, device, home)
    counts = [b - a for a, b in (shard_bounds(n, r, world) for r in range(world))]
    row_bytes = max(1, math.prod(shape) * torch.empty(0, dtype=dtype).element_size())
    return D.all_gather_rows(local.to(dtype), out, counts, chunk_rows=max(1, GATHER_CHUNK_BYTES // row_bytes))


def gather_features(
    local: tuple[torch.Tensor, ...],
    n_texts: int,
    n_media: int,
    text_len: int,
    device: torch.device,
    opts: RetrievalOptions,
) -> tuple[tuple[torch.Tensor, ...], int]:
    """Every rank's shards (`encode_shard`) -> the whole features, in order, on every rank; placed by
    `feature_home`. Shapes a rank with an empty shard cannot know come from one small max-reduction."""
    t_emb, t_proj, v_emb, v_proj, frames = local
    dims = [
        t_emb.shape[-1] if t_emb.numel() else 0,
        t_proj.shape[-1] if t_proj.numel() else 0,
        v_emb.shape[1] if v_emb.numel() else 0,
        v_emb.shape[-1] if v_emb.numel() else 0,
        v_proj.shape[-1] if v_proj.numel() else 0,
        int(frames),
        _dtype_code(t_emb, v_emb),
    ]
    d_text, c_text, n_tokens, d_vision, c_vision, frames, code = D.all_reduce_max(dims)
    dtype = _DTYPE_CODES[code]
    itemsize = torch.empty(0, dtype=dtype).element_size()
    nbytes = itemsize * (n_texts * text_len * d_text + n_media * n_tokens * d_vision)
    home = feature_home(nbytes, device, opts.feature_memory)
    cpu = torch.device("cpu")
    return (
        _gather(t_emb, n_texts, (text_len, d_text), dtype, device, home),
        _gather(t_proj, n_texts, (c_text,), torch.float32, cpu, "device"),
        _gather(v_emb, n_media, (n_tokens, d_vision), dtype, device, home),
        _gather(v_proj, n_media, (c_vision,), torch.float32, cpu, "device"),
    ), frames


_DTYPE_CODES = (torch.float32, torch.bfloat16, torch.float16)


def _dtype_code(*tensors: torch.Tensor) -> int:
    """The token features' dtype as a code every rank can agree on by a max (equal on every rank that
    encoded something; a rank whose shards are empty says 0)."""
    for t in tensors:
        if t.numel() and t.dtype in _DTYPE_CODES:
            return _DTYPE_CODES.index(t.dtype)
    return 0


def place(feats: Features, device: torch.device, opts: RetrievalOptions) -> Features:
    """Cached features (read on the host) moved to where `feature_home` puts them."""
    nbytes = sum(t.numel() * t.element_size() for t in (feats.text_embeds, feats.vision_embeds))
    home = feature_home(nbytes, device, opts.feature_memory)
    move = (lambda t: t.pin_memory()) if home == "pinned" else (lambda t: t.to(device))  # noqa: E731
    feats.text_embeds, feats.vision_embeds = move(feats.text_embeds), move(feats.vision_embeds)
    return feats
