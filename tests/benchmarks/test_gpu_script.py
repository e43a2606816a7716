"""benchmarks/gpu.sh: refuses loudly without a GPU; its logic (the real commands, eager and --compile,
MFU, pairs/s, ratios to the physical limits) runs end to end on CPU with GPU_BENCH_DRYRUN=1."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import gpu_commands as G  # noqa: E402

FLOPS = {
    "vqa_train_per_sample": 3e9,
    "vqa_eval_per_question": 1e9,
    "f30k_per_image": 2e9,
    "f30k_per_caption": 1e8,
    "f30k_per_pair": 5e8,
}


def _env(**extra: str) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", **extra}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_without_a_gpu_it_fails_loudly():
    env = _env()
    env.pop("GPU_BENCH_DRYRUN", None)
    run = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh")], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2
    assert "no CUDA GPU" in run.stderr and "nothing was measured" in run.stderr
    assert G.main(["--work", "/nonexistent"]) == 2  # the driver refuses too, before writing anything


@pytest.mark.parametrize(
    "eager_s,left_s,expected",
    [
        (100.0, 290.0, None),  # 100 + 60 s compile fits
        (200.0, 200.0, 600),  # 200 - 15 - 60 = 125 s of eager time: 625 images, down to a multiple of 50
        (400.0, 100.0, 100),  # hardly any room: the floor of 100 images
        (150.0, 200.0, 800),  # 125 s of the 150 s eager time: 833 images, down to a multiple of 50
    ],
)
def test_compiled_eval_fits_the_budget(eager_s, left_s, expected):
    assert G.images_that_fit(eager_s, left_s) == expected


def test_summary_arithmetic():
    train = {"eager": {"samples_per_s": 100.0, "wall_s": 50.0}, "compile": {"samples_per_s": 150.0, "wall_s": 90.0}}
    evals = {
        "eager": {
            "wall_s": 100.0,
            "scoring_s": 80.0,
            "pairs": 700_000,
            "pairs_per_s": 8750.0,
            "images": 1000,
            "texts": 5000,
            "limited": False,
        },
        "compile": {
            "wall_s": 30.0,
            "scoring_s": 20.0,
            "pairs": 175_000,
            "pairs_per_s": 8750.0,
            "images": 250,
            "texts": 5000,
            "limited": True,
        },
    }
    vqa = {"questions": 1000, "wall_time_s": 2.0}
    s = G.summarise(train, evals, vqa, 5.0, FLOPS, peak=1000.0)
    assert s["finetune_vqa"]["eager"]["mfu"] == pytest.approx(100 * 3e9 / 1e15, abs=1e-4)
    assert s["finetune_vqa"]["eager"]["times_physical_limit"] == pytest.approx(1 / 0.0003, rel=1e-2)
    total = 1000 * 2e9 + 5000 * 1e8 + 700_000 * 5e8
    assert s["eval_f30k"]["eager"]["model_tflop"] == pytest.approx(total / 1e12, abs=0.01)
    assert s["eval_f30k"]["eager"]["times_physical_limit"] == [round(100 / 55, 2), round(100 / 46, 2)]
    # a run on the first N images is scaled to the full set by model FLOPs
    part = 250 * 2e9 + 5000 * 1e8 + 175_000 * 5e8
    assert s["eval_f30k"]["compile"]["full_size_s"] == pytest.approx(30 * total / part, rel=1e-2)
    assert s["eval_vqa"]["projected_test_dev_s"] == pytest.approx(G.TEST_DEV_QUESTIONS / 500, abs=0.1)
    assert s["train"]["samples_per_s"] == 100.0 and s["eval"]["pairs_per_s"] == 8750.0
    assert G.summarise(train, evals, vqa, 5.0, FLOPS, peak=None)["finetune_vqa"]["eager"]["mfu"] is None


@pytest.mark.slow  # ~4-6 minutes on 2 CPU cores: six sclbench commands with a tiny model
def test_dry_run_runs_the_real_commands(tmp_path):
    out = tmp_path / "gpu.json"
    env = _env(GPU_BENCH_DRYRUN="1", SCLBENCH_PEAK_TFLOPS="1", GPU_BENCH_WORK=str(tmp_path / "work"))
    run = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=ROOT,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    result = json.loads(out.read_text())
    assert result["mode"].startswith("dry-run")
    commands = result["commands"]
    assert set(commands) == {"finetune_eager", "finetune_compile", "eval_vqa", "eval_f30k_eager", "eval_f30k_compile"}
    assert all("--precision bf16" in c for c in commands.values())
    assert "--compile" in commands["finetune_compile"] and "--compile" not in commands["finetune_eager"]
    assert "--mode two-stage" in commands["eval_f30k_compile"] and "--compile" in commands["eval_f30k_compile"]
    summary = result["summary"]
    for variant in ("eager", "compile"):
        t, e = summary["finetune_vqa"][variant], summary["eval_f30k"][variant]
        assert t["samples_per_s"] > 0 and 0 < t["mfu"] and t["tflops"] > 0
        # the synthetic F30K test split at the dry run's scale: 10 images, 5 captions each
        assert (e["images"], e["texts"]) == (10, 50) and e["pairs"] > 0 and e["pairs_per_s"] > 0
        assert e["mfu"] > 0 and len(e["times_physical_limit"]) == 2
    assert summary["eval_vqa"]["questions"] > 0 and summary["eval_vqa"]["projected_test_dev_s"] > 0
    # what docs/reproduce.md reads from gpu.json
    assert result["train"]["samples_per_s"] > 0 and result["eval"]["pairs_per_s"] > 0
    flops = result["flops"]
    # counted training FLOPs agree with the analytic count of benchmarks/gpu.py
    assert flops["vqa_train_per_sample"] == pytest.approx(flops["vqa_train_per_sample_analytic"], rel=0.15)
    assert "finetune vqa [eager" in run.stdout and "pairs/s" in run.stdout and "MFU" in run.stdout
