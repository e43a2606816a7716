"""Placeholder: `table` and `check` verbs, filled in by the results owner."""


def register(app) -> None:  # noqa: ARG001
    return None
