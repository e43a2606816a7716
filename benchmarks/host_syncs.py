"""Host syncs per training step, graph breaks, eager vs compiled step time (issue 22, items 3-4).

    python benchmarks/host_syncs.py                 # all three, JSON on stdout
    python benchmarks/host_syncs.py --only syncs    # syncs | breaks | timing

It imports whichever `sclbench` comes first on the path, so the same script measures another checkout
(`PYTHONPATH=/path/to/old/checkout python benchmarks/host_syncs.py --only syncs`): that is how the
"before" column of benchmarks/README.md was made.

What counts as a host sync (`SyncCounter`): a read of tensor data by the host, which on an accelerator
waits for every queued kernel. Under a TorchDispatchMode: `aten._local_scalar_dense` (`.item()`,
`float(t)`, `bool(t)`, `int(t)`), ops whose output SHAPE depends on the data (`nonzero`, `masked_select`,
`unique`, indexing or index_put with a boolean mask: the host needs the count to allocate) and copies
from a non-CPU device to the CPU; plus `Tensor.tolist()` (no aten op on the CPU). On a CPU-only machine
device-to-host copies cannot be told from host work, so the CPU count is of the first three kinds and
`.tolist()`; on CUDA the copies count too. Not counted: reads of the optimizer's step counters, which
non-fused AdamW keeps on the host by design (fused AdamW keeps them on the device and reads nothing),
and the data loader (host work in its own processes on a GPU machine: the batches here are collated
beforehand).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
DATA_DEPENDENT = {
    aten.nonzero.default,
    aten.masked_select.default,
    aten._unique2.default,
    aten.unique_consecutive.default,
    aten.unique_dim.default,
}


class SyncCounter(TorchDispatchMode):
    """Counts host reads of tensor data (see the module docstring); `events` names each one."""

    def __init__(self, host_tensors: Callable[[], list[torch.Tensor]] = lambda: []):
        super().__init__()
        self.host_tensors = host_tensors  # tensors that live on the host by design (optimizer steps)
        self.events: list[str] = []

    def __enter__(self):
        self._tolist = torch.Tensor.tolist
        counter = self

        def tolist(t: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            counter.events.append("tolist")
            return counter._tolist(t, *args, **kwargs)

        torch.Tensor.tolist = tolist
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        torch.Tensor.tolist = self._tolist
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = self._sync_kind(func, args, kwargs)
        if name:
            self.events.append(name)
        return func(*args, **kwargs)

    def _sync_kind(self, func, args, kwargs) -> str | None:
        if func is aten._local_scalar_dense.default:
            ptr = args[0].data_ptr()
            return None if any(t.data_ptr() == ptr for t in self.host_tensors()) else "_local_scalar_dense"
        if func in DATA_DEPENDENT:
            return str(func)
        if func in (aten.index.Tensor, aten.index_put.default, aten.index_put_.default):
            if any(i is not None and i.dtype == torch.bool for i in args[1]):
                return f"{func} (boolean mask)"
        if func is aten._to_copy.default and args[0].device.type != "cpu":
            if torch.device(kwargs.get("device") or args[0].device).type == "cpu":
                return "device-to-host copy"
        if func is aten.copy_.default and args[1].device.type != "cpu" and args[0].device.type == "cpu":
            return "device-to-host copy"
        return None


# ---- the steps measured: VQA, F30K retrieval, image pre-training on the tiny model -----------------
TEXT_LEN, BATCH = 12, 4


def _text(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    n = int(torch.randint(4, TEXT_LEN + 1, (1,), generator=g))
    ids = torch.full((TEXT_LEN,), 1)
    ids[:n] = torch.randint(4, 998, (n,), generator=g)
    ids[0], ids[n - 1] = 0, 2  # <s> ... </s>, then <pad>
    return ids, (ids != 1).long()


def _sample(task: str, g: torch.Generator) -> dict[str, Any]:
    ids, masks = _text(g)
    sample = {"text_ids": ids, "text_masks": masks, "image": torch.rand(1, 3, 32, 32, generator=g)}
    if task == "vqa":
        sample["vqa_target"] = torch.rand(32, generator=g).round()
    elif task == "f30k":
        negs = [_text(g) for _ in range(15)]
        sample["neg_text_ids"] = torch.stack([n[0] for n in negs])
        sample["neg_text_masks"] = torch.stack([n[1] for n in negs])
    else:
        sample["neg_image"] = torch.rand(1, 3, 32, 32, generator=g)
    return sample


def build(task: str) -> tuple[torch.nn.Module, Callable, list[dict[str, Any]]]:
    """(tiny model, the task's own loss function, samples) for task vqa | f30k | pretrain."""
    from sclbench.cards import load_card
    from sclbench.model import SCLConfig, SCLModel

    torch.manual_seed(0)
    model = SCLModel(SCLConfig.tiny(task, drop_rate=0.0))
    if task == "pretrain":
        from sclbench.data.masking import MaskSpec
        from sclbench.objectives.pretrain import PretrainConfig, PretrainObjective

        loss = PretrainObjective(PretrainConfig(), MaskSpec(mask_id=999, vocab_size=1000, special_ids=(0, 1, 2, 999)))
    else:
        from sclbench.tasks.retrieval import RetrievalTask
        from sclbench.tasks.vqa import VQATask

        adapter = (VQATask if task == "vqa" else RetrievalTask).__new__(VQATask if task == "vqa" else RetrievalTask)
        adapter.card, adapter.skip = load_card(task), None  # the real card; no data needed for the loss
        loss = adapter.loss
    g = torch.Generator().manual_seed(1)
    return model, loss, [_sample(task, g) for _ in range(BATCH * 8)]


class _Collated:
    """Stands in for the trainer's DataLoader: the batches, collated beforehand (host work)."""

    def __init__(self, batches: list[Any]):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


def count_syncs(
    task: str, steps: int = 6, log_every: int = 3, out_dir: str | None = None, device: str = "cpu"
) -> dict[str, Any]:
    """Host syncs in `steps` optimizer steps of Trainer.fit (logging every `log_every`); checkpoint
    writes (device-to-host copies by nature) are left out. On a CUDA `device` the count includes
    device-to-host copies, and torch's own sync detector (`torch.cuda.set_sync_debug_mode`) counts too."""
    from sclbench.data.collate import collate
    from sclbench.engine.trainer import TrainConfig, Trainer

    model, loss, samples = build(task)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            lr=1e-4,
            warmup=1,
            max_steps=steps,
            global_batch_size=BATCH,
            per_device_batch_size=BATCH,
            log_every=log_every,
            tensorboard=False,
            device=device,
            out_dir=out_dir or tmp,
            max_grad_norm=1.0,
        )
        trainer = Trainer(model, loss, samples, collate, cfg)
        trainer.loader = _Collated([collate(samples[i : i + BATCH]) for i in range(0, steps * BATCH, BATCH)])

        def optimizer_steps() -> list[torch.Tensor]:
            return [s["step"] for s in trainer.optimizer.state.values() if "step" in s]

        cuda = torch.device(device).type == "cuda"
        save = trainer.save

        def save_uncounted(state: Any) -> Any:  # a checkpoint copies to the host by nature
            from torch.utils._python_dispatch import _disable_current_modes

            if cuda:
                torch.cuda.set_sync_debug_mode(0)
            with _disable_current_modes():
                path = save(state)
            if cuda:
                torch.cuda.set_sync_debug_mode("warn")
            return path

        trainer.save = save_uncounted
        with SyncCounter(optimizer_steps) as counter, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if cuda:
                torch.cuda.set_sync_debug_mode("warn")
            try:
                trainer.fit(resume=False)
            finally:
                if cuda:
                    torch.cuda.set_sync_debug_mode(0)
    cuda_syncs = [w for w in caught if "synchroniz" in str(w.message)] if cuda else None
    return {
        "task": task,
        "device": device,
        "steps": steps,
        "log_every": log_every,
        "syncs": len(counter.events),
        "per_step": round(len(counter.events) / steps, 2),
        "kinds": sorted(set(counter.events)),
        "cuda_sync_warnings": None if cuda_syncs is None else len(cuda_syncs),
    }


# ---- graph breaks in the model's forward -------------------------------------------------------------
def graph_breaks() -> dict[str, Any]:
    import torch._dynamo

    from sclbench.model import SCLConfig, SCLModel

    out = {}
    for task, frames in (("vqa", 1), ("msrvtt", 2)):
        torch.manual_seed(0)
        model = SCLModel(SCLConfig.tiny(task))
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(4, 998, (2, TEXT_LEN), generator=g)
        masks = torch.ones_like(ids)
        masks[1, 7:] = 0
        images = torch.rand((2, 3, 32, 32) if frames == 1 else (2, frames, 3, 32, 32), generator=g)
        torch._dynamo.reset()
        report = torch._dynamo.explain(model)(ids, masks, images)
        out[f"{task}_forward"] = {
            "graphs": report.graph_count,
            "graph_breaks": report.graph_break_count,
            "reasons": sorted({str(r.reason).splitlines()[0] for r in report.break_reasons}),
        }
    return out


# ---- eager vs compiled training step, side by side -----------------------------------------------
def step_timing(task: str = "vqa", repeats: int = 20) -> dict[str, Any]:
    """Seconds per forward+backward of the task loss on the tiny model, eager and compiled (inductor),
    interleaved (eager, compiled, eager, ...) after warm-up; compile time reported apart."""
    from sclbench.data.collate import collate

    def loss_step(model: torch.nn.Module, loss: Callable, batch: dict) -> None:
        model.zero_grad(set_to_none=True)
        value, _ = loss(model, batch, None)
        value.backward()

    eager_model, loss, samples = build(task)
    compiled_model, _, _ = build(task)
    batch = collate(samples[:BATCH])
    t0 = time.perf_counter()
    compiled_model.compile_stages()
    loss_step(compiled_model, loss, batch)
    loss_step(compiled_model, loss, batch)
    compile_s = time.perf_counter() - t0
    loss_step(eager_model, loss, batch)
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(repeats):
        for name, model in (("eager", eager_model), ("compiled", compiled_model)):
            t = time.perf_counter()
            loss_step(model, loss, batch)
            times[name].append(time.perf_counter() - t)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return {
        "task": task,
        "threads": torch.get_num_threads(),
        "compile_s": round(compile_s, 1),
        "eager_ms": round(1e3 * med["eager"], 2),
        "compiled_ms": round(1e3 * med["compiled"], 2),
        "compiled_over_eager": round(med["compiled"] / med["eager"], 3),
        "repeats": repeats,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("syncs", "breaks", "timing"), action="append")
    parser.add_argument("--device", default="cpu", help="device of the sync count (cuda: d2h copies count too)")
    args = parser.parse_args(argv)
    parts = args.only or ["syncs", "breaks", "timing"]
    import sclbench

    report: dict[str, Any] = {"sclbench": str(Path(sclbench.__file__).parent), "torch": torch.__version__}
    if "syncs" in parts:
        report["syncs"] = [count_syncs(task, device=args.device) for task in ("vqa", "f30k", "pretrain")]
    if "breaks" in parts:
        report["graph_breaks"] = graph_breaks()
    if "timing" in parts:
        report["timing"] = step_timing("vqa")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
