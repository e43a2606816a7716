"""In-process trainer tests on the tiny model: accumulation, resume, precision, logs, best export."""

import json
import os
from pathlib import Path

import pytest
import torch
from engine_toy import ToyDataset, collate, make_evaluate_fn, make_loss_fn, tiny_model
from zero_gradient import zero_gradient_mask

from sclbench.engine.checkpointing import latest, list_checkpoints
from sclbench.engine.trainer import StepContext, TrainConfig, Trainer
from sclbench.errors import ConfigError
from sclbench.model import SCLConfig, SCLModel

os.environ["SCLBENCH_NO_PROGRESS"] = "1"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny tensors: extra threads only add spin-waiting, badly so on a busy CI machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config(tmp_path: Path, **kw) -> TrainConfig:
    base = dict(
        lr=1e-3,
        lr_mult_head=10,
        lr_mult_cross_modal=5,
        warmup=0.25,
        max_steps=6,
        global_batch_size=8,
        per_device_batch_size=8,
        out_dir=str(tmp_path),
        seed=3,
        log_every=2,
        tensorboard=False,
        device="cpu",
    )
    return TrainConfig(**{**base, **kw})


def train(tmp_path, model=None, evaluate=False, resume=True, **kw):
    model = model or tiny_model()
    trainer = Trainer(
        model,
        make_loss_fn(),
        ToyDataset(32),
        collate,
        config(tmp_path, **kw),
        evaluate_fn=make_evaluate_fn(ToyDataset(7, seed=9)) if evaluate else None,
    )
    return trainer, trainer.fit(resume=resume)


def assert_same_weights(a, b, exact=True, atol=1e-6):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        ok = torch.equal(sa[k], sb[k]) if exact else torch.allclose(sa[k], sb[k], atol=atol, rtol=1e-5)
        assert ok, k


def test_loss_decreases_and_accumulation_matches_one_big_batch(tmp_path):
    t1, s1 = train(tmp_path / "a", per_device_batch_size=8)
    t2, s2 = train(tmp_path / "b", per_device_batch_size=4)  # accumulation 2, same global batch
    assert t1.accumulation == 1 and t2.accumulation == 2 and s1["step"] == s2["step"] == 6
    # The runs differ only in summation order. Attention KEY biases have a gradient that is zero by
    # construction (softmax over keys is shift-invariant; test_key_bias_gradient_is_zero_in_exact_arithmetic):
    # both runs feed Adam rounding noise there, which it normalises into steps of up to lr (measured 1.4e-4),
    # so those coordinates are held to Adam's bound only. Every other coordinate must agree to 5e-5, far
    # below one step (lr 1e-3 to 1e-2 with the multipliers): a wrongly scaled accumulation moves them by a
    # sizeable part of a step.
    sa, sb = t1.model.state_dict(), t2.model.state_dict()
    assert sa.keys() == sb.keys()
    largest_step = 1e-3 * 10  # config(): lr x lr_mult_head, the largest of the multipliers
    for name in sa:
        zero = zero_gradient_mask(name, sa[name])
        assert torch.allclose(sa[name][~zero], sb[name][~zero], atol=5e-5, rtol=1e-5), name
        assert bool(((sa[name] - sb[name])[zero].abs() <= 2 * largest_step * 6).all()), name
    records = [json.loads(x) for x in Path(s1["log"]).read_text().splitlines()]
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    assert losses[-1] < losses[0]
    assert {"step", "epoch", "lr", "loss", "acc", "samples_per_s"} <= set(records[0])


def test_key_bias_gradient_is_zero_in_exact_arithmetic():
    """What the comparison above leaves out is zero by construction, not merely small: its float32 gradient
    is rounding noise (measured <= 2.5e-10 of the largest gradient, below float32's own 1.2e-7 resolution),
    while the unmasked thirds (query, value) of the same fused in_proj_bias carry a real one (~1e-2)."""
    model = tiny_model()
    loss, _ = make_loss_fn()(model, collate([ToyDataset(8)[i] for i in range(8)]), None)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    scale = max(float(g.abs().max()) for g in grads.values())
    masks = {n: zero_gradient_mask(n, g) for n, g in grads.items()}
    masked = {n: float(g[masks[n]].abs().max()) / scale for n, g in grads.items() if masks[n].any()}
    assert len(masked) == 12 and max(masked.values()) < 1e-8, masked
    fused = [n for n in masked if n.endswith("in_proj_bias")]
    assert fused and all(float(grads[n][~masks[n]].abs().max()) > 1e-3 * scale for n in fused)


def test_resume_from_checkpoint_is_exact_even_with_dropout(tmp_path):
    def model():
        torch.manual_seed(0)
        return SCLModel(SCLConfig.tiny("vqa", drop_rate=0.1, use_visual_mask_token=False))

    ref, _ = train(tmp_path / "ref", model(), save_every_steps=3)
    run, _ = train(tmp_path / "run", model(), save_every_steps=3)
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-00000003.pt", "step-00000006.pt"]
    latest(tmp_path / "run").unlink()  # as if killed between step 3 and step 6
    resumed, summary = train(tmp_path / "run", model(), save_every_steps=3)
    assert summary["resumed_from"].endswith("step-00000003.pt") and summary["step"] == 6
    assert_same_weights(ref.model, resumed.model, exact=True)
    steps = [json.loads(x)["step"] for x in Path(summary["log"]).read_text().splitlines()]
    assert steps == [2, 4, 6]  # records of the lost steps were replaced, not duplicated


def test_eval_best_selection_and_export(tmp_path):
    trainer, summary = train(
        tmp_path, evaluate=True, eval_every_steps=2, select_metric="score", save_every_steps=2, keep_last=2
    )
    records = [json.loads(x) for x in Path(summary["log"]).read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4, 6] and all(r["n"] == 7 for r in evals)
    best = max(evals, key=lambda r: r["score"])  # first of the maxima wins (strictly better only)
    assert summary["best_metric"] == best["score"] and summary["best_step"] == best["step"]
    meta = json.loads((tmp_path / "best" / "sclbench.json").read_text())
    assert meta["step"] == best["step"] and meta["split"] == "validation"
    assert SCLModel.from_pretrained(tmp_path / "best").config.task == "vqa"
    assert len(list_checkpoints(tmp_path)) == 2  # keep_last
    assert not list((tmp_path / "checkpoints").glob(".*tmp*"))  # no temporary files left
    with pytest.raises(ConfigError, match="select_metric"):
        train(tmp_path / "bad", evaluate=True, select_metric="accuracy")


def test_bf16_autocast_and_grad_checkpointing_on_cpu(tmp_path):
    plain, _ = train(tmp_path / "fp32")
    ckpt, _ = train(tmp_path / "gc", grad_checkpointing=True)
    assert ckpt.model.gradient_checkpointing
    assert_same_weights(plain.model, ckpt.model, exact=False, atol=5e-5)
    bf16, summary = train(tmp_path / "bf16", precision="bf16", max_grad_norm=1.0)
    records = [json.loads(x) for x in Path(summary["log"]).read_text().splitlines()]
    assert all(r["loss"] is not None and r["grad_norm"] is not None for r in records)


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="fp16"):
        train(tmp_path, precision="fp16")
    with pytest.raises(ConfigError, match="multiple"):
        train(tmp_path, global_batch_size=10, per_device_batch_size=4)
    with pytest.raises(ConfigError, match="fewer than one global batch"):
        train(tmp_path, global_batch_size=64, per_device_batch_size=8)
    train(tmp_path / "done", max_steps=1)
    with pytest.raises(ConfigError, match="earlier run"):
        train(tmp_path / "done", max_steps=1, resume=False)


def test_step_context_generator_is_deterministic():
    ctx = StepContext(step=5, epoch=0, seed=1, rank=0, world_size=1, device=torch.device("cpu"), micro_step=1)
    a = torch.rand(4, generator=ctx.generator(7))
    assert torch.equal(a, torch.rand(4, generator=ctx.generator(7)))
    assert not torch.equal(a, torch.rand(4, generator=ctx.generator(8)))
