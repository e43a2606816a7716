"""The demo's tasks, read from the cards: each card's `demo:` section gives its place on the
leaderboard, its fine-tuning steps and the overrides that fit the synthetic splits."""

from __future__ import annotations

from dataclasses import dataclass

from sclbench.errors import ConfigError


@dataclass(frozen=True)
class DemoTask:
    """A task's place and settings in the demo: its card's `demo:` section (see the packaged cards)."""

    name: str
    order: float
    shown: tuple[str, ...]  # what the leaderboard shows (the record holds every metric)
    step_factor: float  # fine-tuning steps relative to the plan's finetune_steps
    cost: float  # rough seconds at QUICK, one thread: the longest start first, so workers finish together
    overrides: tuple[str, ...] = ()  # card overrides that fit the synthetic splits
    half_batch: bool = False  # retrieval and NLVR2: half the demo's batch
    lr_divisor: float = 1  # a smaller lr for the body than the demo's
    lr_mult_head: float = 1
    neg_texts: int | None = None  # negative captions per sample (retrieval)
    selection: str | None = None  # protocol.selection, where the card's default is not the best validation


def demo_tasks() -> dict[str, DemoTask]:
    """The fine-tuning tasks of the demo, in leaderboard order: every card (packaged or the user's) with a
    `demo:` section, pre-training aside."""
    from sclbench.cards import available_cards, load_card

    found = []
    for name in available_cards():
        card = load_card(name)
        section = card.get("demo")
        if not isinstance(section, dict) or card.family == "pretrain":
            continue
        try:
            found.append(
                DemoTask(
                    name=name,
                    **{
                        **section,
                        "shown": tuple(section.get("shown") or ()),
                        "overrides": tuple(section.get("overrides") or ()),
                    },
                )
            )
        except TypeError as err:  # a key DemoTask does not have, or a required one missing
            raise ConfigError(f"task card {name!r}: demo section: {err}") from None
    return {t.name: t for t in sorted(found, key=lambda t: (t.order, t.name))}


def without_data(tasks: tuple[str, ...]) -> dict[str, str]:
    """The demo tasks among `tasks` the synthetic benchmark writes no data for, each with why.

    The demo fine-tunes a task on OUT/data/<its card's file name>; `sclbench data synth` writes a folder for
    every card with a `synth:` section, named after the card's `name` (its file name unless it sets one).
    A user's card with a `demo:` section but no `synth:` (say, of a family or layout without a synthetic
    writer), or a copy of a packaged card that keeps its `name:`, has no such folder.
    """
    from sclbench.cards import load_card
    from sclbench.data.synthetic import synth_cards

    written = synth_cards()
    why = {}
    for name in tasks:
        if name in written:
            continue
        card = load_card(name)
        if not isinstance(card.get("synth"), dict):
            why[name] = "it has no synth: section, so the synthetic benchmark holds no data for it (add one)"
        else:
            why[name] = (
                f"its synthetic data is written under the name it sets, {card.name!r}, not {name!r} "
                "(drop its name: line)"
            )
    return why


def pretrain_overrides() -> list[str]:
    """The pre-training card's demo overrides (its synthetic corpora)."""
    from sclbench.cards import load_card

    return list(load_card("pretrain").get("demo.overrides") or [])
