"""Fixtures of the fuzz suite: one workspace of real input files (synthetic benchmark, tiny checkpoints,
result records) per session, and a scratch current folder with a CI-like environment per test."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import pytest
from fuzz_cli import REPO, Workspace

from sclbench.cli import app


@pytest.fixture(scope="session")
def workspace(synth_root, tmp_path_factory) -> Workspace:
    import torch

    from sclbench.app import jobs

    root = tmp_path_factory.mktemp("fuzz_inputs")
    synth = root / "synth"
    shutil.copytree(synth_root, synth)
    ckpts = {}
    for task in ("f30k", "vqa", "nlvr2"):
        torch.manual_seed(0)
        overrides = ["data.minival_images=2"] if task == "vqa" else []
        _, loaded = jobs.prepare(
            task, None, str(synth / task), overrides, preset="tiny", tokenizer=str(synth / "tokenizer")
        )
        ckpts[task] = loaded.model.save_pretrained(root / "ckpt" / task, tokenizer=loaded.tokenizer)
    dev = (synth / "nlvr2" / "data" / "dev.json").read_text().splitlines()  # a valid `score` input
    rows = [f"{json.loads(line)['identifier']},True\n" for line in dev if line.strip()]
    (root / "nlvr2_predictions_dev.csv").write_text("".join(rows))
    records = root / "records"
    shutil.copytree(REPO / "results" / "demo", records)
    image = sorted((synth / "f30k" / "flickr30k-images").iterdir())[0]
    clip = sorted((synth / "msrvtt" / "videos").rglob("*.mp4"))[0]
    sentences = root / "sentences.txt"
    sentences.write_text("a red square\na blue circle on the left\n", encoding="utf-8")
    card = root / "cards"
    card.mkdir()
    shutil.copy(REPO / "sclbench" / "assets" / "tasks" / "f30k.yaml", card / "myf30k.yaml")
    from fuzz_cli import base_argvs, run_cli

    from sclbench.model.checkpoint import export_official
    from sclbench.model.scl import SCLModel

    run = root / "run"
    argv = base_argvs(Workspace(root, synth, ckpts, records, image, clip, sentences, card, run, root, root), root)
    finetune = [a if a != str(root / "run") else str(run) for a in argv["finetune"]]
    outcome = run_cli(["finetune", *finetune, "--max-steps", "2", "--save-every", "1"])
    assert outcome.rc == 0, outcome.report()
    official = root / "official.ckpt"
    export_official(SCLModel.from_pretrained(ckpts["f30k"]), official)
    outcome = run_cli(
        ["data", "shard", "coco", "--data-root", synth / "coco", "--out", root / "shards", "--shard-size", "10"]
    )
    assert outcome.rc == 0, outcome.report()
    return Workspace(root, synth, ckpts, records, image, clip, sentences, card, run, official, root / "shards")


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """The current folder of a fuzz test (relative default outputs such as runs/ or results/ land here,
    never in the repository), with the environment a CI run has."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCLBENCH_DEBUG", "1")  # a bug shows its traceback in the failure report
    monkeypatch.setenv("SCLBENCH_NO_PROGRESS", "1")
    monkeypatch.setenv("SCLBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    # `--cards DIR` (the "task card yaml" file kind) sets $SCLBENCH_TASKS_DIR for the rest of the process
    # (sclbench.cli). Set first, so that monkeypatch restores the value from before the test: deleting an
    # unset variable records nothing to undo, and the workspace's myf30k card then stayed visible to every
    # later test of the session (the demo picked up its demo: section).
    monkeypatch.setenv("SCLBENCH_TASKS_DIR", "")
    monkeypatch.delenv("SCLBENCH_TASKS_DIR")
    return tmp_path


def _command_infos(typer_app, prefix=()):
    for info in typer_app.registered_commands:
        yield (*prefix, info.name or info.callback.__name__), info
    for group in typer_app.registered_groups:
        yield from _command_infos(group.typer_instance, (*prefix, group.name))


@pytest.fixture
def recorded(monkeypatch):
    """Every verb's function replaced by one that records its arguments (the signature, and so the
    options typer builds, stay the verb's own)."""
    calls: list[tuple[str, dict]] = []
    for path, info in _command_infos(app):

        def record(*args, _path=" ".join(path), **kwargs):
            calls.append((_path, kwargs))

        monkeypatch.setattr(info, "callback", functools.wraps(info.callback)(record))
    return calls
