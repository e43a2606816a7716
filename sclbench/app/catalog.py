"""What is in the box, offline: the task cards (`sclbench tasks`) and the checkpoint registry
(`sclbench ckpt list`)."""

from __future__ import annotations

from typing import Any

from sclbench.cards import available_cards, find_card, load_card
from sclbench.results.paper import card_paper_numbers


def task_names() -> str:
    """The task cards' names for a help text ("coco, f30k, ..."): packaged and $SCLBENCH_TASKS_DIR's.
    Names only (no card is read): a help text must not fail on a user's broken card."""
    return ", ".join(available_cards())


def task_catalog() -> list[dict[str, Any]]:
    """One row per card: its description, which published split plays each role, the main metric, the
    reported columns and the papers' numbers (by model)."""
    rows = []
    for name in available_cards():
        card = load_card(name)
        splits = card.section("splits")
        rows.append(
            {
                "name": card.name,
                "family": card.family,
                "description": card.get("description", ""),
                "card": str(find_card(name)),
                "splits": {role: splits.get(role) for role in ("train", "val", "test") if role in splits},
                "main_metric": card.get("metrics.main"),
                "report": card.get("metrics.report") or [],
                "paper": [
                    {"model": r.model, "split": r.split, "metric": r.metric, "value": r.value, "verified": r.verified}
                    for r in card_paper_numbers(card.name, card.section("paper"))
                ],
            }
        )
    return rows


def print_task_catalog(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="sclbench task cards", show_lines=True)
    for col in ("task", "description", "train / val / test", "main metric", "paper numbers"):
        table.add_column(col, overflow="fold")
    for row in rows:
        split = lambda s: "+".join(s) if isinstance(s, list) else str(s or "-")  # noqa: E731
        roles = " / ".join(split(row["splits"].get(r)) for r in ("train", "val", "test")) if row["splits"] else "-"
        paper = "; ".join(f"{p['model']} {p['split']} {p['metric']} {p['value']:g}" for p in row["paper"]) or "-"
        table.add_row(row["name"], row["description"], roles, str(row["main_metric"] or "-"), paper)
    Console().print(table)


def print_registry(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="sclbench checkpoint registry (checkpoints.yaml)", show_lines=True)
    for col in ("name", "aliases", "kind", "description", "source", "cache"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(
            row["name"], ", ".join(row["aliases"]) or "-", row["kind"], row["description"], row["source"], row["cache"]
        )
    Console().print(table)
