"""The click that typer runs on: typer >= 0.29 vendors it as `typer._click` (and no longer installs
click itself); older typer uses the click package. Import click's names from here."""

from __future__ import annotations

try:  # typer >= 0.29
    from typer._click import ClickException
except ImportError:  # typer < 0.29 depends on click
    from click import ClickException

__all__ = ["ClickException", "click_exception_types"]


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
