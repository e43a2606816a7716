"""`sclbench eval TASK --model vilt|blip|clip --ckpt FOLDER` end to end on the synthetic benchmark, with tiny
random transformers models: the records hold what the adapters compute directly on the same files (answers,
P(true), pair scores), the model's name and identity, and the protocol actually run."""

from __future__ import annotations

import json
from pathlib import Path

import hf_tiny
import pytest
import torch
from PIL import Image

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_models")
    return {
        "vilt_vqa": hf_tiny.save_vilt(root / "vilt_vqa", "vqa"),
        "vilt_nlvr2": hf_tiny.save_vilt(root / "vilt_nlvr2", "nlvr2"),
        "vilt_retrieval": hf_tiny.save_vilt(root / "vilt_retrieval", "retrieval"),
        "blip_retrieval": hf_tiny.save_blip(root / "blip_retrieval", "retrieval"),
        "blip_vqa": hf_tiny.save_blip(root / "blip_vqa", "vqa"),
        "clip": hf_tiny.save_clip(root / "clip"),
    }


def run_eval(capsys, task, model, ckpt, data, results, *extra) -> tuple[dict, list[dict]]:
    from sclbench.cli import main

    overrides = ["data.minival_images=4"] if task == "vqa" else []
    args = ["eval", task, *overrides, "--model", model, "--ckpt", str(ckpt), "--data-root", str(data)]
    capsys.readouterr()
    rc = main([*args, "--results", str(results), *map(str, extra)])
    err = capsys.readouterr().err
    assert rc == 0 and "Traceback" not in err, err[-2000:]
    (path,) = (Path(results) / task).glob("*.json")
    record = json.loads(path.read_text())
    lines = (path.parent / record["predictions_file"]).read_text().splitlines()
    return record, [json.loads(line) for line in lines]


def build(model, folder, family):
    from sclbench.adapters.registry import build_model

    return build_model(model, str(folder), family).eval()


def test_vilt_vqa_answers_are_the_adapters_own(folders, synth_root, tmp_path, capsys):
    from sclbench.adapters import VQABatch
    from sclbench.app.jobs import get_task
    from sclbench.metrics import vqa_evaluate

    record, preds = run_eval(capsys, "vqa", "vilt", folders["vilt_vqa"], synth_root / "vqa", tmp_path, "--split", "val")
    assert record["checkpoint"]["model"] == "vilt" and record["checkpoint"]["name"] == "vilt_vqa"
    assert record["config"]["model"]["model_class"] == "ViltForQuestionAnswering"
    task = get_task("vqa", ["data.minival_images=4"], data_root=str(synth_root / "vqa"))
    model = build("vilt", folders["vilt_vqa"], "vqa")
    pre, records = model.preprocess(), task.split_records(task.card.get("splits.val"))
    with torch.no_grad():  # one question at a time: ViLT's fixed padding makes answers batch-independent
        direct = {
            r.question_id: model.answer_vqa(
                VQABatch(pre.image(r.image.open())[None, None], pre.text([r.question]), [r.question], [0], [])
            )[0]
            for r in records
        }
    assert {p["question_id"]: p["answer"] for p in preds} == direct
    labelled = [
        {
            "question_id": r.question_id,
            "answers": r.answers,
            "answer_type": r.answer_type,
            "question_type": r.question_type,
        }
        for r in records
    ]
    assert record["metrics"]["accuracy"] == vqa_evaluate(direct, labelled)["accuracy"]


def test_vilt_nlvr2_prob_true_is_the_adapters_own(folders, synth_root, tmp_path, capsys):
    from sclbench.adapters import NLVR2Batch
    from sclbench.app.jobs import get_task

    record, preds = run_eval(
        capsys,
        "nlvr2",
        "vilt",
        folders["vilt_nlvr2"],
        synth_root / "nlvr2",
        tmp_path,
        "--split",
        "val",
        "--batch-size",
        3,
    )
    task = get_task("nlvr2", [], data_root=str(synth_root / "nlvr2"))
    model = build("vilt", folders["vilt_nlvr2"], "nlvr2")
    pre, probs = model.preprocess(), {}
    with torch.no_grad():
        for r in task.role_records("val"):
            left, right = (pre.image(s.open())[None, None] for s in (r.image_0, r.image_1))
            batch = NLVR2Batch(left, right, pre.text([r.sentence]), [r.sentence], [0], [1])
            probs[r.identifier] = float(model.nlvr2_prob_true(batch)[0])
    assert {p["identifier"]: p["prob_true"] for p in preds} == pytest.approx(probs, rel=1e-4, abs=1e-6)
    assert record["protocol"]["cluster_unit"] == "sentence"


@pytest.mark.parametrize("spec", ["blip", "sclbench.adapters.blip:build_rank"])
def test_blip_vqa_generates_or_ranks_answers(folders, synth_root, tmp_path, capsys, spec):
    from sclbench.app.jobs import get_task

    record, preds = run_eval(capsys, "vqa", spec, folders["blip_vqa"], synth_root / "vqa", tmp_path, "--split", "val")
    assert preds and all(isinstance(p["answer"], str) for p in preds)
    assert (
        "accuracy" in record["metrics"] and record["config"]["model"]["preprocess"]["text_normalise"] == "pre_question"
    )
    assert record["config"]["model"]["inference"] == ("rank" if spec.endswith("build_rank") else "generate")
    if spec.endswith("build_rank"):  # ranked answers come from the card's vocabulary
        vocabulary = set(get_task("vqa", ["data.minival_images=4"], data_root=str(synth_root / "vqa")).vocab.answers)
        assert {p["answer"] for p in preds} <= vocabulary


@pytest.mark.parametrize(
    "model, folder, extra, mode",
    [
        ("vilt", "vilt_retrieval", ["--mode", "two-stage"], "exhaustive"),  # no first stage: every pair is scored
        ("blip", "blip_retrieval", [], "two-stage"),
        ("clip", "clip", [], "embedding"),
    ],
)
def test_f30k_scores_are_the_adapters_own(folders, synth_root, tmp_path, capsys, model, folder, extra, mode):
    record, preds = run_eval(
        capsys, "f30k", model, folders[folder], synth_root / "f30k", tmp_path, "--split", "test", *extra
    )
    assert record["protocol"]["mode"] == mode and record["checkpoint"]["model"] == model
    assert record["protocol"]["zero_shot"] == (model == "clip")  # CLIP meets the papers' zero-shot rows
    adapter = build(model, folders[folder], "retrieval")
    pre = adapter.preprocess()
    images = {p["id"]: p["media_id"] for p in preds if p["id"].startswith("image/")}
    texts = {p["id"]: p["text"] for p in preds if p["id"].startswith("text/")}
    with torch.no_grad():
        pixels = torch.stack(
            [
                pre.image(Image.open(synth_root / "f30k" / "flickr30k-images" / m).convert("RGB"))
                for m in images.values()
            ]
        )[:, None]
        media, txt = adapter.embed_media(pixels), adapter.embed_texts(pre.text(list(texts.values())))
        row, col = {k: i for i, k in enumerate(images)}, {k: i for i, k in enumerate(texts)}
        pairs = [(p["id"], c) if p["id"] in row else (c, p["id"]) for p in preds for c, _ in p["top"]]
        recorded = torch.tensor([s for p in preds for _, s in p["top"]])
        media_of = torch.tensor([row[i] for i, _ in pairs])
        text_of = torch.tensor([col[t] for _, t in pairs])
        if adapter.has_pair_scorer:
            direct = adapter.score_pairs(txt, media, text_of, media_of)
        else:
            direct = (media["embedding"][media_of] * txt["embedding"][text_of]).sum(-1)
    torch.testing.assert_close(recorded.float(), direct.float(), rtol=1e-4, atol=1e-6)


def test_clip_msrvtt_runs_on_clips(folders, synth_root, tmp_path, capsys):
    record, preds = run_eval(
        capsys, "msrvtt", "clip", folders["clip"], synth_root / "msrvtt", tmp_path, "--split", "test"
    )
    assert record["protocol"]["mode"] == "embedding" and record["protocol"]["cluster_unit"] == "video"
    assert {"t2v_r1", "v2t_r1"} <= set(record["metrics"]) and any(p["id"].startswith("video/") for p in preds)
