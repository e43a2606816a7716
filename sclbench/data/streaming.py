"""Streaming pre-training batches: webdataset shards mixed with file-based corpora, resumable.

`StreamingBatches` is an IterableDataset of whole, modality-pure, collated batches (images of all
image corpora mixed in one batch, as the official ConcatDataset does; clips in their own batches).
Each (rank, dataloader worker) pair is one *slot*: shard corpora give each slot its own shards
(`shards.slot_shards`), file corpora give it every slots-th index of a seeded per-epoch permutation.
Within a slot, the next sample's corpus is drawn in proportion to the corpus sizes (the official
uniform shuffle of the concatenation, in expectation); batches are re-formed every epoch.

Everything is a function of (seed, epoch, rank, world, num_workers): batch j of a rank's epoch is
made by reader j % num_workers (its shards, its streams). A run resumed at batch b of an epoch hands
reader (b + w) % num_workers to worker w (the DataLoader asks workers in turn, from worker 0); each
replays its share of the first b batches *without decoding them* (tar bytes are read, images are
not) and then yields exactly the batches the interrupted run would have, in the same order. ITM
negatives come from the sample's own corpus: file corpora draw uniformly over the whole corpus
(CaptionDataset, official); shard corpora
draw from a look-ahead window of the same stream (`negative_pool` pairs: a stream cannot seek).
"""

from __future__ import annotations

import random
import tempfile
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import IterableDataset, get_worker_info

from sclbench.common.seeding import derive_seed, seeded_call
from sclbench.common.tokenizer import encode
from sclbench.data import shards as S
from sclbench.data.collate import collate
from sclbench.data.datasets import CaptionDataset, Visuals
from sclbench.engine import distributed as D
from sclbench.errors import ConfigError, DataError


@dataclass
class Corpus:
    """One corpus of the mixture: file records (a CaptionDataset) or a shard folder (a ShardIndex)."""

    name: str
    kind: str  # "image" or "video"
    dataset: CaptionDataset | None = None
    index: S.ShardIndex | None = None

    @property
    def pairs(self) -> int:
        return len(self.dataset) if self.dataset is not None else self.index.pairs


class StreamingBatches(IterableDataset):
    def __init__(
        self,
        corpora: list[Corpus],
        visuals: dict[str, Visuals],
        tokenizer,
        max_len: int,
        batch_sizes: dict[str, int],
        *,
        seed: int = 0,
        shuffle_buffer: int = 1000,
        negative_pool: int = 256,
        neg_distinct: bool = False,
        skip_corrupt: bool = False,
        rank: int | None = None,
        world: int | None = None,
    ):
        if not corpora:
            raise ConfigError("no corpora to stream")
        self.corpora, self.visuals, self.tokenizer, self.max_len = corpora, visuals, tokenizer, max_len
        self.batch_sizes, self.seed, self.shuffle_buffer = batch_sizes, seed, shuffle_buffer
        self.negative_pool, self.neg_distinct, self.skip_corrupt = max(2, negative_pool), neg_distinct, skip_corrupt
        self._rank, self._world = rank, world
        self.epoch, self.start_batch = 0, 0
        self.groups = {kind: [c for c in corpora if c.kind == kind] for kind in ("image", "video")}
        self.groups = {k: v for k, v in self.groups.items() if v}
        if sum(c.pairs for c in corpora) < min(batch_sizes[k] for k in self.groups):
            raise ConfigError(f"the corpora hold fewer samples than one batch ({batch_sizes})")

    # ---- the trainer's view ---------------------------------------------------------------------
    # Rank and world are read when used, not when built: a task builds its dataset before the
    # trainer initialises the process group (torchrun's RANK / WORLD_SIZE stand in until then).
    @property
    def rank(self) -> int:
        if self._rank is not None:
            return self._rank
        return D.rank() if D.is_initialized() else D.launch_rank()

    @property
    def world(self) -> int:
        if self._world is not None:
            return self._world
        return D.world_size() if D.is_initialized() else D.launch_world_size()

    @property
    def per_group(self) -> dict[str, int]:
        return {k: sum(c.pairs for c in v) // (self.world * self.batch_sizes[k]) for k, v in self.groups.items()}

    @property
    def batches_per_epoch(self) -> int:
        """Batches EVERY rank yields per epoch (equal across ranks: DDP steps stay in lock-step)."""
        n = sum(self.per_group.values())
        if n == 0:
            raise ConfigError(
                f"the corpora hold fewer samples than one batch per rank ({self.batch_sizes}, {self.world} ranks)"
            )
        return n

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch; skip its first `start_batch` batches of this rank (resume). Call before
        iter(): workers copy the dataset when the iterator starts."""
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch - self.start_batch)

    # ---- iteration ------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        # Batch j of the epoch belongs to reader (j mod workers): its streams. A resumed loader asks
        # worker 0 first, so worker w serves the reader whose next batch is start_batch + w.
        reader = (worker + self.start_batch) % workers
        slot, slots = self.rank * workers + reader, self.world * workers
        for corpus in self.corpora:
            if corpus.dataset is not None:
                corpus.dataset.set_epoch(self.epoch)  # its negatives are drawn per (seed, epoch, index)
        order = [kind for kind, n in self.per_group.items() for _ in range(n)]
        random.Random(f"groups/{self.seed}/{self.epoch}").shuffle(order)  # same on every rank
        streams = {kind: self._group_stream(kind, slot, slots) for kind in self.groups}
        for j in range(reader, len(order), workers):
            kind = order[j]
            pending = [next(streams[kind]) for _ in range(self.batch_sizes[kind])]
            if j < self.start_batch:
                continue  # replayed to restore the streams' positions, never decoded
            yield collate([self._decode(p, j * self.batch_sizes[kind] + i) for i, p in enumerate(pending)])

    def _group_stream(self, kind: str, slot: int, slots: int) -> Iterator[tuple]:
        corpora = self.groups[kind]
        streams = [self._corpus_stream(c, slot, slots) for c in corpora]
        weights = [c.pairs for c in corpora]
        rng = random.Random(f"mix/{self.seed}/{self.epoch}/{slot}/{kind}")
        while True:
            yield next(streams[rng.choices(range(len(streams)), weights)[0]])

    def _corpus_stream(self, corpus: Corpus, slot: int, slots: int) -> Iterator[tuple]:
        """Endless: a slot whose share runs out before the epoch's quota starts the next pass."""
        for rerun in range(1_000_000):
            if corpus.dataset is not None:
                n = len(corpus.dataset)
                corpus_id = zlib.crc32(corpus.name.encode())
                g = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch, rerun, corpus_id))
                share = torch.randperm(n, generator=g).tolist()[slot::slots]
                if not share:
                    raise DataError(f"corpus {corpus.name} ({n} samples) is smaller than the {slots} readers")
                for index in share:
                    yield ("record", corpus, index)
            else:
                # The same shards on every pass of the epoch (slots stay disjoint), in a new order.
                urls = S.slot_shards([s.url for s in corpus.index.shards], slot, slots, self.seed, self.epoch)
                if rerun:
                    random.Random(f"rerun/{self.seed}/{self.epoch}/{rerun}").shuffle(urls)
                yield from self._shard_pairs(corpus, urls, derive_seed(self.seed, self.epoch, rerun, slot))

    def _shard_pairs(self, corpus: Corpus, urls: list[str], seed: int) -> Iterator[tuple]:
        """(pair, negative media) items; the negative is drawn from a look-ahead window of the stream."""
        rng = random.Random(seed)
        window: deque[dict] = deque()
        # every shard is held to its index's sample count: a short shard stops the run, naming it
        source = S.shuffled_pairs(urls, self.shuffle_buffer, seed, {s.url: s.samples for s in corpus.index.shards})

        def emit() -> tuple:
            pair = window.popleft()
            candidates = [
                w
                for w in window
                if not (self.neg_distinct and w["__key__"] == pair["__key__"] and w["__url__"] == pair["__url__"])
            ]
            if not self.neg_distinct:
                candidates.append(pair)  # official: a coincidental positive is possible
            negative = rng.choice(candidates) if candidates else pair
            return ("shard", corpus, pair, negative)

        for pair in source:
            window.append(pair)
            if len(window) >= self.negative_pool:
                yield emit()
        while window:
            yield emit()

    # ---- decoding (only for batches that are yielded) --------------------------------------------
    def _decode(self, pending: tuple, position: int) -> dict:
        try:
            if pending[0] == "record":
                _, corpus, index = pending
                seed = derive_seed(self.seed, self.epoch, zlib.crc32(corpus.name.encode()), index)
                return seeded_call(seed, lambda: corpus.dataset.sample(index))
            _, corpus, pair, negative = pending
            uid = zlib.crc32(f"{pair['__url__']}/{pair['__key__']}/{pair['__pair__']}".encode())
            return seeded_call(
                derive_seed(self.seed, self.epoch, uid), lambda: self._shard_sample(corpus, pair, negative, position)
            )
        except DataError as err:
            if not self.skip_corrupt:
                raise
            return {"skipped": str(err), "index": position}

    def _shard_sample(self, corpus: Corpus, pair: dict, negative: dict, position: int) -> dict:
        enc = encode([pair["__caption__"]], self.tokenizer, self.max_len)
        return {
            "index": position,
            "text": pair["__caption__"],
            "text_ids": enc["ids"][0],
            "text_masks": enc["masks"][0],
            "image": self._media(corpus, pair),
            "neg_image": self._media(corpus, negative),
        }

    def _media(self, corpus: Corpus, raw: dict) -> torch.Tensor:
        visuals = self.visuals[corpus.kind]
        ext, data = S.media_key(raw, raw["__url__"])
        if corpus.kind == "image":
            return visuals(S.ImageSource(data=data))
        # The clip readers open files (decord, frame folders): a temporary file per decoded clip.
        with tempfile.NamedTemporaryFile(suffix=f".{ext}") as tmp:
            tmp.write(data)
            tmp.flush()
            return visuals(Path(tmp.name))
