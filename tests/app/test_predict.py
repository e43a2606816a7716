"""Predictions with a checkpoint: the same preprocessing and heads as evaluation, ranked outputs.

Each check recomputes the number through the task's own evaluation dataset (its transform,
tokenisation, collate) and the same head, so a preprocessing difference in `predict` fails here.
"""

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from sclbench.app import jobs
from sclbench.app import predict as P
from sclbench.errors import CheckpointError, DataError
from tests.app.conftest import card_overrides


def _task(name, synth_root, ckpt):
    task, loaded = jobs.prepare(name, str(ckpt), str(synth_root / name), card_overrides(name), preset="tiny")
    return task, loaded.model.eval()


def test_vqa_top_k_matches_the_evaluation(synth_root, tiny_checkpoint):
    ckpt = tiny_checkpoint("vqa")
    task, model = _task("vqa", synth_root, ckpt)
    dataset = task.build_dataset("val", train=False)
    record, batch = dataset.records[0], task.collate([dataset[0]])
    with torch.no_grad():
        logits = model.vqa_classifier(model(batch["text_ids"], batch["text_masks"], batch["images"]).cls_feats)[0]
    p = P.load_predictor(ckpt, answers=synth_root / "vqa", device="cpu")
    top = P.answer_question(p, record.image.path, record.question, top_k=3)
    assert len(top) == 3 and [t["score"] for t in top] == sorted((t["score"] for t in top), reverse=True)
    assert top[0]["answer"] == task.vocab.answers[int(logits.argmax())]
    assert top[0]["score"] == pytest.approx(float(torch.sigmoid(logits.max())), abs=1e-5)
    with pytest.raises(DataError, match="answer vocabulary"):
        P.answer_question(P.load_predictor(ckpt, device="cpu"), record.image.path, record.question)


def test_nlvr2_probability_matches_the_evaluation(synth_root, tiny_checkpoint):
    ckpt = tiny_checkpoint("nlvr2")
    task, model = _task("nlvr2", synth_root, ckpt)
    dataset = task.build_dataset("val", train=False)
    record, batch = dataset.records[0], task.collate([dataset[0]])
    with torch.no_grad():
        expected = float(task.logits(model, batch).float().softmax(1)[0, 1])
    out = P.verify_statement(
        P.load_predictor(ckpt, device="cpu"), record.image_0.path, record.image_1.path, record.sentence
    )
    assert out["prob_true"] == pytest.approx(expected, abs=1e-5) and out["prediction"] == (expected > 0.5)
    with pytest.raises(CheckpointError, match="no VQA head"):
        P.answer_question(P.load_predictor(ckpt, device="cpu"), record.image_0.path, "what?")


def test_retrieval_rankings_use_the_rank_head(synth_root, tiny_checkpoint, tmp_path):
    ckpt = tiny_checkpoint("f30k")
    task, model = _task("f30k", synth_root, ckpt)
    records = task.split_records("test")[:4]
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, r in enumerate(records):
        (folder / f"{i}.jpg").write_bytes(r.image.path.read_bytes())
    sentence = records[1].captions[0]
    p = P.load_predictor(ckpt, device="cpu")
    ranked = P.rank_images(p, sentence, folder, top_k=4)
    assert sorted(r["image"] for r in ranked) == sorted(str(f) for f in folder.iterdir())
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
    # the top score recomputed through the evaluation's dataset tensors
    dataset = task.build_dataset("test", train=False)
    visuals = task.visuals(train=False)
    from sclbench.common.tokenizer import encode

    enc = encode([sentence], task.tokenizer, task.max_len)
    best = int(ranked[0]["image"].rsplit("/", 1)[1].split(".")[0])
    with torch.no_grad():
        pixels = visuals(records[best].image).unsqueeze(0)
        fused = model(enc["ids"], enc["masks"], pixels)
        expected = float(model.rank_output(fused.cls_feats).squeeze())
    assert ranked[0]["score"] == pytest.approx(expected, abs=1e-4)
    texts = P.rank_texts(p, records[0].image.path, ["a red circle", "a blue square", sentence], top_k=2)
    assert len(texts) == 2 and texts[0]["score"] >= texts[1]["score"]
    contrastive = P.rank_texts(p, records[0].image.path, ["a red circle", "a blue square"], scorer="contrastive")
    assert all(-1.0 <= t["score"] <= 1.0 for t in contrastive)
    del dataset


def test_cli_prints_json(synth_root, tiny_checkpoint, tmp_path):
    from sclbench.cli.predict import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer from collapsing the group
        pass

    ckpt = tiny_checkpoint("f30k")
    records = jobs.get_task("f30k", data_root=str(synth_root / "f30k")).split_records("test")[:3]
    sentences = tmp_path / "s.txt"
    sentences.write_text("a red circle\n\na blue square\n")
    result = CliRunner().invoke(
        app,
        [
            "predict",
            "texts",
            str(records[0].image.path),
            str(sentences),
            "--ckpt",
            str(ckpt),
            "--json",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert {r["text"] for r in out} == {"a red circle", "a blue square"}
