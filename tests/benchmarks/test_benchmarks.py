"""Smoke tests of the benchmark harness at tiny size: structure and correctness, never timings."""

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` is a top-level folder, not part of the installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import common, gpu, report, run, train_bench  # noqa: E402
from benchmarks import retrieval_bench as rb  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("mask_kind", [None, "float", "bool", "causal"])
def test_eager_attention_matches_sdpa(mask_kind):
    q, k, v = (torch.randn(2, 3, 7, 8) for _ in range(3))
    kwargs = {}
    if mask_kind == "float":
        kwargs["attn_mask"] = torch.where(torch.rand(2, 1, 1, 7) < 0.3, -10000.0, 0.0)
    elif mask_kind == "bool":
        kwargs["attn_mask"] = torch.rand(2, 1, 7, 7) > 0.3
        kwargs["attn_mask"][..., 0] = True  # no fully masked row
    elif mask_kind == "causal":
        kwargs["is_causal"] = True
    ref = F.scaled_dot_product_attention(q, k, v, **kwargs)
    torch.testing.assert_close(common.eager_attention(q, k, v, **kwargs), ref, atol=1e-5, rtol=1e-5)


def test_eager_swap_reaches_every_attention_and_restores():
    model = rb.tiny_model("vqa")
    ids, masks = torch.randint(4, 999, (2, 10)), torch.ones(2, 10, dtype=torch.long)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(ids, masks, images).cls_feats
        with common.eager_attention_everywhere() as calls:
            alt = model(ids, masks, images).cls_feats
    cfg = model.config
    # ViT blocks + RoBERTa layers + 2 attentions per co-attention layer in each of the two streams.
    assert calls["n"] == cfg.vision_layers + cfg.text_layers + 4 * cfg.num_top_layer
    assert F.scaled_dot_product_attention is common._SDPA
    torch.testing.assert_close(alt, ref, atol=1e-5, rtol=1e-5)


def test_hash_tokenizer_lengths_vary_and_are_deterministic():
    tok = common.HashTokenizer(1000)
    texts = common.synthetic_captions(6, seed=3)
    a, b = tok(texts, max_length=24), tok(texts, max_length=24)
    assert torch.equal(a["input_ids"], b["input_ids"])
    assert len(set(a["attention_mask"].sum(1).tolist())) > 1


def test_compare_modes_structure_and_cache_identity():
    out = rb.compare_modes(rb.tiny_model(), n_img=12, k=4, pair_batch=64, exhaustive_max_pairs=256)
    modes = [r["mode"] for r in out["rows"]]
    assert modes == ["exhaustive", "two-stage", "two-stage (cached features)"]
    exh, two, cached = out["rows"]
    assert exh["extrapolated"] and exh["measured_pairs"] == 256 and exh["cross_encoder_passes"] == 12 * 60
    assert two["cross_encoder_passes"] == cached["cross_encoder_passes"] < exh["cross_encoder_passes"]
    assert out["cached_scores_identical"] and cached["recall"] == two["recall"]
    assert out["passes_ratio"] > 1


def test_agreement_covering_k_is_identical():
    out = rb.agreement(rb.tiny_model(), n_img=6, k_small=3, pair_batch=32)
    assert out["covering_k"]["scores_identical"] and out["covering_k"]["recall_identical"]
    assert out["small_k"]["passes"] < 6 * 30


def test_scaling_exponents():
    out = rb.scaling(rb.tiny_model(), sizes=[4, 8], k=4, pair_batch=64, count_sizes=[32, 64])
    g = out["growth_exponent"]
    assert g["exhaustive_passes"] == pytest.approx(2.0)
    assert 0.8 < g["two_stage_passes"] < 1.3
    assert [r["measured"] for r in out["rows"]] == [True, True, False, False]


def test_train_variant_worker_eager():
    row = train_bench.run_variant(
        {"preset": "tiny", "image_size": None, "batch": 4, "steps": 1, "warmup": 0, "variant": "eager"}, timeout=120
    )
    assert "skipped" not in row, row
    assert row["samples_per_s"] > 0 and row["peak_rss_mb"] > 0
    assert row["max_abs_diff_vs_sdpa"] < 1e-4 and row["eager_calls_per_forward"] > 0


def test_run_quick_writes_json_and_keeps_readme_prose(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\nHand-written prose.\n")
    for _ in range(2):  # the second run replaces the block instead of appending another
        rep = run.main(["--quick", "--out", str(tmp_path), "--readme", str(readme), "--skip", "train", "dataloader"])
    data = json.loads((tmp_path / "quick.json").read_text())
    assert data["retrieval"]["main"]["rows"][0]["mode"] == "exhaustive" and rep["mode"] == "quick"
    text = readme.read_text()
    assert "Hand-written prose." in text and text.count(report.BEGIN) == 1 and text.count(report.END) == 1


def test_targets_report_gpu_targets_unmeasured():
    rep = {
        "retrieval": {
            "main": {
                "n_images": 1000,
                "n_texts": 5000,
                "k": 128,
                "passes_ratio": 6.5,
                "wall_ratio": 6.0,
                "wall_ratio_cached": 6.1,
                "rows": [{"extrapolated": True}],
            },
            "agreement": {"covering_k": {"scores_identical": True, "recall_identical": True}},
        },
        "train": {
            "throughput_vs_sdpa": {"base": {"sdpa": 1.0, "eager": 0.5}},
            "rows": [{"preset": "base", "image_size": 224, "batch": 2}],
        },
    }
    got = {t["target"]: t["met"] for t in run.targets(rep)}
    assert list(got.values()) == [True, True, True, True, None, None]


def test_gpu_script_without_cuda_exits_with_message(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert gpu.main([]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_gpu_cpu_smoke(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    assert gpu.main(["--cpu-smoke", "--out", str(out), "--steps", "1", "--warmup", "0"]) == 0
    data = json.loads(out.read_text())
    assert all(data["checks"].values()), data["checks"]
    assert data["mode"] == "cpu-smoke" and data["targets"] is None
    assert data["eval"]["covering_k_identical"] and not data["eval"]["extrapolated"]
    assert data["train"]["flops_per_step"] > 0 and "sdpa_speedup_vs_eager" in data["train"]


def test_peak_table_and_override(monkeypatch):
    monkeypatch.delenv("SCLBENCH_PEAK_TFLOPS", raising=False)
    assert gpu.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert gpu.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert gpu.peak_tflops("NVIDIA H200") == 989.0 and gpu.peak_tflops("weird") is None
    monkeypatch.setenv("SCLBENCH_PEAK_TFLOPS", "100")
    assert gpu.peak_tflops("NVIDIA H100 80GB HBM3") == 100.0


# End-to-end runs (subprocesses, training, compiling, fuzzing real jobs): CI runs them; the fast lane
# (-m "not slow") leaves them out to stay under two minutes.
pytestmark = pytest.mark.slow
