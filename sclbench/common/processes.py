"""Independent jobs side by side in worker processes (the demo's fine-tunes, the benchmark's parts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def run_calls(calls: Sequence[tuple], workers: int, start_order: Sequence[int] | None = None) -> list[Any]:
    """Run `(function, *args)` calls, `workers` processes at a time (in this process when 1).

    Results come back in the order of `calls`, whatever order they are started in (`start_order`:
    indices, e.g. the longest first); the first failure is raised here.
    """
    if workers <= 1 or len(calls) <= 1:
        return [fn(*args) for fn, *args in calls]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    order = list(start_order) if start_order is not None else list(range(len(calls)))
    # spawn: a fresh interpreter per worker (forking a process that holds torch's thread pools is unsafe)
    with ProcessPoolExecutor(
        max_workers=min(workers, len(calls)), mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        futures = {i: pool.submit(*calls[i]) for i in order}
        return [futures[i].result() for i in range(len(calls))]
