"""Pre-training on a mixed image + video corpus list, then fine-tuning from the saved directory."""

import json
import math

import pytest
import torch

from sclbench.app import jobs
from sclbench.model import SCLModel

# SBU and CC3M (images) and WebVid (clips) in one run. At scale 0.25 each corpus has 5 samples: with
# chunks of 4 that is 2 image chunks + 1 video chunk, and a global batch of 3 chunks puts every chunk,
# so both modalities, into every optimizer step.
CORPORA = "data.corpora=[{name: sbu, root: sbu}, {name: cc3m, root: cc3m}, {name: webvid, root: webvid}]"
STEPS = 4


@pytest.fixture(scope="module")
def pretrained(synth_root, tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("pretrain") / "run"
    summary = jobs.pretrain(
        "pretrain",
        None,
        str(synth_root / "pretrain"),
        out,
        preset="tiny",
        max_steps=STEPS,
        seed=0,
        tokenizer=str(synth_root / "tokenizer"),
        # one kind of data per chunk; 3 chunks per optimizer step (accumulation)
        overrides=[
            CORPORA,
            "train.chunk_size=4",
            "train.video_chunk_size=4",
            "train.global_batch_size=3",
            "train.per_device_batch_size=1",
            "train.log_every=1",
            "train.transform=eval",
        ],
    )
    return out, summary


def test_mixed_corpus_pretraining_gives_finite_losses(pretrained, synth_root):
    out, summary = pretrained
    assert summary["step"] == STEPS
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train"]
    assert len(train) == STEPS
    terms = ("mlm_loss", "itm_loss", "itc_loss", "mgsc_img_loss", "mgsc_txt_loss", "mltc_img_loss", "mltc_txt_loss")
    for row in train:
        for key in ("loss", *terms):
            assert key in row and math.isfinite(row[key]), (key, row)

    # Both kinds of data are in the training set, in modality-pure chunks (1 frame vs 4 frames),
    # and the model got the video extras (temporal table).
    task, loaded = jobs.prepare(
        "pretrain",
        None,
        str(synth_root / "pretrain"),
        [CORPORA, "train.chunk_size=4", "train.video_chunk_size=4"],
        preset="tiny",
        tokenizer=str(synth_root / "tokenizer"),
    )
    assert task.model_task == "pretrain_video" and loaded.model.config.use_temporal_embed
    dataset = task.build_dataset("train")
    frames = sorted(dataset[i]["images"].shape[1] for i in range(len(dataset)))
    assert frames == [1, 1, 4]


def test_final_directory_loads_and_fine_tunes_another_task(pretrained, synth_root, tmp_path):
    out, _ = pretrained
    model = SCLModel.from_pretrained(out / "final")
    assert model.config.preset == "tiny" and model.config.use_temporal_embed
    assert {"mlm", "itm", "con"} <= set(model.config.heads)
    meta = json.loads((out / "final" / "sclbench.json").read_text())
    assert meta["steps"] == STEPS and meta["objectives"] == ["mlm", "itm", "itc", "mgsc", "mltc"]

    # The backbone moves over intact: every encoder weight of the fine-tuning model comes from `final`.
    _, loaded = jobs.prepare("msrvtt", str(out / "final"), str(synth_root / "msrvtt"), [], preset="tiny")
    theirs = model.state_dict()
    for name, tensor in loaded.model.state_dict().items():
        if name.startswith(("text_transformer.", "vision_transformer.", "cross_modal_")):
            assert torch.equal(tensor, theirs[name]), name
    assert not loaded.zero_shot or "rank_output" in loaded.report  # rank_output adapted from ITM

    summary = jobs.finetune(
        "msrvtt",
        str(out / "final"),
        str(synth_root / "msrvtt"),
        tmp_path / "ft",
        overrides=[
            "train.global_batch_size=4",
            "train.per_device_batch_size=4",
            "train.neg_texts=1",
            "train.transform=eval",
        ],
        preset="tiny",
        max_steps=2,
        seed=0,
    )
    assert summary["step"] == 2
    tuned = SCLModel.from_pretrained(tmp_path / "ft" / "final")
    assert hasattr(tuned, "rank_output") and tuned.config.task == "msrvtt"
