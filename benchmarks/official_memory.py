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
The runner for the official side, and two stand-in modules it needs (timm's `DropPath`/`to_2tuple`,
the `vlc` alias of `scl.modules`), are generated from this file's own text into a temporary folder.
Weights are random on both sides (memory does not depend on their values); the official model's
CLIP archive is a generated TorchScript file with OpenAI's key names and shapes, and its RoBERTa is
built from roberta-base's sizes instead of read from the hard-coded cluster path.

    python -m benchmarks.official_memory --official-src /tmp/offcode --official-python /tmp/offvenv214/bin/python

Writes `benchmarks/results/official_memory.json` and `.md`.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
STAGES = ("start", "torch", "imports", "model", "optimizer")

# The imports `sclbench finetune` makes before its first step (cli entry, verbs, job, task adapters,
# data pipeline, trainer); `_register()` imports every CLI group as the installed entry point does.
TRAINER_IMPORTS = (
    "sclbench.cli",
    "sclbench.cli.jobs",
    "sclbench.app.jobs",
    "sclbench.tasks",
    "sclbench.engine.trainer",
    "sclbench.data.transforms",
)


# ---- pieces shared verbatim by both sides (the official runner embeds their source) -------------
def status_mb(field: str) -> float:
    """VmRSS / VmHWM of this process in MB (not getrusage: Linux carries ru_maxrss across exec)."""
    with open("/proc/self/status") as fh:
        line = next(ln for ln in fh if ln.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def make_batch(batch: int, text_len: int, image_size: int, vocab: int = 50265, answers: int = 3129) -> dict:
    """Texts padded to `text_len` with random lengths, images, 3 scored answers per question (as
    lists, the official batch format, and as the dense target matrix our loss reads)."""
    import torch

    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(text_len // 3, text_len, (batch,), generator=g)
    masks = (torch.arange(text_len)[None] < lengths[:, None]).long()
    ids = torch.randint(4, vocab, (batch, text_len), generator=g) * masks + (1 - masks)
    images = torch.randn(batch, 3, image_size, image_size, generator=g)
    labels = [torch.randperm(answers, generator=g)[:3].tolist() for _ in range(batch)]
    scores = [[1.0, 0.6, 0.3] for _ in range(batch)]
    targets = torch.zeros(batch, answers)
    for row, (lab, sc) in enumerate(zip(labels, scores)):
        targets[row, lab] = torch.tensor(sc)
    return {
        "text_ids": ids,
        "text_masks": masks,
        "images": images,
        "vqa_labels": labels,
        "vqa_scores": scores,
        "vqa_targets": targets,
    }


def run_steps(stages: dict, steps: int, loss_fn, optimizer, parameters) -> None:
    """Forward + loss, backward, optimizer step, zero_grad(set_to_none): RSS after each, peak after all."""
    import torch

    for step in range(1, steps + 1):
        stages[f"step{step}_before"] = status_mb("VmRSS")
        loss = loss_fn()
        stages[f"step{step}_forward"] = status_mb("VmRSS")
        loss.backward()
        stages[f"step{step}_backward"] = status_mb("VmRSS")
        stages[f"step{step}_backward_peak"] = status_mb("VmHWM")  # forward + backward, before AdamW
        if step == 1:
            stages["grads_mb"] = (
                sum(p.grad.numel() * p.grad.element_size() for p in parameters if p.grad is not None) / 2**20
            )
        optimizer.step()
        stages[f"step{step}_optimizer"] = status_mb("VmRSS")
        optimizer.zero_grad(set_to_none=True)
        del loss
        stages[f"step{step}_peak"] = status_mb("VmHWM")
    stages["optimizer_state_mb"] = (
        sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t))
        / 2**20
    )
    stages["params_mb"] = sum(p.numel() * p.element_size() for p in parameters) / 2**20
    stages["trainable_params_m"] = sum(p.numel() for p in parameters if p.requires_grad) / 1e6
    stages["peak"] = status_mb("VmHWM")


# ---- sclbench side (this interpreter, or --before-root's tree on PYTHONPATH) ---------------------
def sclbench_worker(spec: dict) -> dict:
    stages: dict[str, Any] = {"start": status_mb("VmRSS")}
    import torch

    stages["torch"] = status_mb("VmRSS")
    torch.set_num_threads(1)
    import importlib
    import types

    import torch.nn.functional as F

    from sclbench.engine.optim import build_optimizer
    from sclbench.model import SCLConfig
    from sclbench.model.factory import assemble

    if spec["path"] == "trainer":
        for name in TRAINER_IMPORTS:
            importlib.import_module(name)  # sclbench.cli registers every CLI group on import
    stages["imports"] = status_mb("VmRSS")
    stages["modules"] = len(sys.modules)
    stages["heavy_modules"] = sorted(
        m
        for m in (
            "transformers.modeling_utils",
            "torchvision",
            "torch._dynamo",
            "timm",
            "pandas",
            "pycocotools",
            "scipy",
            "rich",
        )
        if m in sys.modules
    )
    torch.manual_seed(0)
    overrides = {"image_size": spec["image_size"]}
    if spec["preset"] == "tiny":
        overrides = {}
    model, _ = assemble(SCLConfig.preset(spec["preset"], "vqa", **overrides))
    model.train()
    stages["model"] = status_mb("VmRSS")
    # The official VQA recipe's optimizer settings (values do not change memory).
    recipe = types.SimpleNamespace(lr=5e-6, weight_decay=0.01, lr_mult_head=50, lr_mult_cross_modal=10)
    optimizer = build_optimizer(model, recipe)
    stages["optimizer"] = status_mb("VmRSS")
    cfg = model.config
    batch = make_batch(spec["batch"], cfg.max_text_len, cfg.image_size, cfg.vocab_size, cfg.num_answers)

    def loss_fn():  # what sclbench.tasks.vqa.VQATask.loss computes
        out = model(batch["text_ids"], batch["text_masks"], batch["images"])
        logits = model.vqa_classifier(out.cls_feats)
        return F.binary_cross_entropy_with_logits(logits, batch["vqa_targets"]) * logits.shape[1]

    run_steps(stages, spec["steps"], loss_fn, optimizer, list(model.parameters()))
    stages["torch_version"] = torch.__version__
    return stages


# ---- official side: generated runner (our text; it imports the official modules) -----------------
SHIMS = {
    "timm/__init__.py": '"""Stand-in for timm (the official MAE block imports two helpers from it)."""\n',
    "timm/models/__init__.py": "",
    "timm/models/layers.py": textwrap.dedent('''\
        """The two names the official MAE block imports: stochastic depth and an int -> pair helper."""
        import torch
        from torch import nn


        def to_2tuple(x):
            return tuple(x) if isinstance(x, (tuple, list)) else (x, x)


        class DropPath(nn.Module):
            def __init__(self, drop_prob=0.0):
                super().__init__()
                self.drop_prob = drop_prob

            def forward(self, x):
                if not self.training or not self.drop_prob:
                    return x
                keep = 1.0 - self.drop_prob
                mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
                return x * mask / keep
        '''),
    "vlc/__init__.py": "",
    # clip_model.py imports `from vlc.modules import objectives` (the METER-era package name).
    "vlc/modules/__init__.py": "from scl.modules import objectives  # noqa: F401\n",
}

OFFICIAL_MAIN = textwrap.dedent('''
    import copy, json, sys, types

    def clip_archive_shapes(width=768, layers=12, patch=16, grid=14, text_width=512, text_layers=12,
                            vocab=49408, context=77, embed=512):
        """Key names and shapes of OpenAI's ViT-B/16 archive (the official build_model reads them)."""
        shapes = {"visual.class_embedding": (width,), "visual.positional_embedding": (grid * grid + 1, width),
                  "visual.proj": (width, embed), "visual.conv1.weight": (width, 3, patch, patch),
                  "visual.ln_pre.weight": (width,), "visual.ln_pre.bias": (width,),
                  "visual.ln_post.weight": (width,), "visual.ln_post.bias": (width,),
                  "positional_embedding": (context, text_width), "text_projection": (text_width, embed),
                  "logit_scale": (), "token_embedding.weight": (vocab, text_width),
                  "ln_final.weight": (text_width,), "ln_final.bias": (text_width,)}
        for prefix, w, n in (("visual.transformer", width, layers), ("transformer", text_width, text_layers)):
            for i in range(n):
                b = f"{prefix}.resblocks.{i}."
                for name, shape in (("attn.in_proj_weight", (3 * w, w)), ("attn.in_proj_bias", (3 * w,)),
                                    ("attn.out_proj.weight", (w, w)), ("attn.out_proj.bias", (w,)),
                                    ("ln_1.weight", (w,)), ("ln_1.bias", (w,)), ("ln_2.weight", (w,)),
                                    ("ln_2.bias", (w,)), ("mlp.c_fc.weight", (4 * w, w)), ("mlp.c_fc.bias", (4 * w,)),
                                    ("mlp.c_proj.weight", (w, 4 * w)), ("mlp.c_proj.bias", (w,))):
                    shapes[b + name] = shape
        return shapes

    def write_clip_archive(path):
        """A TorchScript module whose state_dict has the archive's keys (random fp16 values, as OpenAI
        ships fp16 weights); run in its own process so that it costs the measured runs nothing."""
        import torch
        from torch import nn

        class Holder(nn.Identity):
            pass

        root, g = Holder(), torch.Generator().manual_seed(0)
        for name, shape in clip_archive_shapes().items():
            *parents, leaf = name.split(".")
            mod = root
            for p in parents:
                if not hasattr(mod, p):
                    mod.add_module(p, Holder())
                mod = getattr(mod, p)
            value = (torch.randn(shape, generator=g) * 0.02).half()
            mod.register_parameter(leaf, nn.Parameter(value, requires_grad=False))
        torch.jit.save(torch.jit.script(root), path)

    def official_worker(spec):
        stages = {"start": status_mb("VmRSS")}
        import torch
        stages["torch"] = status_mb("VmRSS")
        torch.set_num_threads(1)
        import pytorch_lightning  # noqa: F401
        from transformers import RobertaConfig
        from scl.config import config_dict
        from scl.modules import objectives, scl_module, scl_utils
        if spec["path"] == "trainer":  # what the official run.py imports besides the model
            from scl.datamodules.multitask_datamodule import MTDataModule  # noqa: F401
            from pytorch_lightning.plugins.environments import ClusterEnvironment  # noqa: F401
            from pytorch_lightning.plugins.training_type import DDPPlugin  # noqa: F401
        stages["imports"] = status_mb("VmRSS")
        stages["modules"] = len(sys.modules)
        stages["heavy_modules"] = sorted(m for m in ("transformers.modeling_utils", "torchvision", "torch._dynamo",
                                                     "timm", "pandas", "pycocotools", "scipy", "rich")
                                         if m in sys.modules)
        # roberta-base's sizes in place of the hard-coded cluster path of its weights.
        sizes = RobertaConfig(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                              intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1,
                              layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2)
        scl_module.RobertaModel.from_pretrained = classmethod(lambda cls, *a, **k: cls(sizes).eval())
        config = copy.deepcopy(config_dict["vqa"])
        config.update(image_size=spec["image_size"], load_path="", test_only=False, vit_path=spec["archive"])
        torch.manual_seed(0)
        model = scl_module.SCLTransformer(config)
        model.train()
        model.log = lambda *a, **k: None  # compute_vqa logs through a Lightning trainer; there is none
        model.current_tasks = ["vqa"]
        stages["model"] = status_mb("VmRSS")
        # set_schedule reads the step budget from the trainer; only its optimizer is used here.
        model.trainer = types.SimpleNamespace(max_steps=1000)
        (optimizer,), _ = scl_utils.set_schedule(model)
        stages["optimizer"] = status_mb("VmRSS")
        batch = make_batch(spec["batch"], config["max_text_len"], spec["image_size"], config["vocab_size"],
                           config["vqav2_label_size"])
        official_batch = {"text_ids": batch["text_ids"], "text_labels": torch.full_like(batch["text_ids"], -100),
                          "text_masks": batch["text_masks"], "image": [batch["images"]],
                          "vqa_labels": batch["vqa_labels"], "vqa_scores": batch["vqa_scores"]}
        loss_fn = lambda: objectives.compute_vqa(model, official_batch)["vqa_loss"]  # noqa: E731
        run_steps(stages, spec["steps"], loss_fn, optimizer, list(model.parameters()))
        stages["torch_version"] = torch.__version__
        return stages

    if __name__ == "__main__":
        if sys.argv[1] == "prepare":
            write_clip_archive(sys.argv[2])
        else:
            print(json.dumps(official_worker(json.loads(sys.argv[2]))))
''')


def write_official_runner(folder: Path) -> Path:
    """The shims and the runner (status_mb, make_batch and run_steps copied from this file)."""
    for rel, text in SHIMS.items():
        path = folder / "shims" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    shared = "\n\n".join(inspect.getsource(f) for f in (status_mb, make_batch, run_steps))
    runner = folder / "official_runner.py"
    runner.write_text(
        '"""Generated by benchmarks/official_memory.py; imports the official SCL modules."""\n'
        "from __future__ import annotations\n\n" + shared + "\n" + OFFICIAL_MAIN
    )
    return runner


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
        cmd = [ctx["official_python"], str(ctx["runner"]), "run", json.dumps({**full, "archive": str(ctx["archive"])})]
        env = _env([str(ctx["runner"].parent / "shims"), ctx["official_src"]])
    else:
        root = variant.get("root", str(ROOT))
        # Only the chosen tree: the worker code comes from this file, run as a script from /tmp.
        cmd = [ctx["sclbench_python"], str(ctx["sclbench_worker"]), json.dumps(full)]
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


def write_sclbench_worker(folder: Path) -> Path:
    """This file's sclbench side as a script, so that the measured process imports sclbench from the
    tree on its PYTHONPATH only (not from benchmarks/, not from the working directory)."""
    shared = "\n\n".join(inspect.getsource(f) for f in (status_mb, make_batch, run_steps, sclbench_worker))
    path = folder / "sclbench_worker.py"
    path.write_text(
        "from __future__ import annotations\nimport json, sys\nfrom typing import Any\n"
        f"TRAINER_IMPORTS = {TRAINER_IMPORTS!r}\n\n"
        + shared
        + "\n\nif __name__ == '__main__':\n    print(json.dumps(sclbench_worker(json.loads(sys.argv[1]))))\n"
    )
    return path


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
        ctx: dict[str, Any] = {
            "sclbench_worker": write_sclbench_worker(Path(tmp)),
            "sclbench_python": args.sclbench_python,
        }
        if args.official_src:
            ctx.update(
                runner=write_official_runner(Path(tmp)),
                archive=Path(tmp) / "ViT-B-16.pt",
                official_python=args.official_python,
                official_src=str(Path(args.official_src).resolve()),
            )
            subprocess.run(
                [args.official_python, str(ctx["runner"]), "prepare", str(ctx["archive"])],
                check=True,
                env=_env([str(Path(tmp) / "shims"), ctx["official_src"]]),
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
