"""No module of the installed package unpickles anything except through sclbench.common.safe_pickle.

Walks every .py of the package with `ast` and refuses: `pickle.load(s)` / `pickle.Unpickler` (and the
`_pickle` / `cPickle` spellings, or the names imported from them), a subclass of `Unpickler` outside the
safe module, `torch.load` without `weights_only=True` (a literal) except the single trust path in the
safe module, `pandas.read_pickle` (and `pd.read_pickle`, `DataFrame.read_pickle` calls), `numpy.load`
with `allow_pickle=` anything but a literal False, `dill`, `joblib.load`, `shelve`, `marshal.load(s)`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import sclbench

PACKAGE = Path(sclbench.__file__).resolve().parent
SAFE_MODULE = PACKAGE / "common" / "safe_pickle.py"
PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _dotted(node: ast.AST) -> str | None:
    """'a.b.c' for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.AST | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


class Finder(ast.NodeVisitor):
    def __init__(self, path: Path):
        self.path, self.problems = path, []
        self.aliases: dict[str, str] = {}  # local name -> module or module.attr it stands for
        self.trust_paths = 0

    def flag(self, node: ast.AST, what: str) -> None:
        self.problems.append(f"{self.path.relative_to(PACKAGE.parent)}:{node.lineno}: {what}")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.aliases[alias.asname or alias.name.split(".")[0]] = (
                alias.name if alias.asname else alias.name.split(".")[0]
            )
            if alias.name.split(".")[0] in {"dill", "cloudpickle", "shelve"}:
                self.flag(node, f"import {alias.name}")
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            if (node.module or "").split(".")[0] in {"dill", "cloudpickle", "shelve"}:
                self.flag(node, f"from {node.module} import {alias.name}")
        self.generic_visit(node)

    def resolve(self, node: ast.AST) -> str | None:
        dotted = _dotted(node)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        base = self.aliases.get(head, head)
        return f"{base}.{rest}" if rest else base

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for base in node.bases:
            name = self.resolve(base) or ""
            if name.endswith("Unpickler") and self.path != SAFE_MODULE:
                self.flag(node, f"class {node.name}({name}) outside common/safe_pickle.py")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = self.resolve(node.func) or ""
        module, _, func = name.rpartition(".")
        top = module.split(".")[0]
        if top in PICKLE_MODULES and func in ("load", "loads", "Unpickler", "open"):
            if not (self.path == SAFE_MODULE and func == "Unpickler"):
                self.flag(node, f"{name}(...)")
        elif func == "Unpickler" and self.path != SAFE_MODULE:
            self.flag(node, f"{name}(...)")
        elif func == "read_pickle":
            self.flag(node, f"{name}(...)")
        elif name in ("torch.load", "torch.serialization.load"):
            weights_only = _keyword(node, "weights_only")
            if self.path == SAFE_MODULE and isinstance(weights_only, ast.Constant) and weights_only.value is False:
                self.trust_paths += 1
            elif not _is_const(weights_only, True):
                self.flag(node, f"{name}(...) without weights_only=True")
        elif func == "load" and top in ("numpy", "np"):
            allow = _keyword(node, "allow_pickle")
            if allow is not None and not _is_const(allow, False):
                self.flag(node, f"{name}(..., allow_pickle=...)")
        self.generic_visit(node)


def scan(path: Path) -> Finder:
    finder = Finder(path)
    finder.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return finder


def test_no_module_unpickles_outside_the_safe_loader():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50  # the walk sees the whole package, not an empty folder
    problems, trust_paths = [], 0
    for path in files:
        finder = scan(path)
        problems += finder.problems
        trust_paths += finder.trust_paths
    assert not problems, "unrestricted unpickling outside sclbench/common/safe_pickle.py:\n" + "\n".join(problems)
    assert trust_paths == 1  # the one --trust-pickle path, in the safe module


def test_the_scanner_catches_each_forbidden_form(tmp_path, monkeypatch):
    """The checker itself can fail: each forbidden spelling, written into a module, is reported."""
    forms = {
        "import pickle\npickle.load(open('f', 'rb'))": "pickle.load",
        "import pickle as p\np.loads(b'')": "pickle.loads",
        "from pickle import Unpickler\nUnpickler(None).load()": "pickle.Unpickler",
        "import pickle\nclass U(pickle.Unpickler):\n    pass": "class U",
        "import torch\ntorch.load('f')": "without weights_only=True",
        "import torch\ntorch.load('f', weights_only=False)": "without weights_only=True",
        "import torch as T\nT.load('f', weights_only=flag)": "without weights_only=True",
        "import pandas as pd\npd.read_pickle('f')": "read_pickle",
        "import numpy as np\nnp.load('f', allow_pickle=True)": "allow_pickle",
        "import dill": "import dill",
        "import joblib\njoblib.load('f')": "joblib.load",
        "import _pickle\n_pickle.loads(b'')": "_pickle.loads",
    }
    for source, expected in forms.items():
        path = PACKAGE / "_scanner_probe.py"  # scan() reports paths relative to the package
        monkeypatch.setattr(Path, "read_text", lambda self, encoding=None, _s=source: _s)
        problems = scan(path).problems
        assert any(expected in p for p in problems), (source, problems)
    for source in (
        "import torch\ntorch.load('f', weights_only=True)",
        "import numpy as np\nnp.load('f')",
        "import numpy as np\nnp.load('f', allow_pickle=False)",
        "import json\njson.loads('{}')",
    ):
        monkeypatch.setattr(Path, "read_text", lambda self, encoding=None, _s=source: _s)
        assert scan(PACKAGE / "_scanner_probe.py").problems == [], source
