"""Smoke test of benchmarks/official_memory.py: the sclbench side at tiny size (stages, exact byte
counts, the report), and the generated official runner (it compiles; nothing official is run)."""

import json
import py_compile
import sys
from pathlib import Path

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


def test_generated_official_runner_compiles(tmp_path):
    runner = official_memory.write_official_runner(tmp_path)
    py_compile.compile(str(runner), doraise=True)
    assert (tmp_path / "shims" / "timm" / "models" / "layers.py").is_file()
    assert (tmp_path / "shims" / "vlc" / "modules" / "__init__.py").is_file()
    worker = official_memory.write_sclbench_worker(tmp_path)
    py_compile.compile(str(worker), doraise=True)
