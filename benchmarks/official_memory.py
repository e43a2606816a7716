"""Peak memory of one base VQA fine-tuning step: sclbench vs the official SCL implementation, side by side.

Each measurement is a fresh single-threaded process that reports its resident memory (VmRSS, and the
peak VmHWM, from /proc/self/status) after each stage: interpreter start, `import torch`, the rest of
the imports, model build, optimizer build, then per step (forward + loss, backward, AdamW step,
zero_grad). The step is the same on both sides: a batch of 4 images at 224 px with 50-token texts
(same generator, same padding), the VQA head on the pooled features, BCE over the 3,129 answers times
3,129, backward, AdamW, gradients set to None. Two steps are run: the optimizer state only exists
after the first, so the second step (activations + gradients on top of parameters and AdamW state)
is the steady-state peak.

Variants (all interleaved, `--repeats` times each):

* `sclbench/model`: `assemble(SCLConfig.preset("base", "vqa", image_size=224))` and
  `engine.optim.build_optimizer` (the model and optimizer our trainer builds), imports limited to them.
* `sclbench/trainer`: the same step after the imports `sclbench finetune` makes (CLI, jobs, tasks,
  data pipeline, trainer).
* `sclbench@REF/model`: the model path of another source tree (`--before-root`, e.g. a `git archive`
  of an older commit), to show a change's effect in the same run.
* `official/model`: the official `SCLTransformer` built from its own VQA config (224 px, no checkpoint),
  loss from its own `objectives.compute_vqa`, optimizer from its own `scl_utils.set_schedule`
  (transformers' AdamW, its six parameter groups).
* `official/trainer`: the same after the imports of the official `run.py` (Lightning, the
  datamodules: torchvision, decord, cv2, pyarrow); only when `--official-trainer` is given.

The official code is never part of this repository: `--official-src` points at a checkout of it
outside the tree and `--official-python` at an interpreter that can import it (see the README section
"Peak memory: base fine-tuning step vs the official implementation" for the scratch environment).
This file only drives and reports: each measured process runs a file of `benchmarks/memory_workers/`
(`sclbench_worker.py`, `official_runner.py`, both on the step of `memory_step.py`), and the official
side also imports two stand-in packages from `benchmarks/official_shims/` (timm's `DropPath`/`to_2tuple`,
the `vlc` alias of `scl.modules`).
Weights are random on both sides (memory does not depend on their values); the official model's
CLIP archive is a generated TorchScript file with OpenAI's key names and shapes, and its RoBERTa is
built from roberta-base's sizes instead of read from the hard-coded cluster path.

    python -m benchmarks.official_memory --official-src /tmp/offcode --official-python /tmp/offvenv214/bin/python

Writes `benchmarks/results/official_memory.json` and `.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
STAGES = ("start", "torch", "imports", "model", "optimizer")

# The measured processes run files, not this module: the shared step and one worker per side live in
# memory_workers/ (run by path, so that folder, holding nothing else, is first on their sys.path), and
# the two stand-in packages the official code imports (timm, vlc) in official_shims/.
WORKERS = ROOT / "benchmarks" / "memory_workers"
SCLBENCH_WORKER = WORKERS / "sclbench_worker.py"
OFFICIAL_RUNNER = WORKERS / "official_runner.py"
OFFICIAL_SHIMS = ROOT / "benchmarks" / "official_shims"


# ---- driver -------------------------------------------------------------------------------------
def _env(pythonpath: list[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONPATH=os.pathsep.join(pythonpath),
    )
    return env


def run_variant(variant: dict, spec: dict, ctx: dict, timeout: float) -> dict:
    side = variant["side"]
    full = {**spec, "path": variant["path"]}
    if side == "official":
        cmd = [
            ctx["official_python"],
            str(OFFICIAL_RUNNER),
            "run",
            json.dumps({**full, "archive": str(ctx["archive"])}),
        ]
        env = _env([str(OFFICIAL_SHIMS), ctx["official_src"]])
    else:
        root = variant.get("root", str(ROOT))
        # Only the chosen tree: the worker is run by path from the temporary folder, so its own folder
        # (the workers only) and this tree's sclbench on PYTHONPATH decide what it imports.
        cmd = [ctx["sclbench_python"], str(SCLBENCH_WORKER), json.dumps(full)]
        env = _env([root])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:400]
        return {"error": f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def summarise(runs: list[dict]) -> dict:
    """Per variant: min / max / median of every stage and of the derived attribution."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["variant"] for r in runs):
        ok = [r["stages"] for r in runs if r["variant"] == name and "error" not in r["stages"]]
        if not ok:
            out[name] = {"error": next(r["stages"]["error"] for r in runs if r["variant"] == name)}
            continue
        derived = [attribution(s) for s in ok]
        keys = [k for k, v in ok[0].items() if isinstance(v, (int, float))]
        stats = {k: _spread([s[k] for s in ok]) for k in keys}
        stats.update({k: _spread([d[k] for d in derived]) for k in derived[0]})
        out[name] = {
            "n": len(ok),
            "stats": stats,
            "heavy_modules": ok[0].get("heavy_modules"),
            "torch_version": ok[0].get("torch_version"),
        }
    return out


def attribution(s: dict) -> dict:
    """Where the peak goes, in MB: imports beyond torch, model build, activations, the step on top of
    the model. Activations are read in step 1: in step 2 the forward reuses the heap pages the freed
    step-1 gradients left, so its RSS growth understates them."""
    return {
        "import_torch_mb": s["torch"] - s["start"],
        "imports_beyond_torch_mb": s["imports"] - s["torch"],
        "model_build_mb": s["model"] - s["imports"],
        "activations_mb": s["step1_forward"] - s["step1_before"],
        "step_peak_over_model_mb": s["peak"] - s["optimizer"],
        "peak_mb": s["peak"],
    }


def _spread(values: list[float]) -> dict:
    return {"min": round(min(values), 1), "max": round(max(values), 1), "median": round(statistics.median(values), 1)}


ROWS = [  # (label, stat key)
    ("after `import torch`", "torch"),
    ("after all imports", "imports"),
    ("after model build", "model"),
    ("step 1 forward + backward peak (no AdamW state yet)", "step1_backward_peak"),
    ("step 1 peak (AdamW state created in its first step)", "step1_peak"),
    ("**peak (step 2: parameters + AdamW state + activations + gradients)**", "peak"),
    ("imports beyond torch", "imports_beyond_torch_mb"),
    ("model build (parameters + construction)", "model_build_mb"),
    ("parameters (exact bytes)", "params_mb"),
    ("AdamW state (exact bytes)", "optimizer_state_mb"),
    ("gradients (exact bytes)", "grads_mb"),
    ("activations held for backward (RSS growth over the step-1 forward)", "activations_mb"),
    ("step peak over model + optimizer", "step_peak_over_model_mb"),
]


def markdown(report: dict) -> str:
    summary, names = report["summary"], list(report["summary"])
    ref = next((n for n in names if n.startswith("official/model")), None)
    head = "| MB (min–max over repeats) | " + " | ".join(f"`{n}`" for n in names) + " |"
    lines = [head, "|---|" + "---:|" * len(names)]
    for label, key in ROWS:
        cells = []
        for n in names:
            st = summary[n].get("stats", {}).get(key)
            lo, hi = ("", "") if st is None else (f"{st['min']:,.0f}", f"{st['max']:,.0f}")
            cells.append("–" if st is None else lo if lo == hi else f"{lo}–{hi}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if ref and "stats" in summary[ref]:
        base = summary[ref]["stats"]["peak"]["median"]
        ratios = [
            f"{summary[n]['stats']['peak']['median'] / base:.3f}" if "stats" in summary[n] else "–" for n in names
        ]
        lines.append("| peak / official peak (medians) | " + " | ".join(ratios) + " |")
    lines.append("")
    for n in names:
        s = summary[n]
        lines.append(
            f"- `{n}`: "
            + (
                s["error"]
                if "error" in s
                else f"n = {s['n']}, torch {s['torch_version']}, heavy modules imported: "
                f"{', '.join(s['heavy_modules']) or 'none'}"
            )
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--official-src", help="checkout of the official SCL code (outside this repository)")
    ap.add_argument("--official-python", help="interpreter that imports it (its scratch venv)")
    ap.add_argument("--official-trainer", action="store_true", help="also measure the official run.py imports")
    ap.add_argument(
        "--sclbench-python",
        default=sys.executable,
        help="interpreter for the sclbench side (default: this one), e.g. a venv with the torch build "
        "the official side uses",
    )
    ap.add_argument("--before-root", help="another sclbench source tree (e.g. a git archive of an older commit)")
    ap.add_argument("--before-label", default="before")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--preset", default="base", help="sclbench preset (tiny: a seconds-long smoke run, sclbench only)")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--name", default="official_memory")
    ap.add_argument("--only", nargs="+", help="variant names to run (default: all)")
    ap.add_argument("--render", metavar="JSON", help="only re-render the tables of a saved report")
    args = ap.parse_args(argv)
    if args.render:
        report = json.loads(Path(args.render).read_text())
        report["summary"] = summarise(report["runs"])
        Path(args.render).write_text(json.dumps(report, indent=1) + "\n")
        Path(args.render).with_suffix(".md").write_text(markdown(report))
        print(markdown(report))
        return report

    variants = [
        {"name": "sclbench/model", "side": "sclbench", "path": "model"},
        {"name": "sclbench/trainer", "side": "sclbench", "path": "trainer"},
    ]
    if args.before_root:
        variants.insert(
            0,
            {
                "name": f"sclbench@{args.before_label}/model",
                "side": "sclbench",
                "path": "model",
                "root": str(Path(args.before_root).resolve()),
            },
        )
    if args.official_src:
        if not args.official_python:
            ap.error("--official-src needs --official-python")
        variants.append({"name": "official/model", "side": "official", "path": "model"})
        if args.official_trainer:
            variants.append({"name": "official/trainer", "side": "official", "path": "trainer"})
    if args.only:
        variants = [v for v in variants if v["name"] in args.only]
    spec = {"batch": args.batch, "image_size": args.image_size, "steps": args.steps, "preset": args.preset}
    from benchmarks.common import machine_info

    report: dict[str, Any] = {
        "settings": {
            **spec,
            "repeats": args.repeats,
            "threads": 1,
            "official_src": args.official_src,
            "official_python": args.official_python,
            "sclbench_python": args.sclbench_python,
            "before_root": args.before_root,
        },
        "machine": machine_info(),
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="sclbench-official-memory-") as tmp:
        ctx: dict[str, Any] = {"sclbench_python": args.sclbench_python}
        if args.official_src:
            ctx.update(
                archive=Path(tmp) / "ViT-B-16.pt",
                official_python=args.official_python,
                official_src=str(Path(args.official_src).resolve()),
            )
            subprocess.run(
                [args.official_python, str(OFFICIAL_RUNNER), "prepare", str(ctx["archive"])],
                check=True,
                env=_env([str(OFFICIAL_SHIMS), ctx["official_src"]]),
                cwd=tmp,
                capture_output=True,
            )
        for rep in range(args.repeats):  # interleaved: a drift of the machine's state hits every variant
            for v in variants:
                stages = run_variant(v, spec, ctx, args.timeout)
                report["runs"].append({"variant": v["name"], "repeat": rep, "stages": stages})
                print(
                    f"  {v['name']:24s} repeat {rep}: "
                    + (
                        stages["error"]
                        if "error" in stages
                        else f"imports {stages['imports']:,.0f}  model {stages['model']:,.0f}  "
                        f"peak {stages['peak']:,.0f} MB"
                    ),
                    flush=True,
                )
    report["summary"] = summarise(report["runs"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"{args.name}.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
