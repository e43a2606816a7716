"""Parameter coordinates whose gradient is zero in exact arithmetic (shared by the tests that compare two
training runs that differ only in summation order).

The loss is invariant to adding one constant there: attention KEY biases (softmax over keys; BERT-style
`key.bias`, and the middle third of torch MultiheadAttention's fused `in_proj_bias`, laid out q, k, v) and
`rank_output.bias` (one constant on all 1 + K candidate scores of an image; listwise softmax cross-entropy).
In float32 their gradient is pure rounding noise, different in each summation order, and Adam divides it by
its own running scale: the two runs move these coordinates by different steps of up to lr. They change no
output, so comparisons hold them only to Adam's bound (each step moves a coordinate by at most about lr).
"""

from __future__ import annotations

import torch


def zero_gradient_mask(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """True where `name`'s gradient is zero by construction (see the module docstring)."""
    mask = torch.zeros_like(tensor, dtype=torch.bool)
    if name.endswith("key.bias") or name == "rank_output.bias":
        mask[:] = True
    elif name.endswith("in_proj_bias"):
        third = tensor.shape[0] // 3
        mask[third : 2 * third] = True
    return mask
