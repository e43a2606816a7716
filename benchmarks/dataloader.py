"""Training-dataloader throughput on this machine: images/s (F30K pairs) and clips/s (MSRVTT).

Measures the real training path (reader records -> Dataset -> fine-tune transforms -> collate)
with 0, 2 and 4 workers side by side in one run, on the synthetic benchmark (generated into a
temporary folder) or on real data given with --f30k-root / --msrvtt-root. Writes JSON + markdown.

    python benchmarks/dataloader.py [--size 288] [--batches 20] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from sclbench.common.tokenizer import load_tokenizer
from sclbench.data.collate import collate_captions
from sclbench.data.datasets import CaptionDataset, Visuals
from sclbench.data.formats import read_karpathy, read_msrvtt
from sclbench.data.transforms import build_transform


def measure(dataset, batch_size: int, workers: int, batches: int, warmup: int = 2) -> dict:
    """Samples/s over `batches` batches after `warmup` batches (worker start-up is excluded)."""
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        collate_fn=collate_captions,
        drop_last=True,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
    done, samples, start = 0, 0, None
    while done < warmup + batches:
        for batch in loader:
            done += 1
            if done == warmup:
                start = time.perf_counter()
            elif done > warmup:
                samples += len(batch["index"])
            if done == warmup + batches:
                break
    seconds = time.perf_counter() - start
    return {
        "workers": workers,
        "samples": samples,
        "seconds": round(seconds, 3),
        "per_second": round(samples / seconds, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=288, help="image side (official: 288 images, 224 video)")
    parser.add_argument("--video-size", type=int, default=224)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--f30k-root", type=Path)
    parser.add_argument("--msrvtt-root", type=Path)
    parser.add_argument(
        "--main-threads",
        type=int,
        default=1,
        help="torch threads of the main process while measuring (workers always use 1); "
        "torch's default (all CPUs) made workers=0 ~6x slower on a 2-CPU machine",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    # More workers than CPUs is part of what we measure; torch's advice about it is noise here.
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    default_threads = torch.get_num_threads()
    torch.set_num_threads(args.main_threads)

    with tempfile.TemporaryDirectory() as tmp:
        synth = None
        if args.f30k_root is None or args.msrvtt_root is None:
            from sclbench.data.synthetic import generate

            synth = generate(Path(tmp) / "synth", seed=0, scale=1.0)
        f30k_root = args.f30k_root or synth / "f30k"
        msrvtt_root = args.msrvtt_root or synth / "msrvtt"
        tokenizer = load_tokenizer(synth / "tokenizer" if synth else "roberta-base")
        images = CaptionDataset(
            read_karpathy(f30k_root, "f30k", "train"),
            Visuals(build_transform("finetune_train", args.size)),
            tokenizer,
            50,
        )
        clips = CaptionDataset(
            read_msrvtt(msrvtt_root, "train"),
            Visuals(build_transform("finetune_train", args.video_size), args.frames, "random"),
            tokenizer,
            50,
        )
        rows = []
        for kind, dataset, size in (("images", images, args.size), ("clips", clips, args.video_size)):
            for workers in args.workers:
                row = measure(dataset, args.batch_size, workers, args.batches)
                rows.append({"kind": kind, "size": size, **row})
                print(f"{kind:6s} {size}px workers={workers}: {row['per_second']:8.1f} {kind}/s")
    report = {
        "benchmark": "dataloader",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": "synthetic (sclbench data synth, seed 0)" if synth else "real",
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads_default": default_threads,
        },
        "settings": {
            "batch_size": args.batch_size,
            "batches": args.batches,
            "frames": args.frames,
            "transform": "finetune_train (RandAugment + RandomResizedCrop)",
            "sampling": "random",
            "torch_threads_main": args.main_threads,
        },
        "results": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dataloader.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"Dataloader throughput ({report['data']}, {report['machine']['cpu_count']} CPUs, "
        f"batch {args.batch_size}, {report['date']})",
        "",
        "| kind | size | workers | per second |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['kind']} | {r['size']} | {r['workers']} | {r['per_second']} |" for r in rows]
    (args.out / "dataloader.md").write_text("\n".join(lines) + "\n")
    return report


if __name__ == "__main__":
    main()
