"""The shapes of the command line's options: every number is checked for type, range and finiteness and
every path for existence and kind while the arguments are parsed, before a verb starts any work. A bad
value is click's one usage error naming the option (exit 2).

Spread these into `typer.Option(...)` / `typer.Argument(...)`: `typer.Option(None, "--k", **COUNT)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import typer

# Counts above a C int overflow the torch / numpy arguments they become; no real run needs more.
INT_MAX = 2**31 - 1
# numpy's legacy seeding (np.random.seed) takes 0 .. 2**32 - 1; torch and random take more, so this bounds all.
SEED_MAX = 2**32 - 1

COUNT = {"min": 1, "max": INT_MAX}  # steps, epochs, sizes, k, top-k, frames: at least one
NON_NEGATIVE = {"min": 0, "max": INT_MAX}  # worker processes, resamples: zero means none
SEED = {"min": 0, "max": SEED_MAX}
SIGNED = {"min": -INT_MAX, "max": INT_MAX}  # an index that may count from the end (-1 = last)

# Paths. `writable` is checked only for a path that exists (a new folder is made by the verb, and an
# OSError then is one `error:` line from `main`); `exists` is checked before the verb runs.
INPUT_DIR = {"exists": True, "file_okay": False, "dir_okay": True}
INPUT_FILE = {"exists": True, "file_okay": True, "dir_okay": False}
INPUT_PATH = {"exists": True}  # a file or a folder


def _output_target(kind: str) -> Callable[..., object]:
    """A callback probing an output folder / file before the verb runs (exists or can be created, is of
    the right kind, is writable: sclbench.common.io); one `error:` line naming the option otherwise."""

    def check(ctx: typer.Context, param: typer.CallbackParam, value: object) -> object:
        if value is not None and not ctx.resilient_parsing:
            from sclbench.common.io import check_output_dir, check_output_file

            name = param.opts[0] if param.param_type_name == "option" else str(param.name).upper()
            is_file = kind == "file" or (kind == "path" and bool(Path(str(value)).suffix))  # path: x.ckpt or x/
            (check_output_file if is_file else check_output_dir)(value, name)
        return value

    return check


OUTPUT_DIR = {"file_okay": False, "writable": True, "callback": _output_target("dir")}
OUTPUT_FILE = {"dir_okay": False, "callback": _output_target("file")}
OUTPUT_PATH = {"callback": _output_target("path")}  # a folder, or a file where the name has a suffix


def finite_float(
    minimum: float | None = None, *, above: float | None = None, maximum: float | None = None
) -> Callable[[object], float]:
    """A `parser=` for float options. click's FloatRange lets NaN through (every comparison with NaN is
    false) and typer's `min=` lets +inf through, so finiteness is checked here, then the range
    (`minimum` inclusive, `above` exclusive, `maximum` inclusive)."""

    def parse(value: object) -> float:
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise typer.BadParameter(f"{value!r} is not a number") from None
        if not math.isfinite(number):
            raise typer.BadParameter(f"{value!r} is not a finite number")
        if minimum is not None and number < minimum:
            raise typer.BadParameter(f"{value!r} is below {minimum:g}")
        if above is not None and number <= above:
            raise typer.BadParameter(f"{value!r} must be greater than {above:g}")
        if maximum is not None and number > maximum:
            raise typer.BadParameter(f"{value!r} is above {maximum:g}")
        return number

    return parse


def parse_finite(text: str, what: str, minimum: float | None = None) -> float:
    """A finite float from `text` (inside a compound value such as NAME=POINTS), else ValueError saying why."""
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{what} {text!r} is not a finite number")
    if minimum is not None and number < minimum:
        raise ValueError(f"{what} {text!r} is below {minimum:g}")
    return number


def device_name(value: object) -> str | None:
    """A `parser=` for --device: a torch device string this machine has (cpu, cuda, cuda:1, mps)."""
    if value is None:
        return None
    import torch

    text = str(value)
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise typer.BadParameter(f"{text!r} is not a device (cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise typer.BadParameter(f"{text!r}: CUDA is not available on this machine (use cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise typer.BadParameter(f"{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise typer.BadParameter(f"{text!r}: MPS is not available on this machine (use cpu)")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise typer.BadParameter(f"{text!r}: use cpu, cuda, cuda:N or mps")
    return text


def utf8_text(value: object) -> str:
    """A `parser=` for free text (a sentence, a question, a word): an argument holding a byte that is not
    UTF-8 reaches Python as a lone surrogate, which no tokenizer can encode."""
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise typer.BadParameter(
            f"{text.encode('utf-8', 'backslashreplace').decode()!r} is not valid "
            "UTF-8 text (a byte of another encoding?)"
        ) from None
    return text
