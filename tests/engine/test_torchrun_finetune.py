"""The README's multi-GPU commands, on two CPU processes (gloo): every task card fine-tunes (and the
pre-training card pre-trains) past the second optimizer step, where DDP used to stop with "Expected to
have finished reduction in the prior iteration" (a trainable parameter the task never uses).

Global batch 4 = 1 per process x 2 processes x accumulation 2, so both the `no_sync` micro-step and the
synchronising one run; 3 optimizer steps."""

from __future__ import annotations

import math

import pytest
from torchrun_util import torchrun, train_log

from sclbench.cards import available_cards, load_card
from sclbench.model.config import SCLConfig
from sclbench.tasks.base import get_task

pytestmark = pytest.mark.slow

STEPS = 3
MASK_TOKEN = "vision_transformer.visual.visual_mask_token"
# Only what the scale-0.25 synthetic data needs (its VQA val split has 8 images; the card's minival 1000).
DATA_SIZE_OVERRIDES = {"vqa": ["data.minival_images=4"]}


def job_args(card: str, synth_root, out) -> list[str]:
    family = load_card(card).family
    common = [
        "--data-root",
        str(synth_root / card),
        "--preset",
        "tiny",
        "--tokenizer",
        str(synth_root / "tokenizer"),
        "--out",
        str(out),
        "--max-steps",
        str(STEPS),
        "--no-resume",
        "train.global_batch_size=4",
        "train.per_device_batch_size=1",
        "train.log_every=1",
    ]
    if family == "pretrain":  # `sclbench pretrain` reads the card named by --config
        return ["pretrain", "--config", card, *common, "train.chunk_size=4"]
    return ["finetune", card, *common, *DATA_SIZE_OVERRIDES.get(card, [])]


@pytest.mark.parametrize("card", available_cards())
def test_torchrun_two_processes_train_every_card(card, synth_root, tmp_path):
    out = tmp_path / "run"
    text = torchrun(job_args(card, synth_root, out), tmp_path / "torchrun.log")
    assert "Expected to have finished reduction" not in text
    assert text.count(f"done: {STEPS} steps") == 2, text[-3000:]  # both ranks finished
    rows = train_log(out)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    assert all(math.isfinite(r["loss"]) for r in rows)
    assert (out / "final").is_dir()
    # The MLTC mask token, where the task's model has one, is frozen unless an objective reaches it
    # (pre-training's MLTC does; no fine-tuning loss does); every other parameter trains.
    task = get_task(card, DATA_SIZE_OVERRIDES.get(card), data_root=synth_root / card)
    has_token = SCLConfig.tiny(task.model_task).use_visual_mask_token
    if has_token and task.card.family != "pretrain":
        assert f"frozen for this job (its loss never reaches them): {MASK_TOKEN}\n" in text
    else:
        assert "frozen for this job" not in text


def test_torchrun_mixed_image_and_video_pretraining(synth_root, tmp_path):
    """Image and clip batches in one run: every micro-step gives all ranks one kind (same objectives,
    same gathered shapes), and the MLTC mask token, reached by image batches only, makes DDP search
    for unused parameters; accumulation 2 (no_sync) included."""
    out = tmp_path / "run"
    args = job_args("pretrain", synth_root, out) + [
        "data.corpora=[{name: sbu, root: sbu}, {name: webvid, root: webvid}]",
        "train.chunk_size=2",
        "train.video_chunk_size=2",
    ]
    text = torchrun(args, tmp_path / "torchrun.log")
    assert text.count(f"done: {STEPS} steps") == 2, text[-3000:]
    assert f"some batches only ({MASK_TOKEN}): DDP looks for unused parameters" in text
    rows = train_log(out)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1)) and all(math.isfinite(r["loss"]) for r in rows)
