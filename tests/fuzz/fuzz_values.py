"""What the fuzz suite types at the command line: hostile values per kind of parameter, read from the
parameter's own declaration (int, float, flag, path and whether it must exist, text, list), and the
command lines built from a verb's valid base plus fuzzed parameters."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

# Numbers as a user might type them, valid and not: signs, zero, NaN/inf in every spelling, overflow
# of C ints and of doubles, other digit systems, separators, stray spaces.
NUMBER_TEXTS = [
    "0",
    "-0",
    "1",
    "2",
    "3",
    "-1",
    "-2",
    "1.5",
    "0.5",
    "-0.5",
    "1e-9",
    "nan",
    "NaN",
    "-nan",
    "inf",
    "-inf",
    "Infinity",
    "1e400",
    "-1e400",
    "1e-400",
    str(2**31 - 1),
    str(2**31),
    str(2**32),
    str(2**63),
    str(-(2**63)),
    "99999999999999999999999999",
    "0x10",
    "1_000",
    " 3",
    "3 ",
    "",
    "abc",
    "1,5",
    "٣",
    "１",
    "true",
    "null",
    "[]",
    "1e3",
    "5%",
]
# Text: empty, blank, unicode (combining, RTL override, CJK, emoji), an undecodable byte as Linux passes
# it (surrogate escape), shell-ish and format-ish characters, newlines, something long.
TEXTS = [
    "",
    " ",
    "abc",
    "ünïcødé",
    "名前",
    "\u202eevil",
    "e\u0301",
    "🙂",
    "\udcff",
    "-",
    "--",
    "=",
    "x=y",
    "a=b=c",
    "../..",
    "%s%n",
    "{}",
    "{x}",
    "'",
    '"',
    "\\",
    "\n",
    "a\nb",
    "\t",
    "null",
    "None",
    "*",
    "?",
    "a" * 300,
    "x" * 5000,
]
# Overrides: every shape of KEY=VALUE a user can get wrong.
OVERRIDE_VALUES = [
    "abc",
    "",
    "nan",
    "inf",
    "-inf",
    "-1",
    "0",
    "1",
    "1.5",
    "1e400",
    str(2**63),
    "true",
    "null",
    "[]",
    "[1, 2]",
    "{}",
    "{a: 1}",
    "[",
    "{",
    "ünï",
    "'x'",
    "~",
    "!!python/object:os.system ls",
]


@dataclass
class Paths:
    """Paths of every kind, created in a scratch folder. `mine` is a folder of the user's holding a file
    that no run may touch (a fuzzed output folder pointing at it must leave `notes.txt` as it was)."""

    root: Path
    missing: Path = field(init=False)
    empty_file: Path = field(init=False)
    text_file: Path = field(init=False)
    empty_dir: Path = field(init=False)
    mine: Path = field(init=False)
    under_file: Path = field(init=False)
    long_name: Path = field(init=False)
    read_only: Path = field(init=False)

    def __post_init__(self) -> None:
        r = self.root
        self.missing = r / "no" / "such"
        self.empty_file = r / "empty.bin"
        self.empty_file.write_bytes(b"")
        self.text_file = r / "some.txt"
        self.text_file.write_text("not what you think\n", encoding="utf-8")
        self.empty_dir = r / "empty_dir"
        self.empty_dir.mkdir(exist_ok=True)
        self.mine = r / "mine"
        self.mine.mkdir(exist_ok=True)
        (self.mine / "notes.txt").write_text("my notes\n", encoding="utf-8")
        self.under_file = self.text_file / "child"  # ENOTDIR
        self.long_name = r / ("n" * 300)  # ENAMETOOLONG
        self.read_only = r / "read_only"
        self.read_only.mkdir(exist_ok=True)
        os.chmod(self.read_only, 0o555)  # refused for a normal user; root writes anyway

    def preserved(self) -> list[Path]:
        return [self.mine / "notes.txt", self.text_file, self.empty_file]

    def outputs(self) -> list[str]:
        """Where an output may be pointed: new, existing (empty or the user's), wrong kind, impossible."""
        return [
            str(p)
            for p in (
                self.missing,
                self.empty_dir / "new",
                self.mine,
                self.empty_dir,
                self.text_file,
                self.under_file,
                self.long_name,
                self.read_only / "x",
                self.mine / "new.out",
            )
        ] + ["/dev/null", "/proc/sclbench-fuzz/x"]

    def inputs(self, real: list[Path]) -> list[str]:
        """What an input may be: the real thing, or missing, empty, the wrong kind, not readable."""
        return [
            str(p)
            for p in (
                *real,
                self.missing,
                self.empty_file,
                self.text_file,
                self.empty_dir,
                self.under_file,
                self.long_name,
            )
        ] + ["/dev/null", "/", "."]


def kind(param) -> str:
    """int | float | flag | path_in | path_out | text | list, from the parameter's declaration."""
    if getattr(param, "is_flag", False):
        return "flag"
    if param.multiple or param.nargs == -1:
        return "list"
    annotation = param.type_descriptor.annotation
    info = param.type_descriptor.parameter_info
    if annotation is bool:
        return "flag"
    if annotation is int:
        return "int"
    if annotation is float:
        return "float"
    if annotation is Path:
        return "path_in" if info.exists else "path_out"
    return "text"


def values_for(param, paths: Paths, real_inputs: list[Path], override_keys: list[str]) -> st.SearchStrategy:
    """Hostile and ordinary values for one parameter, as argv strings."""
    k = kind(param)
    if k == "int":
        return st.one_of(st.sampled_from(NUMBER_TEXTS), st.integers(-(2**40), 2**40).map(str))
    if k == "float":
        return st.one_of(st.sampled_from(NUMBER_TEXTS), st.floats(allow_nan=True, allow_infinity=True).map(repr))
    if k == "path_in":
        return st.sampled_from(paths.inputs(real_inputs) + TEXTS[:6])
    if k == "path_out":
        return st.sampled_from(paths.outputs() + TEXTS[:4])
    if k == "list":
        key = st.sampled_from(override_keys or ["train.lr"])
        override = st.builds(lambda a, b: f"{a}={b}", key, st.sampled_from(OVERRIDE_VALUES))
        return st.one_of(override, st.sampled_from(TEXTS + [f"{key}=" for key in override_keys[:3]]))
    # free text (--ckpt, --tokenizer, --precision, --name, task names, ...): text, paths and numbers
    return st.sampled_from(TEXTS + NUMBER_TEXTS[:12] + paths.inputs(real_inputs) + paths.outputs())


@dataclass
class Base:
    """A valid command line split by parameter: `args` (argument name -> tokens), `opts` (tokens)."""

    args: dict[str, list[str]]
    opts: list[str]


def split_base(command, argv: list[str]) -> Base:
    """Split a base argv (arguments first, in order, then options; overrides anywhere) by the command's
    parameters. Tokens that are not options are given to the arguments in declaration order."""
    options = {opt: p for p in command.params if p.param_type_name == "option" for opt in (*p.opts, *p.secondary_opts)}
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    args: dict[str, list[str]] = {p.name: [] for p in arguments}
    opts: list[str] = []
    positional: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        p = options.get(token)
        if p is not None:
            takes = 0 if getattr(p, "is_flag", False) else 1
            opts += argv[i : i + 1 + takes]
            i += 1 + takes
        else:
            positional.append(token)
            i += 1
    for p in arguments:
        if p.nargs == -1:
            args[p.name] = positional
            positional = []
        elif positional:
            args[p.name] = [positional.pop(0)]
    return Base(args, opts)


def build_argv(command, base: Base, changes: list[tuple[object, str]]) -> list[str]:
    """The base command line with each (parameter, value) applied: an argument's value replaces the
    base's (a variadic argument gets it added), an option is appended (the last one wins), a flag is
    given as one of its spellings."""
    args = {name: list(tokens) for name, tokens in base.args.items()}
    opts = list(base.opts)
    for param, value in changes:
        if param.param_type_name == "argument":
            if param.nargs == -1:
                args[param.name].append(value)
            else:
                args[param.name] = [value]
        elif kind(param) == "flag":
            opts.append(value)
        else:
            opts += [param.opts[0], value]
    argv: list[str] = []
    for p in command.params:
        if p.param_type_name == "argument":
            argv += args[p.name]
    # "--" would stop option parsing for the rest: values starting with "-" stay values after an option
    return argv + opts


def flag_spellings(param) -> list[str]:
    return [*param.opts, *param.secondary_opts]
