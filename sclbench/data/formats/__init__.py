"""One reader per published format; each returns plain records (`sclbench.data.records`).

`FORMATS` is the format registry: a task card names its format (`format: karpathy`), and the format
pairs the reader with what else a benchmark of that layout needs: the synthetic writer (`sclbench data
synth`), the layout check (`sclbench data check`) and, where ViLT published them, the arrow tables.
A new benchmark of an existing format is a card only; a new format adds its module here and one entry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sclbench.data.formats.arrow import (
    read_caption_arrow,
    read_family_arrow,
    read_nlvr2_arrow,
    read_vqa_arrow,
    write_caption_arrow,
    write_nlvr2_arrow,
    write_vqa_arrow,
)
from sclbench.data.formats.coco_captions import read_coco_captions
from sclbench.data.formats.karpathy import read_karpathy
from sclbench.data.formats.lsmdc import read_lsmdc
from sclbench.data.formats.msrvtt import read_msrvtt
from sclbench.data.formats.nlvr2 import read_nlvr2
from sclbench.data.formats.pretrain import read_cc3m, read_coco_pretrain, read_sbu, read_vg, read_webvid
from sclbench.data.formats.vqa import AnswerVocab, apply_minival, read_vqa, split_minival, vote_score
from sclbench.data.formats.vqa_normalize import normalize_answer

__all__ = [
    "FORMATS",
    "ArrowTables",
    "Format",
    "card_format",
    "format_name",
    "AnswerVocab",
    "apply_minival",
    "normalize_answer",
    "read_caption_arrow",
    "read_cc3m",
    "read_coco_captions",
    "read_coco_pretrain",
    "read_family_arrow",
    "read_karpathy",
    "read_lsmdc",
    "read_msrvtt",
    "read_nlvr2",
    "read_nlvr2_arrow",
    "read_sbu",
    "read_vg",
    "read_vqa",
    "read_vqa_arrow",
    "read_webvid",
    "split_minival",
    "vote_score",
    "write_caption_arrow",
    "write_nlvr2_arrow",
    "write_vqa_arrow",
]


@dataclass(frozen=True)
class ArrowTables:
    """ViLT/METER tables of a format: file name pattern (`{dataset}`, `{split}`), family, splits, required."""

    pattern: str
    family: str
    splits: tuple[str, ...]
    required: tuple[str, ...]

    def file(self, dataset: str, split: str) -> str:
        return self.pattern.format(dataset=dataset, split=split)


@dataclass(frozen=True)
class Format:
    """A published data layout. `writer`, `checker` and `arrow_writer` are `module:function` hooks,
    imported when used: the synthetic writers draw scenes and encode videos, which a reader never needs.

    writer(out, card, scale, rng, texts) writes one card's synthetic data under `out` and appends the
    texts it used (the tokenizer's corpus); checker(report, root, card, decode) fills a layout report;
    arrow_writer(out, card) writes the card's arrow tables from its synthetic files."""

    name: str
    reader: Callable[..., Any]
    writer: str
    checker: str
    video: bool = False  # clips to encode: the slow parts of the synthetic benchmark, started first
    arrow: ArrowTables | None = None
    arrow_writer: str | None = None

    def hook(self, which: str) -> Callable[..., Any]:
        target = getattr(self, which)
        module, _, function = target.partition(":")
        return getattr(importlib.import_module(module), function)


_SYNTH, _CHECK = "sclbench.data.synthetic", "sclbench.data.check"
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "karpathy",
            read_karpathy,
            f"{_SYNTH}:write_karpathy",
            f"{_CHECK}:check_karpathy",
            arrow=ArrowTables(
                "{dataset}_caption_karpathy_{split}.arrow",
                "image_retrieval",
                ("train", "val", "test"),
                ("train", "val", "test"),
            ),
            arrow_writer=f"{_SYNTH}:arrow_karpathy",
        ),
        Format(
            "vqa",
            read_vqa,
            f"{_SYNTH}:write_vqa",
            f"{_CHECK}:check_vqa",
            arrow=ArrowTables("vqav2_{split}.arrow", "vqa", ("train", "val", "test-dev", "test"), ("train", "val")),
            arrow_writer=f"{_SYNTH}:arrow_vqa",
        ),
        Format(
            "nlvr2",
            read_nlvr2,
            f"{_SYNTH}:write_nlvr2",
            f"{_CHECK}:check_nlvr2",
            arrow=ArrowTables("nlvr2_{split}.arrow", "nlvr2", ("train", "dev", "test1"), ("train", "dev", "test1")),
            arrow_writer=f"{_SYNTH}:arrow_nlvr2",
        ),
        Format("msrvtt", read_msrvtt, f"{_SYNTH}:write_msrvtt", f"{_CHECK}:check_msrvtt", video=True),
        Format("lsmdc", read_lsmdc, f"{_SYNTH}:write_lsmdc", f"{_CHECK}:check_lsmdc", video=True),
        Format("pretrain", read_coco_pretrain, f"{_SYNTH}:write_pretrain", f"{_CHECK}:check_pretrain"),
    )
}


# A card written before cards named their format: its family's format (video retrieval has two, so its
# `data.dataset` or name must be msrvtt or lsmdc there).
FAMILY_FORMATS = {"image_retrieval": "karpathy", "vqa": "vqa", "nlvr2": "nlvr2", "pretrain": "pretrain"}


def format_name(card: Any) -> str | None:
    """The format a task card names (`format:`), else the one its dataset name or family implies."""
    dataset = card.get("data.dataset", card.name)
    return card.get("format") or (dataset if dataset in FORMATS else FAMILY_FORMATS.get(card.get("family")))


def card_format(card: Any) -> Format:
    """The format of a task card; an unknown or missing one is refused naming the card."""
    from sclbench.errors import ConfigError

    name = format_name(card)
    if name not in FORMATS:
        what = "names no format" if name is None else f"names format {name!r}, which sclbench does not know"
        raise ConfigError(f"task card {card.name!r} {what}: set `format:` to one of {', '.join(FORMATS)}")
    return FORMATS[name]
