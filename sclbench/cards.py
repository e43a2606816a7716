"""Task cards (YAML, one per benchmark under `tasks/`) and dotted command-line overrides.

A card holds what a researcher would look up in the paper and the official configs: the data layout,
which published split plays train / val / test, the official fine-tuning hyper-parameters, the
metrics and the paper's numbers. `key=value` overrides (`train.lr=1e-5`, `data.root=/data/vqa`)
are applied on top, values parsed as YAML scalars. Every value, the card's own and each override's,
is checked for kind, range and finiteness (`sclbench.config_rules`) when the card is loaded.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sclbench.assets import packaged_cards_dir
from sclbench.common.values import check_value
from sclbench.config_rules import FREE_FORM_SECTIONS, rule_for
from sclbench.errors import ConfigError

CARDS_ENV = "SCLBENCH_TASKS_DIR"


def cards_dirs(extra: str | Path | None = None) -> list[Path]:
    """Where cards are looked for, first match wins: `extra` (--cards), `$SCLBENCH_TASKS_DIR`, the package."""
    dirs = [Path(d).expanduser() for d in (extra, os.environ.get(CARDS_ENV)) if d]
    return [*dirs, packaged_cards_dir()]


def cards_dir() -> Path:
    """The first folder cards are looked for in (the user's when set, else the packaged one)."""
    return cards_dirs()[0]


def find_card(name: str, extra: str | Path | None = None) -> Path | None:
    for directory in cards_dirs(extra):
        if (directory / f"{name}.yaml").is_file():
            return directory / f"{name}.yaml"
    return None


def available_cards(extra: str | Path | None = None) -> list[str]:
    names = {p.stem for d in cards_dirs(extra) if d.is_dir() for p in d.glob("*.yaml")}
    return sorted(names)


@dataclass
class TaskCard:
    name: str
    data: dict[str, Any]

    @property
    def family(self) -> str:
        return self.data["family"]

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.data.get(name) or {})


def load_card(
    name_or_path: str | Path, overrides: list[str] | None = None, valid_keys: set[str] | None = None
) -> TaskCard:
    """Read `tasks/<name>.yaml` (or a path to a card) and apply `a.b=value` overrides.

    A card may `include: OTHER` (another card's name): OTHER's settings deep-merged under its own.

    An override must name a setting the card holds or one of `valid_keys` (settings the code reads
    with a default); anything else is refused with the nearest valid key, so a typo never passes
    silently. Free-form sections (`paper`) take any key.
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = find_card(str(name_or_path)) or Path(f"{name_or_path}.yaml")
    if not path.is_file():
        known = ", ".join(available_cards()) or "none"
        raise ConfigError(
            f"no task card {str(name_or_path)!r} (known tasks: {known}; add your own cards with "
            f"${CARDS_ENV}=DIR or pass a path to a .yaml card)"
        )
    data = _read_with_includes(path, ())
    if not isinstance(data, dict) or "family" not in data:
        raise ConfigError(f"task card {path} must be a mapping with a 'family' entry")
    check_values(data, f"task card {path}")
    if overrides and valid_keys is not None:
        check_override_keys(overrides, leaf_keys(data) | set(valid_keys), str(path))
    data = apply_overrides(data, overrides or [])
    return TaskCard(name=data.get("name", path.stem), data=data)


# What a card says about its own dataset only: an including card does not inherit these (a card on
# f30k is not f30k: not its name, paper numbers, reproduction facts, nor its place in the demo).
NOT_INHERITED = ("name", "paper", "reproduce", "demo")


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"task card {path} is not valid YAML: {_yaml_problem(err)}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read task card {path}: {err}") from None


def _read_with_includes(path: Path, chain: tuple[Path, ...]) -> Any:
    """A card's mapping with its `include: OTHER` resolved: OTHER (a card name, or a .yaml path relative
    to the including card) deep-merged under it, the including card's keys winning; a cycle is refused.
    A user's card may include the packaged card of its own name (`f30k.yaml` with `include: f30k`)."""
    data = _read_yaml(path)
    if not isinstance(data, dict) or "include" not in data:
        return data
    chain = (*chain, path.resolve())
    target = data.pop("include")
    if not isinstance(target, str) or not target:
        raise ConfigError(f"task card {path}: include should name one card (a name or a .yaml path), not {target!r}")
    base_path = path.parent / target if Path(target).suffix in (".yaml", ".yml") else _included_card(path, target)
    if base_path is None or not base_path.is_file():
        raise ConfigError(f"task card {path}: include {target!r} names no card (known: {', '.join(available_cards())})")
    if base_path.resolve() in chain:
        cycle = " -> ".join(p.stem for p in (*chain, base_path.resolve()))
        raise ConfigError(f"task card {path}: include cycle {cycle}")
    base = _read_with_includes(base_path, chain)
    if not isinstance(base, dict):
        raise ConfigError(f"task card {base_path} (included by {path}) must be a mapping")
    # the same name (a user's f30k.yaml over the packaged one) is the same benchmark: everything inherited
    inherited = base if base_path.stem == path.stem else {k: v for k, v in base.items() if k not in NOT_INHERITED}
    return deep_merge(inherited, data)


def _included_card(path: Path, name: str) -> Path | None:
    """The card `include: NAME` means: the including card's folder first, then the search path; a card
    including its own name (your f30k.yaml over the packaged one) gets the next card of that name."""
    candidates = [path.parent / f"{name}.yaml", *(d / f"{name}.yaml" for d in cards_dirs())]
    found = [c for c in candidates if c.is_file()]
    if name == path.stem:
        later = [c for c in found if c.resolve() != path.resolve()]
        return later[0] if later else path  # no other card of that name: the cycle on itself is refused
    return found[0] if found else None


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`base` with `top` laid over it: mappings merged key by key, anything else (lists too) replaced."""
    merged = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


FREE_FORM = ("paper.",)  # sections whose keys are data, not settings


def leaf_keys(data: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted names of every setting in a card (a list or scalar is a leaf; so is each section)."""
    keys: set[str] = set()
    for key, value in data.items():
        name = f"{prefix}{key}"
        keys.add(name)
        if isinstance(value, dict):
            keys |= leaf_keys(value, name + ".")
    return keys


def check_override_keys(overrides: list[str], valid: set[str], card: str) -> None:
    import difflib

    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if "=" not in item or key in valid or key.startswith(FREE_FORM):
            continue
        near = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]}?" if near else " (see `sclbench tasks` for the card's settings)"
        raise ConfigError(f"override {item!r}: {key!r} is not a setting of task card {card}{hint}")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of `data` with each `a.b.c=value` set (value parsed as a YAML scalar), each value
    checked against its setting's rule (`sclbench.config_rules`): `train.lr=abc`, `train.lr=nan` or
    `train.per_device_batch_size=2.5` is refused naming the override."""
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        rule = rule_for(key)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as err:
            if rule is None or rule.kind != "str":
                raise ConfigError(f"cannot parse the value of override {item!r}: {_yaml_problem(err)}") from None
            value = raw  # a text setting takes any text (data.root=C:\data, eval.mode=a: b)
        if rule is None or rule.kind != "str":
            value = _number(value)
        elif not _typed_as(value, rule):
            value = raw.strip()  # a text setting keeps what was typed: eval.mode=yes is "yes", not True
        if rule is not None:
            value = check_value(value, rule, f"override {item!r}: {key}")
        if isinstance(value, dict) and key.split(".")[0] not in FREE_FORM_SECTIONS:
            check_values(value, f"override {item!r}", key + ".")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.setdefault(part, {}), dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = node[part]
        node[parts[-1]] = value
    return data


def check_values(data: dict[str, Any], where: str, prefix: str = "") -> None:
    """Check every setting of a card (or of a section an override sets) against its rule, in place:
    a whole float for an integer setting (`max_steps: 1e5`) becomes the int. `where` names the
    source (the card file, the override) in the error."""
    for key, value in list(data.items()):
        name = f"{prefix}{key}"
        if name.split(".")[0] in FREE_FORM_SECTIONS:
            continue
        rule = rule_for(name)
        if rule is not None:
            if isinstance(value, str) and {rule.kind, *(a.kind for a in rule.alternatives)} & {"int", "float"}:
                value = _number(value)  # `lr: 1e-4` in a card is a string to YAML 1.1, a number to anyone
            data[key] = check_value(value, rule, f"{where}: {name}")
        if isinstance(value, dict):
            check_values(value, where, name + ".")


def _typed_as(value: Any, rule: Any) -> bool:
    """Whether YAML's reading of an override fits the (text) setting as a text, a null it allows, or a
    list/mapping one of its alternatives takes (splits.train=[train,val])."""
    if isinstance(value, str) or (value is None and rule.nullable):
        return True
    kinds = {a.kind for a in rule.alternatives}
    return (isinstance(value, list) and "list" in kinds) or (isinstance(value, dict) and "dict" in kinds)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: the problem and where."""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else str(problem)


def _number(value: Any) -> Any:
    """YAML 1.1 reads `1e-4` (no dot) as a string: treat anything float() accepts as a number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
