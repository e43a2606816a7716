"""Numeric precision of evaluation: bf16 autocast on CUDA by default, fp32 elsewhere; TF32 on CUDA.

The official code ran everything in native fp16 AMP (Lightning precision 16). On CUDA the default is
bf16 autocast (weights stay fp32; matmuls and attention in bf16), the speed a GPU user expects;
`--precision fp32` (with `--no-tf32` for IEEE fp32 matmuls) is the reference, `--precision fp16` the official.
bf16/fp16 give slightly different scores than fp32, so the precision is part of a result's protocol and
of every cache key. TF32 only changes CUDA fp32 matmuls/convolutions (10-bit mantissa inputs, fp32
accumulation): in fp32 mode all of them, under autocast the ones autocast keeps in fp32; it is the
PyTorch-documented way to run fp32 math at tensor-core speed. On CPU nothing changes (fp32, no TF32).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from sclbench.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class EvalPrecision:
    precision: str = "fp32"
    tf32: bool = True  # CUDA fp32 only: allow TF32 tensor-core matmuls (torch's default is off)
    device_type: str = "cpu"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision {self.precision!r}: choose one of {', '.join(PRECISIONS)} (--precision / eval.precision)"
            )
        if self.precision == "fp16" and self.device_type != "cuda":
            raise ConfigError(
                f"precision fp16 needs a CUDA device (this evaluation runs on {self.device_type}): "
                "use --precision bf16 (or fp32)"
            )

    @property
    def uses_tf32(self) -> bool:
        """Whether TF32 applies (CUDA with tf32 on; under bf16/fp16 autocast to the ops kept in fp32):
        what the protocol records."""
        return self.device_type == "cuda" and self.tf32

    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES.get(self.precision, torch.float32)

    def protocol(self) -> dict[str, Any]:
        return {"precision": self.precision, "tf32": self.uses_tf32}

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        """Autocast (bf16/fp16) and, on CUDA, the TF32 switch; both restored on exit."""
        with contextlib.ExitStack() as stack:
            if self.precision != "fp32":
                stack.enter_context(torch.autocast(self.device_type, dtype=self.dtype))
            if self.device_type == "cuda":
                stack.enter_context(_tf32(self.tf32))
            yield


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def default_precision(device_type: str) -> str:
    """bf16 autocast on CUDA (the GPU default), fp32 elsewhere (CPU runs stay as they were)."""
    return "bf16" if device_type == "cuda" else "fp32"


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        return value.lower() in ("true", "1", "yes", "on")
    raise ConfigError(f"{name} {value!r}: expected true or false")


def resolve_precision(options: dict[str, Any], card: Any, device_type: str) -> EvalPrecision:
    """The evaluate options `precision` / `tf32` (None = not given), else the card's `eval.precision` /
    `eval.tf32`, else `default_precision` of the device with TF32; checked against the device type
    ("cpu", "cuda", ...)."""
    precision = options.get("precision") or card.get("eval.precision") or default_precision(device_type)
    tf32 = options.get("tf32")
    if tf32 is None:
        tf32 = card.get("eval.tf32", True)
    return EvalPrecision(str(precision), _as_bool(tf32, "tf32"), device_type)


def eval_precision(options: dict[str, Any], card: Any, model: torch.nn.Module) -> EvalPrecision:
    """`resolve_precision` for the device the model is on."""
    return resolve_precision(options, card, next(model.parameters()).device.type)
