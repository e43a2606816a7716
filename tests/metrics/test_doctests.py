"""The metric docstrings' examples run and pass, and every public metric function has one.

Modules are discovered with pkgutil, so a new metric module is covered without touching this file,
and a new public function without an `Examples:` block fails here.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import types

import pytest

import sclbench.metrics

MODULES = sorted(info.name for info in pkgutil.iter_modules(sclbench.metrics.__path__, "sclbench.metrics."))
# Public modules hold the metric functions; a private module's (`_common`) helpers need no example.
PUBLIC_MODULES = [name for name in MODULES if not name.rpartition(".")[2].startswith("_")]


def public_functions(module: types.ModuleType) -> list[str]:
    """Names of the functions a module defines (not imports) whose names do not start with `_`."""
    return sorted(
        name
        for name, obj in inspect.getmembers(module, inspect.isfunction)
        if not name.startswith("_") and obj.__module__ == module.__name__
    )


def functions_without_examples(module: types.ModuleType) -> list[str]:
    """Public functions of `module` whose docstring has no `>>>` example."""
    with_examples = {test.name for test in doctest.DocTestFinder().find(module) if test.examples}
    return [name for name in public_functions(module) if f"{module.__name__}.{name}" not in with_examples]


def test_discovery_finds_the_metric_modules():
    # Guards the tests below against passing vacuously because discovery found nothing.
    expected = {f"sclbench.metrics.{name}" for name in ("chance", "nlvr2", "retrieval", "video", "vqa")}
    assert expected <= set(PUBLIC_MODULES)


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_pass(module_name):
    module = importlib.import_module(module_name)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in doctest.DocTestFinder().find(module):
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_function_has_an_example(module_name):
    module = importlib.import_module(module_name)
    assert public_functions(module), f"{module_name} defines no public function"
    missing = functions_without_examples(module)
    assert not missing, f"{module_name}: add an `Examples:` block with >>> lines to {', '.join(missing)}"


def test_checker_flags_a_function_without_example():
    # The check itself must be able to fail: a module with one documented and one bare function.
    module = types.ModuleType("fake_metrics")
    source = (
        "def documented(x):\n"
        '    """Doubles x.\n\n    Examples:\n        >>> documented(2)\n        4\n    """\n'
        "    return 2 * x\n\n"
        "def bare(x):\n"
        '    """No example here."""\n'
        "    return x\n\n"
        "def _private(x):\n"
        "    return x\n"
    )
    exec(compile(source, "fake_metrics.py", "exec"), module.__dict__)
    module.imported = inspect.isfunction  # an imported function is not the module's to document
    assert public_functions(module) == ["bare", "documented"]
    assert functions_without_examples(module) == ["bare"]
