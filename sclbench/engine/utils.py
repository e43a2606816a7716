"""Small helpers every layer uses around a model: moving a batch to a device, seeding the generators.

They lived in the trainer module; evaluation (tasks/base.py) and the jobs need them without the loop.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def to_device(obj: Any, device: torch.device | str) -> Any:
    """`obj` with every tensor inside (dicts, lists, tuples, namedtuples, nested) moved to `device`."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple: rebuilt field by field
        return type(obj)(*(to_device(v, device) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (numpy takes 32 bits only)."""
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    torch.manual_seed(seed)
