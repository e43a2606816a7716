"""The SCL paper's reported numbers, mapped to sclbench's task, split and metric names.

A small Python table for now; the YAML task cards (`tasks/*.yaml`) will carry these later and
`paper_numbers()` is the one function to switch over. Every row says where the number came from:
several could not be checked against the paper PDF and are marked unverified.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperNumber:
    task: str
    split: str  # canonical split name, see `canonical_split`
    metric: str  # sclbench metric name
    value: float  # percent
    source: str
    verified: bool = False  # checked against the paper PDF itself
    zero_shot: bool = False  # the paper's zero-shot row rather than the fine-tuned one


_MIRROR = "wizwand.com paper page (third-party Papers-with-Code mirror), see reference/scl-official.md §7.1"
_BRIEF = "project brief; not in reference/scl-official.md §7.1 (NOT FOUND there), metric direction assumed"

_ROWS: tuple[PaperNumber, ...] = (
    PaperNumber("vqa", "test-dev", "accuracy", 78.72, _MIRROR),
    PaperNumber("vqa", "test-std", "accuracy", 78.78, _MIRROR),
    PaperNumber("nlvr2", "dev", "accuracy", 83.63, _MIRROR),
    PaperNumber("nlvr2", "test1", "accuracy", 84.27, _MIRROR),
    PaperNumber("f30k", "test", "ir_r1", 84.56, _BRIEF),
    PaperNumber("f30k", "test", "tr_r1", 95.9, _BRIEF),
    # "R@1" for video retrieval is read as text->video, the direction papers lead with.
    PaperNumber("msrvtt", "test", "t2v_r1", 43.2, _BRIEF),
    PaperNumber("lsmdc", "test", "t2v_r1", 32.8, _BRIEF),
)

# Spellings of the same split seen in the official code, EvalAI and papers.
_SPLIT_ALIASES = {
    "test-p": "test1",
    "testp": "test1",
    "test-dev2015": "test-dev",
    "testdev": "test-dev",
    "test2015": "test-std",
    "teststd": "test-std",
    "1k-a": "test",
    "test-1k-a": "test",
}
_TASK_SPLIT_ALIASES = {("vqa", "test"): "test-std"}


def canonical_split(task: str, split: str) -> str:
    """Normalise a split name so records and paper rows meet (`test-P` -> `test1`, ...)."""
    s = split.strip().lower().replace("_", "-")
    s = _SPLIT_ALIASES.get(s, s)
    return _TASK_SPLIT_ALIASES.get((task.lower(), s), s)


def paper_numbers() -> list[PaperNumber]:
    """All known paper numbers (the later YAML task cards replace this source)."""
    return list(_ROWS)


def paper_index(rows: list[PaperNumber] | None = None) -> dict[tuple[str, str, bool], dict[str, PaperNumber]]:
    """Paper numbers by (task, canonical split, zero_shot) -> {metric: row}."""
    index: dict[tuple[str, str, bool], dict[str, PaperNumber]] = {}
    for row in paper_numbers() if rows is None else rows:
        key = (row.task.lower(), canonical_split(row.task, row.split), row.zero_shot)
        index.setdefault(key, {})[row.metric] = row
    return index
