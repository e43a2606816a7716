"""Retrieval evaluation options and the per-item features every score reads, for any `RetrievalModel`.

A model's `embed_texts` / `embed_media` give, per item, a dict of tensors (`adapters/interface.py`).
Each rank encodes 1/W of the texts and of the media; the entries are gathered once, in order, as
tensors (`all_gather_rows`: chunked `all_gather_into_tensor`, never pickled; only each entry's name,
per-item shape and dtype travel as small metadata, and every rank that encoded something must agree
on them). Where each entry lives:
- `"embedding"` (the first stage's [C] vector): fp32 in host memory, where the candidate selection and
  the metrics run;
- the model's `host_entries` (small per-item metadata it reads on the host, e.g. SCL's text masks):
  host memory, their own dtype;
- every other entry: in the evaluation precision (what the encoders return under autocast) where
  scoring reads it: on the evaluation device when the entries fit (their size against the device's
  free memory, leaving room for the pair batches), else in pinned host memory (CUDA) — or in ordinary
  memory on a CPU evaluation.
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
from sclbench.errors import ConfigError, SCLBenchError

MODES = ("exhaustive", "two-stage")
FUSIONS = ("itm", "itm+itc")
FEATURE_MEMORY = ("auto", "device", "host")
EMBEDDING = "embedding"  # the entry the first stage ranks by (dot product)
# Of the device's free memory, features may take this share; the rest is for the pair batches.
DEVICE_FEATURE_SHARE = 0.5
GATHER_CHUNK_BYTES = 64 * 2**20  # rows sent per rank per gather round (bounds the receive buffer)
DEFAULT_PAIR_BATCH = 64  # pairs per batch where the model sizes none (`pair_batch_size`), and on CPU


@dataclass
class RetrievalOptions:
    mode: str = "two-stage"
    k: int = 128
    fusion: str = "itm"
    pair_batch_size: int | None = None  # None: the model's `pair_batch_size(...)`, else DEFAULT_PAIR_BATCH
    encode_batch_size: int = 32
    num_workers: int | None = None  # None: the device's default (engine/loader.py)
    cache_dir: str | None = None  # on-disk feature + score-chunk cache (see retrieval_cache)
    chunk_pairs: int = 4096  # pairs per resumable score chunk (rounded up to whole pair batches)
    shared_fusion: bool = True  # score_pairs gets each distinct text/item once per batch (False: a row per pair)
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
        batch = self.pair_batch_size or DEFAULT_PAIR_BATCH
        return -(-self.chunk_pairs // batch) * batch


@dataclass
class Features:
    """Every text's and every image/clip's entries ([T, ...] and [I, ...] tensors), in split order."""

    texts: dict[str, torch.Tensor]
    media: dict[str, torch.Tensor]
    key: str | None = None  # cache key (None: not cacheable, e.g. in-training validation)
    reused: bool = field(default=False, compare=False)  # read from the cache rather than computed


class _Media(Dataset):
    def __init__(self, sources: Sequence[Any], visuals: Any):
        self.sources, self.visuals = sources, visuals

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.visuals(self.sources[i])


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


class _Entries:
    """One side's (texts' or media's) entries of a shard, batch by batch, each where it will live."""

    def __init__(self, n: int, home: Any, host: Sequence[str], model: Any, method: str):
        self.n, self.home, self.host, self.rows = n, home, set(host), {}
        self.what = f"{type(model).__name__}.{method}"

    def add(self, out: Any, batch: int) -> None:
        if not isinstance(out, dict) or EMBEDDING not in out:
            raise SCLBenchError(f"{self.what} must return a dict of tensors with an {EMBEDDING!r} entry")
        if self.rows and set(out) != set(self.rows):
            raise SCLBenchError(f"{self.what} returned entries {sorted(out)}, then {sorted(self.rows)}")
        for name, value in out.items():
            if not isinstance(value, torch.Tensor) or value.dim() < 1 or len(value) != batch:
                raise SCLBenchError(f"{self.what}: entry {name!r} must be a tensor with one row per item ({batch})")
            if name == EMBEDDING:
                if value.dim() != 2:
                    raise SCLBenchError(f"{self.what}: {EMBEDDING!r} must be [B, C], got {tuple(value.shape)}")
                value = value.float().cpu()
            elif name in self.host:
                value = value.cpu()
            rows = self.rows.setdefault(
                name, _Rows(self.n, None if name in self.host or name == EMBEDDING else self.home)
            )
            if rows.tensor is not None and rows.tensor.shape[1:] != value.shape[1:]:
                raise SCLBenchError(
                    f"{self.what}: entry {name!r} is {tuple(value.shape[1:])} per item in one batch and "
                    f"{tuple(rows.tensor.shape[1:])} in another; every item's entry must have one shape"
                )
            rows.add(value)

    def result(self) -> dict[str, torch.Tensor]:
        return {name: rows.result() for name, rows in self.rows.items()}


def host_entries(model: Any) -> tuple[str, ...]:
    return tuple(getattr(model, "host_entries", ()) or ())


@torch.no_grad()
def encode_shard(
    model: Any, enc: dict[str, torch.Tensor], media: Sequence[Any], visuals: Any, opts: RetrievalOptions
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """This rank's 1/W of the texts (`enc`: the model's preprocessed texts, all of them) and of the
    media (contiguous shards), through `embed_texts` / `embed_media`: (text entries, media entries)."""
    device = model.device
    host = host_entries(model)
    n_texts = len(next(iter(enc.values()))) if enc else 0
    t0, t1 = shard_bounds(n_texts, D.rank(), D.world_size())
    m0, m1 = shard_bounds(len(media), D.rank(), D.world_size())
    # A shard goes where the whole gallery will live (its bytes x W against the device's free memory).
    home = lambda shard_bytes: feature_home(shard_bytes * D.world_size(), device, opts.feature_memory)  # noqa: E731
    texts = _Entries(t1 - t0, home, host, model, "embed_texts")
    for start in range(t0, t1, opts.encode_batch_size):
        stop = min(start + opts.encode_batch_size, t1)
        texts.add(model.embed_texts({k: v[start:stop].to(device) for k, v in enc.items()}), stop - start)
    items = _Entries(m1 - m0, home, host, model, "embed_media")
    loader = DataLoader(
        _Media(list(media[m0:m1]), visuals),
        batch_size=opts.encode_batch_size,
        **loader_settings(device, opts.num_workers).kwargs(),
    )
    for pixels in loader:
        items.add(model.embed_media(pixels.to(device, non_blocking=True)), len(pixels))
    return texts.result(), items.result()


def feature_home(nbytes: int, device: torch.device, memory: str = "auto") -> str:
    """Where `nbytes` of features live: "device" (the evaluation device; always on CPU) or "pinned"
    (page-locked host memory, read by the pair batches with asynchronous copies)."""
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
    if dtype == torch.bool:  # collectives carry bytes, not bools
        return _gather(local.to(torch.uint8), n, shape, torch.uint8, device, home).bool()
    out = _empty((n, *shape), dtype, device, home)
    counts = [b - a for a, b in (shard_bounds(n, r, world) for r in range(world))]
    row_bytes = max(1, math.prod(shape) * torch.empty(0, dtype=dtype).element_size())
    return D.all_gather_rows(local.to(dtype), out, counts, chunk_rows=max(1, GATHER_CHUNK_BYTES // row_bytes))


Spec = dict[str, tuple[tuple[int, ...], str]]  # entry -> (per-item shape, dtype name)


def _spec(entries: dict[str, torch.Tensor]) -> Spec | None:
    """What a rank knows of one side's entries; None when its shard is empty (it encoded nothing)."""
    if not entries or not len(next(iter(entries.values()))):
        return None
    return {name: (tuple(t.shape[1:]), str(t.dtype).removeprefix("torch.")) for name, t in entries.items()}


def _agree(specs: list[Spec | None], side: str) -> Spec:
    known = [(rank, s) for rank, s in enumerate(specs) if s is not None]
    if not known:
        return {}
    first_rank, first = known[0]
    for rank, spec in known[1:]:
        if spec != first:
            raise SCLBenchError(
                f"the model's {side} entries differ between ranks: rank {first_rank} {first}, rank {rank} {spec}; "
                "every rank must give the same entries, per-item shapes and dtypes"
            )
    return first


def gather_features(
    local: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]],
    n_texts: int,
    n_media: int,
    device: torch.device,
    opts: RetrievalOptions,
    host: Sequence[str] = (),
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Every rank's shards (`encode_shard`) -> the whole entries, in order, on every rank; placed as
    the module says. Names, shapes and dtypes a rank with an empty shard cannot know come from one
    small metadata gather."""
    mine = (_spec(local[0]), _spec(local[1]))
    every = D.gather_objects(mine) if D.world_size() > 1 else [mine]
    specs = (_agree([e[0] for e in every], "text"), _agree([e[1] for e in every], "media"))
    placed = [(n, name, spec) for n, s in zip((n_texts, n_media), specs) for name, spec in s.items()]
    nbytes = sum(
        n * math.prod(shape) * torch.empty(0, dtype=getattr(torch, dtype)).element_size()
        for n, name, (shape, dtype) in placed
        if name != EMBEDDING and name not in host
    )
    home = feature_home(nbytes, device, opts.feature_memory)
    cpu = torch.device("cpu")
    out: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] = ({}, {})
    for side, (n, spec) in enumerate(zip((n_texts, n_media), specs)):
        for name, (shape, dtype_name) in spec.items():
            dtype = getattr(torch, dtype_name)
            part = local[side].get(name, torch.empty(0))
            if name == EMBEDDING or name in host:
                out[side][name] = _gather(part, n, shape, dtype, cpu, "device")
            else:
                out[side][name] = _gather(part, n, shape, dtype, device, home)
    return out


def place(feats: Features, device: torch.device, opts: RetrievalOptions, host: Sequence[str] = ()) -> Features:
    """Cached features (read on the host) moved to where the module says they live."""
    moved = [
        (side, name) for side in (feats.texts, feats.media) for name in side if name != EMBEDDING and name not in host
    ]
    nbytes = sum(side[name].numel() * side[name].element_size() for side, name in moved)
    home = feature_home(nbytes, device, opts.feature_memory)
    for side, name in moved:
        side[name] = side[name].pin_memory() if home == "pinned" else side[name].to(device)
    return feats
