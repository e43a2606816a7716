"""Fuzz the `KEY=VALUE` overrides of the jobs against every numeric setting of the real cards: a value of
the wrong type, NaN, infinite or a container is refused before any work starts, as one `error:` line
naming the key (the data root is an empty folder: had the override got through, the data error would
be the one shown)."""

from __future__ import annotations

import pytest
from fuzz_cli import FUZZ, assert_clean, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

# No numeric setting of a card means anything at these.
NOT_A_NUMBER = [
    "abc",
    "nan",
    "NaN",
    "inf",
    "-inf",
    ".inf",
    "1e400",
    "[]",
    "[1, 2]",
    "{}",
    "{a: 1}",
    "''",
    "true",
    "ünï",
    "1,5",
    "0x",
]
JOBS = {"eval": "f30k", "finetune": "vqa", "pretrain": "pretrain"}


def _numeric_keys(card: str) -> list[str]:
    from sclbench.cards import leaf_keys, load_card

    data = load_card(card).data

    def value(key):
        node = data
        for part in key.split("."):
            node = node[part]
        return node

    return sorted(
        k
        for k in leaf_keys(data)
        if not k.startswith(("paper.", "reproduce."))
        and isinstance(value(k), (int, float))
        and not isinstance(value(k), bool)
    )


@pytest.mark.parametrize("verb", sorted(JOBS))
@settings(FUZZ, max_examples=20)
@given(data=st.data())
def test_a_numeric_setting_refuses_what_is_not_a_number(verb, data, scratch):
    card = JOBS[verb]
    key = data.draw(st.sampled_from(_numeric_keys(card)), label="key")
    value = data.draw(st.sampled_from(NOT_A_NUMBER), label="value")
    (scratch / "empty").mkdir(exist_ok=True)
    task = [] if verb == "pretrain" else [card]
    outcome = run_cli([verb, *task, f"{key}={value}", "--data-root", scratch / "empty", "--preset", "tiny"])
    assert_clean(outcome)
    assert outcome.rc == 2, outcome.report()
    assert key in outcome.error_lines()[0], f"the refusal does not name {key}\n{outcome.report()}"
