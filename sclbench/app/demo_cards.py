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


def pretrain_overrides() -> list[str]:
    """The pre-training card's demo overrides (its synthetic corpora)."""
    from sclbench.cards import load_card

    return list(load_card("pretrain").get("demo.overrides") or [])
