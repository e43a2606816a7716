"""`--compile`: every stage `SCLModel.compile_stages` compiles traces to ONE graph (no graph break: no host
read of a tensor, no data-dependent shape), and compiled equals eager.

Tolerances: the graph-capture tests use the `aot_eager` backend (torch.compile's tracing, functionalisation
and autograd graph, run with the eager kernels; seconds on a CPU) and ask 1e-5 absolute / 1e-4 relative on
outputs and gradients: the same kernels on the same numbers, so only a reordered reduction can differ.
The inductor test (generated C++ kernels, minutes on one CPU core: marked slow) asks 1e-4 absolute /
1e-3 relative: fused kernels sum in another order (the tiny model's features are O(1), fp32 eps 1.2e-7,
a few hundred terms per sum).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch._dynamo

from sclbench.data.masking import MaskSpec
from sclbench.model import SCLConfig, SCLModel
from sclbench.model.scl import COMPILED_STAGES
from sclbench.objectives.pretrain import PretrainConfig, PretrainObjective


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
    torch.set_num_threads(threads)


def _model(task: str, seed: int = 0) -> SCLModel:
    torch.manual_seed(seed)
    return SCLModel(SCLConfig.tiny(task, drop_rate=0.0))


def _text(b: int = 3, length: int = 10, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, 999, (b, length), generator=g)
    masks = torch.ones(b, length, dtype=torch.long)
    masks[1, 6:] = 0  # one padded row, one row padded after </s> only, one full row
    masks[2, 9:] = 0
    ids[:, 0] = 0
    return ids * masks + (1 - masks), masks


def _images(b: int = 3, frames: int = 1, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (b, 3, 32, 32) if frames == 1 else (b, frames, 3, 32, 32)
    return torch.rand(shape, generator=g)


# ---- what each task computes (the heads on top of the stages) ----------------------------------------
def _vqa(m: SCLModel) -> torch.Tensor:
    ids, masks = _text()
    return m.vqa_classifier(m(ids, masks, _images()).cls_feats)


def _nlvr2(m: SCLModel) -> torch.Tensor:
    ids, masks = _text()
    return m.nlvr2_logits(ids, masks, _images(seed=3), _images(seed=4))


def _retrieval(m: SCLModel, frames: int = 1) -> torch.Tensor:
    ids, masks = _text()
    text, vision = m.encode_text(ids, masks), m.encode_vision(_images(frames=frames))
    scores = m.rank_output(m.fuse(text, masks, vision).cls_feats)
    t, v = m.contrastive_features(text, vision)
    # The evaluation path: per-stream inputs, then pair fusion (retrieval re-ranking).
    pairs = m.fuse_prepared(m.text_stream_inputs(text, masks), m.vision_stream_inputs(vision), vision.num_frames)
    return torch.cat([scores.flatten(), (t @ v.t()).flatten(), pairs.cls_feats.flatten()])


def _video(m: SCLModel) -> torch.Tensor:
    return _retrieval(m, frames=2)


def _pretrain(m: SCLModel) -> torch.Tensor:
    ids, masks = _text(b=4)
    spec = MaskSpec(mask_id=999, vocab_size=1000, special_ids=(0, 1, 2, 999))
    batch = {"text_ids": ids, "text_masks": masks, "images": _images(b=4), "neg_images": _images(b=4, seed=5)}
    loss, logs = PretrainObjective(PretrainConfig(), spec)(m, batch)  # fixed-seed generator outside the trainer
    return torch.stack([loss] + [logs[k] for k in sorted(logs)])


CASES = {
    "vqa": ("vqa", _vqa),
    "nlvr2": ("nlvr2", _nlvr2),
    "f30k": ("f30k", _retrieval),
    "msrvtt": ("msrvtt", _video),
    "pretrain": ("pretrain", _pretrain),
}


def _run(m: SCLModel, fn) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    m.zero_grad(set_to_none=True)
    out = fn(m)
    out.float().square().sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}


# ---- no graph break -----------------------------------------------------------------------------
@pytest.mark.parametrize("frames", [1, 2])
def test_forward_has_no_graph_break(frames):
    """The model's forward (images and clips, train and eval mode) is one graph."""
    m = _model("msrvtt" if frames > 1 else "vqa")
    ids, masks = _text()
    for training in (True, False):
        m.train(training)
        report = torch._dynamo.explain(m)(ids, masks, _images(frames=frames))
        assert report.graph_break_count == 0, report.break_reasons
        assert report.graph_count == 1


def test_the_padding_mask_is_not_read_on_the_host():
    """The check that broke the graph (`if mask.all()`) is gone: the text tower sees the same
    mask whether or not anything is padded, and an all-ones mask changes nothing."""
    m = _model("vqa").eval()
    ids, masks = _text()
    full = torch.ones_like(masks)
    report = torch._dynamo.explain(m.text_transformer)(input_ids=ids, attention_mask=full)
    assert report.graph_break_count == 0
    with torch.no_grad():
        plain = m.text_transformer(input_ids=ids).last_hidden_state
        masked = m.text_transformer(input_ids=ids, attention_mask=full).last_hidden_state
    assert torch.equal(plain, masked)


# vqa ~14 s on one core; the others trace more stages or shapes (25-32 s each): marked slow.
@pytest.mark.parametrize("case", [c if c == "vqa" else pytest.param(c, marks=pytest.mark.slow) for c in sorted(CASES)])
def test_every_stage_compiles_to_one_graph_and_equals_eager(case):
    """fullgraph=True raises on any graph break inside a stage; outputs and gradients match eager."""
    task, fn = CASES[case]
    eager_out, eager_grads = _run(_model(task).train(), fn)
    compiled = _model(task).train().compile_stages(backend="aot_eager", fullgraph=True)
    assert compiled.is_compiled and not _model(task).is_compiled
    out, grads = _run(compiled, fn)
    torch.testing.assert_close(out, eager_out, atol=1e-5, rtol=1e-4)
    assert grads.keys() == eager_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, eager_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_compiled_stages_keep_state_dict_and_all_stages_are_used():
    m = _model("f30k")
    keys = list(m.state_dict())
    m.compile_stages(backend="aot_eager")
    assert list(m.state_dict()) == keys  # checkpoints are unchanged by compilation
    counts = {}
    for name in COMPILED_STAGES:
        fn = getattr(m, name)
        assert fn is not getattr(type(m), name)  # the instance holds the compiled stage
        counts[name] = fn
    assert len(counts) == len(COMPILED_STAGES)


@pytest.mark.slow
def test_inductor_equals_eager_on_vqa():
    """The default backend (inductor: generated kernels), as `--compile` runs it: ~2 min on one CPU core."""
    eager_out, eager_grads = _run(_model("vqa").train(), _vqa)
    out, grads = _run(_model("vqa").train().compile_stages(fullgraph=True), _vqa)
    torch.testing.assert_close(out, eager_out, atol=1e-4, rtol=1e-3)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, eager_grads[name], atol=1e-4, rtol=1e-3, msg=name)


@pytest.mark.slow  # ~40-60 s on one core (compiles the stages for training and for validation)
def test_trainer_compiles_when_asked_and_trains_like_eager(tmp_path, monkeypatch):
    """TrainConfig.compile (`--compile`, card key train.compile) compiles the stages before the first
    step; two steps with validation give eager's weights. The aot_eager
    backend keeps this fast; `--compile` itself uses the default (inductor)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
    from engine_toy import ToyDataset, collate, make_loss_fn, tiny_model

    from sclbench.engine.trainer import TrainConfig, Trainer

    calls = []
    original = SCLModel.compile_stages

    def compile_stages(self, **options):
        calls.append(options)
        return original(self, backend="aot_eager", fullgraph=True)

    monkeypatch.setattr(SCLModel, "compile_stages", compile_stages)
    monkeypatch.setenv("SCLBENCH_NO_PROGRESS", "1")
    runs = {}
    for compiled in (False, True):
        cfg = TrainConfig(
            lr=1e-3,
            warmup=1,
            max_steps=2,
            global_batch_size=8,
            per_device_batch_size=8,
            out_dir=str(tmp_path / str(compiled)),
            seed=3,
            log_every=1,
            tensorboard=False,
            device="cpu",
            compile=compiled,
            eval_every_steps=2,
            select_metric="score",
        )
        trainer = Trainer(
            tiny_model(),
            make_loss_fn(),
            ToyDataset(16),
            collate,
            cfg,
            lambda m: {"score": float(m.vqa_classifier[3].bias.sum())},
        )
        summary = trainer.fit()
        runs[compiled] = (trainer.model, summary)
    assert calls == [{}] and runs[True][0].is_compiled and not runs[False][0].is_compiled
    eager, compiled = runs[False][0].state_dict(), runs[True][0].state_dict()
    for name, value in eager.items():
        torch.testing.assert_close(compiled[name], value, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.slow  # 17-40 s on one core: the retrieval stages compile for several pair-batch shapes
def test_eval_with_compile_records_it_and_gives_eager_numbers(tmp_path, monkeypatch):
    """`sclbench eval --compile` (app.jobs.evaluate(compile=True)): the record says compile in its
    config and protocol, and the metrics equal the eager evaluation's (aot_eager backend, for speed)."""
    from sclbench.app.jobs import evaluate
    from sclbench.data.synthetic import generate

    original = SCLModel.compile_stages
    monkeypatch.setattr(SCLModel, "compile_stages", lambda self, **kw: original(self, backend="aot_eager"))
    root = generate(tmp_path / "data", scale=0.25, parts=("f30k",))
    runs = {}
    for compiled in (False, True):
        ev, path = evaluate(
            "f30k",
            None,
            "test",
            str(root / "f30k"),
            tmp_path / f"results-{compiled}",
            preset="tiny",
            tokenizer=str(root / "tokenizer"),
            limit=8,
            compile=compiled,
            mode="exhaustive",
        )
        runs[compiled] = (ev, json.loads(Path(path).read_text()))
    (eager, eager_record), (compiled_ev, record) = runs[False], runs[True]
    assert record["config"]["compile"] is True and eager_record["config"]["compile"] is False
    assert record["protocol"]["compile"] is True and "compile" not in eager_record["protocol"]
    assert compiled_ev.metrics == pytest.approx(eager.metrics, abs=1e-9)


# End-to-end runs (subprocesses, training, compiling, fuzzing real jobs): CI runs them; the fast lane
# (-m "not slow") leaves them out to stay under two minutes.
pytestmark = pytest.mark.slow
