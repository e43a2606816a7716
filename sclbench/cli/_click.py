"""The click that typer runs on: typer >= 0.29 vendors it as `typer._click` (and no longer installs
click itself); older typer uses the click package. Import click's names from here."""

from __future__ import annotations

try:  # typer >= 0.29
    from typer._click import ClickException
    from typer._click.exceptions import BadParameter, MissingParameter
except ImportError:  # typer < 0.29 depends on click
    from click import BadParameter, ClickException, MissingParameter

__all__ = ["ClickException", "click_exception_types", "is_bad_value"]


def click_exception_types() -> tuple[type[BaseException], ...]:
    """Both click exception classes where both exist (a plain click installed beside typer's copy)."""
    types: list[type[BaseException]] = [ClickException]
    try:
        import click

        if click.ClickException is not ClickException:
            types.append(click.ClickException)
    except ImportError:
        pass
    return tuple(types)


def is_bad_value(exc: BaseException) -> bool:
    """A value the user gave that is wrong (not a number, out of range, a missing path), as opposed to
    a wrong command line (unknown option, missing argument), which is answered with the usage."""
    bad, missing = [BadParameter], [MissingParameter]
    try:
        import click

        bad.append(click.BadParameter)
        missing.append(click.MissingParameter)
    except ImportError:
        pass
    return isinstance(exc, tuple(bad)) and not isinstance(exc, tuple(missing))
