"""Training-step throughput and peak memory: SDPA vs eager attention, bf16 autocast, gradient
checkpointing and torch.compile, for the tiny and base configs (VQA fine-tuning step: forward,
BCE loss on the answer head, backward, AdamW).

Each variant runs in its own process (`python -m benchmarks.train_bench --worker JSON`): the peak
resident memory of a process is then the peak of that variant alone, a failed torch.compile cannot
poison the others, and every process is pinned to one thread.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

VARIANTS = ("sdpa", "eager", "sdpa+bf16", "sdpa+ckpt", "sdpa+compile")
ROOT = Path(__file__).resolve().parent.parent


def _status_mb(field: str) -> float:
    """VmRSS / VmHWM (peak) of this process from /proc. Not getrusage's ru_maxrss: Linux carries that
    across exec, so every worker would report at least its parent's size."""
    with open("/proc/self/status") as fh:
        line = next(ln for ln in fh if ln.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def _batch(cfg, batch: int, seed: int = 0) -> dict:
    import torch

    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(cfg.max_text_len // 3, cfg.max_text_len, (batch,), generator=g)
    masks = (torch.arange(cfg.max_text_len)[None] < lengths[:, None]).long()
    ids = torch.randint(4, cfg.vocab_size, (batch, cfg.max_text_len), generator=g) * masks + (1 - masks)
    return {
        "text_ids": ids,
        "text_masks": masks,
        "images": torch.randn(batch, 3, cfg.image_size, cfg.image_size, generator=g),
        "vqa_targets": (torch.rand(batch, cfg.num_answers, generator=g) < 0.002).float(),
    }


def build(preset: str, image_size: int | None):
    import torch

    from sclbench.model import SCLConfig
    from sclbench.model.factory import assemble

    torch.manual_seed(0)  # every variant starts from the same weights
    overrides = {"image_size": image_size} if image_size else {}
    return assemble(SCLConfig.preset(preset, "vqa", **overrides))[0]


def loss_fn(model, batch):
    import torch.nn.functional as F

    out = model(batch["text_ids"], batch["text_masks"], batch["images"])
    logits = model.vqa_classifier(out.cls_feats)
    return F.binary_cross_entropy_with_logits(logits.float(), batch["vqa_targets"]) * logits.shape[1]


def worker(spec: dict) -> dict:
    """Run one variant; returns samples/s (median step), peak memory and checks."""
    import torch

    from benchmarks.common import eager_attention_everywhere, median_step_time

    torch.set_num_threads(1)
    variant = spec["variant"]
    model = build(spec["preset"], spec.get("image_size"))
    batch = _batch(model.config, spec["batch"])
    result: dict[str, Any] = {"params_m": round(model.num_parameters() / 1e6, 1)}
    attention = contextlib.nullcontext({"n": -1})
    if variant.startswith("eager"):
        attention = eager_attention_everywhere()
        # Same weights, same input: the eager math must give the SDPA output (proves the swap is a
        # faithful re-implementation, so the ratio compares kernels, not models).
        model.eval()
        with torch.no_grad():
            ref = model(batch["text_ids"], batch["text_masks"], batch["images"]).cls_feats
            with eager_attention_everywhere() as calls:
                alt = model(batch["text_ids"], batch["text_masks"], batch["images"]).cls_feats
        result["max_abs_diff_vs_sdpa"] = float((ref - alt).abs().max())
        result["eager_calls_per_forward"] = calls["n"]
    model.train()
    if "ckpt" in variant:
        model.set_gradient_checkpointing(True)
    step_model = model
    if "compile" in variant:
        step_model = torch.compile(model)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if "bf16" in variant else contextlib.nullcontext()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step():
        with autocast:
            loss = loss_fn(step_model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    with attention:
        if "compile" in variant:  # the first call compiles: report it, keep it out of the median
            start = time.perf_counter()
            step()
            result["compile_s"] = round(time.perf_counter() - start, 1)
        rss_before = _status_mb("VmRSS")
        med, times = median_step_time(step, spec["steps"], spec["warmup"])
    peak = _status_mb("VmHWM")
    result.update(
        {
            "step_s": round(med, 4),
            "samples_per_s": round(spec["batch"] / med, 2),
            "step_times_s": [round(t, 4) for t in times],
            "peak_rss_mb": round(peak),
            "peak_over_start_mb": round(max(peak - rss_before, 0.0)),
        }
    )
    return result


def run_variant(spec: dict, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.train_bench", "--worker", json.dumps(spec)]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {**spec, "skipped": f"did not finish within {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return {**spec, "skipped": f"failed (exit {proc.returncode}): {err}"}
    return {**spec, **json.loads(lines[-1])}


def run_suite(configs: list[dict], variants: tuple[str, ...] = VARIANTS, timeout: float = 300) -> dict:
    """configs: dicts with preset, image_size, batch, steps, warmup and optional skip (variants)."""
    rows = []
    for cfg in configs:
        for variant in variants:
            spec = {k: v for k, v in cfg.items() if k != "skip"} | {"variant": variant}
            if variant in cfg.get("skip", {}):
                rows.append({**spec, "skipped": cfg["skip"][variant]})
                continue
            row = run_variant(spec, timeout)
            rows.append(row)
            print(
                f"  train {cfg['preset']:4s} {variant:13s} "
                + (
                    f"{row['samples_per_s']:8.2f} samples/s  peak {row['peak_rss_mb']} MB"
                    if "samples_per_s" in row
                    else row.get("skipped", "")
                ),
                flush=True,
            )
    speedups = {}
    for cfg in configs:
        by = {r["variant"]: r for r in rows if r["preset"] == cfg["preset"] and "samples_per_s" in r}
        if "sdpa" in by:
            speedups[cfg["preset"]] = {
                v: round(r["samples_per_s"] / by["sdpa"]["samples_per_s"], 2) for v, r in by.items()
            }
    return {"rows": rows, "throughput_vs_sdpa": speedups}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True, help="JSON spec of one variant (internal)")
    print(json.dumps(worker(json.loads(parser.parse_args().worker))))
