"""DataLoader settings a GPU run needs by default, the same for training and evaluation.

On CUDA one core decoding and augmenting images feeds a few percent of an H100 (a code review measured
78-95 images/s at 384 px on one core), so the loader gets worker processes from the CPUs this process
may use: its CPU affinity divided by the processes torchrun started on this node (LOCAL_WORLD_SIZE),
one core left to the training process itself, at most MAX_AUTO_WORKERS; batches go to pinned memory
(asynchronous host-to-device copies) and a training loader keeps its workers between epochs.
On CPU the default stays 0 workers: the model needs the same cores.

The worker count never changes the numbers of a map-style dataset: every item's randomness is seeded by
(seed, epoch, index) (engine/sampler.py SeededDataset), whichever process loads it. A streamed dataset
(sclbench.data.streaming) splits its shards by worker, so there the count is part of the run: its
automatic value is a constant (STREAM_WORKERS), not the machine's CPU count.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import torch

MAX_AUTO_WORKERS = 8
STREAM_WORKERS = 4
PREFETCH_FACTOR = 2  # batches in flight per worker (torch's default, stated so that records carry it)


def cpus_per_local_rank() -> int:
    """CPUs this process may use, shared among the processes of this node."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    local_world = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, cpus // local_world)


def auto_workers(device: torch.device, streaming: bool = False) -> int:
    """Loader workers when none are asked for (see the module docstring)."""
    if device.type != "cuda":
        return 0
    if streaming:
        return STREAM_WORKERS
    return max(0, min(MAX_AUTO_WORKERS, cpus_per_local_rank() - 1))


@dataclass(frozen=True)
class LoaderSettings:
    num_workers: int
    pin_memory: bool
    persistent_workers: bool
    prefetch_factor: int | None

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of torch.utils.data.DataLoader."""
        out: dict[str, Any] = {"num_workers": self.num_workers, "pin_memory": self.pin_memory}
        if self.num_workers > 0:  # torch refuses both without workers
            out.update(persistent_workers=self.persistent_workers, prefetch_factor=self.prefetch_factor)
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def loader_settings(
    device: torch.device | str, num_workers: int | None = None, *, streaming: bool = False, persistent: bool = False
) -> LoaderSettings:
    """Settings for a loader feeding `device`. `num_workers` None: `auto_workers`. `persistent`: keep
    the workers between epochs (a training loader over a map-style dataset: its items carry their
    epoch, so a worker's copy of the dataset never needs refreshing)."""
    device = torch.device(device)
    workers = auto_workers(device, streaming) if num_workers is None else int(num_workers)
    return LoaderSettings(
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=bool(persistent and workers > 0 and not streaming),
        prefetch_factor=PREFETCH_FACTOR if workers > 0 else None,
    )
