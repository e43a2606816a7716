"""Smoke test of benchmarks/official_memory.py: the sclbench side at tiny size (stages, exact byte
counts, the report), and the worker files both sides run (real modules: they compile and import; nothing
official is run)."""

import importlib
import importlib.util
import json
import py_compile
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import official_memory  # noqa: E402


def test_sclbench_side_tiny(tmp_path):
    rep = official_memory.main(["--preset", "tiny", "--repeats", "1", "--out", str(tmp_path), "--name", "t"])
    saved = json.loads((tmp_path / "t.json").read_text())
    assert [r["variant"] for r in saved["runs"]] == ["sclbench/model", "sclbench/trainer"]
    for run in saved["runs"]:
        s = run["stages"]
        assert "error" not in s, s
        assert s["start"] < s["torch"] <= s["imports"] <= s["model"] <= s["peak"]
        assert s["step2_peak"] >= s["step1_peak"]
        # AdamW keeps two fp32 moments (+ a step counter) per trainable parameter: twice the gradients.
        assert 2 * s["grads_mb"] <= s["optimizer_state_mb"] < 2 * s["grads_mb"] + 0.01
    model = rep["summary"]["sclbench/model"]
    # The model path builds and trains without transformers' modelling stack or torchvision.
    assert model["heavy_modules"] == []
    assert "| **peak" in (tmp_path / "t.md").read_text()


def test_runner_files_are_modules():
    """Every file the measured processes run or import is a real file of the tree that compiles."""
    files = sorted(official_memory.WORKERS.glob("*.py")) + sorted(official_memory.OFFICIAL_SHIMS.rglob("*.py"))
    assert official_memory.SCLBENCH_WORKER in files and official_memory.OFFICIAL_RUNNER in files
    for rel in ("timm/__init__.py", "timm/models/layers.py", "vlc/modules/__init__.py"):
        assert official_memory.OFFICIAL_SHIMS / rel in files
    for path in files:
        py_compile.compile(str(path), doraise=True)


def test_workers_import_as_their_processes_do(monkeypatch):
    """Imported with the workers' folder first on sys.path, as running them by path sets it; the
    official runner imports the official code only inside its functions, so it imports here too."""
    monkeypatch.syspath_prepend(str(official_memory.WORKERS))
    for name in ("memory_step", "sclbench_worker", "official_runner"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    step = importlib.import_module("memory_step")
    worker = importlib.import_module("sclbench_worker")
    runner = importlib.import_module("official_runner")
    # Both sides measure the same step: one shared definition, not two copies.
    assert worker.run_steps is step.run_steps and runner.run_steps is step.run_steps
    assert runner.make_batch is step.make_batch
    batch = step.make_batch(2, 12, 16, vocab=100, answers=10)
    assert batch["vqa_targets"].shape == (2, 10) and batch["images"].shape == (2, 3, 16, 16)
    # OpenAI's ViT-B/16 archive: 14 top-level tensors and 12 per residual block, 12 blocks per tower.
    shapes = runner.clip_archive_shapes()
    assert len(shapes) == 14 + 2 * 12 * 12
    assert shapes["visual.positional_embedding"] == (197, 768)
    for name in worker.TRAINER_IMPORTS:
        assert importlib.util.find_spec(name) is not None, name


def test_droppath_shim():
    import torch

    spec = importlib.util.spec_from_file_location(
        "official_shim_layers", official_memory.OFFICIAL_SHIMS / "timm" / "models" / "layers.py"
    )
    layers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layers)
    assert layers.to_2tuple(3) == (3, 3) and layers.to_2tuple([2, 5]) == (2, 5)
    torch.manual_seed(0)
    x = torch.ones(64, 4)
    drop = layers.DropPath(0.5)
    assert torch.equal(drop.eval()(x), x)  # identity at evaluation
    out = drop.train()(x)
    kept = out[:, 0] != 0
    assert 0 < kept.sum() < 64  # whole rows dropped, survivors scaled by 1 / keep
    assert torch.equal(out[kept], torch.full_like(out[kept], 2.0))


# End-to-end runs (subprocesses, training, compiling, fuzzing real jobs): CI runs them; the fast lane
# (-m "not slow") leaves them out to stay under two minutes.
pytestmark = pytest.mark.slow
