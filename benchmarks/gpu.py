"""GPU benchmark (issue 7): the base model's VQA fine-tuning step in bf16 — achieved TFLOP/s and MFU —
and the wall time of an F30K-size (1,000 images x 5,000 texts, k = 128) two-stage evaluation.

    bash benchmarks/gpu.sh                     # on a CUDA machine; prints one JSON summary
    python -m benchmarks.gpu --cpu-smoke       # the same code at tiny size on CPU (a check, no figures)

FLOPs. Measured with torch.utils.flop_counter.FlopCounterMode over one forward + backward (matmuls,
convolutions and attention, as dispatched), and cross-checked against the analytic count
(`analytic_train_flops`): forward matmul FLOPs = 2 x multiply-adds, per sample, with Nv = (S/p)^2 + 1
image tokens, Nt text tokens, d = width, f = FFN width, per layer:
  ViT block       2*Nv*(4*d^2 + 2*d*f) + 4*Nv^2*d            (q,k,v,o + MLP; QK^T and AV)
  RoBERTa layer   2*Nt*(4*d^2 + 2*d*f) + 4*Nt^2*d
  co-attn layer   image stream: 2*Nv*(4d^2 + 2d^2 + 2d*f) + 2*Nt*2d^2 + 4*Nv^2*d + 4*Nv*Nt*d,
                  text stream: the same with Nv and Nt swapped
  plus the patch conv 2*(Nv-1)*3*p^2*d, the two transforms, poolers and the classifier;
training = 3 x forward (the backward computes gradients for inputs and weights: 2 x forward).
MFU = achieved FLOP/s / peak dense bf16 FLOP/s of the device (H100 SXM and H200: 989 TFLOP/s; set
SCLBENCH_PEAK_TFLOPS to override or for other devices).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from benchmarks.common import eager_attention_everywhere, machine_info
from sclbench.adapters.scl_retrieval import scl_features
from sclbench.model import SCLConfig
from sclbench.model.factory import assemble
from sclbench.tasks.precision import EvalPrecision
from sclbench.tasks.retrieval_scoring import Features, RetrievalOptions, candidate_pairs, retrieval_scores, score_pairs

PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
)


def peak_tflops(device_name: str | None) -> float | None:
    if os.environ.get("SCLBENCH_PEAK_TFLOPS"):
        return float(os.environ["SCLBENCH_PEAK_TFLOPS"])
    for key, value in PEAK_BF16_TFLOPS:  # most specific names first
        if device_name and key in device_name:
            return value
    return None


def analytic_train_flops(cfg: SCLConfig, batch: int, text_len: int) -> float:
    nv, nt, d, p = cfg.num_patches + 1, text_len, cfg.hidden_size, cfg.patch_size
    dv, fv = cfg.vision_width, 4 * cfg.vision_width
    vit = cfg.vision_layers * (2 * nv * (4 * dv**2 + 2 * dv * fv) + 4 * nv**2 * dv) + 2 * (nv - 1) * 3 * p * p * dv
    text = cfg.text_layers * (2 * nt * (4 * d**2 + 2 * d * cfg.text_intermediate_size) + 4 * nt**2 * d)
    fc = cfg.cross_intermediate_size

    def stream(n_self: int, n_other: int) -> int:
        return (
            2 * n_self * (6 * d**2 + 2 * d * fc) + 2 * n_other * 2 * d**2 + 4 * n_self**2 * d + 4 * n_self * n_other * d
        )

    fusion = cfg.num_top_layer * (stream(nv, nt) + stream(nt, nv))
    rest = 2 * nt * d * d + 2 * nv * dv * d + 2 * 2 * d * d + 2 * (2 * d * 2 * d + 2 * d * cfg.num_answers)
    return 3.0 * batch * (vit + text + fusion + rest)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _batch(cfg: SCLConfig, batch: int, device: torch.device) -> dict:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(cfg.max_text_len // 3, cfg.max_text_len + 1, (batch,), generator=g)
    masks = (torch.arange(cfg.max_text_len)[None] < lengths[:, None]).long()
    ids = torch.randint(4, cfg.vocab_size, (batch, cfg.max_text_len), generator=g) * masks + (1 - masks)
    b = {
        "ids": ids,
        "masks": masks,
        "images": torch.randn(batch, 3, cfg.image_size, cfg.image_size, generator=g),
        "targets": (torch.rand(batch, cfg.num_answers, generator=g) < 0.002).float(),
    }
    return {k: v.to(device) for k, v in b.items()}


def train_section(
    preset: str, image_size: int | None, batch: int | None, steps: int, warmup: int, device: torch.device, eager: bool
) -> dict:
    torch.manual_seed(0)
    cfg = SCLConfig.preset(preset, "vqa", **({"image_size": image_size} if image_size else {}))
    model = assemble(cfg)[0].to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, **({"fused": True} if device.type == "cuda" else {}))

    def make_step(b: dict):
        def step():
            with torch.autocast(device.type, dtype=torch.bfloat16):
                out = model(b["ids"], b["masks"], b["images"])
                logits = model.vqa_classifier(out.cls_feats)
            loss = F.binary_cross_entropy_with_logits(logits.float(), b["targets"]) * logits.shape[1]
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step

    def timed_steps(step, n: int, n_warm: int) -> float:
        for _ in range(n_warm):
            step()
        times = []
        for _ in range(n):
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    # Batch sized to the GPU: start from what its memory suggests and halve on out-of-memory.
    if batch is None:
        mem_gib = torch.cuda.get_device_properties(device).total_memory / 2**30 if device.type == "cuda" else 0
        batch = 96 if mem_gib > 120 else 64 if mem_gib > 60 else 32 if device.type == "cuda" else 4
    while True:
        b = _batch(cfg, batch, device)
        try:
            make_step(b)()  # also the first warm-up step
            break
        except torch.OutOfMemoryError:
            opt.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            if batch <= 1:
                raise
            batch //= 2
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step_s = timed_steps(make_step(b), steps, warmup)
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:  # forward + backward of one step (the optimizer's elementwise work is not counted)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = model(b["ids"], b["masks"], b["images"])
            logits = model.vqa_classifier(out.cls_feats)
        (F.binary_cross_entropy_with_logits(logits.float(), b["targets"]) * logits.shape[1]).backward()
    opt.zero_grad(set_to_none=True)
    flops = float(counter.get_total_flops())
    result = {
        "preset": preset,
        "image_size": cfg.image_size,
        "batch": batch,
        "text_len": cfg.max_text_len,
        "params_m": round(model.num_parameters() / 1e6, 1),
        "step_s": round(step_s, 4),
        "samples_per_s": round(batch / step_s, 2),
        "flops_per_step": flops,
        "flops_per_step_analytic": analytic_train_flops(cfg, batch, cfg.max_text_len),
        "achieved_tflops": round(flops / step_s / 1e12, 2),
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    if eager:  # same weights, same batch: SDPA against softmax(QK^T)V written out
        n, cmp_batch, sdpa_s = max(steps // 2, 2), batch, step_s
        while "eager_step_s" not in result:
            try:
                with eager_attention_everywhere() as calls:
                    eager_s = timed_steps(make_step(b), n, 1)
                result.update(
                    eager_step_s=round(eager_s, 4),
                    eager_batch=cmp_batch,
                    sdpa_speedup_vs_eager=round(eager_s / sdpa_s, 2),
                    eager_attention_calls=calls["n"],
                )
            except torch.OutOfMemoryError:
                # The eager score matrices (B x heads x N x N, kept for backward) need far more memory
                # than SDPA: compare both at a smaller batch instead.
                opt.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                if cmp_batch <= 1:
                    result["eager_step_s"] = "out of memory"
                    break
                cmp_batch //= 2
                b = _batch(cfg, cmp_batch, device)
                sdpa_s = timed_steps(make_step(b), n, 1)
    model = opt = None  # let the training section's memory go before the caller's next section
    return result


def eval_section(
    preset: str, image_size: int | None, n_img: int, k: int, pair_batch: int, device: torch.device, budget_s: float
) -> dict:
    """Two-stage retrieval of n_img images x 5 n_img texts on synthetic unimodal features, scored by
    the library's engine as `sclbench eval --precision bf16` scores them: fp32 weights under bf16
    autocast, bf16 features (what autocast's encoders return) resident on the device, pair-independent
    fusion parts once per text/image (the probe also measures the per-pair `fuse` it replaced)."""
    torch.manual_seed(0)
    overrides = {"image_size": image_size} if image_size else {}
    model = assemble(SCLConfig.preset(preset, "f30k", **overrides))[0].to(device).eval()
    dtype = torch.bfloat16  # on CPU too, so that --cpu-smoke runs the same bf16 path
    precision = EvalPrecision("bf16", device_type=device.type)
    cfg, n_txt = model.config, 5 * n_img
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(10, 26, (n_txt,), generator=g)  # F30K captions: ~10-25 RoBERTa tokens
    masks = (torch.arange(cfg.max_text_len)[None] < lengths[:, None]).long()
    # Contrastive features shaped like a trained model's: each caption near its image.
    v_proj = F.normalize(torch.randn(n_img, 256, generator=g), dim=-1)
    t_proj = F.normalize(v_proj.repeat_interleave(5, 0) + 0.8 * torch.randn(n_txt, 256, generator=g) / 16, dim=-1)
    feats = Features(
        *scl_features(
            torch.randn(n_txt, cfg.max_text_len, cfg.hidden_size, generator=g).to(device, dtype),
            masks,
            t_proj,
            torch.randn(n_img, cfg.num_patches + 1, cfg.hidden_size, generator=g).to(device, dtype),
            v_proj,
        )
    )
    opts = RetrievalOptions(mode="two-stage", k=k, pair_batch_size=pair_batch)
    pairs, _, _ = candidate_pairs(v_proj @ t_proj.t(), opts)
    result = {
        "n_images": n_img,
        "n_texts": n_txt,
        "k": k,
        "pair_batch_size": pair_batch,
        "image_tokens": cfg.num_patches + 1,
        "dtype": str(dtype),
        "precision": precision.protocol(),
        "cross_encoder_passes": int(len(pairs)),
    }
    # Probe: a few chunks give the rate (and warm the kernels); a run that would overrun the budget
    # is extrapolated from a longer prefix instead, and says so.
    probe = pairs[: min(len(pairs), 8 * pair_batch)]
    per_pair = RetrievalOptions(mode="two-stage", k=k, pair_batch_size=pair_batch, shared_fusion=False)
    rates = {}
    for name, o in (("per_pair_fuse", per_pair), ("shared_fusion", opts)):
        score_pairs(model, feats, probe[:pair_batch], o, precision=precision)
        _sync(device)
        start = time.perf_counter()
        score_pairs(model, feats, probe, o, precision=precision)
        _sync(device)
        rates[name] = len(probe) / (time.perf_counter() - start)
    rate = rates["shared_fusion"]
    result["probe_pairs_per_s"] = {name: round(r, 1) for name, r in rates.items()}
    result["shared_fusion_speedup"] = round(rates["shared_fusion"] / rates["per_pair_fuse"], 3)
    result["projected_scoring_s"] = round(len(pairs) / rate, 1)
    if len(pairs) / rate <= budget_s:
        start = time.perf_counter()
        res = retrieval_scores(model, feats, opts, precision)
        _sync(device)
        result.update(
            wall_s=round(time.perf_counter() - start, 2),
            extrapolated=False,
            pairs_per_s=round(res["pairs_per_s"], 1),
            scores_finite=bool(torch.isfinite(res["i2t"][res["i2t"] > float("-inf")]).all()),
            passes_match=res["cross_encoder_passes"] == len(pairs),
        )
    else:
        result.update(wall_s=round(len(pairs) / rate, 2), extrapolated=True, pairs_per_s=round(rate, 1))
    # Agreement on a corner of the set: k covering all candidates must reproduce exhaustive exactly.
    small = Features(
        *scl_features(feats.texts["tokens"][:40], masks[:40], t_proj[:40], feats.media["tokens"][:8], v_proj[:8])
    )
    exh = retrieval_scores(model, small, RetrievalOptions(mode="exhaustive", pair_batch_size=pair_batch), precision)
    cov = retrieval_scores(
        model, small, RetrievalOptions(mode="two-stage", k=40, pair_batch_size=pair_batch), precision
    )
    result["covering_k_identical"] = torch.equal(exh["i2t"], cov["i2t"]) and torch.equal(exh["t2i"], cov["t2i"])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="run the same code at tiny size on CPU")
    parser.add_argument("--batch-size", type=int, help="training batch (default: sized to the GPU's memory)")
    parser.add_argument("--image-size", type=int, default=384)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--n-images", type=int, default=1000)
    parser.add_argument("--k", type=int, default=128)
    parser.add_argument("--pair-batch", type=int, default=256)
    parser.add_argument(
        "--eval-budget-s",
        type=float,
        default=170.0,
        help="extrapolate the evaluation instead of running it when projected past this",
    )
    parser.add_argument("--no-eager", action="store_true", help="skip the eager-attention comparison")
    parser.add_argument("--out", help="also write the JSON summary to this file")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() and not args.cpu_smoke:
        print(
            "benchmarks/gpu.py: no CUDA GPU is available (torch.cuda.is_available() is False). This "
            "benchmark measures GPU throughput only; run `python -m benchmarks.gpu --cpu-smoke` to check "
            "the code on CPU, or `python -m benchmarks.run` for the CPU suite.",
            file=sys.stderr,
        )
        return 2
    smoke = args.cpu_smoke
    device = torch.device("cpu" if smoke else "cuda")
    if smoke:
        torch.set_num_threads(1)
        preset, image_size, n_img, k = "tiny", None, 20, 8
        steps, warmup, batch = 2, 1, args.batch_size or 4
    else:
        preset, image_size, n_img, k = "base", args.image_size, args.n_images, args.k
        steps, warmup, batch = args.steps, args.warmup, args.batch_size
    os.environ.setdefault("SCLBENCH_NO_PROGRESS", "1")
    began = time.perf_counter()
    info = machine_info()
    peak = peak_tflops(info["cuda"])
    train = train_section(preset, image_size, batch, steps, warmup, device, eager=not args.no_eager)
    train["peak_bf16_tflops"] = peak
    train["mfu"] = round(train["achieved_tflops"] / peak, 4) if peak else None
    evaluation = eval_section(preset, image_size, n_img, k, args.pair_batch, device, args.eval_budget_s)
    checks = {
        "flops_counted": train["flops_per_step"] > 0,
        "flops_match_analytic_within_15pct": abs(train["flops_per_step"] / train["flops_per_step_analytic"] - 1) < 0.15,
        "mfu_in_0_1": train["mfu"] is None or 0 < train["mfu"] <= 1,
        "covering_k_identical": evaluation["covering_k_identical"],
        "eval_scores_finite": evaluation.get("scores_finite", True),
        "eval_passes_match": evaluation.get("passes_match", True),
    }
    targets = None
    if not smoke:
        targets = {
            "mfu_ge_45pct": train["mfu"] is not None and train["mfu"] >= 0.45,
            "f30k_two_stage_le_180s": evaluation["wall_s"] <= 180,
        }
    summary = {
        "benchmark": "gpu",
        "mode": "cpu-smoke" if smoke else "gpu",
        "machine": info,
        "train": train,
        "eval": evaluation,
        "checks": checks,
        "targets": targets,
        "total_wall_s": round(time.perf_counter() - began, 1),
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
