"""GPU defaults that a CPU can check: what is chosen for a CUDA device (bf16 + TF32, loader workers from
the CPUs per local rank, pinned memory, persistent workers, fused AdamW), that a CPU keeps the old
behaviour, and that the number of loader workers (persistent ones included) never changes the data."""

from __future__ import annotations

import warnings

import pytest
import torch
from engine_toy import ToyDataset, collate, tiny_model
from torch.utils.data import DataLoader

from sclbench.cards import load_card
from sclbench.engine import loader as L
from sclbench.engine.optim import build_optimizer
from sclbench.engine.sampler import SeededDataset, TrainSampler
from sclbench.engine.trainer import TrainConfig
from sclbench.tasks.precision import EvalPrecision, resolve_precision


def test_evaluation_precision_defaults_by_device():
    card = load_card("nlvr2")
    cuda, cpu = resolve_precision({}, card, "cuda"), resolve_precision({}, card, "cpu")
    assert cuda.protocol() == {"precision": "bf16", "tf32": True}  # TF32 for the ops autocast keeps in fp32
    assert cpu.protocol() == {"precision": "fp32", "tf32": False}
    assert resolve_precision({"precision": "fp32"}, card, "cuda").protocol() == {"precision": "fp32", "tf32": True}
    assert resolve_precision({"precision": "fp32", "tf32": False}, card, "cuda").protocol() == {
        "precision": "fp32",
        "tf32": False,
    }  # IEEE fp32: the official evaluation
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # without a GPU torch disables CUDA autocast with a warning
        for tf32 in (True, False):  # bf16 autocast sets TF32 for the ops it keeps in fp32, then restores it
            with EvalPrecision("bf16", tf32, "cuda").context():
                assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (tf32, tf32)
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


@pytest.mark.parametrize("cpus,local_world,expected", [(16, 1, 8), (16, 2, 7), (16, 8, 1), (4, 4, 0), (64, 4, 8)])
def test_cuda_loader_workers_from_cpus_per_local_rank(monkeypatch, cpus, local_world, expected):
    monkeypatch.setattr(L.os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_world))
    settings = L.loader_settings("cuda", None, persistent=True)
    assert settings.num_workers == expected  # one core left to the training process, at most 8
    assert settings.pin_memory and settings.persistent_workers == (expected > 0)
    assert settings.prefetch_factor == (L.PREFETCH_FACTOR if expected else None)
    assert L.loader_settings("cuda", 3).num_workers == 3  # an explicit count wins
    stream = L.loader_settings("cuda", None, streaming=True, persistent=True)
    assert stream.num_workers == L.STREAM_WORKERS and not stream.persistent_workers  # machine-independent


def test_cpu_loader_keeps_the_old_behaviour():
    settings = L.loader_settings("cpu", None, persistent=True)
    assert settings.to_dict() == {
        "num_workers": 0,
        "pin_memory": False,
        "persistent_workers": False,
        "prefetch_factor": None,
    }
    assert settings.kwargs() == {"num_workers": 0, "pin_memory": False}  # torch refuses the others at 0


def test_fused_adamw_takes_the_same_step():
    model_a, model_b = tiny_model(), tiny_model()
    cfg = TrainConfig(lr=1e-3)
    opt_a, opt_b = build_optimizer(model_a, cfg), build_optimizer(model_b, cfg, fused=True)
    assert opt_b.defaults["fused"] and not opt_a.defaults.get("fused")
    for model in (model_a, model_b):
        for p in model.parameters():
            p.grad = torch.sin(torch.arange(p.numel(), dtype=torch.float32)).view_as(p)
    opt_a.step()
    opt_b.step()
    for (name, a), b in zip(model_a.named_parameters(), model_b.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)


def epochs_of_batches(workers: int, epochs: int = 2) -> list[torch.Tensor]:
    dataset = SeededDataset(ToyDataset(16), seed=3)
    sampler = TrainSampler(16, 8, 4, seed=3, rank=0, world=1, with_epoch=True)
    settings = L.loader_settings("cpu", workers, persistent=True)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, **settings.kwargs())
    out = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)  # reaches the main process only: persistent workers keep their copy
        out.extend(batch["images"] for batch in loader)
    return out


def test_worker_count_and_persistent_workers_never_change_the_data():
    """Augmentation is seeded per sample by (seed, epoch, index), and the epoch travels with the index,
    so 2 persistent workers (which never see set_epoch) load what the main process loads."""
    main, workers = epochs_of_batches(0), epochs_of_batches(2)
    assert len(main) == len(workers) == 8  # 2 epochs x 2 steps x accumulation 2
    assert all(torch.equal(a, b) for a, b in zip(main, workers))
    assert not any(torch.equal(a, b) for a in main[:4] for b in main[4:])  # epoch 1 is not epoch 0 again
