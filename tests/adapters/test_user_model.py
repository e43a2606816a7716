"""A model defined in this file, evaluated through `sclbench eval TASK --model MODULE:FACTORY` on the
synthetic benchmark: its records' metrics equal what the same model computes directly here, scored
with the project's metric functions; a bad factory is one `error:` line and exit code 2.

The model is what a user would write: a small CNN image encoder (frames mean-pooled), a bag-of-words
text encoder with its own hashing tokenizer (padding to the longest string of each batch), and its own
image transform."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sclbench.adapters import NLVR2Batch, NLVR2Model, Preprocess, RetrievalModel, VQABatch, VQAModel

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
SIZE = 24


# ---- the user's model ------------------------------------------------------------------------------
class ToTensor:
    """PIL image -> Float[3, SIZE, SIZE] in [0, 1] (a class: loader workers receive it pickled)."""

    def __call__(self, image) -> torch.Tensor:
        array = np.asarray(image.convert("RGB").resize((SIZE, SIZE)), dtype=np.float32) / 255.0
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()


class HashWords:
    """Lower-cased words hashed into `vocab` ids (0 = padding), padded to the batch's longest text."""

    def __init__(self, vocab: int = 512, max_len: int = 16):
        self.vocab, self.max_len = vocab, max_len

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        rows = [
            [1 + zlib.crc32(w.encode()) % (self.vocab - 1) for w in t.lower().split()][: self.max_len] for t in texts
        ]
        width = max(1, *(len(r) for r in rows))
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return {"ids": ids}


class TinyUserModel(RetrievalModel, VQAModel, NLVR2Model):
    name = "tiny-user"
    has_pair_scorer = False

    def __init__(self, dim: int = 16, vocab: int = 512, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.tokenize = HashWords(vocab)
        self.conv = nn.Sequential(nn.Conv2d(3, dim, 3, stride=2), nn.ReLU(), nn.Conv2d(dim, dim, 3, stride=2))
        self.words = nn.Embedding(vocab, dim, padding_idx=0)
        self.nlvr2_head = nn.Linear(2 * dim, 1)

    def preprocess(self) -> Preprocess:
        return Preprocess(
            image=ToTensor(), text=self.tokenize, num_frames=2, describe={"size": SIZE}, deterministic=True
        )

    def media(self, pixels: torch.Tensor) -> torch.Tensor:  # [B, F, 3, H, W] -> [B, D], frames mean-pooled
        b, f = pixels.shape[:2]
        return self.conv(pixels.flatten(0, 1)).mean((2, 3)).view(b, f, -1).mean(1)

    def text(self, ids: torch.Tensor) -> torch.Tensor:  # bag of words: the mean of the word vectors
        mask = (ids > 0).unsqueeze(-1).float()
        return (self.words(ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def embed_texts(self, text):
        return {"embedding": nn.functional.normalize(self.text(text["ids"]), dim=-1)}

    def embed_media(self, pixels):
        return {"embedding": nn.functional.normalize(self.media(pixels), dim=-1)}

    def answer_vqa(self, batch: VQABatch) -> torch.Tensor:  # scores over the card's answer vocabulary
        joint = self.media(batch.pixels) * self.text(batch.text["ids"])
        return joint @ self.text(self.tokenize(batch.vocabulary)["ids"].to(joint.device)).T

    def nlvr2_prob_true(self, batch: NLVR2Batch) -> torch.Tensor:
        t = self.text(batch.text["ids"])
        pair = torch.cat([self.media(batch.pixels_0) * t, self.media(batch.pixels_1) * t], dim=-1)
        return torch.sigmoid(self.nlvr2_head(pair)).squeeze(-1)


class StringAnswers(TinyUserModel):
    """VQA by answer strings (a generative model's way): the official scorer grades them."""

    def answer_vqa(self, batch: VQABatch) -> list[str]:
        best = super().answer_vqa(batch).argmax(1).tolist()
        return [f" {batch.vocabulary[i]}\t" for i in best]  # the official scorer strips white space


class PairScorer(TinyUserModel):
    """With a cross-encoder: the engine scores (text, image) candidate pairs through `score_pairs`."""

    has_pair_scorer = True

    def __init__(self):
        super().__init__()
        self.pair_head = nn.Sequential(nn.Linear(self.words.embedding_dim, 8), nn.Tanh(), nn.Linear(8, 1))

    def embed_texts(self, text):
        t = self.text(text["ids"])
        return {"embedding": nn.functional.normalize(t, dim=-1), "feat": t}

    def embed_media(self, pixels):
        m = self.media(pixels)
        return {"embedding": nn.functional.normalize(m, dim=-1), "feat": m}

    def score_pairs(self, texts, media, text_of, media_of):
        return self.pair_head(texts["feat"][text_of] * media["feat"][media_of]).squeeze(-1)


def build(ckpt=None, family=None):
    return TinyUserModel(seed=int(ckpt) if ckpt else 0)


def build_strings(ckpt=None, family=None):
    return StringAnswers()


def build_pairs(ckpt=None, family=None):
    return PairScorer()


# ---- bad factories ---------------------------------------------------------------------------------
not_callable = 3


def no_keywords():
    return TinyUserModel()


def wrong_type(ckpt=None, family=None):
    return nn.Linear(2, 2)


class NoAnswers(VQAModel):
    def __init__(self):
        super().__init__()
        self.w = nn.Linear(1, 1)

    def preprocess(self):
        return Preprocess(image=ToTensor(), text=HashWords())


def missing_method(ckpt=None, family=None):
    return NoAnswers()


class NoPreprocess(VQAModel):
    def __init__(self):
        super().__init__()
        self.w = nn.Linear(1, 1)

    def answer_vqa(self, batch):
        return ["yes"] * len(batch.questions)


def missing_preprocess(ckpt=None, family=None):
    return NoPreprocess()


class WrongShape(TinyUserModel):
    def answer_vqa(self, batch):
        return torch.zeros(len(batch.questions), 3)


def wrong_shape(ckpt=None, family=None):
    return WrongShape()


class Logits(TinyUserModel):
    def nlvr2_prob_true(self, batch):
        return super().nlvr2_prob_true(batch) + 1.0  # in (1, 2): not probabilities


def logits_not_probabilities(ckpt=None, family=None):
    return Logits()


# ---- the tests -------------------------------------------------------------------------------------
def run_cli(args, capsys) -> tuple[int, list[str]]:
    from sclbench.cli import main

    capsys.readouterr()
    rc = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, [line for line in err.splitlines() if line.startswith("error:")]


def load_record(results: Path, task: str) -> tuple[dict, list[dict]]:
    (path,) = (results / task).glob("*.json")
    record = json.loads(path.read_text())
    lines = (path.parent / record["predictions_file"]).read_text().splitlines()
    return record, [json.loads(line) for line in lines]


def eval_args(task, data, results, model, *extra):
    overrides = ["data.minival_images=4"] if task == "vqa" else []
    return ["eval", task, *overrides, "--model", model, "--data-root", data, "--results", results, *extra]


def direct_vqa(model, task, split):
    """Answers of `model` question by question (no batching, no loader), and their official metrics."""
    from sclbench.metrics import vqa_evaluate

    pre, answers = model.preprocess(), task.vocab.answers
    records = task.split_records(task.card.get(f"splits.{split}"))
    chosen = {}
    with torch.no_grad():
        for r in records:
            batch = VQABatch(pre.image(r.image.open())[None, None], pre.text([r.question]), [r.question], [0], answers)
            out = model.answer_vqa(batch)
            chosen[r.question_id] = out[0] if isinstance(out, list) else answers[int(out.argmax(1))]
    questions = [
        {
            "question_id": r.question_id,
            "answers": r.answers,
            "answer_type": r.answer_type,
            "question_type": r.question_type,
        }
        for r in records
    ]
    return chosen, vqa_evaluate(chosen, questions)


@pytest.mark.parametrize("factory", ["build", "build_strings"])
def test_user_vqa_model_through_the_cli(synth_root, tmp_path, capsys, monkeypatch, factory):
    from sclbench.app.jobs import get_task

    monkeypatch.syspath_prepend(str(REPO))  # the module form: tests.adapters.test_user_model
    spec = f"tests.adapters.test_user_model:{factory}"
    rc, errors = run_cli(eval_args("vqa", synth_root / "vqa", tmp_path, spec, "--split", "val"), capsys)
    assert rc == 0, errors
    record, preds = load_record(tmp_path, "vqa")
    task = get_task("vqa", ["data.minival_images=4"], data_root=str(synth_root / "vqa"))
    model = (StringAnswers if factory == "build_strings" else TinyUserModel)().eval()
    chosen, result = direct_vqa(model, task, "val")
    assert {p["question_id"]: p["answer"] for p in preds} == chosen
    assert record["metrics"]["accuracy"] == result["accuracy"]
    assert record["breakdown"]["per_answer_type"] == result["per_answer_type"]
    assert record["checkpoint"]["model"] == spec and record["checkpoint"]["sha256"] is None
    assert record["config"]["model"]["name"] == "tiny-user" and record["config"]["model"]["preprocess"] == {"size": 24}
    assert all(p["unit"].startswith("image/") for p in preds)
    if factory == "build_strings":  # " yes\t" is scored as "yes" (the official scorer strips white space)
        assert result["accuracy"] == direct_vqa(TinyUserModel().eval(), task, "val")[1]["accuracy"] > 0


def test_user_nlvr2_model_by_file_path(synth_root, tmp_path, capsys):
    from sclbench.app.jobs import get_task
    from sclbench.metrics import nlvr2_metrics

    spec = f"{HERE}:build"
    rc, errors = run_cli(
        eval_args("nlvr2", synth_root / "nlvr2", tmp_path, spec, "--split", "val", "--batch-size", 3), capsys
    )
    assert rc == 0, errors
    record, preds = load_record(tmp_path, "nlvr2")
    task = get_task("nlvr2", [], data_root=str(synth_root / "nlvr2"))
    model, records = TinyUserModel().eval(), task.role_records("val")
    pre = model.preprocess()
    probs = {}
    with torch.no_grad():
        for r in records:
            left, right = (pre.image(s.open())[None, None] for s in (r.image_0, r.image_1))
            batch = NLVR2Batch(left, right, pre.text([r.sentence]), [r.sentence], [0], [1])
            probs[r.identifier] = float(model.nlvr2_prob_true(batch)[0])
    assert {p["identifier"]: p["prob_true"] for p in preds} == pytest.approx(probs, abs=1e-6)
    labels = {r.identifier: r.label for r in records}
    assert record["metrics"] == nlvr2_metrics({i: p > 0.5 for i, p in probs.items()}, labels)
    assert record["protocol"]["cluster_unit"] == "sentence" and record["checkpoint"]["name"] == f"{HERE}:build"


def direct_retrieval(model, task) -> tuple[dict, torch.Tensor]:
    """The model's scores of every (media, caption) pair of the test split, computed here item by item
    (a clip: the model's frames, uniformly spaced), and the project's recall metrics of them."""
    from sclbench.data.datasets import Visuals, caption_index
    from sclbench.metrics import retrieval_recall
    from sclbench.metrics.video import video_retrieval_metrics

    pre = model.preprocess()
    records = task.split_records("test")
    texts, owner = caption_index(records)
    visuals = Visuals(pre.image, num_frames=pre.num_frames, frame_mode="uniform")
    with torch.no_grad():
        media = [model.embed_media(visuals(task.media(r))[None]) for r in records]
        words = [model.embed_texts(pre.text([t])) for t in texts]
        if model.has_pair_scorer:
            rows = []
            for m in media:
                t = {k: torch.cat([w[k] for w in words]) for k in words[0]}
                each = torch.arange(len(texts))
                rows.append(model.score_pairs(t, m, each, torch.zeros_like(each)))
            scores = torch.stack(rows)
        else:
            scores = torch.cat([m["embedding"] for m in media]) @ torch.cat([w["embedding"] for w in words]).T
    if task.media_kind == "video":  # [texts, videos], t2v / v2t recall, median and mean rank
        return video_retrieval_metrics(scores.T, owner, ties="gt_last"), scores
    return retrieval_recall(scores, scores.T, txt2img=owner, ties="gt_last"), scores


@pytest.mark.parametrize(
    "task_name,factory,mode",
    [
        ("f30k", "build", None),  # no cross-encoder: ranked by the embeddings
        ("f30k", "build_pairs", "exhaustive"),  # every pair through score_pairs
        ("f30k", "build_pairs", "two-stage"),  # k covers the split: the exhaustive numbers
        ("msrvtt", "build", None),  # video: the model's 2 frames per clip, mean-pooled
        ("msrvtt", "build_pairs", "exhaustive"),
    ],
)
def test_user_retrieval_model_through_the_cli(synth_root, tmp_path, capsys, task_name, factory, mode):
    from sclbench.app.jobs import get_task

    extra = ["--mode", mode, "--fusion", "itm"] if mode else []
    args = eval_args(task_name, synth_root / task_name, tmp_path, f"{HERE}:{factory}", "--batch-size", 3, *extra)
    rc, errors = run_cli(args, capsys)
    assert rc == 0, errors
    record, preds = load_record(tmp_path, task_name)
    task = get_task(task_name, [], data_root=str(synth_root / task_name))
    model = (PairScorer() if factory == "build_pairs" else TinyUserModel()).eval()
    metrics, scores = direct_retrieval(model, task)
    assert record["metrics"] == pytest.approx(metrics, abs=1e-9)
    ranks = {p["id"]: p["rank"] for p in preds}
    for i in range(scores.shape[0]):  # the engine's scores of each image query are the model's
        top = next(p["top"] for p in preds if p["id"] == f"{task.media_kind}/{i}")
        want = sorted(scores[i].tolist(), reverse=True)[: len(top)]
        assert [score for _, score in top] == pytest.approx(want, abs=1e-5)
    assert len(ranks) == scores.shape[0] + scores.shape[1]
    assert record["protocol"]["mode"] == (mode or "embedding")
    assert record["protocol"]["cluster_unit"] == ("video" if task_name == "msrvtt" else "image")
    assert record["config"]["model"]["class"].endswith(type(model).__name__)


def test_skip_existing_tells_models_apart(synth_root, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    args = eval_args("nlvr2", synth_root / "nlvr2", tmp_path, "tests.adapters.test_user_model:build", "--split", "val")
    named = [*args, "--name", "mine", "--skip-existing"]
    assert run_cli(named, capsys)[0] == 0
    capsys.readouterr()
    from sclbench.cli import main

    assert main([str(a) for a in named]) == 0
    assert "skipped" in capsys.readouterr().out
    # Another model under the same row name is a different evaluation: it runs (and replaces the record).
    other = [
        *eval_args("nlvr2", synth_root / "nlvr2", tmp_path, "tests.adapters.test_user_model:build_strings"),
        "--split",
        "val",
    ]
    assert main([str(a) for a in [*other, "--name", "mine", "--skip-existing"]]) == 0
    assert "skipped" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "factory,message",
    [
        ("not_callable", "not callable"),
        ("no_keywords", "ckpt= and family="),
        ("wrong_type", "does not implement the vqa interface"),
        ("missing_method", "does not implement answer_vqa"),
        ("missing_preprocess", "must define preprocess()"),
        ("no_such_factory", "has no attribute 'no_such_factory'"),
        ("wrong_shape", "answer_vqa returned a tensor of shape (4, 3)"),
    ],
)
def test_bad_factories_are_one_error_line(synth_root, tmp_path, capsys, factory, message):
    args = eval_args("vqa", synth_root / "vqa", tmp_path, f"{HERE}:{factory}", "--split", "val", "--batch-size", 4)
    rc, errors = run_cli(args, capsys)
    assert rc == 2 and len(errors) == 1 and message in errors[0], errors


def test_nlvr2_outputs_must_be_probabilities(synth_root, tmp_path, capsys):
    args = eval_args("nlvr2", synth_root / "nlvr2", tmp_path, f"{HERE}:logits_not_probabilities", "--split", "val")
    rc, errors = run_cli(args, capsys)
    assert rc == 2 and len(errors) == 1 and "not a probability in [0, 1]" in errors[0], errors


@pytest.mark.parametrize(
    "spec,message",
    [
        ("no_such_package_xyz.models:build", "cannot import 'no_such_package_xyz.models'"),
        ("vilt2", "not a built-in model"),
        ("some.module:", "expected 'package.module:factory'"),
        ("missing/file.py:build", "no such file"),
        ("{broken}:build", "importing"),
    ],
)
def test_bad_model_names_are_one_error_line(synth_root, tmp_path, capsys, spec, message):
    if spec == "{broken}:build":
        broken = tmp_path / "broken.py"
        broken.write_text("raise RuntimeError('the user module fails at import')\n")
        spec = f"{broken}:build"
    args = eval_args("nlvr2", synth_root / "nlvr2", tmp_path / "results", spec, "--split", "val")
    rc, errors = run_cli(args, capsys)
    assert rc == 2 and len(errors) == 1 and message in errors[0], errors


def test_scl_only_options_are_refused_for_other_models(synth_root, tmp_path, capsys):
    args = eval_args("nlvr2", synth_root / "nlvr2", tmp_path, f"{HERE}:build", "--tokenizer", synth_root / "tokenizer")
    rc, errors = run_cli(args, capsys)
    assert rc == 2 and len(errors) == 1 and "--tokenizer applies to SCL checkpoints" in errors[0], errors


def test_finetune_has_no_model_option(synth_root, tmp_path, capsys):
    """Fine-tuning stays SCL/METER: `finetune --model` is refused by the option parser (exit 2)."""
    from sclbench.cli import main

    rc = main(
        [
            "finetune",
            "nlvr2",
            "--model",
            "tests.adapters.test_user_model:build",
            "--data-root",
            str(synth_root / "nlvr2"),
        ]
    )
    assert rc == 2


def test_compile_for_eval_compiles_the_family_methods(synth_tokenizer):
    """`--compile` for any model: torch.compile of the family methods it implements (SCL: its stages);
    the compiled methods give the eager outputs (aot_eager: the traced graph with eager kernels)."""
    import torch._dynamo

    from sclbench.adapters.scl import as_eval_model
    from sclbench.model import SCLConfig, SCLModel

    torch._dynamo.reset()
    model = TinyUserModel().eval()
    pre = model.preprocess()
    pixels = torch.rand(3, 1, 3, SIZE, SIZE)
    batch = VQABatch(
        pixels, pre.text(["what is it", "how many", "is it red"]), ["q"] * 3, [0, 1, 2], ["yes", "two", "red"]
    )
    with torch.no_grad():
        want = model.answer_vqa(batch)
        model.compile_for_eval(backend="aot_eager")
        got = model.answer_vqa(batch)
    assert model.compiled_methods == ["embed_texts", "embed_media", "answer_vqa", "nlvr2_prob_true"]
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-4)

    scl = SCLModel(SCLConfig.tiny("vqa"))
    as_eval_model(scl, synth_tokenizer).compile_for_eval(backend="aot_eager")
    assert scl.is_compiled
    torch._dynamo.reset()


def readme_example(folder: Path) -> Path:
    """The README's `my_model.py`, written out as a user would copy it."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Any model", 1)[1].split("\n## ", 1)[0]
    code = section.split("in `my_model.py`", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    path = folder / "my_model.py"
    path.write_text(code)
    return path


@pytest.mark.parametrize("task_name", ["f30k", "msrvtt"])
def test_the_readme_example_runs_as_written(synth_root, tmp_path, capsys, task_name):
    """The README's example (a transformers dual encoder) through the CLI on a tiny CLIP saved here: the
    record's metrics are the example model's own, computed item by item."""
    import importlib.util

    import hf_tiny

    from sclbench.app.jobs import get_task

    ckpt = hf_tiny.save_clip(tmp_path / "tiny-clip")
    example = readme_example(tmp_path)
    args = eval_args(task_name, synth_root / task_name, tmp_path / "results", f"{example}:build", "--ckpt", ckpt)
    rc, errors = run_cli(args, capsys)
    assert rc == 0, errors
    record, _ = load_record(tmp_path / "results", task_name)
    spec = importlib.util.spec_from_file_location("readme_example", example)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.build(ckpt=str(ckpt)).eval()
    metrics, _ = direct_retrieval(model, get_task(task_name, [], data_root=str(synth_root / task_name)))
    assert record["metrics"] == pytest.approx(metrics, abs=1e-9)
    assert record["checkpoint"]["name"] == "tiny-clip" and record["checkpoint"]["sha256"]
    assert record["config"]["model"]["source"] == str(ckpt)


def test_precision_and_check_work_for_a_user_model(synth_root, tmp_path, capsys):
    """bf16 autocast reaches the user's model (its outputs are what it computes under autocast) and is
    recorded; `sclbench check` reads the record (per-sample scores) against itself."""
    from sclbench.app.jobs import get_task
    from sclbench.cli import main
    from sclbench.metrics import nlvr2_metrics

    args = eval_args("nlvr2", synth_root / "nlvr2", tmp_path, f"{HERE}:build", "--split", "val", "--precision", "bf16")
    rc, errors = run_cli(args, capsys)
    assert rc == 0, errors
    record, preds = load_record(tmp_path, "nlvr2")
    assert (record["protocol"]["precision"], record["protocol"]["tf32"]) == ("bf16", False)
    task = get_task("nlvr2", [], data_root=str(synth_root / "nlvr2"))
    model, records = TinyUserModel().eval(), task.role_records("val")
    pre = model.preprocess()

    def direct(autocast: bool) -> list[float]:
        out = []
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            for r in records:
                left, right = (pre.image(s.open())[None, None] for s in (r.image_0, r.image_1))
                batch = NLVR2Batch(left, right, pre.text([r.sentence]), [r.sentence], [0], [1])
                out.append(float(model.nlvr2_prob_true(batch)[0]))
        return out

    got = np.array([p["prob_true"] for p in preds])
    bf16, fp32 = np.array(direct(True)), np.array(direct(False))
    assert np.abs(got - bf16).max() < 1e-2 and np.abs(got - bf16).sum() < np.abs(got - fp32).sum()
    labels = {r.identifier: r.label for r in records}
    assert record["metrics"] == nlvr2_metrics({p["identifier"]: p["prediction"] for p in preds}, labels)
    assert main(["check", str(tmp_path), "--baseline", str(tmp_path)]) == 0


@pytest.mark.slow
def test_two_process_eval_of_a_user_model_equals_one_process(synth_root, tmp_path):
    """Sharding is the engine's: `torchrun --nproc_per_node=2` (CPU, gloo) evaluates the test file's model on
    an odd number of questions (shards of different sizes) and gives the one-process record."""
    import os
    import socket
    import subprocess
    import sys

    from sclbench.cli import main

    args = ["eval", "vqa", "data.minival_images=3", "--model", f"{HERE}:build", "--data-root", synth_root / "vqa"]
    args += ["--results", "RESULTS", "--split", "val", "--limit", 12, "--batch-size", 2]
    one, two = tmp_path / "one", tmp_path / "two"
    assert main([str(a).replace("RESULTS", str(one)) for a in args]) == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "SCLBENCH_NO_PROGRESS": "1",
        "HF_HUB_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}", "-m"]
    cmd += ["sclbench", *[str(a).replace("RESULTS", str(two)) for a in args]]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    (r1, p1), (r2, p2) = load_record(one, "vqa"), load_record(two, "vqa")
    assert (r1["world_size"], r2["world_size"]) == (1, 2) and len(p1) % 2 == 1  # shards of different sizes
    assert r2["metrics"] == r1["metrics"]
    assert [(p["question_id"], p["answer"]) for p in p2] == [(p["question_id"], p["answer"]) for p in p1]
