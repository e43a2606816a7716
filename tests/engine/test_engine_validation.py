"""Validation on the official schedule (val_check_interval), the selected step and metric history in
the summary, and the stop on a non-finite loss (no NaN weights saved, the step and checkpoint named)."""

import math
import os

import pytest
import torch
from engine_toy import ToyDataset, collate, make_loss_fn, tiny_model

from sclbench.engine.checkpointing import list_checkpoints, load_checkpoint
from sclbench.engine.trainer import NonFiniteLossError, TrainConfig, Trainer, validation_interval
from sclbench.errors import ConfigError, SCLBenchError

os.environ["SCLBENCH_NO_PROGRESS"] = "1"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config(tmp_path, **kw) -> TrainConfig:
    # 32 samples / global batch 8 = 4 optimizer steps per epoch.
    base = dict(
        lr=1e-3,
        warmup=0.25,
        max_steps=6,
        global_batch_size=8,
        per_device_batch_size=8,
        out_dir=str(tmp_path),
        seed=3,
        log_every=1,
        tensorboard=False,
        device="cpu",
    )
    return TrainConfig(**{**base, **kw})


def scripted_evaluate(scores):
    """Returns the next score of the list at each call (so the test knows which step is best)."""
    calls = []

    def evaluate(model):
        calls.append(len(calls))
        return {"score": scores[len(calls) - 1]}

    return evaluate, calls


@pytest.mark.parametrize(
    "fraction, per_epoch, expected",
    [(1.0, 4, 4), (0.5, 4, 2), (0.1, 4, 1), (0.1, 1000, 100), (0.3, 10, 3), (None, 4, None)],
)
def test_validation_interval_is_lightnings_int_of_the_fraction(fraction, per_epoch, expected):
    assert validation_interval(fraction, per_epoch) == expected


@pytest.mark.parametrize("bad", [0, 0.0, -0.5, 1.5, 3, True])
def test_validation_interval_outside_a_fraction_is_refused(bad):
    with pytest.raises(ConfigError, match="val_check_interval"):
        validation_interval(bad, 4)


@pytest.mark.parametrize("fraction, steps", [(1.0, [4, 6]), (0.5, [2, 4, 6]), (0.25, [1, 2, 3, 4, 5, 6])])
def test_validation_happens_on_the_epoch_fraction_schedule(tmp_path, fraction, steps):
    evaluate, _ = scripted_evaluate([0.0] * 10)
    trainer = Trainer(
        tiny_model(),
        make_loss_fn(),
        ToyDataset(32),
        collate,
        config(tmp_path, val_check_interval=fraction, select_metric="score"),
        evaluate,
    )
    summary = trainer.fit()
    assert [h["step"] for h in summary["history"]] == steps
    assert summary["val_check_interval"] == fraction


def test_no_evaluate_fn_means_final_weights_are_selected(tmp_path):
    trainer = Trainer(
        tiny_model(),
        make_loss_fn(),
        ToyDataset(32),
        collate,
        config(tmp_path, val_check_interval=0.5, select_metric="score"),
    )
    summary = trainer.fit()
    assert summary["history"] == [] and summary["selected_from"] == "final"
    assert (summary["selected_step"], summary["selected_epoch"]) == (6, 1)


def test_summary_names_the_selected_step_epoch_and_history(tmp_path):
    # Validations at steps 2, 4 (end of epoch 0), 6: the best score is the second one.
    evaluate, calls = scripted_evaluate([0.2, 0.9, 0.5])
    trainer = Trainer(
        tiny_model(),
        make_loss_fn(),
        ToyDataset(32),
        collate,
        config(tmp_path, val_check_interval=0.5, select_metric="score"),
        evaluate,
    )
    summary = trainer.fit()
    assert len(calls) == 3
    assert summary["selected_from"] == "best" and summary["best_metric"] == 0.9
    assert (summary["selected_step"], summary["selected_epoch"]) == (4, 1)  # after step 4 the epoch counter is 1
    assert [(h["step"], h["score"]) for h in summary["history"]] == [(2, 0.2), (4, 0.9), (6, 0.5)]
    assert (tmp_path / "best").is_dir()  # the export of step 4 (not replaced by the worse step 6)


def test_eval_every_steps_wins_over_the_fraction(tmp_path):
    evaluate, _ = scripted_evaluate([0.0] * 10)
    trainer = Trainer(
        tiny_model(),
        make_loss_fn(),
        ToyDataset(32),
        collate,
        config(tmp_path, val_check_interval=1.0, eval_every_steps=3, select_metric="score"),
        evaluate,
    )
    assert [h["step"] for h in trainer.fit()["history"]] == [3, 6]


def test_history_and_selection_survive_a_resume(tmp_path):
    evaluate, _ = scripted_evaluate([0.1, 0.8, 0.3])
    first = Trainer(
        tiny_model(),
        make_loss_fn(),
        ToyDataset(32),
        collate,
        config(tmp_path, max_steps=4, val_check_interval=0.5, select_metric="score"),
        evaluate,
    )
    first.fit()  # validations at 2 and 4, checkpoint at 4
    evaluate2, _ = scripted_evaluate([0.3])
    second = Trainer(
        tiny_model(),
        make_loss_fn(),
        ToyDataset(32),
        collate,
        config(tmp_path, max_steps=6, val_check_interval=0.5, select_metric="score"),
        evaluate2,
    )
    summary = second.fit()
    assert [h["step"] for h in summary["history"]] == [2, 4, 6]
    assert (summary["selected_step"], summary["best_metric"]) == (4, 0.8)


def nan_at(step: int, micro: int = 0):
    inner = make_loss_fn()

    def loss_fn(model, batch, ctx):
        loss, logs = inner(model, batch, ctx)
        if ctx.step == step and ctx.micro_step == micro:
            loss = loss * float("nan")
        return loss, logs

    return loss_fn


@pytest.mark.parametrize("fused", [False, True])  # fused AdamW (the CUDA default) skips the bad update
@pytest.mark.parametrize("per_device", [8, 4])  # without and with gradient accumulation
def test_non_finite_loss_stops_before_writing_naming_step_and_checkpoint(tmp_path, per_device, fused, monkeypatch):
    import sclbench.engine.trainer as trainer_module

    if fused:  # torch's fused AdamW (CPU kernels exist too): it reads `found_inf` and skips on the device
        monkeypatch.setattr(
            trainer_module,
            "build_optimizer",
            lambda model, cfg, **kw: torch.optim.AdamW(model.parameters(), lr=cfg.lr, fused=True),
        )
    # log_every 3: the flag is read at step 3 (finite) and then, off the log steps, before step 4's save.
    trainer = Trainer(
        tiny_model(),
        nan_at(3, micro=0 if per_device == 8 else 1),
        ToyDataset(32),
        collate,
        config(tmp_path, save_every_steps=2, per_device_batch_size=per_device, log_every=3),
    )
    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit()
    message = str(info.value)
    assert isinstance(info.value, SCLBenchError)  # the CLI prints it as one line
    assert "step 4" in message and "step-00000002.pt" in message and "nan" in message
    # Stopped before writing step 4: no later checkpoint exists. With the fused optimizer the NaN step's
    # update was skipped on the device, so the weights in memory are finite too.
    if fused:
        assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000002.pt"]
    saved = load_checkpoint(list_checkpoints(tmp_path)[0])["model"]
    assert all(torch.isfinite(v).all() for v in saved.values() if v.is_floating_point())
    assert not (tmp_path / "best").exists()


def test_non_finite_loss_before_any_checkpoint_says_so(tmp_path):
    trainer = Trainer(tiny_model(), nan_at(0), ToyDataset(32), collate, config(tmp_path))
    with pytest.raises(NonFiniteLossError, match=r"step 1 .*no checkpoint was written yet"):
        trainer.fit()


def test_a_resume_after_the_stop_continues_from_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(tiny_model(), nan_at(3), ToyDataset(32), collate, config(tmp_path, save_every_steps=2))
    with pytest.raises(NonFiniteLossError):
        trainer.fit()
    resumed = Trainer(tiny_model(), make_loss_fn(), ToyDataset(32), collate, config(tmp_path, save_every_steps=2))
    summary = resumed.fit()
    assert summary["resumed_from"].endswith("step-00000002.pt") and summary["step"] == 6
    assert all(math.isfinite(float(p.sum())) for p in resumed.model.parameters())
