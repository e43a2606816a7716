"""Per-rank memory of retrieval features for COCO 5K at base size (issue 22): before (features on
the host, gathered by pickling with `all_gather_object`) vs after (gathered as tensors by chunked
`all_gather_into_tensor`, kept in the evaluation precision on the evaluation device).

    python -m benchmarks.retrieval_memory            # CPU: W = 1, 2, 8 gloo processes, ~2-4 minutes
    python -m benchmarks.retrieval_memory --quick    # one small scale (a check of the code, ~1 minute)

What the engine keeps is exact, from the tensors' shapes (`kept_bytes`): per text the token features
[L=max_text_len, D] (50 x 768 at base; 40 in the issue's estimate was the caption length, but the
engine stores the padded length), a [L] mask and a [C=512] contrastive vector; per image [577, 768]
tokens (384 px, patch 16, + CLS) and a [C] vector. The token features take the precision of the
encoders' output (fp32, or bf16 under bf16 autocast); the projections stay fp32.

What a gather costs on top is measured: W processes (gloo, one thread each) hold a random shard of the
reduced-scale features (COCO scaled by s: 25,000 s captions, 5,000 s images) and run the old path
(pickled `gather_objects` of the shard tuple, then `torch.cat`) or the new (`gather_features`), after one
warm-up gather of a row per rank (the first collective's one-time costs are not features). Each
rank reports its peak resident memory over the gather (VmHWM, reset just before) and what it holds
afterwards with its shard released (as the engine releases it), both above the resident memory with
its shard built (so "held" is the kept features minus the rank's own shard, whose memory was counted
in the base). malloc's free memory is handed back (`malloc_trim`) before the base and before "held" is
read: a forked worker inherits its parent's heaps and arenas (a pytest process that has run hundreds of
tests), large requests are served from their free chunks instead of mappings of their own, and freed
they stayed resident, read as held (forked from a process with a fragmented, trimmed heap: 75 MB
"held" where 25.5 MB are, at the test's scale; a serial run of the suite read 7.6 MB too many).
"allocated" counts the same from malloc's books (`mallinfo2`), whatever is resident.
The new path's rounds (64 MB per rank at full size) are scaled by s too, so that they keep their share
of the features at every measured scale. Two scales give a line per configuration (fixed overhead +
slope x s); the slope at s = 1 is the COCO 5K figure. On a GPU the new path keeps the token features
in device memory (same bytes) and only the projections on the host; the gather's temporaries are one
round (64 MB per rank, W-fold received) on the device.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

COCO = {"texts": 25_000, "images": 5_000, "text_len": 50, "tokens": 577, "hidden": 768, "proj": 512}
GB = 1e9


def kept_bytes(
    texts: int, images: int, itemsize: int, text_len: int = 50, tokens: int = 577, hidden: int = 768, proj: int = 512
) -> dict[str, int]:
    """Bytes of the features the engine keeps (every rank keeps them all: any rank scores any pair)."""
    return {
        "text_tokens": texts * text_len * hidden * itemsize,
        "image_tokens": images * tokens * hidden * itemsize,
        "masks": texts * text_len * 8,
        "projections": (texts + images) * proj * 4,
    }


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _fixed_mmap_threshold() -> None:
    """Every allocation over 128 KB its own mapping, returned to the system when freed: glibc's
    default threshold grows with each large free, after which freed buffers stay resident and the
    resident size no longer says what the process holds."""
    import ctypes

    ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD


def _trim() -> None:
    """Hand malloc's free memory back to the system (`malloc_trim`: every arena's free pages, not only the
    top of the main heap). A forked worker inherits its parent's heaps and thread arenas; a large request
    that fits a free chunk or an arena's top is served there instead of by its own mapping, and once freed
    it stays resident, read as "held" although nothing holds it. Trimmed before the base and before
    "held" is read, both count what is allocated (to the page), whatever the parent did before."""
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)


def _allocated() -> int:
    """Bytes malloc has handed out and not had back, over every arena and mapping (glibc's `mallinfo2`:
    in-use chunks + mmapped chunks): what the process holds, whatever is resident."""
    import ctypes

    class Mallinfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks")
            + ("fordblks", "keepcost")
        ]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Mallinfo2
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


def _reset_peak() -> None:
    """Start a new peak: writing 5 to clear_refs resets VmHWM (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def _peak() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM"))


def _worker(rank: int, world: int, port: int, path: str, dtype_name: str, scale: float, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    _fixed_mmap_threshold()
    import torch.distributed as dist

    from sclbench.engine import distributed as D
    from sclbench.engine.sampler import shard_bounds
    from sclbench.tasks import retrieval_features as RF
    from sclbench.tasks.retrieval_features import RetrievalOptions, gather_features

    # The gather's rounds scaled with the features, so that they keep their full-size share of them.
    RF.GATHER_CHUNK_BYTES = max(1, int(RF.GATHER_CHUNK_BYTES * scale))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    n_t, n_i = max(world, round(COCO["texts"] * scale)), max(world, round(COCO["images"] * scale))
    t0, t1 = shard_bounds(n_t, rank, world)
    i0, i1 = shard_bounds(n_i, rank, world)
    # Filled in place (no fp32 temporary for the bf16 case): the shard is all the process holds.
    local = (
        torch.empty(t1 - t0, COCO["text_len"], COCO["hidden"], dtype=dtype).normal_(),
        torch.empty(t1 - t0, COCO["proj"]).normal_(),
        torch.empty(i1 - i0, COCO["tokens"], COCO["hidden"], dtype=dtype).normal_(),
        torch.empty(i1 - i0, COCO["proj"]).normal_(),
        torch.tensor(1),
    )

    def gather(shard: tuple, texts: int, images: int) -> list[torch.Tensor]:
        if path == "before":  # the old engine: pickle the shard tuple to every rank, then concatenate
            parts = D.gather_objects(shard)
            return [torch.cat([p[i] for p in parts if p[i].numel()]) for i in range(4)]
        entries = ({"tokens": shard[0], "embedding": shard[1]}, {"tokens": shard[2], "embedding": shard[3]})
        t, m = gather_features(entries, texts, images, torch.device("cpu"), RetrievalOptions())
        return [t["tokens"], t["embedding"], m["tokens"], m["embedding"]]

    # A first gather of one row per rank, before the base is taken: the first collective's one-time costs
    # (gloo's buffers, the pickler, malloc arenas of the communication threads: 5 to 15 MB, more on a busy
    # machine) are not features held, and counted in "held" they were up to 30% of a small scale's kept.
    warm = tuple(t[:1].clone() for t in local[:4]) + (torch.tensor(1),)
    warm_result = gather(warm, world, world)
    del warm, warm_result
    dist.barrier()
    _trim()
    base, base_allocated = _rss(), _allocated()
    _reset_peak()
    began = time.perf_counter()
    result = gather(local, n_t, n_i)
    seconds = time.perf_counter() - began
    peak = _peak()
    assert result[2].shape == (n_i, COCO["tokens"], COCO["hidden"]) and result[2].dtype == dtype
    own = sum(t.numel() * t.element_size() for t in local[:4])
    del local  # as the engine does once gathered (the shard's rows live on in the result)
    untrimmed = _rss() - base
    _trim()
    held = _rss() - base
    allocated = _allocated() - base_allocated
    dist.barrier()
    record = {
        "rank": rank,
        "peak_over_base": peak - base,
        "held": held,
        "held_untrimmed": untrimmed,  # freed memory malloc kept resident included (what `_trim` gives back)
        "allocated": allocated,  # the same from malloc's books: not a page of residency in it
        # what "held" must be: the gathered features less the own shard (released, counted in the base)
        "expected_held": sum(t.numel() * t.element_size() for t in result) - own,
        "seconds": seconds,
        "texts": n_t,
        "images": n_i,
        "kept": sum(kept_bytes(n_t, n_i, torch.empty(0, dtype=dtype).element_size()).values()),
    }
    Path(out, f"{path}-{dtype_name}-{world}-{scale}-{rank}.json").write_text(json.dumps(record))
    dist.destroy_process_group()


def measure(path: str, dtype: str, world: int, scale: float, out: Path) -> dict:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # fork: the children start with torch imported (spawning 8 fresh interpreters costs ~a minute)
    mp.start_processes(_worker, args=(world, port, path, dtype, scale, str(out)), nprocs=world, start_method="fork")
    ranks = [json.loads(Path(out, f"{path}-{dtype}-{world}-{scale}-{r}.json").read_text()) for r in range(world)]
    return {
        "peak": max(r["peak_over_base"] for r in ranks),
        "held": max(r["held"] for r in ranks),
        "held_untrimmed": max(r["held_untrimmed"] for r in ranks),
        "allocated": max(r["allocated"] for r in ranks),
        "expected_held": max(r["expected_held"] for r in ranks),
        "kept": ranks[0]["kept"],
        "seconds": max(r["seconds"] for r in ranks),
    }


def run(scales: list[float], worlds: list[int], out: Path) -> dict:
    rows = []
    for world in worlds:
        for dtype in ("fp32", "bf16"):
            for path in ("before", "after"):
                points = [(s, measure(path, dtype, world, s, out)) for s in scales]
                if len(points) > 1:  # a line through the two scales: overhead + slope x s
                    (s0, a), (s1, b) = points[0], points[-1]
                    slope = {k: (b[k] - a[k]) / (s1 - s0) for k in ("peak", "held")}
                else:
                    slope = {k: points[0][1][k] / points[0][0] for k in ("peak", "held")}
                itemsize = 4 if dtype == "fp32" else 2
                kept = sum(kept_bytes(COCO["texts"], COCO["images"], itemsize).values())
                token_bytes = (
                    kept
                    - kept_bytes(COCO["texts"], COCO["images"], itemsize)["projections"]
                    - kept_bytes(COCO["texts"], COCO["images"], itemsize)["masks"]
                )
                rows.append(
                    {
                        "world": world,
                        "dtype": dtype,
                        "path": path,
                        "kept_gb": round(kept / GB, 2),
                        "peak_gb": round(slope["peak"] / GB, 2),
                        "held_gb": round(slope["held"] / GB, 2),
                        "peak_over_kept": round(slope["peak"] / kept, 2),
                        # after: on a GPU the token features are device memory, the host keeps the rest
                        "host_gb_on_gpu": round((kept - token_bytes) / GB, 3)
                        if path == "after"
                        else round(slope["peak"] / GB, 2),
                        "measured": [{"scale": s, **{k: v for k, v in p.items()}} for s, p in points],
                    }
                )
    return {"benchmark": "retrieval_memory", "coco": COCO, "scales": scales, "worlds": worlds, "rows": rows}


def table(result: dict) -> str:
    """Per rank, at COCO 5K base size. The measured figures are above a base that holds the rank's own
    shard (~kept / W), which is added back here: "resident" = what the rank holds in all."""
    lines = [
        "| W | features | path | kept (GB, exact) | resident at the gather's peak (GB) | peak / kept | "
        "resident after (GB) | on a GPU run: host (GB) | on a GPU run: device, peak (GB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        shard = r["kept_gb"] / r["world"]
        peak, after = r["peak_gb"] + shard, r["held_gb"] + shard
        itemsize = 4 if r["dtype"] == "fp32" else 2
        parts = kept_bytes(COCO["texts"], COCO["images"], itemsize)
        tokens = (parts["text_tokens"] + parts["image_tokens"]) / GB
        if r["path"] == "before":  # the old engine kept everything on the host; the device held batches
            host, device = f"{peak:.2f}", "batches only"
        else:  # token features on the device: all of them, the own shard and one gather round at the peak
            rounds = (r["world"] + 1) * 64 * 2**20 / GB if r["world"] > 1 else 0.0
            host, device = r["host_gb_on_gpu"], f"{tokens * (1 + 1 / r['world'] * (r['world'] > 1)) + rounds:.2f}"
        lines.append(
            f"| {r['world']} | {r['dtype']} | {r['path']} | {r['kept_gb']:.2f} | {peak:.2f} | "
            f"{peak / r['kept_gb']:.2f} | {after:.2f} | {host} | {device} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small scale, W = 1 and 2 (a code check)")
    parser.add_argument("--out", default="benchmarks/results/retrieval_memory.json")
    parser.add_argument("--table", metavar="JSON", help="print the table of a saved result and stop")
    args = parser.parse_args(argv)
    if args.table:
        print(table(json.loads(Path(args.table).read_text())))
        return 0
    scales, worlds = ([0.004, 0.008], [1, 2]) if args.quick else ([0.005, 0.01], [1, 2, 8])
    scratch = Path(args.out).with_suffix(".parts")
    scratch.mkdir(parents=True, exist_ok=True)
    result = run(scales, worlds, scratch)
    for f in scratch.glob("*.json"):
        f.unlink()
    scratch.rmdir()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
