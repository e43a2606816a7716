"""The real commands on one GPU (issue 22): `sclbench finetune vqa` for a fixed number of steps and
`sclbench eval f30k` two-stage at the full F30K test size (1,000 images, 5,000 captions), each eager
and with `--compile`, on generated data, base preset with random weights, bf16. Prints MFU, pairs/s
and the ratio to the issue's physical limits; writes benchmarks/results/gpu.json.

    bash benchmarks/gpu.sh                            # one CUDA GPU; under 5 minutes on one H100
    GPU_BENCH_DRYRUN=1 bash benchmarks/gpu.sh         # the same logic on CPU: tiny preset, tiny data

Model FLOPs (what MFU divides by the peak) are counted with torch.utils.flop_counter.FlopCounterMode on
the model itself: training, one forward + backward of a VQA sample (= the analytic 3 x forward of
benchmarks/gpu.py's docstring, which is printed beside it); evaluation, one image through the ViT, one
caption through RoBERTa and one pair through the whole fusion stack (texts at the test split's mean
token length), times the images, captions and cross-encoder pairs of the run. The engine does less
than that (shared first-layer parts, readout-only last layer), so these are model FLOPs, not hardware
FLOPs. Physical limits (issue 22, one H100 SXM at 989 TFLOP/s dense bf16): F30K 1K two-stage 46-55 s,
VQA test-dev (107,394 questions) 13-21 s, fine-tuning at 100% MFU.

Budget: the F30K data is written in the background while VQA runs; the compiled F30K evaluation runs at
full size only when the eager one's time says it fits in GPU_BENCH_BUDGET_S (default 290 s), else on the
first N images (the pairs/s is what it compares) and the summary says so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_DEV_QUESTIONS = 107_394
LIMITS = {"f30k_two_stage_s": (46.0, 55.0), "vqa_test_dev_s": (13.0, 21.0)}
DRY = {
    "preset": "tiny",
    "f30k_scale": 0.25,
    "vqa_scale": 0.5,
    "steps": 4,
    "log_every": 2,
    "batch": 4,
    "k": 4,
    "workers": 0,
}
FULL = {
    "preset": "base",
    "f30k_scale": 25.0,
    "vqa_scale": 8.0,
    "steps": 30,
    "log_every": 10,
    "batch": 64,
    "k": 128,
    "workers": 8,
}


def _env() -> dict:
    return {
        **os.environ,
        "SCLBENCH_NO_PROGRESS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }


def sclbench(args: list[str], log: Path, dry: bool = False) -> float:
    """Run `python -m sclbench ARGS` (output to `log`); its wall seconds. A failure stops the benchmark.
    In a dry run, `--compile` reaches the commands with TorchDynamo switched off (TORCHDYNAMO_DISABLE=1):
    compiling on a CPU takes ~10 minutes a command, and the dry run checks the script, not the compiler."""
    began = time.perf_counter()
    env = {**_env(), **({"TORCHDYNAMO_DISABLE": "1"} if dry and "--compile" in args else {})}
    with open(log, "w") as out:
        rc = subprocess.run(
            [sys.executable, "-m", "sclbench", *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        ).returncode
    if rc != 0:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"gpu benchmark: `sclbench {' '.join(args)}` failed (exit {rc}); end of {log}:\n{tail}")
    return time.perf_counter() - began


def write_data(out: Path, part: str, scale: float, background: bool):
    code = (
        f"from sclbench.data.synthetic import generate; "
        f"generate({str(out)!r}, seed=0, scale={scale}, parts=({part!r},))"
    )
    cmd = [sys.executable, "-c", code]
    if background:
        return subprocess.Popen(cmd, cwd=ROOT, env=_env())
    subprocess.run(cmd, cwd=ROOT, env=_env(), check=True)
    return None


# ---- FLOPs -----------------------------------------------------------------------------------------
def model_flops(preset: str, device: str, image_size: int | None, text_len: int) -> dict:
    """Counted FLOPs: VQA training per sample (forward + backward), and per image / caption / pair of
    the F30K evaluation (forward)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from benchmarks.gpu import analytic_train_flops
    from sclbench.model import SCLConfig
    from sclbench.model.factory import assemble

    def count(fn) -> float:
        counter = FlopCounterMode(display=False)
        with counter:
            fn()
        return float(counter.get_total_flops())

    overrides = {"image_size": image_size} if image_size else {}
    out = {}
    cfg = SCLConfig.preset(preset, "vqa", **overrides)
    model = assemble(cfg)[0].to(device).train()
    size = cfg.image_size
    ids = torch.full((1, cfg.max_text_len), 5, device=device)
    masks = torch.ones_like(ids)
    image = torch.randn(1, 3, size, size, device=device)

    def train_step():
        logits = model.vqa_classifier(model(ids, masks, image).cls_feats)
        F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits)).backward()

    out["vqa_train_per_sample"] = count(train_step)
    out["vqa_train_per_sample_analytic"] = analytic_train_flops(cfg, 1, cfg.max_text_len)
    out["vqa_eval_per_question"] = out["vqa_train_per_sample"] / 3  # forward = a third of forward + backward
    cfg = SCLConfig.preset(preset, "f30k", **overrides)
    model = assemble(cfg)[0].to(device).eval()
    ids, masks = ids[:, :text_len], masks[:, :text_len]
    with torch.no_grad():
        pixels = torch.randn(1, 3, cfg.image_size, cfg.image_size, device=device)
        out["f30k_per_image"] = count(lambda: model.encode_vision(pixels))
        out["f30k_per_caption"] = count(lambda: model.encode_text(ids, masks))
        vision, text = model.encode_vision(pixels), model.encode_text(ids, masks)
        out["f30k_per_pair"] = count(lambda: model.rank_output(model.fuse(text, masks, vision).cls_feats))
    out["text_len"] = text_len
    return out


def images_that_fit(
    eager_wall_s: float, left_s: float, n_images: int = 1000, compile_s: float = 60.0, margin_s: float = 15.0
) -> int | None:
    """None when the compiled evaluation of all `n_images` fits in `left_s` (its eager time plus
    `compile_s` of compilation); else the first N images (a multiple of 50, at least 100) that do."""
    room = left_s - margin_s
    if eager_wall_s + compile_s <= room:
        return None
    return max(100, int(n_images * max(room - compile_s, 0) / max(eager_wall_s, 1)) // 50 * 50)


# ---- reading what the commands wrote ---------------------------------------------------------------
def steady_samples_per_s(run_dir: Path) -> float:
    """samples/s of the last logged window (the first holds warm-up and compilation)."""
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    rates = [r["samples_per_s"] for r in records if r.get("kind") == "train" and r.get("samples_per_s")]
    if not rates:
        raise SystemExit(f"gpu benchmark: {run_dir / 'log.jsonl'} holds no train record with samples_per_s")
    return rates[-1]


def record(results: Path, task: str) -> dict:
    """The command's result record, with `questions`: how many predictions it holds."""
    (path,) = sorted((results / task).glob("*.json"))
    rec = json.loads(path.read_text())
    rec["questions"] = sum(1 for line in (path.parent / rec["predictions_file"]).read_text().splitlines() if line)
    return rec


def mean_caption_tokens(data: Path, preset: str) -> int:
    """Mean RoBERTa-tokenised length of the F30K test captions (what a pair's text costs)."""
    from sclbench.common.tokenizer import encode, load_tokenizer
    from sclbench.data.formats import karpathy
    from sclbench.model import SCLConfig

    records = karpathy.read_karpathy(data / "f30k", "f30k", "test")
    captions = [c for r in records for c in r.captions]
    enc = encode(captions, load_tokenizer(data / "tokenizer"), SCLConfig.preset(preset, "f30k").max_text_len)
    return max(1, round(float(enc["masks"].sum(1).float().mean())))


# ---- the benchmark -----------------------------------------------------------------------------------
def run(work: Path, dry: bool, budget_s: float, image_size: int | None) -> dict:
    s = DRY if dry else FULL
    began = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    f30k_data, vqa_data = work / "data_f30k", work / "data_vqa"
    writer = write_data(f30k_data, "f30k", s["f30k_scale"], background=True)
    write_data(vqa_data, "vqa", s["vqa_scale"], background=False)
    model_args = ["--preset", s["preset"], "--precision", "bf16"]
    size_override = [f"model.image_size={image_size}"] if image_size else []
    out: dict = {"settings": {**s, "dry_run": dry, "budget_s": budget_s, "image_size": image_size}, "commands": {}}

    # VQA fine-tuning: fixed steps, no validation before the end, accumulation 1.
    train = {}
    for variant in ("eager", "compile"):
        run_dir = work / f"vqa_{variant}"
        args = [
            "finetune",
            "vqa",
            f"train.global_batch_size={s['batch']}",
            f"train.per_device_batch_size={s['batch']}",
            f"train.log_every={s['log_every']}",
            "data.minival_images=8",
            *size_override,
            "--data-root",
            str(vqa_data / "vqa"),
            "--tokenizer",
            str(vqa_data / "tokenizer"),
            "--out",
            str(run_dir),
            "--max-steps",
            str(s["steps"]),
            "--eval-every",
            str(10 * s["steps"]),
            "--no-resume",
            "--num-workers",
            str(s["workers"]),
            *model_args,
            *(["--compile"] if variant == "compile" else []),
        ]
        wall = sclbench(args, logs / f"finetune_{variant}.log", dry)
        train[variant] = {"wall_s": round(wall, 1), "samples_per_s": round(steady_samples_per_s(run_dir), 2)}
        out["commands"][f"finetune_{variant}"] = "sclbench " + " ".join(args)
    # VQA evaluation (eager) of the synthetic test-dev split: questions/s, projected to the real one.
    args = [
        "eval",
        "vqa",
        *size_override,
        "--split",
        "test",
        "--data-root",
        str(vqa_data / "vqa"),
        "--tokenizer",
        str(vqa_data / "tokenizer"),
        "--results",
        str(work / "results_vqa"),
        "--batch-size",
        str(s["batch"]),
        "--num-workers",
        str(s["workers"]),
        *model_args,
    ]
    vqa_wall = sclbench(args, logs / "eval_vqa.log")
    vqa_rec = record(work / "results_vqa", "vqa")
    out["commands"]["eval_vqa"] = "sclbench " + " ".join(args)

    if writer is not None and writer.wait() != 0:
        raise SystemExit("gpu benchmark: writing the synthetic F30K data failed")
    evals = {}
    for variant in ("eager", "compile"):
        limit = []
        if variant == "compile" and not dry:
            n_images = images_that_fit(evals["eager"]["wall_s"], budget_s - (time.perf_counter() - began))
            limit = [] if n_images is None else ["--limit", str(n_images)]
        args = [
            "eval",
            "f30k",
            *size_override,
            "--split",
            "test",
            "--mode",
            "two-stage",
            "--k",
            str(s["k"]),
            "--data-root",
            str(f30k_data / "f30k"),
            "--tokenizer",
            str(f30k_data / "tokenizer"),
            "--results",
            str(work / f"results_f30k_{variant}"),
            "--batch-size",
            str(s["batch"]),
            "--num-workers",
            str(s["workers"]),
            *model_args,
            *limit,
            *(["--compile"] if variant == "compile" else []),
        ]
        wall = sclbench(args, logs / f"eval_f30k_{variant}.log", dry)
        rec = record(work / f"results_f30k_{variant}", "f30k")
        evals[variant] = {
            "wall_s": round(wall, 1),
            "scoring_s": round(rec["wall_time_s"], 1),
            "pairs": rec["protocol"]["cross_encoder_passes"],
            "pairs_per_s": round(rec["throughput"], 1),
            "images": rec["protocol"]["num_images"],
            "texts": rec["protocol"]["num_texts"],
            "limited": bool(limit),
        }
        out["commands"][f"eval_f30k_{variant}"] = "sclbench " + " ".join(args)

    import torch

    from benchmarks.gpu import peak_tflops

    device = "cpu" if dry else "cuda"
    flops = model_flops(s["preset"], device, image_size, mean_caption_tokens(f30k_data, s["preset"]))
    peak = peak_tflops(None if dry else torch.cuda.get_device_name(0))
    summary = summarise(train, evals, vqa_rec, vqa_wall, flops, peak)
    # `train.samples_per_s` and `eval.pairs_per_s` at the top, where docs/reproduce.md reads them
    out.update(flops=flops, peak_bf16_tflops=peak, summary=summary, train=summary["train"], eval=summary["eval"])
    out["total_wall_s"] = round(time.perf_counter() - began, 1)
    return out


def summarise(train: dict, evals: dict, vqa_rec: dict, vqa_wall: float, flops: dict, peak: float | None) -> dict:
    mfu = lambda flop_per_s: None if not peak else round(flop_per_s / (peak * 1e12), 4)  # noqa: E731
    for t in train.values():
        t["tflops"] = round(t["samples_per_s"] * flops["vqa_train_per_sample"] / 1e12, 3)
        t["mfu"] = mfu(t["samples_per_s"] * flops["vqa_train_per_sample"])
        t["times_physical_limit"] = round(1 / t["mfu"], 2) if t["mfu"] else None
    for e in evals.values():
        total = (
            e["images"] * flops["f30k_per_image"]
            + e["texts"] * flops["f30k_per_caption"]
            + e["pairs"] * flops["f30k_per_pair"]
        )
        e["model_tflop"] = round(total / 1e12, 2)
        e["mfu"] = mfu(total / e["wall_s"])
        e["mfu_scoring_only"] = mfu(e["pairs"] * flops["f30k_per_pair"] / max(e["scoring_s"], 1e-9))
        # Full F30K 1K time: measured, or (a run on the first N images) scaled by the model FLOPs.
        full = e["wall_s"] if not e["limited"] else e["wall_s"] * evals["eager"]["model_tflop"] / e["model_tflop"]
        e["full_size_s"] = round(full, 1)
        e["times_physical_limit"] = [
            round(full / LIMITS["f30k_two_stage_s"][1], 2),
            round(full / LIMITS["f30k_two_stage_s"][0], 2),
        ]
    questions = vqa_rec["questions"]
    per_s = questions / max(vqa_rec["wall_time_s"], 1e-9)
    test_dev_s = TEST_DEV_QUESTIONS / per_s
    vqa_eval = {
        "questions": questions,
        "questions_per_s": round(per_s, 1),
        "command_wall_s": round(vqa_wall, 1),
        "projected_test_dev_s": round(test_dev_s, 1),
        "mfu": mfu(per_s * flops["vqa_eval_per_question"]),
        "times_physical_limit": [
            round(test_dev_s / LIMITS["vqa_test_dev_s"][1], 2),
            round(test_dev_s / LIMITS["vqa_test_dev_s"][0], 2),
        ],
    }
    return {
        "finetune_vqa": train,
        "eval_f30k": evals,
        "eval_vqa": vqa_eval,
        # the keys docs/reproduce.md reads
        "train": {"samples_per_s": train["eager"]["samples_per_s"]},
        "eval": {"pairs_per_s": evals["eager"]["pairs_per_s"]},
    }


def lines(result: dict) -> list[str]:
    s = result["summary"]
    out = [f"peak bf16: {result['peak_bf16_tflops']} TFLOP/s   (MFU = model FLOP/s / peak)"]
    for variant, t in s["finetune_vqa"].items():
        out.append(
            f"finetune vqa [{variant:7}] {t['samples_per_s']:9.1f} samples/s  {t['tflops']:8.2f} TFLOP/s  "
            f"MFU {t['mfu']}  x{t['times_physical_limit']} the physical limit  (command {t['wall_s']} s)"
        )
    for variant, e in s["eval_f30k"].items():
        out.append(
            f"eval f30k    [{variant:7}] {e['pairs_per_s']:9.1f} pairs/s  {e['pairs']} pairs  "
            f"{e['images']}x{e['texts']}  command {e['wall_s']} s (scoring {e['scoring_s']} s)  MFU {e['mfu']}  "
            f"full 1K {e['full_size_s']} s = x{e['times_physical_limit'][0]}-{e['times_physical_limit'][1]} "
            f"of 46-55 s{'  (first N images, scaled)' if e['limited'] else ''}"
        )
    v = s["eval_vqa"]
    out.append(
        f"eval vqa     [eager  ] {v['questions_per_s']:9.1f} questions/s  test-dev projected "
        f"{v['projected_test_dev_s']} s = x{v['times_physical_limit'][0]}-{v['times_physical_limit'][1]} of 13-21 s"
        f"  MFU {v['mfu']}"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=os.environ.get("GPU_BENCH_WORK", "/tmp/sclbench-gpu-bench"))
    parser.add_argument("--out", default="benchmarks/results/gpu.json")
    parser.add_argument("--image-size", type=int, help="model.image_size for both commands (default: the card's)")
    args = parser.parse_args(argv)
    dry = os.environ.get("GPU_BENCH_DRYRUN") == "1"
    import torch

    if not dry and not torch.cuda.is_available():
        print(
            "benchmarks/gpu_commands.py: no CUDA GPU is available (torch.cuda.is_available() is False). This "
            "benchmark times the real commands on a GPU; GPU_BENCH_DRYRUN=1 runs its logic on CPU (no figures).",
            file=sys.stderr,
        )
        return 2
    result = run(Path(args.work), dry, float(os.environ.get("GPU_BENCH_BUDGET_S", "290")), args.image_size)
    from benchmarks.common import machine_info

    result["machine"] = machine_info()
    result["mode"] = "dry-run (CPU, tiny: checks the logic, no figures)" if dry else "gpu"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(lines(result)))
    print(f"total {result['total_wall_s']} s; summary: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
