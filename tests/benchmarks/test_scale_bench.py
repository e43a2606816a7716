"""Smoke test of the evaluation-at-scale benchmark (benchmarks/scale_bench.py) at tiny size: the
structure and the correctness checks it reports, never its timings."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import scale_bench  # noqa: E402


def test_scale_bench_quick(tmp_path):
    rep = scale_bench.main(["--quick", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "scale_quick.json").read_text())["mode"] == "quick"
    (shared,) = rep["shared_fusion"]
    assert shared["max_abs_score_diff"] < 1e-5  # before and after compute the same scores
    assert shared["before_per_pair_passes_per_s"] > 0 and shared["after_shared_passes_per_s"] > 0
    # Interleaved timing: one before/after ratio per pair batch and round; the FLOP count says the work went down.
    n_batches = -(-shared["pairs"] // shared["pair_batch"])
    assert shared["speedup_spread"]["n"] == shared["cpu_time_speedup_spread"]["n"] == shared["rounds"] * n_batches
    assert shared["flop_ratio"] > 1
    # --only keeps the other sections of the report it rewrites.
    scale_bench.main(["--quick", "--out", str(tmp_path), "--only", "shared_fusion"])
    again = json.loads((tmp_path / "scale_quick.json").read_text())
    assert again["peak_memory"] == rep["peak_memory"] and set(again["measured"]) == set(scale_bench.SECTIONS)
    (prec,) = rep["precision"]
    assert 0 < prec["fidelity"]["max_abs_score_diff"] < 0.1  # bf16 moved the scores, a little
    mem = rep["peak_memory"]
    assert "skipped" not in mem, mem
    assert mem["cross_encoder_passes"] > mem["chunks_scored"] * mem["chunk_pairs"]  # a prefix, said so
    assert mem["peak_rss_mb"] >= mem["rss_after_imports_mb"] > 0


# End-to-end runs (subprocesses, training, compiling, fuzzing real jobs): CI runs them; the fast lane
# (-m "not slow") leaves them out to stay under two minutes.
pytestmark = pytest.mark.slow
