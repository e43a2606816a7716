"""Pre-training input throughput: webdataset shards vs loose files, 0/2/4 dataloader workers.

Both sides run the real pre-training path on the same corpus (the synthetic COCO train+restval
images, or --coco-root): loose = Karpathy records -> CaptionDataset (one file open per image and
per ITM negative) -> collate in a shuffled DataLoader; shards = `sclbench data shard` output ->
StreamingBatches (tar streams split by worker, shuffle buffer, negatives from a look-ahead window).
Same transform (pretrain_train = the official `clip`), same size, same batch. Side by side in one
run; a second table reads the bytes only (no decode), which is where shards and files differ.

    python benchmarks/shards.py [--size 288] [--batch-size 16] [--batches 8] [--workers 0 2 4]
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
from sclbench.data import shards as S
from sclbench.data.collate import collate
from sclbench.data.datasets import CaptionDataset, Visuals
from sclbench.data.streaming import Corpus, StreamingBatches
from sclbench.data.transforms import build_transform


def timed_batches(loader, batches: int, warmup: int) -> tuple[int, float]:
    """(samples, seconds) over `batches` batches after `warmup` ones (worker start-up excluded)."""
    done, samples, start = 0, 0, time.perf_counter()
    while done < warmup + batches:
        for batch in loader:
            done += 1
            if done == warmup:
                start = time.perf_counter()
            elif done > warmup:
                samples += len(batch["index"])
            if done == warmup + batches:
                break
    return samples, time.perf_counter() - start


def loose_loader(dataset, batch_size: int, workers: int) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        collate_fn=collate,
        drop_last=True,
        generator=torch.Generator().manual_seed(0),
    )


def raw_rates(records, shard_dir: Path, min_seconds: float = 1.0) -> dict[str, float]:
    """Encoded samples/s read without decoding (1 process; passes repeated for >= min_seconds):
    one file open per image vs tar streaming through webdataset. Both hit the page cache here."""
    urls = [s.url for s in S.read_index(shard_dir).shards]
    passes = {
        "loose_files": lambda: sum(len(r.image.read_bytes()) > 0 for r in records),
        "shards": lambda: sum(1 for _ in S.iter_raw(urls)),
    }
    rates = {}
    for name, one_pass in passes.items():
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < min_seconds:
            n += one_pass()
        rates[name] = round(n / (time.perf_counter() - start), 1)
    return rates


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=288, help="image side (official pre-training: 288)")
    parser.add_argument("--batch-size", type=int, default=16, help="official per_gpu_batchsize: 16")
    parser.add_argument("--batches", type=int, default=8, help="timed batches per row")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches per row (worker start-up)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--shard-size", type=int, default=16, help="images per shard (>= 4 shards for 4 workers)")
    parser.add_argument("--coco-root", type=Path, help="a real COCO Karpathy layout (default: synthetic)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    torch.set_num_threads(1)  # what each worker uses; the main process likewise (see dataloader.py)

    with tempfile.TemporaryDirectory() as tmp:
        synth = None
        if args.coco_root is None:
            from sclbench.data.synthetic import generate

            synth = generate(Path(tmp) / "synth", seed=0, scale=1.0)
        root = args.coco_root or synth / "coco"
        tokenizer = load_tokenizer(synth / "tokenizer" if synth else "roberta-base")
        records = S.corpus_records("coco", root)
        shard_dir = Path(tmp) / "shards"
        index = S.write_shards(records, shard_dir, "coco", shard_size=args.shard_size)
        visuals = Visuals(build_transform("pretrain_train", args.size))
        loose = CaptionDataset(records, visuals, tokenizer, 50, neg_images=True, neg_distinct=False)
        rows = []
        for workers in args.workers:
            for kind in ("loose files", "shards"):
                if kind == "shards":
                    stream = StreamingBatches(
                        [Corpus("coco", "image", index=index)],
                        {"image": visuals},
                        tokenizer,
                        50,
                        {"image": args.batch_size},
                        rank=0,
                        world=1,
                        shuffle_buffer=256,
                        negative_pool=64,
                    )
                    if len(index.shards) < max(1, workers):
                        continue
                    loader = DataLoader(stream, batch_size=None, num_workers=workers)
                else:
                    loader = loose_loader(loose, args.batch_size, workers)
                samples, seconds = timed_batches(loader, args.batches, args.warmup)
                rows.append(
                    {
                        "input": kind,
                        "workers": workers,
                        "samples": samples,
                        "seconds": round(seconds, 3),
                        "per_second": round(samples / seconds, 1),
                    }
                )
                print(f"{kind:12s} workers={workers}: {rows[-1]['per_second']:8.1f} samples/s")
        raw = raw_rates(records, shard_dir)
        print(f"bytes only: loose files {raw['loose_files']} samples/s, shards {raw['shards']} samples/s")
    report = {
        "benchmark": "shards",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": "synthetic COCO train+restval (sclbench data synth, seed 0)" if synth else str(args.coco_root),
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "settings": {
            "size": args.size,
            "batch_size": args.batch_size,
            "batches": args.batches,
            "images": index.samples,
            "pairs": index.pairs,
            "shards": len(index.shards),
            "transform": "pretrain_train (official clip)",
            "itm_negatives": True,
        },
        "results": rows,
        "bytes_only": raw,
    }
    by = {(r["input"], r["workers"]): r["per_second"] for r in rows}
    for r in rows:
        if r["input"] == "shards" and ("loose files", r["workers"]) in by:
            r["ratio_vs_loose"] = round(r["per_second"] / by[("loose files", r["workers"])], 2)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "shards.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"Pre-training input: shards vs loose files ({report['data']}, {report['machine']['cpu_count']} CPUs, "
        f"{args.size} px, batch {args.batch_size}, {report['date']})",
        "",
        "| input | workers | samples/s | shards / loose |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {r['input']} | {r['workers']} | {r['per_second']} | {r.get('ratio_vs_loose', '')} |" for r in rows]
    lines += [
        "",
        f"Bytes only (no decode, 1 process): loose files {raw['loose_files']} samples/s, "
        f"shards {raw['shards']} samples/s.",
    ]
    (args.out / "shards.md").write_text("\n".join(lines) + "\n")
    return report


if __name__ == "__main__":
    main()
