"""Reading checkpoint files safely: the format told by the first bytes, pickles without running code.

Official files are complete PyTorch-Lightning checkpoints (weights under `state_dict`, or `model` for
plain exports). They are read with torch's `weights_only` unpickler, which never executes pickled
code, and memory-mapped, so a 4.4 GB file is not held twice in memory. The few classes such files
reference (Lightning's `AttributeDict`, callback classes used as dict keys, config containers) are
mapped to inert stand-ins (classes of those libraries only). Every failure (missing, foreign,
truncated, damaged, or a pickled callable) is one CheckpointError naming the file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from sclbench.common.safe_pickle import load_torch, short_reason
from sclbench.errors import CheckpointError

TRUST_CKPT_HINT = (
    "if you trust its source, pass --trust-pickle (or convert it once: `sclbench ckpt convert FILE "
    "OUT --trust-pickle`), which lets it run code"
)
# Classes of other libraries (Lightning's AttributeDict, sacred's ReadOnlyDict, callback classes used as
# dict keys) get inert stand-ins; a global of the standard library or of numpy / pandas / torch, or any
# function (a lower-case name), is refused by name: os.system, builtins.exec, functools.partial, ...
NO_STAND_IN = frozenset(sys.stdlib_module_names) | {"numpy", "pandas", "torch", "scipy", "dill", "joblib"}


def read_checkpoint(path: str | Path, trust_pickle: bool = False) -> dict[str, Any]:
    """Load a `.ckpt`/`.pt`/`.pth` (or `.safetensors`) without executing pickled code, memory-mapped.

    The format is told by the file's first bytes, not its name: a PyTorch zip archive, a legacy
    pickle, or safetensors. Anything else (a text/JSON/image file, a truncated or damaged file) is a
    CheckpointError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint file {path} does not exist" + (" (it is a directory)" if path.is_dir() else "")
        )
    kind = sniff_format(path)
    if kind == "safetensors" or (path.suffix == ".safetensors" and kind == "unknown"):
        return {"state_dict": read_safetensors(path)}
    if kind == "unknown":
        raise CheckpointError(
            f"{path} is not a checkpoint: it is neither a PyTorch file (zip archive or pickle) nor safetensors "
            f"(first bytes {_head(path)!r}). Pass the .ckpt/.pt/.safetensors file itself."
        )
    zipped, names = kind == "zip", []
    try:
        # Official Lightning checkpoints name a few container classes: inert stand-ins rebuild them.
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) if zipped and not trust_pickle else []
        stand_ins = [(_stand_in(n), n) for n in names if _stand_in_allowed(n)]
        return load_torch(
            path, "checkpoint", trust=trust_pickle, extra_globals=stand_ins, mmap=zipped, hint=TRUST_CKPT_HINT
        )
    except CheckpointError:
        raise
    except Exception as err:  # damaged files raise anything from RuntimeError to KeyError or UnicodeError
        if "Weights only load failed" in str(err) or ("PytorchStreamReader" not in str(err) and zipped and names):
            raise CheckpointError(
                f"cannot read checkpoint {path} safely: {_unpickler_reason(err)}. Either the file is damaged, or it "
                f"pickles objects the safe reader does not rebuild: {TRUST_CKPT_HINT}"
            ) from None
        raise CheckpointError(
            f"cannot read checkpoint {path}: {_first_line(err)}. The file is truncated or damaged "
            "(re-download it and compare its sha256 with checkpoints.yaml)."
        ) from None


def read_safetensors(path: str | Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; a truncated or foreign file is a CheckpointError naming it."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=device)
    except Exception as err:  # SafetensorError (its own type), OSError, or a header the parser rejects
        raise CheckpointError(
            f"cannot read {path}: {_first_line(err)}. The file is truncated or not a safetensors file "
            "(save it again, or re-download it)."
        ) from None


def sniff_format(path: Path) -> str:
    """'zip' (torch.save), 'pickle' (legacy torch.save), 'safetensors' or 'unknown', from the first bytes."""
    head = _head(path, 16)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{":
        header_len = int.from_bytes(head[:8], "little")
        if 0 < header_len <= max(path.stat().st_size - 8, 0):
            return "safetensors"
    return "unknown"


def _head(path: Path, n: int = 8) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


_STAND_INS: dict[str, Any] = {}


def _stand_in_allowed(name: str) -> bool:
    module, _, short = name.rpartition(".")
    return module.split(".")[0] not in NO_STAND_IN and short[:1].isupper()


def _stand_in(name: str) -> Any:
    """An inert stand-in for a class a Lightning checkpoint references (never called with data).

    Dict subclasses such as `AttributeDict` must become real dicts (the safe unpickler only fills
    dicts); other classes (callback types used as dict keys) become empty placeholder classes.
    """
    if name not in _STAND_INS:
        short = name.rpartition(".")[2]
        # sacred's ReadOnlyDict / ReadOnlyList (the official configs) and Lightning's AttributeDict
        container = dict if short.endswith("Dict") else list if short.endswith("List") else None
        _STAND_INS[name] = container or type(short, (), {"__qualname__": name})
    return _STAND_INS[name]


def _unpickler_reason(err: BaseException) -> str:
    """The informative line of torch's long weights-only failure message."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if line.startswith("WeightsUnpickler error"):
            rest = line.partition(":")[2].strip() or (lines[i + 1] if i + 1 < len(lines) else "")
            return rest or line
    return lines[0] if lines else type(err).__name__


def _first_line(err: BaseException) -> str:
    return short_reason(err)


def extract_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The weights of a loaded checkpoint: `model` (plain export) or `state_dict` (Lightning) or itself."""
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
    raise CheckpointError(f"{source} holds no state dict (expected a 'state_dict' or 'model' entry of tensors)")


def official_config(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The training config a Lightning checkpoint carries (`hyper_parameters.config`), if any."""
    hp = obj.get("hyper_parameters") if isinstance(obj, dict) else None
    if isinstance(hp, dict):
        return hp.get("config", hp) if isinstance(hp.get("config", hp), dict) else None
    return None
