"""SCL through the model interface: `SCLEvalModel`'s VQA and NLVR2 methods give exactly what the direct
`SCLModel` forward gives, VQA / NLVR2 `evaluate` through the interface gives the numbers of the direct
forward (bit for bit where no image repeats in a batch), and predictions carry the shared contract's
fields (ids, texts, types, cluster unit) with VQA's per-type breakdown."""

from __future__ import annotations

import pytest
import torch

from sclbench.adapters import NLVR2Batch, Preprocess, VQABatch, supports
from sclbench.adapters.scl import SCLEvalModel, as_eval_model
from sclbench.app import jobs
from sclbench.common.tokenizer import encode
from sclbench.data.transforms import build_transform
from sclbench.metrics import nlvr2_metrics, vqa_evaluate
from sclbench.metrics.nlvr2 import sentence_key
from sclbench.model import SCLConfig, SCLModel
from sclbench.tasks.encode_once import source_key

VQA_OVERRIDES = ["data.minival_images=4"]


def _prepared(task_name: str, synth_root):
    torch.manual_seed(0)
    overrides = VQA_OVERRIDES if task_name == "vqa" else []
    task, loaded = jobs.prepare(
        task_name, None, str(synth_root / task_name), overrides, preset="tiny", tokenizer=str(synth_root / "tokenizer")
    )
    return task, loaded.model.eval(), loaded.tokenizer


def _text(tokenizer, texts, max_len):
    return encode(list(texts), tokenizer, max_len)


def test_scl_implements_every_family_and_owns_its_preprocessing(synth_tokenizer):
    scl = SCLModel(SCLConfig.tiny("vqa"))
    model = SCLEvalModel(scl, synth_tokenizer, "eval", checkpoint_sha256="abc")
    assert all(supports(model, family) for family in ("retrieval", "vqa", "nlvr2", "video_retrieval"))
    pre = model.preprocess()
    assert isinstance(pre, Preprocess) and pre.deterministic
    enc = pre.text(["a red cube", "two"])
    assert enc["ids"].shape == (2, scl.config.max_text_len) and enc["masks"].shape == enc["ids"].shape
    info = model.describe()
    assert info["name"] == "scl" and info["checkpoint_sha256"] == "abc"
    assert info["preprocess"]["image_size"] == scl.config.image_size
    assert not SCLEvalModel(scl, synth_tokenizer, "clip_randaug").preprocess().deterministic
    # as_eval_model wraps an SCLModel in its own mode and passes an EvalModel through
    scl.eval()
    wrapped = as_eval_model(scl, synth_tokenizer)
    assert isinstance(wrapped, SCLEvalModel) and not wrapped.training and as_eval_model(wrapped, None) is wrapped


def test_answer_vqa_and_nlvr2_prob_true_equal_the_direct_forward(synth_tokenizer):
    torch.manual_seed(0)
    scl = SCLModel(SCLConfig.tiny("vqa")).eval()
    model = as_eval_model(scl, synth_tokenizer)
    size = scl.config.image_size
    images = torch.rand(4, 1, 3, size, size)
    text = _text(synth_tokenizer, ["what color is it", "how many", "is it red", "what shape"], scl.config.max_text_len)
    with torch.no_grad():
        got = model.answer_vqa(VQABatch(images, text, ["q"] * 4, ["a", "b", "c", "d"], ["x"] * 4))
        want = scl.vqa_classifier(scl(text["ids"], text["masks"], images).cls_feats)
    assert torch.equal(got, want)

    nl = SCLModel(SCLConfig.tiny("nlvr2")).eval()
    model = as_eval_model(nl, synth_tokenizer)
    left, right = torch.rand(3, 1, 3, size, size), torch.rand(3, 1, 3, size, size)
    text = _text(synth_tokenizer, ["one cube", "two balls", "a cone"], nl.config.max_text_len)
    with torch.no_grad():
        batch = NLVR2Batch(left, right, text, ["s"] * 3, ["l0", "l1", "l2"], ["r0", "r1", "r2"])
        got = model.nlvr2_prob_true(batch)
        want = nl.nlvr2_logits(text["ids"], text["masks"], left, right).float().softmax(1)[:, 1]
    assert got.dtype == torch.float32 and torch.equal(got, want)


@pytest.mark.parametrize("task_name", ["vqa", "nlvr2"])
def test_evaluate_through_the_interface_equals_the_direct_forward(synth_root, task_name):
    """Batch size 1 (no image repeats within a batch): bit-identical to SCLModel's own forward on the
    dataset's tensors; a larger batch (images encoded once) gives the same answers and metrics."""
    task, scl, tokenizer = _prepared(task_name, synth_root)
    split = "val"
    ev = task.evaluate(scl, split, batch_size=1)
    assert ev.predictions and not scl.training
    transform = build_transform("eval", scl.config.image_size)
    records = task.build_dataset(split, train=False).records
    direct = []
    with torch.no_grad():
        for r in records:
            if task_name == "vqa":
                text = _text(tokenizer, [r.question], scl.config.max_text_len)
                image = transform(r.image.open())[None, None]
                logits = scl.vqa_classifier(scl(text["ids"], text["masks"], image).cls_feats)
                direct.append(task.vocab.answers[int(logits.argmax(1))])
            else:
                text = _text(tokenizer, [r.sentence], scl.config.max_text_len)
                i0, i1 = transform(r.image_0.open())[None, None], transform(r.image_1.open())[None, None]
                direct.append(float(scl.nlvr2_logits(text["ids"], text["masks"], i0, i1).float().softmax(1)[0, 1]))
    if task_name == "vqa":
        assert [p["answer"] for p in ev.predictions] == direct
        questions = [
            {
                "question_id": r.question_id,
                "answers": r.answers,
                "answer_type": r.answer_type,
                "question_type": r.question_type,
            }
            for r in records
        ]
        result = vqa_evaluate({r.question_id: a for r, a in zip(records, direct)}, questions)
        assert ev.metrics["accuracy"] == result["accuracy"]
        assert ev.breakdown == {k: result[k] for k in ("per_answer_type", "per_question_type")}
    else:
        assert [p["prob_true"] for p in ev.predictions] == direct  # exact: the same ops in the same order
        labels = {r.identifier: r.label for r in records}
        assert ev.metrics == nlvr2_metrics({r.identifier: p > 0.5 for r, p in zip(records, direct)}, labels)
    batched = task.evaluate(scl, split, batch_size=6)
    assert batched.metrics == ev.metrics
    key = "answer" if task_name == "vqa" else "prediction"
    assert [p[key] for p in batched.predictions] == [p[key] for p in ev.predictions]


def test_predictions_carry_ids_texts_and_units(synth_root):
    task, scl, _ = _prepared("vqa", synth_root)
    ev = task.evaluate(scl, "val", batch_size=4)
    records = {r.question_id: r for r in task.build_dataset("val", train=False).records}
    assert ev.protocol["cluster_unit"] == "image"
    for p in ev.predictions:
        r = records[p["question_id"]]
        assert p["unit"] == f"image/{r.image_id}" and p["image_id"] == r.image_id
        assert (p["question"], p["answer_type"], p["question_type"]) == (r.question, r.answer_type, r.question_type)
        assert p["answers"] == r.answers and len(p["answers"]) == 10
        assert 0.0 <= p["scores"]["accuracy"] <= 1.0 and isinstance(p["answer"], str)
    assert set(ev.breakdown) == {"per_answer_type", "per_question_type"}
    assert ev.breakdown["per_answer_type"] and all(0 <= v <= 100 for v in ev.breakdown["per_answer_type"].values())

    task, scl, _ = _prepared("nlvr2", synth_root)
    ev = task.evaluate(scl, "val", batch_size=4)
    records = {r.identifier: r for r in task.role_records("val")}
    assert ev.protocol["cluster_unit"] == "sentence"
    for p in ev.predictions:
        r = records[p["identifier"]]
        assert p["unit"] == f"sentence/{sentence_key(r.identifier)}"
        assert (p["sentence"], p["label"]) == (r.sentence, r.label)
        assert p["images"] == [r.image_0.path.stem, r.image_1.path.stem]
        assert p["prediction"] == (p["prob_true"] > 0.5)
    assert ev.breakdown == {}


def test_image_keys_reach_the_model(synth_root, monkeypatch):
    """The task hands the model one key per image (equal for the same file), so it can encode it once."""
    task, scl, tokenizer = _prepared("vqa", synth_root)
    seen = []
    model = as_eval_model(scl, tokenizer)
    original = type(model).answer_vqa

    def spy(self, batch):
        seen.append(list(batch.image_keys))
        return original(self, batch)

    monkeypatch.setattr(type(model), "answer_vqa", spy)
    task.evaluate(model, "val", batch_size=8)
    records = task.build_dataset("val", train=False).records
    assert [k for keys in seen for k in keys] == [source_key(r.image) for r in records]


def test_records_with_and_without_a_breakdown_load(tmp_path):
    """`breakdown` is optional: records written before it load with {}, new ones keep it; a breakdown
    that is not a mapping is refused naming the field."""
    from sclbench.errors import DataError
    from sclbench.results.record import ResultRecord, load

    old = ResultRecord("vqa", "minival", {"accuracy": 50.0}, "vqaEval-official").to_dict()
    del old["breakdown"]
    assert ResultRecord.from_dict(old).breakdown == {}
    breakdown = {"per_answer_type": {"yes/no": 75.0, "number": 25.0}, "per_question_type": {"how many": 25.0}}
    path = ResultRecord("vqa", "minival", {"accuracy": 50.0}, "vqaEval-official", breakdown=breakdown).save(tmp_path)
    assert load(path).breakdown == breakdown
    with pytest.raises(DataError, match="breakdown"):
        ResultRecord.from_dict({**old, "breakdown": [1, 2]})


def test_vqa_outputs_scores_or_strings():
    """Scores over the vocabulary answer with their argmax and the target there; strings are answers
    as given (the official scorer normalises them) whose proxy is the target of their normalised form;
    any other output is one ConfigError naming the model."""
    from sclbench.errors import ConfigError
    from sclbench.tasks.vqa import vqa_answers

    answers = ["yes", "2", "red"]
    index_of = {a: i for i, a in enumerate(answers)}
    targets = torch.tensor([[1.0, 0.0, 0.3], [0.0, 0.6, 0.0]])
    scores = torch.tensor([[0.1, 0.2, 0.9], [0.0, 3.0, 1.0]])
    assert vqa_answers(scores, targets, answers, index_of, "m") == (["red", "2"], pytest.approx([0.3, 0.6]))
    chosen, soft = vqa_answers([" Yes\t", "two"], targets, answers, index_of, "m")
    assert chosen == [" Yes\t", "two"] and soft == pytest.approx([1.0, 0.6])
    assert vqa_answers(["purple", "yes"], targets, answers, index_of, "m")[1] == [0.0, 0.0]
    for bad in (torch.zeros(2, 4), torch.zeros(3, 3), torch.zeros(2), ["yes"], ["yes", 2], "yes", None):
        with pytest.raises(ConfigError, match="model 'm': answer_vqa returned"):
            vqa_answers(bad, targets, answers, index_of, "m")
