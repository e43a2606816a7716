"""The `sclbench data` jobs: write the synthetic mini-benchmark, check a data layout, write shards.

Thin on purpose: the CLI calls these, and they call the data floor."""

from __future__ import annotations

from pathlib import Path

from sclbench.data.check import LayoutReport, check_layout
from sclbench.data.shards import ShardIndex, corpus_records, write_shards
from sclbench.data.synthetic import generate


def synth(out: str | Path, seed: int = 0, scale: float = 1.0) -> None:
    """Each card with a synth: section in its layout (+ arrow tables, tokenizer) under `out`."""
    generate(out, seed=seed, scale=scale)


def check(task: str, root: str | Path, decode: bool = False) -> LayoutReport:
    """What the layout of `task` under `root` is missing (decode: also decode every image and clip)."""
    return check_layout(task, root, decode=decode)


def shard(
    corpus: str,
    root: str | Path,
    out: str | Path,
    *,
    split: str = "train",
    layout: str = "files",
    shard_size: int = 1000,
    meta: str = "webvid_train.tsv",
    videos: str = "videos",
) -> ShardIndex:
    """Webdataset shards (img2dataset layout) of a corpus, with their index."""
    records = corpus_records(corpus, root, split=split, layout=layout, meta=meta, videos=videos)
    return write_shards(records, out, corpus, shard_size=shard_size)
