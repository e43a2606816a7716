"""The one way sclbench reads a pickle: tensors and plain containers, never a callable.

A pickle is a program: each GLOBAL it names is looked up and may be called with data of its choosing.
Every pickled file sclbench reads (checkpoints, training resume state, retrieval caches, the MSRVTT
caption index) goes through this module, so the rule lives in one place and a test can check that no
other module unpickles anything (tests/common/test_no_unrestricted_unpickling.py).

- Torch files (`load_torch`) are read by torch's `weights_only` unpickler: tensors, storages, dtypes,
  dicts, lists, tuples, strings, numbers, booleans, None, and only the extra classes a caller names
  (official Lightning checkpoints reference a few container classes; readers.py maps them to inert
  stand-ins). `trust=True` (the user's `--trust-pickle`, for a file they trust) is the single path
  that unpickles without restriction.
- Plain pickles (`load_plain`) are read by `_SkeletonUnpickler`: builtins containers and scalars, and
  a numpy array or pandas Series/Index as DATA only. The globals such a file names (numpy's
  `_reconstruct`, `pandas.Series`, ...) are never looked up: each is replaced by an inert record of
  the arguments and state the pickle gives it, and `_decode` turns those records into lists and dicts
  with plain numpy dtypes (bool, int, uint, float) or Python objects. Any other global is refused.
"""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sclbench.errors import CheckpointError, DataError, SCLBenchError

TRUST_HINT = "if you trust the file's source, pass --trust-pickle to load it anyway (it can run code)"


class PickleRefused(SCLBenchError):
    """A pickle names a global outside the allowlist (`self.name`: 'module.name')."""

    def __init__(self, message: str, name: str | None = None):
        super().__init__(message)
        self.name = name


# ---- torch files ---------------------------------------------------------------------------------
def load_torch(
    path: str | Path,
    what: str = "file",
    *,
    trust: bool = False,
    extra_globals: Iterable[Any] = (),
    mmap: bool = False,
    map_location: Any = "cpu",
    hint: str = TRUST_HINT,
    error: type[SCLBenchError] = CheckpointError,
) -> Any:
    """`torch.load` restricted to tensors and plain containers (plus `extra_globals`, pairs or classes
    for `torch.serialization.safe_globals`). A refused global raises `error` naming the file, the global
    and `hint`; other failures (damaged, truncated files) propagate for the caller to word."""
    import torch

    if trust:  # the user's explicit --trust-pickle: the only unrestricted unpickling in sclbench
        return torch.load(path, map_location=map_location, weights_only=False, mmap=mmap)
    try:
        with torch.serialization.safe_globals(list(extra_globals)):
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        name = refused_global(err)
        if name is None:  # an opcode or structure the safe reader rejects: damage, for the caller to word
            raise
        raise error(
            f"cannot read {what} {path} safely: it pickles the global {name}, which could run code when loaded; {hint}"
        ) from None


def short_reason(err: BaseException) -> str:
    """One line from torch's long load failures (the WeightsUnpickler line, else the first line)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error" in line:  # its reason follows on the same line or the next
            rest = line.partition("WeightsUnpickler error")[2].lstrip(": ").strip()
            return rest or (lines[i + 1] if i + 1 < len(lines) else line)
    if not lines:
        return type(err).__name__
    first = lines[0]
    return first.split(". ")[0].rstrip(".") if len(first) > 120 else first  # torch appends paragraphs of advice


# torch words it "Unsupported global: GLOBAL os.system was not ..." or "... GLOBAL posix.system whose module ...".
_GLOBAL_PATTERNS = [re.compile(p) for p in (r"GLOBAL ([\w.]+)", r"Unsupported class ([\w.]+)", r"[Gg]lobal:? ([\w.]+)")]


def refused_global(err: BaseException) -> str | None:
    """The 'module.name' torch's weights-only unpickler refused, read from its message."""
    for pattern in _GLOBAL_PATTERNS:
        match = pattern.search(str(err))
        if match and match.group(1) != "GLOBAL":
            name = match.group(1).rstrip(".")
            return name if "." in name else f"builtins.{name}"  # torch names builtins bare: "GLOBAL eval"
    return None


# ---- plain pickles -------------------------------------------------------------------------------
class _Node:
    """An inert stand-in for what a pickle's global would have built: `name` (the global), the
    arguments it was called with and the state BUILD gave it. It runs nothing. Each allowlisted
    global becomes its own subclass (NEWOBJ needs a class), made by `_global_class`."""

    name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> _Node:
        node = object.__new__(cls)
        node.args, node.state = args + ((kwargs,) if kwargs else ()), None
        return node

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE calls the class: __new__ recorded it
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:  # shown in error messages
        return f"<{self.name}>"


_CLASSES: dict[str, type] = {}


def _global_class(full: str) -> type:
    if full not in _CLASSES:
        _CLASSES[full] = type(_short(full), (_Node,), {"name": full})
    return _CLASSES[full]


def _is_global(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, _Node)


def _newobj(cls: Any, *args: Any) -> _Node:
    """copyreg.__newobj__ / _reconstructor: `cls.__new__(cls, ...)` for an admitted class only."""
    if not _is_global(cls):
        raise PickleRefused(f"refused copyreg reconstruction of {cls!r}", repr(cls))
    return cls.__new__(cls, *args)


def _reconstructor(cls: Any, base: Any = None, state: Any = None) -> _Node:
    return _newobj(cls)


def _codecs_encode(text: Any, encoding: str = "utf-8") -> bytes:
    """Protocol-2 pickles spell `bytes` as _codecs.encode(str, 'latin1'); that is all it may do."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise PickleRefused("_codecs.encode with anything but (str, 'latin1')", "_codecs.encode")
    return text.encode("latin1")


# Globals that name data structures; each becomes an inert _Node class (never the real object).
_NUMPY = (
    "numpy",
    "numpy.core",
    "numpy._core",
    "numpy.core.multiarray",
    "numpy._core.multiarray",
    "numpy.core.numeric",
    "numpy._core.numeric",
)
_DATA_GLOBALS = {f"{m}.{n}" for m in _NUMPY for n in ("ndarray", "dtype", "_reconstruct", "_frombuffer", "scalar")}
_DATA_GLOBALS |= {f"{m}.{n}" for m in ("pandas", "pandas.core.series") for n in ("Series",)}
_DATA_GLOBALS |= {
    f"{m}.{n}"
    for m in ("pandas", "pandas.core.indexes.base", "pandas.core.indexes.numeric", "pandas.core.indexes.range")
    for n in ("Index", "Int64Index", "RangeIndex", "_new_Index")
}
_DATA_GLOBALS |= {
    f"pandas.core.internals{m}.{n}"
    for m in ("", ".managers", ".blocks")
    for n in (
        "SingleBlockManager",
        "BlockManager",
        "new_block",
        "Block",
        "_unpickle_block",
        "NumpyBlock",
        "ObjectBlock",
        "IntBlock",
    )
}
_DATA_GLOBALS |= {
    "pyarrow.lib._restore_array",
    "pyarrow.lib.type_for_alias",
    "pyarrow.lib.py_buffer",
    "pandas.arrays.ArrowStringArray",
    "pandas.core.arrays.string_arrow.ArrowStringArray",
    "pandas.StringDtype",
    "pandas.core.arrays.string_.StringDtype",
}
_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "bytearray", "slice", "complex", "object"}
_PLAIN_DTYPES = set("biuf")  # bool, signed and unsigned int, float


class _SkeletonUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return {
                "dict": dict,
                "list": list,
                "tuple": tuple,
                "set": set,
                "frozenset": frozenset,
                "bytearray": bytearray,
                "slice": slice,
                "complex": complex,
                "object": object,
            }[name]
        if full in ("copyreg.__newobj__", "copy_reg.__newobj__", "copyreg.__newobj_ex__"):
            return _newobj
        if full in ("copyreg._reconstructor", "copy_reg._reconstructor"):
            return _reconstructor
        if full == "_codecs.encode":
            return _codecs_encode
        if full in _DATA_GLOBALS:
            return _global_class(full)
        raise PickleRefused(f"refused global {full}", full)

    def persistent_load(self, pid: Any) -> Any:
        raise PickleRefused("refused a persistent id (not a plain pickle)", "persistent_load")


def load_plain(path: str | Path, what: str = "file", hint: str = "") -> Any:
    """A plain pickle's data (dicts, lists, tuples, strings, numbers, booleans, None, bytes; numpy
    arrays of plain dtypes as lists; a pandas Series as a dict, an Index as a list), or DataError
    naming the file: refused (with the global it named) or unreadable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {what} {path}: {err.strerror or err}") from None
    try:
        # latin1: a Python 2 pickle's byte strings (numpy's raw data among them) arrive as text, undamaged
        return _decode(_SkeletonUnpickler(io.BytesIO(data), encoding="latin1").load())
    except PickleRefused as err:
        raise DataError(
            f"{path}: {err} (a {what} holds plain data only; nothing in it may be called, so the "
            f"file was not loaded){'; ' + hint if hint else ''}"
        ) from None
    except Exception as err:  # truncation and byte flips raise anything from EOFError to ValueError
        raise DataError(f"cannot read {what} {path}: {type(err).__name__}: {err}; re-download it") from None


def _decode(obj: Any) -> Any:
    """Plain Python data from the skeleton, refusing any node that is not a known data structure."""
    if isinstance(obj, _Node):
        return _decode_node(obj)
    if isinstance(obj, dict):
        return {_decode(k): _decode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return type(obj)(_decode(v) for v in obj)
    if isinstance(obj, (str, bytes, bytearray, int, float, complex, bool, type(None), slice)):
        return obj
    raise PickleRefused(f"refused a value of type {type(obj).__name__}", type(obj).__name__)


def _short(name: str) -> str:
    return name.rpartition(".")[2]


def _decode_node(node: _Node) -> Any:
    kind = _short(node.name)
    if kind in ("_reconstruct", "ndarray"):
        return _array_from_state(node.state)
    if kind == "_frombuffer":  # protocol 5: (buffer, dtype, shape, order)
        buf, dtype, shape, order = node.args
        return _array(bytes(buf), _dtype(dtype), tuple(shape), order == "F")
    if kind == "dtype":
        return _dtype(node)
    if kind == "scalar":  # a numpy number: (dtype, its bytes)
        if len(node.args) != 2 or not isinstance(node.args[1], (bytes, bytearray, str)):
            raise PickleRefused("refused a numpy scalar without its bytes", node.name)
        return _array(node.args[1], _dtype(node.args[0]), (), False)
    if kind == "_new_Index":  # (Index class, {'data': array, 'name': ...}) or (RangeIndex, {'start': ...})
        cls, fields = node.args[0], _decode(node.args[1])
        if _is_global(cls) and cls.name.endswith("RangeIndex"):
            return list(range(int(fields.get("start", 0)), int(fields["stop"]), int(fields.get("step", 1))))
        return list(fields.get("data", []))
    if kind in ("Index", "Int64Index"):
        return list(_decode(node.state or {}).get("data", []))
    if kind == "Series":
        return _series(node)
    if kind == "ArrowStringArray":  # pandas >= 3 strings: {'_pa_array': pyarrow array, ...}
        state = node.state[0] if isinstance(node.state, tuple) else node.state
        return _arrow_strings(state.get("_pa_array") if isinstance(state, dict) else None)
    raise PickleRefused(f"refused {node.name} here", node.name)


def _dtype(node: Any) -> str:
    """A numpy dtype node as a 'kind+size' string with byte order ('<i8'); only plain kinds or 'O'."""
    if not isinstance(node, _Node) or not node.args or not isinstance(node.args[0], str):
        raise PickleRefused(f"refused dtype {node!r}", "numpy.dtype")
    spec = node.args[0]
    order = node.state[1] if isinstance(node.state, tuple) and len(node.state) > 1 else "|"
    if spec == "O8" or spec == "O4" or spec == "O":
        return "O"
    if not re.fullmatch(r"[biuf]\d{1,2}", spec) or node.state and len(node.state) > 2 and node.state[2] is not None:
        raise PickleRefused(
            f"refused numpy dtype {spec!r} (only bool, int, uint and float arrays are data)", "numpy.dtype"
        )
    return (order if order in "<>" else "|") + spec


def _array_from_state(state: Any) -> list:
    if not isinstance(state, tuple) or len(state) != 5:
        raise PickleRefused("refused a numpy array without its data", "numpy.ndarray")
    _, shape, dtype, fortran, raw = state
    return _array(raw, _dtype(dtype), tuple(shape), bool(fortran))


def _array(raw: Any, dtype: str, shape: tuple, fortran: bool) -> list:
    """numpy decodes raw bytes of a plain dtype (no object, no pickled code); object arrays arrive as
    a list of already-decoded Python values."""
    import numpy as np

    if dtype == "O":
        if not isinstance(raw, list):
            raise PickleRefused("refused an object array without a list of values", "numpy.ndarray")
        values = [_decode(v) for v in raw]
        return values if len(shape) <= 1 else np.array(values, dtype=object).reshape(shape).tolist()
    if isinstance(raw, str):  # written by Python 2, read back as latin1 text: the same bytes
        raw = raw.encode("latin1")
    if not isinstance(raw, (bytes, bytearray)):
        raise PickleRefused("refused a numpy array whose data is not bytes", "numpy.ndarray")
    arr = np.frombuffer(bytes(raw), dtype=np.dtype(dtype))
    return arr.reshape(shape, order="F" if fortran else "C").tolist()


def _series(node: _Node) -> dict:
    """A pickled pandas Series as {label: value}: state {'_mgr' or '_data': SingleBlockManager}."""
    state = node.state
    if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
        state = state[0]
    if not isinstance(state, dict):
        raise PickleRefused("refused a pandas Series without its data", node.name)
    mgr = state.get("_mgr", state.get("_data"))
    if not isinstance(mgr, _Node) or not isinstance(mgr.state, tuple):
        raise PickleRefused("refused a pandas Series without a block manager", node.name)
    extra = mgr.state[3] if len(mgr.state) > 3 else None
    if isinstance(extra, dict) and "0.14.1" in extra:  # pandas >= 0.14: {'axes': [...], 'blocks': [...]}
        axes, blocks = extra["0.14.1"]["axes"], extra["0.14.1"]["blocks"]
        values = [_block_values(b["values"]) for b in blocks]
    else:  # the pre-0.14 layout: (axes, block values, block items)
        axes, values = mgr.state[0], [_block_values(v) for v in mgr.state[1]]
    index = _decode(axes[0])
    flat = [v for block in values for v in block]
    if len(flat) != len(index):
        raise PickleRefused("refused a pandas Series whose index and values differ in length", node.name)
    return dict(zip(index, flat))


def _block_values(values: Any) -> list:
    decoded = _decode(values)
    if isinstance(decoded, list) and decoded and isinstance(decoded[0], list) and len(decoded) == 1:
        return decoded[0]  # 2-D (1, n) block
    if not isinstance(decoded, list):
        raise PickleRefused("refused a pandas block whose values are not an array", "pandas block")
    return decoded


def _arrow_strings(node: Any) -> list:
    """A pickled pyarrow (large_)string array as a list: validity bitmap, offsets, UTF-8 bytes."""
    import numpy as np

    if not isinstance(node, _Node) or _short(node.name) != "_restore_array" or len(node.args) != 1:
        raise PickleRefused("refused a string array that is not a plain pyarrow array", "pyarrow")
    kind, length, _, offset, buffers, children, dictionary = node.args[0]
    alias = kind.args[0] if isinstance(kind, _Node) and _short(kind.name) == "type_for_alias" else None
    wide = {"string": False, "utf8": False, "large_string": True, "large_utf8": True}.get(alias)
    if wide is None or children or dictionary is not None or len(buffers) != 3:
        raise PickleRefused(f"refused a pyarrow array of type {alias!r} (only strings are data here)", "pyarrow")
    validity, offsets, data = (bytes(b.args[0]) if isinstance(b, _Node) else None for b in buffers)
    ends = np.frombuffer(offsets, dtype="<i8" if wide else "<i4")
    out = []
    for i in range(offset, offset + length):
        valid = validity is None or validity[i // 8] >> (i % 8) & 1
        out.append(data[ends[i] : ends[i + 1]].decode("utf-8") if valid else None)
    return out
