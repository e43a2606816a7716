"""Through the command line, for each kind of pickled file a user's folder can hold -- a training
checkpoint planted in a finetune `--out` (resumed by default), a `--ckpt` file, a retrieval cache entry
under `--cache-dir`, the MSRVTT caption index -- a crafted payload is refused with one `error:` line
naming the file, exit code 2, and its marker file is never created."""

from __future__ import annotations

import os
import pickle
import shutil

import pytest
import torch
from pickle_payloads import PAYLOADS, state_dict_with

from sclbench.cli import main


def run_cli(args, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    rc = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, [line for line in err.splitlines() if line.startswith("error:")]


def assert_refused(rc, errors, path, marker):
    assert rc == 2, errors
    assert len(errors) == 1, errors
    assert path.name in errors[0] and ("refused" in errors[0] or "safely" in errors[0]), errors[0]
    assert not marker.exists()


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_caption_index_payload_refused_by_eval_and_data_check(synth_root, tmp_path, capsys, name):
    root = tmp_path / "msrvtt"
    shutil.copytree(synth_root / "msrvtt", root, copy_function=os.symlink)  # links: the videos stay put
    pkl = next(root.rglob("jsfusion_val_caption_idx.pkl"))
    index = pickle.loads(pkl.read_bytes())
    pkl.unlink()
    marker = tmp_path / "ran"
    pkl.write_bytes(pickle.dumps({**index, "zz": PAYLOADS[name](marker)}, protocol=2))
    rc, errors = run_cli(
        [
            "eval",
            "msrvtt",
            "--preset",
            "tiny",
            "--tokenizer",
            synth_root / "tokenizer",
            "--data-root",
            root,
            "--results",
            tmp_path / "results",
        ],
        capsys,
    )
    assert_refused(rc, errors, pkl, marker)
    assert "refused global" in errors[0]
    # `data check` reports it as the split's problem (exit 1: a checker's "incomplete"), running nothing
    capsys.readouterr()
    assert main(["data", "check", "msrvtt", "--data-root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "jsfusion_val_caption_idx.pkl: refused global" in out and not marker.exists()


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_ckpt_file_payload_refused_by_inspect(tmp_path, capsys, name, legacy):
    marker, path = tmp_path / "ran", tmp_path / "model.ckpt"
    torch.save(state_dict_with(PAYLOADS[name](marker)), path, _use_new_zipfile_serialization=not legacy)
    rc, errors = run_cli(["ckpt", "inspect", path], capsys)
    assert_refused(rc, errors, path, marker)
    assert "--trust-pickle" in errors[0]


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_ckpt_file_payload_refused_by_eval(synth_root, tmp_path, capsys, name):
    marker, path = tmp_path / "ran", tmp_path / "model.ckpt"
    torch.save(state_dict_with(PAYLOADS[name](marker)), path)
    rc, errors = run_cli(
        [
            "eval",
            "f30k",
            "--ckpt",
            path,
            "--data-root",
            synth_root / "f30k",
            "--limit",
            "4",
            "--results",
            tmp_path / "results",
        ],
        capsys,
    )
    assert_refused(rc, errors, path, marker)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_planted_resume_checkpoint_refused_by_finetune(synth_root, tmp_path, capsys, name):
    out, marker = tmp_path / "run", tmp_path / "ran"
    planted = out / "checkpoints" / "step-00000007.pt"
    planted.parent.mkdir(parents=True)
    torch.save(
        {"model": {}, "optimizer": {}, "scheduler": {}, "rng": [], "state": {}, "x": PAYLOADS[name](marker)}, planted
    )
    rc, errors = run_cli(
        [
            "finetune",
            "vqa",
            "--preset",
            "tiny",
            "--tokenizer",
            synth_root / "tokenizer",
            "--data-root",
            synth_root / "vqa",
            "--out",
            out,
            "--max-steps",
            "1",
            "data.minival_images=4",
            "train.global_batch_size=4",
            "train.per_device_batch_size=2",
        ],
        capsys,
    )
    assert_refused(rc, errors, planted, marker)
    assert "--trust-pickle" in errors[0]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000007.pt"]  # nothing trained


@pytest.fixture(scope="module")
def tiny_f30k_ckpt(synth_root, tmp_path_factory):
    from sclbench.model.factory import create_model
    from sclbench.tasks.base import get_task

    task = get_task("f30k", None, data_root=synth_root / "f30k")
    loaded = create_model(None, task=task.model_task, preset="tiny", tokenizer=str(synth_root / "tokenizer"))
    path = tmp_path_factory.mktemp("ckpt") / "tiny-f30k"
    loaded.model.save_pretrained(path, tokenizer=loaded.tokenizer)
    return path


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_retrieval_cache_payload_refused_by_eval(synth_root, tiny_f30k_ckpt, tmp_path, capsys, name):
    cache, marker = tmp_path / "cache", tmp_path / "ran"
    args = [
        "eval",
        "f30k",
        "--ckpt",
        tiny_f30k_ckpt,
        "--data-root",
        synth_root / "f30k",
        "--limit",
        "4",
        "--results",
        tmp_path / "results",
        "--cache-dir",
        cache,
    ]
    rc, _ = run_cli(args, capsys)
    assert rc == 0
    entries = sorted(cache.rglob("*.pt"))
    assert entries  # features and score chunks were cached
    for entry in entries:  # whichever entry is read first, it is a payload
        torch.save({"scores": torch.zeros(1), "x": PAYLOADS[name](marker)}, entry)
    rc, errors = run_cli(args, capsys)
    assert rc == 2 and len(errors) == 1, errors
    assert "retrieval cache file" in errors[0] and "delete it" in errors[0]
    assert any(e.name in errors[0] for e in entries)
    assert not marker.exists()
