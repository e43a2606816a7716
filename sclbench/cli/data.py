"""`sclbench data ...`: generate the synthetic mini-benchmark, check a data layout, write shards."""

from __future__ import annotations

from pathlib import Path

import typer

from sclbench.app.catalog import task_names
from sclbench.cli._params import COUNT, INPUT_DIR, OUTPUT_DIR, SEED, finite_float

app = typer.Typer(no_args_is_help=True)


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Folder to write the mini-benchmark into.", **OUTPUT_DIR),
    seed: int = typer.Option(0, help="Random seed; the same seed writes the same bytes.", **SEED),
    # Above 100 the benchmark would take hours and tens of GB; below 0 there is nothing to write.
    scale: float = typer.Option(
        1.0, help="Multiply every split size by this.", parser=finite_float(above=0.0, maximum=100.0)
    ),
) -> None:
    """Write a synthetic mini-benchmark: each card with a synth: section in its layout (+ arrow, tokenizer)."""
    from sclbench.app.data import synth as generate

    generate(out, seed=seed, scale=scale)
    typer.echo(f"wrote the synthetic benchmark (seed {seed}, scale {scale}) to {out}")


def _data_root(data_root: Path | None, root: Path | None) -> Path:
    if data_root is None and root is None:
        raise typer.BadParameter("pass --data-root DIR (the task's data folder)", param_hint="--data-root")
    return data_root if data_root is not None else root


@app.command()
def check(
    task: str = typer.Argument(..., help=f"A task card: {task_names()}; your own with --cards DIR."),
    data_root: Path = typer.Option(None, "--data-root", help="The task's data folder.", **INPUT_DIR),
    root: Path = typer.Option(None, "--root", hidden=True, help="Old name of --data-root.", **INPUT_DIR),
    decode: bool = typer.Option(
        False, "--decode", help="Also decode every image and clip (slow); list those that do not decode."
    ),
) -> None:
    """Report what a data layout is missing; exit code 1 when something required is missing."""
    from sclbench.app.data import check as check_layout

    report = check_layout(task, _data_root(data_root, root), decode=decode)
    typer.echo(report.render())
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def shard(
    corpus: str = typer.Argument(..., help="coco, f30k, vg, sbu, cc3m or webvid."),
    data_root: Path = typer.Option(
        ...,
        "--data-root",
        help="The corpus folder in the layout sclbench reads (as for `data check` / the pretrain card's corpus root).",
        **INPUT_DIR,
    ),
    out: Path = typer.Option(..., "--out", help="Folder to write the shards and index.json into.", **OUTPUT_DIR),
    split: str = typer.Option(
        "train", help="Split to shard (Karpathy coco/f30k, cc3m, webvid); coco train includes restval."
    ),
    layout: str = typer.Option(
        "files",
        "--format",
        help="files (the published layout) or arrow (the "
        "ViLT caption tables <dataset>_caption_karpathy_<split>.arrow; coco, f30k).",
    ),
    shard_size: int = typer.Option(
        1000, help="Images or clips per shard; write at least ranks x dataloader workers shards.", **COUNT
    ),
    meta: str = typer.Option("webvid_train.tsv", help="WebVid: the meta file under --data-root."),
    videos: str = typer.Option("videos", help="WebVid: the clip folder under --data-root."),
) -> None:
    """Write webdataset shards (img2dataset layout: KEY.jpg/KEY.mp4 + KEY.txt + KEY.json) of a corpus.

    Use them in the pretrain card as `{name: CORPUS, root: OUT, format: shards}`."""
    from sclbench.app.data import shard as write_shards

    index = write_shards(
        corpus, data_root, out, split=split, layout=layout, shard_size=shard_size, meta=meta, videos=videos
    )
    typer.echo(
        f"wrote {len(index.shards)} shards of {corpus} ({index.samples} {index.kind}s, {index.pairs} "
        f"caption pairs) to {out}"
    )
