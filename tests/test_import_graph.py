"""The package's import graph: no circle between modules, no import of another room's private name, and
the command line calls only `app/` (plus typer, rich, itself, the errors and `common/`).

Every import counts, the ones inside functions too (a late import still ties two modules together), except
those under `if TYPE_CHECKING:`, which never run. A room is a top-level subpackage or module of `sclbench`."""

from __future__ import annotations

import ast
from pathlib import Path

import sclbench

PACKAGE = Path(sclbench.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _nodes(tree: ast.AST):
    """Every node of the tree but those in `if TYPE_CHECKING:` bodies (their `else:` still runs)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if _is_type_checking(node):
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) for every import in the file, relative imports resolved."""
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in _nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append((base, [alias.name for alias in node.names]))
    return found


def graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, names in _imports(path):
            if not target.startswith("sclbench"):
                continue
            # `from sclbench.x import y` imports the module sclbench.x.y when y is a module.
            hits = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules] or [target]
            for hit in hits:
                while hit not in modules and "." in hit:
                    hit = hit.rpartition(".")[0]
                if hit in modules and hit != name:
                    edges[name].add(hit)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _room(module: str) -> str:
    return ".".join(module.split(".")[:2])


def private_imports() -> list[str]:
    """`room/x.py` importing `_name` (or a `_module`) that lives in another room."""
    bad = []
    for path in PACKAGE.rglob("*.py"):
        here = _module_name(path)
        for target, names in _imports(path):
            if not target.startswith("sclbench.") or _room(target) == _room(here):
                continue
            private_parts = [p for p in target.split(".") if p.startswith("_") and p != "__init__"]
            private_names = [n for n in names if n.startswith("_")]
            if private_parts or private_names:
                bad.append(f"{here} imports {target}: {private_parts + private_names}")
    return bad


def test_no_import_circle():
    assert cycles(graph()) == []


def test_no_import_of_another_rooms_private_name():
    assert private_imports() == []


def test_the_command_line_calls_only_app():
    # common/ is the ground floor every floor may use (its option checks: output folders are writable);
    # what the CLI must not reach is a working floor (model, data, results, engine, tasks, ...).
    allowed = {"sclbench.cli", "sclbench.app", "sclbench.errors", "sclbench.common"}
    outside = sorted(
        f"{name} -> {target}"
        for name, targets in graph().items()
        if _room(name) == "sclbench.cli"
        for target in targets
        if _room(target) not in allowed and target != "sclbench"
    )
    assert outside == []
