"""Two runs side by side: which record of B goes with each record of A, and which samples flipped.

Records pair by task and split (the same test set); where B holds several checkpoints of one task and
split, the one of A's checkpoint name is taken, else the first by path. A sample flips when one run
scores it higher than the other on the card's score (accuracy, or R@1 of the query's direction): for a
0/1 score, right in one run and wrong in the other. That is `sclbench compare`'s rule; where the caller
has its lists (`by_metric`), they are used as they are. Flips are counted on every sample, not only on
those a page shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sclbench.results.browse.cards import flip_of, sample_score
from sclbench.results.record import ResultRecord


def pair_records(a: list[ResultRecord], b: list[ResultRecord]) -> list[ResultRecord | None]:
    """For each record of A, its partner in B (same task and split) or None."""
    by_test_set: dict[tuple[str, str], list[ResultRecord]] = {}
    for record in b:
        by_test_set.setdefault((record.task, record.split), []).append(record)
    partners: list[ResultRecord | None] = []
    for record in a:
        candidates = by_test_set.get((record.task, record.split), [])
        same_name = [r for r in candidates if r.checkpoint_name == record.checkpoint_name]
        partners.append((same_name or candidates or [None])[0])
    return partners


def sample_id(prediction: Mapping[str, Any]) -> str:
    return str(prediction.get("id"))


@dataclass
class Flips:
    """The samples one run scored higher than the other, by direction; `common` = samples in both.
    `summary`: one line per metric for the page's header (the caller's statistics, when it has them)."""

    a_right_b_wrong: list[str] = field(default_factory=list)
    b_right_a_wrong: list[str] = field(default_factory=list)
    common: int = 0
    only_a: int = 0
    only_b: int = 0
    summary: list[str] = field(default_factory=list)


def count_flips(
    family: str,
    a: list[dict[str, Any]],
    b: list[dict[str, Any]],
    by_metric: Mapping[str, tuple[Sequence[Any], Sequence[Any]]] | None = None,
) -> Flips:
    """Flips between two runs' predictions of one test set, matched by sample id.

    by_metric: metric -> (ids A scored higher, ids B scored higher), e.g. from `sclbench compare`; a
    sample whose card score is such a metric is taken from those lists, any other is compared here."""
    lists = {m: ({str(i) for i in ab}, {str(i) for i in ba}) for m, (ab, ba) in (by_metric or {}).items()}
    b_by_id = {sample_id(p): p for p in b}
    flips = Flips()
    for prediction in a:
        key = sample_id(prediction)
        other = b_by_id.get(key)
        if other is None:
            flips.only_a += 1
            continue
        flips.common += 1
        metric, score_a = sample_score(family, prediction)
        if metric in lists:
            direction = "ab" if key in lists[metric][0] else "ba" if key in lists[metric][1] else ""
        else:
            direction = flip_of(score_a, sample_score(family, other)[1])
        if direction == "ab":
            flips.a_right_b_wrong.append(key)
        elif direction == "ba":
            flips.b_right_a_wrong.append(key)
    flips.only_b = len(set(b_by_id) - {sample_id(p) for p in a})
    return flips
