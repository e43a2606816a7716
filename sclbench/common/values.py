"""Typed values: one check for every number, flag, text or list a user can set (card keys, `key=value`
overrides, `config.json` fields, result-record fields, numeric command-line options).

A value is checked against a `Rule` (its kind, a range, whether null is allowed) before any work
starts; a wrong one raises one `ConfigError` naming where it came from and what it needs, e.g.
``override train.lr=abc: train.lr needs a number > 0, got 'abc'``. NaN and infinity are never valid
numbers here: no setting of this suite means anything at NaN, and an infinite one hides a typo.

The one-line helpers at the bottom (`finite_positive("--tolerance", x)`, ...) are for command-line
options and library arguments. Imports nothing from sclbench but `sclbench.errors`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sclbench.errors import ConfigError

KINDS = ("int", "float", "bool", "str", "list", "dict", "any")


@dataclass(frozen=True)
class Rule:
    """What a setting accepts. `kind` is one of KINDS ("float" takes ints too; "int" takes a float only
    when it is a whole number, 3.0, and gives back the int: nothing is ever truncated). `low`/`high`
    bound numbers (open ends with `low_open`/`high_open`); `items` is the kind of a list's elements;
    `alternatives` are further rules any one of which also accepts the value (warmup: steps or a
    fraction; a split: one name or a list)."""

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    nullable: bool = False
    items: str | None = None
    choices: tuple[str, ...] = ()
    alternatives: tuple[Rule, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown value kind {self.kind!r}")

    def describe(self) -> str:
        """What the rule needs, in words: 'a number > 0', 'an integer >= 1', 'true or false', ..."""
        parts = [self._describe_one()] + [alt._describe_one() for alt in self.alternatives]
        text = " or ".join(parts)
        return text + (" (or null)" if self.nullable else "")

    def _describe_one(self) -> str:
        noun = {
            "int": "an integer",
            "float": "a number",
            "bool": "true or false",
            "str": "a text",
            "list": f"a list of {_plural(self.items)}" if self.items else "a list",
            "dict": "a mapping",
            "any": "a value",
        }[self.kind]
        if self.choices:
            noun = "one of " + ", ".join(self.choices)
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{noun} in {left}{_n(self.low)}, {_n(self.high)}{right}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {_n(self.low)}"
        if self.high is not None:
            return f"{noun} {'<' if self.high_open else '<='} {_n(self.high)}"
        return noun


def _n(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _plural(kind: str) -> str:
    return {"str": "texts", "int": "integers", "float": "numbers", "bool": "flags", "dict": "mappings"}.get(kind, kind)


def is_number(value: Any) -> bool:
    """A real number that is not a bool (True is an int in Python, never a number in a config)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _fits_kind(value: Any, kind: str) -> tuple[bool, Any]:
    """(whether `value` is of `kind`, the value to keep)."""
    if kind == "any":
        return True, value
    if kind == "bool":
        return isinstance(value, bool), value
    if kind == "str":
        return isinstance(value, str), value
    if kind == "list":
        return isinstance(value, list), value
    if kind == "dict":
        return isinstance(value, Mapping), value
    if not is_number(value):
        return False, value
    if not math.isfinite(float(value)):
        return False, value
    if kind == "int":
        if isinstance(value, numbers.Integral):
            return True, int(value)
        return (True, int(value)) if float(value).is_integer() else (False, value)
    return True, value  # float: ints are numbers too


def _in_range(value: Any, rule: Rule) -> bool:
    if rule.kind not in ("int", "float"):
        return True
    x = float(value)
    if rule.low is not None and (x < rule.low or (rule.low_open and x == rule.low)):
        return False
    if rule.high is not None and (x > rule.high or (rule.high_open and x == rule.high)):
        return False
    return True


def _accepts(rule: Rule, value: Any) -> tuple[bool, Any]:
    ok, kept = _fits_kind(value, rule.kind)
    if not ok or not _in_range(kept, rule):
        return False, value
    if rule.choices and kept not in rule.choices:
        return False, value
    if rule.kind == "list" and rule.items:
        checked = []
        for item in kept:
            item_ok, item_kept = _fits_kind(item, rule.items)
            if not item_ok:
                return False, value
            checked.append(item_kept)
        kept = checked
    return True, kept


def check_value(value: Any, rule: Rule, what: str) -> Any:
    """`value` if `rule` accepts it (a whole float for an int setting comes back as an int); else one
    ConfigError: "{what} needs {rule}, got {value!r}"."""
    if value is None and rule.nullable:
        return None
    for candidate in (rule, *rule.alternatives):
        ok, kept = _accepts(candidate, value)
        if ok:
            return kept
    raise ConfigError(f"{what} needs {rule.describe()}, got {_show(value)}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ---- one-line checks for options and arguments ----------------------------------------------------
POSITIVE = Rule("float", low=0, low_open=True)
NON_NEGATIVE = Rule("float", low=0)
FRACTION = Rule("float", low=0, high=1)
POSITIVE_INT = Rule("int", low=1)
NON_NEGATIVE_INT = Rule("int", low=0)


def finite_number(name: str, value: Any) -> float:
    """A finite real number (no NaN, no inf, no bool); `name` is the option or key, e.g. "--tolerance"."""
    return float(check_value(value, Rule("float"), name))


def finite_positive(name: str, value: Any) -> float:
    """A finite number > 0."""
    return float(check_value(value, POSITIVE, name))


def finite_non_negative(name: str, value: Any) -> float:
    """A finite number >= 0 (a tolerance, a weight decay)."""
    return float(check_value(value, NON_NEGATIVE, name))


def fraction(name: str, value: Any, open_low: bool = False, open_high: bool = False) -> float:
    """A number in [0, 1] (ends excluded on request: a confidence level lies in (0, 1))."""
    return float(check_value(value, Rule("float", low=0, high=1, low_open=open_low, high_open=open_high), name))


def positive_int(name: str, value: Any) -> int:
    """An integer >= 1 (a batch size, a number of steps); 4.0 is 4, 2.5 is refused."""
    return int(check_value(value, POSITIVE_INT, name))


def non_negative_int(name: str, value: Any) -> int:
    """An integer >= 0 (a seed, a number of workers)."""
    return int(check_value(value, NON_NEGATIVE_INT, name))


def parse_number(name: str, text: str) -> float:
    """A finite number from command-line text ("1e-4", "0.5"); "nan", "inf" and words are refused."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ConfigError(f"{name} needs a number, got {_show(text)}") from None
    return finite_number(name, value)
