"""Seeds derived from (seed, epoch, index, ...) and calls made under them: the one definition shared by the
engine's samplers and the data stream, so that an item's randomness is a function of those numbers only."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (SeedSequence hashes them; no collisions in practice)."""
    hi, lo = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2)
    return ((int(hi) << 32) | int(lo)) & 0x7FFF_FFFF_FFFF_FFFF


def seeded_call(seed: int, fn: Callable[[], Any]) -> Any:
    """fn() with python/numpy/torch global generators seeded by `seed` (augmentations), the caller's
    states restored afterwards (so loading in the main process leaves the training RNG alone)."""
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            random.seed(seed)
            np.random.seed(seed & 0xFFFFFFFF)
            # The CPU generator only (the one fork_rng restores): torch.manual_seed would also seed
            # every CUDA device, leaking into GPU dropout, and costs ~0.3 ms a call (lazy-CUDA bookkeeping).
            torch.default_generator.manual_seed(seed)
            return fn()
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
