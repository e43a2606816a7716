"""Samplers that make data order and augmentation independent of the number of ranks and workers.

* `TrainSampler` cuts one seeded permutation per epoch into GLOBAL batches, so 1 process with
  accumulation and N processes see the same samples in the same optimizer steps, and a resumed run
  continues at the exact batch where the checkpoint was taken.
* `SeededDataset` makes an item's randomness a function of (seed, epoch, index) only.
* `ShardedEvalSampler` gives every example to exactly one rank (unlike torch's DistributedSampler,
  which pads with duplicates, §8.25); `gather_in_order` puts the per-rank results back in order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from sclbench.common.seeding import derive_seed, seeded_call
from sclbench.engine import distributed as D


class TrainSampler(Sampler[list[int]]):
    """A batch sampler yielding this rank's micro-batches of indices.

    Each epoch: a permutation of range(`num_samples`) from (seed, epoch); global batches of
    `global_batch` consecutive indices (the tail that does not fill one is dropped); each global batch
    is `accumulation` global micro-batches of `micro_batch * world` indices, and rank r takes the
    contiguous slice [r*micro_batch, (r+1)*micro_batch) of each. `with_epoch`: yield (epoch, index)
    pairs (for a SeededDataset read by persistent workers, whose copy of the dataset never sees
    `set_epoch`).

    `kinds` (one small int per item; pre-training's image and clip batches): on more than one process,
    every global micro-batch then holds items of one kind, so that all ranks run the same objectives,
    gather tensors of the same shapes and reach the same parameters in each micro-step (each kind is
    permuted and cut into global micro-batches, whose order is permuted; the kind's tail is dropped).
    One process keeps the plain permutation (its micro-steps need no agreement).
    """

    def __init__(
        self,
        num_samples: int,
        global_batch: int,
        micro_batch: int,
        seed: int = 0,
        rank: int | None = None,
        world: int | None = None,
        shuffle: bool = True,
        with_epoch: bool = False,
        kinds: Sequence[int] | None = None,
    ):
        self.rank = D.rank() if rank is None else rank
        self.world = D.world_size() if world is None else world
        if global_batch % (micro_batch * self.world):
            raise ValueError(
                f"global batch {global_batch} is not a multiple of per-device batch "
                f"{micro_batch} x world size {self.world}"
            )
        self.num_samples, self.global_batch, self.micro_batch = num_samples, global_batch, micro_batch
        self.accumulation = global_batch // (micro_batch * self.world)
        self.seed, self.shuffle, self.with_epoch = seed, shuffle, with_epoch
        self.epoch, self.start_batch = 0, 0
        aligned = kinds is not None and self.world > 1 and len(set(kinds)) > 1
        if kinds is not None and len(kinds) != num_samples:
            raise ValueError(f"kinds has {len(kinds)} entries for {num_samples} samples")
        self.kinds = list(kinds) if aligned else None

    @property
    def steps_per_epoch(self) -> int:
        """Global batches (optimizer steps) per epoch."""
        if self.kinds is None:
            return self.num_samples // self.global_batch
        group = self.micro_batch * self.world
        groups = sum(self.kinds.count(k) // group for k in set(self.kinds))
        return groups // self.accumulation

    def _order(self) -> list[int]:
        """The epoch's indices; in kind-aligned mode, whole single-kind global micro-batches."""
        if self.kinds is None:
            if not self.shuffle:
                return list(range(self.num_samples))
            g = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
            return torch.randperm(self.num_samples, generator=g).tolist()
        group, blocks = self.micro_batch * self.world, []
        for kind in sorted(set(self.kinds)):
            items = [i for i, k in enumerate(self.kinds) if k == kind]
            if self.shuffle:
                g = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch, 1 + kind))
                items = [items[j] for j in torch.randperm(len(items), generator=g).tolist()]
            blocks += [items[s : s + group] for s in range(0, len(items) - group + 1, group)]
        if self.shuffle:
            g = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
            blocks = [blocks[j] for j in torch.randperm(len(blocks), generator=g).tolist()]
        return [i for block in blocks for i in block]

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's permutation; skip its first `start_batch` global batches (resume)."""
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return max(0, self.steps_per_epoch - self.start_batch) * self.accumulation

    def __iter__(self) -> Iterator[list[int]]:
        order = self._order()
        group = self.micro_batch * self.world
        for b in range(self.start_batch, self.steps_per_epoch):
            batch = order[b * self.global_batch : (b + 1) * self.global_batch]
            for m in range(self.accumulation):
                start = m * group + self.rank * self.micro_batch
                micro = batch[start : start + self.micro_batch]
                yield [(self.epoch, i) for i in micro] if self.with_epoch else micro


class SeededDataset(Dataset):
    """Wraps a map-style dataset so that `python random`, numpy and torch draw, inside each
    `__getitem__`, from generators seeded by (seed, epoch, index) — whatever the worker, the rank or
    the resume point. The caller's global RNG states are restored afterwards, so loading data in the
    main process (num_workers=0) does not disturb the training RNG (dropout) either.

    An index may be an (epoch, index) pair (TrainSampler(with_epoch=True)): the item is then that
    epoch's, even in a persistent DataLoader worker whose copy of the dataset was made epochs ago."""

    def __init__(self, dataset: Any, seed: int = 0):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def set_epoch(self, epoch: int) -> None:
        # Workers copy the dataset when a DataLoader iterator starts, so set this before iter().
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:  # collate helpers etc. of the wrapped dataset
        if name == "dataset":  # not yet set (unpickling): avoid infinite recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: int | tuple[int, int]) -> Any:
        if isinstance(index, tuple):
            epoch, index = index
            if epoch != self.epoch:
                self.set_epoch(epoch)  # a subclass may re-form its items per epoch (pre-training chunks)
        return seeded_call(derive_seed(self.seed, self.epoch, index), lambda: self.dataset[index])


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """[start, end) of rank's contiguous shard; shard sizes differ by at most one."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


class ShardedEvalSampler(Sampler[int]):
    """Each index of range(`num_samples`) on exactly one rank, in order (contiguous shards, the first
    `num_samples % world` ranks get one more). No padding: metrics never count an example twice.

    Ranks may hold different numbers of examples, so per-rank loops must not run collectives per
    batch; gather once at the end with `gather_in_order`."""

    def __init__(self, num_samples: int, rank: int | None = None, world: int | None = None):
        self.rank = D.rank() if rank is None else rank
        self.world = D.world_size() if world is None else world
        self.start, self.end = shard_bounds(num_samples, self.rank, self.world)

    def __len__(self) -> int:
        return self.end - self.start

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.end))


def reassemble(per_rank: Sequence[Sequence[Any]]) -> list[Any]:
    """Per-rank result lists (in rank order, from ShardedEvalSampler shards) -> one list in dataset order."""
    return [item for part in per_rank for item in part]


def gather_in_order(local_results: Sequence[Any]) -> list[Any]:
    """All ranks' results of a ShardedEvalSampler loop, in dataset order, on every rank."""
    return reassemble(D.gather_objects(list(local_results)))
