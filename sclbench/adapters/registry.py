"""`--model NAME`: the built-in adapters by name, or a user's factory as `package.module:function`
(or `path/to/file.py:function`).

A factory is called as `factory(ckpt=CKPT, family=FAMILY)`: CKPT is the `--ckpt` value (a hub id, a
local folder or file, or None) and FAMILY the task family ("retrieval", "vqa" or "nlvr2"). It returns
an `EvalModel` implementing that family's interface.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sclbench.adapters.interface import FAMILIES, EvalModel, Preprocess, missing_methods, supports
from sclbench.errors import ConfigError

# Built-in adapters: name -> "module:factory", imported only when named (transformers' model classes
# are slow to import).
BUILTIN: dict[str, str] = {
    "vilt": "sclbench.adapters.vilt:build",
    "blip": "sclbench.adapters.blip:build",
    "clip": "sclbench.adapters.clip:build",
}
SCL = "scl"  # the default: SCL and METER checkpoints through sclbench's own loader (app/jobs.prepare)


def family_of(card_family: str) -> str:
    """The interface family of a task card's family (image_retrieval / video_retrieval -> retrieval)."""
    family = "retrieval" if card_family.endswith("retrieval") else card_family
    if family not in FAMILIES:
        raise ConfigError(f"task family {card_family!r} has no model interface; evaluable: {', '.join(FAMILIES)}")
    return family


def load_factory(spec: str) -> Callable[..., Any]:
    """The callable named by a built-in name or `module:function` / `file.py:function`."""
    target = BUILTIN.get(spec, spec)
    if ":" not in target:
        known = ", ".join([SCL, *BUILTIN])
        raise ConfigError(f"--model {spec!r}: not a built-in model ({known}) nor 'package.module:factory'")
    module_name, _, attr = target.rpartition(":")
    if not module_name or not attr.isidentifier():
        raise ConfigError(f"--model {spec!r}: expected 'package.module:factory' with a function name after ':'")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).expanduser()
            if not path.is_file():
                raise ConfigError(f"--model {spec!r}: no such file {path}")
            name = f"sclbench_user_model_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}"
            loaded = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(loaded)
            sys.modules[name] = module
            try:
                loaded.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
        else:
            module = importlib.import_module(module_name)
    except ConfigError:
        raise
    except ImportError as err:
        raise ConfigError(f"--model {spec!r}: cannot import {module_name!r} ({err})") from None
    except Exception as err:  # the user's module fails while it is imported: say where, in one line
        raise ConfigError(f"--model {spec!r}: importing {module_name!r} failed ({type(err).__name__}: {err})") from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise ConfigError(f"--model {spec!r}: {module_name!r} has no attribute {attr!r}")
    if not callable(factory):
        raise ConfigError(f"--model {spec!r}: {module_name}.{attr} is a {type(factory).__name__}, not callable")
    try:
        inspect.signature(factory).bind(ckpt=None, family="vqa")
    except TypeError:
        raise ConfigError(
            f"--model {spec!r}: {module_name}.{attr} must accept the keyword arguments ckpt= and family= "
            "(e.g. def build(ckpt=None, family=None))"
        ) from None
    except ValueError:  # no signature to read (some builtins): calling it will tell
        pass
    return factory


def interface_name(family: str) -> str:
    return {"retrieval": "RetrievalModel", "vqa": "VQAModel", "nlvr2": "NLVR2Model"}[family]


def check_model(model: Any, spec: str, family: str) -> EvalModel:
    """`model` implements `family`'s interface and says how it wants its inputs; else one ConfigError."""
    wanted = f"sclbench.adapters.{interface_name(family)}"
    if not isinstance(model, EvalModel) or not supports(model, family):
        raise ConfigError(
            f"--model {spec!r} returned {type(model).__name__}, which does not implement the {family} interface "
            f"(subclass {wanted})"
        )
    missing = missing_methods(model, family)
    if missing:
        raise ConfigError(
            f"--model {spec!r}: {type(model).__name__} does not implement {', '.join(missing)} "
            f"(the {family} interface, {wanted})"
        )
    try:
        preprocess = model.preprocess()
    except NotImplementedError:
        raise ConfigError(f"--model {spec!r}: {type(model).__name__} must define preprocess()") from None
    if not isinstance(preprocess, Preprocess):
        raise ConfigError(
            f"--model {spec!r}: {type(model).__name__}.preprocess() returned {type(preprocess).__name__}, "
            "expected sclbench.adapters.Preprocess"
        )
    if not callable(preprocess.image) or not callable(preprocess.text):
        raise ConfigError(f"--model {spec!r}: Preprocess.image and Preprocess.text must be callables")
    if not any(True for _ in model.parameters()):
        raise ConfigError(
            f"--model {spec!r}: {type(model).__name__} has no parameters (the engine reads the device from them)"
        )
    return model


def build_model(spec: str, ckpt: str | None, card_family: str) -> EvalModel:
    """Build a non-SCL model for a task family and check that it implements the family's interface."""
    family = family_of(card_family)
    model = load_factory(spec)(ckpt=ckpt, family=family)
    return check_model(model, spec, family)
