"""The command line as a user meets it: usage errors are click's usage line + message and exit 2 (never
a traceback), user errors are one line and exit 2, the catalogue verbs work offline."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from sclbench.cli import app, main


def _commands(group=None, prefix=()):
    """(argv prefix, click command) for every verb and sub-verb of the app."""
    group = group or typer.main.get_command(app)
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


VERBS = list(_commands())


def test_every_verb_is_listed():
    names = {" ".join(p) for p, _ in VERBS}
    assert {
        "finetune",
        "eval",
        "pretrain",
        "tasks",
        "table",
        "check",
        "demo",
        "ckpt list",
        "ckpt fetch",
        "ckpt inspect",
        "ckpt convert",
        "data synth",
    } <= names


@pytest.mark.parametrize("argv", [p for p, _ in VERBS], ids=[" ".join(p) for p, _ in VERBS])
def test_unknown_option_is_a_usage_error(argv, capsys):
    assert main([*argv, "--no-such-option-xyz"]) == 2
    err = capsys.readouterr().err
    assert "Usage:" in err and "No such option" in err and "Traceback" not in err


REQUIRED = [(p, c) for p, c in VERBS if any(getattr(x, "required", False) for x in c.params)]


@pytest.mark.parametrize("argv", [p for p, _ in REQUIRED], ids=[" ".join(p) for p, _ in REQUIRED])
def test_missing_argument_is_a_usage_error(argv, capsys):
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert "Usage:" in err and "Missing" in err and "Traceback" not in err


def test_unknown_verb_and_the_real_console_script():
    # A real process, as a user runs it: the usage message, exit 2, no traceback.
    proc = subprocess.run([sys.executable, "-m", "sclbench", "nosuchverb"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "No such command 'nosuchverb'" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "sclbench", "eval", "f30k", "--precison", "bf16"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "--precison" in proc.stderr and "Traceback" not in proc.stderr


def test_every_option_has_help():
    # Arguments and options alike: every parameter says what it is for.
    undocumented = [
        f"{' '.join(p)} {x.name}"
        for p, c in VERBS
        for x in c.params
        if x.name != "help" and not getattr(x, "help", None)
    ]
    assert not undocumented


def test_data_root_is_spelled_the_same_everywhere():
    for argv, command in VERBS:
        names = {opt for x in command.params for opt in getattr(x, "opts", [])}
        assert "--root" not in names or "--data-root" in names, argv
        assert not any(n in names for n in ("--data_root", "--dataroot")), argv


def test_misspelled_override_names_the_nearest_key(synth_root, capsys):
    rc = main(["eval", "f30k", "--data-root", str(synth_root / "f30k"), "--preset", "tiny", "train.lrr=1e-5"])
    err = capsys.readouterr().err
    assert rc == 2 and "train.lrr" in err and "did you mean train.lr?" in err and "Traceback" not in err


def test_data_error_comes_before_any_checkpoint_work(tmp_path, capsys, monkeypatch):
    # A registered name that is not cached would fail offline; the missing annotation file is reported first.
    monkeypatch.setenv("SCLBENCH_CACHE", str(tmp_path / "cache"))
    (tmp_path / "f30k").mkdir()
    rc = main(["eval", "f30k", "--ckpt", "scl-pretrain", "--data-root", str(tmp_path / "f30k")])
    err = capsys.readouterr().err
    assert rc == 2 and "dataset_flickr30k.json" in err and "HF_HUB_OFFLINE" not in err
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.ckpt"))


def test_catalogue_verbs_work_offline(capsys, tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("SCLBENCH_CACHE", str(tmp_path / "cache"))
    assert main(["tasks", "--json"]) == 0
    cards = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert {"vqa", "nlvr2", "f30k", "coco", "msrvtt", "lsmdc", "pretrain"} <= set(cards)
    assert cards["nlvr2"]["splits"] == {"train": "train", "val": "dev", "test": "test1"}
    assert cards["vqa"]["main_metric"] == "accuracy"
    assert any(p["value"] == 78.72 for p in cards["vqa"]["paper"])
    assert main(["ckpt", "list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["scl-glscl-100k"]["aliases"] == ["scl-pretrain"]
    assert rows["scl-glscl-100k"]["cache"] == "not cached"
    assert "/resolve/" in rows["scl-glscl-100k"]["source"]


def test_user_cards_folder_overrides_and_adds(tmp_path, capsys, monkeypatch):
    import yaml

    monkeypatch.setenv("SCLBENCH_TASKS_DIR", "")  # restored after the test (--cards sets it for the process)
    from sclbench.cards import packaged_cards_dir

    card = yaml.safe_load((packaged_cards_dir() / "nlvr2.yaml").read_text())
    card["name"], card["description"] = "nlvr2-mine", "my own NLVR2 card"
    (tmp_path / "nlvr2-mine.yaml").write_text(yaml.safe_dump(card))
    assert main(["--cards", str(tmp_path), "tasks", "--json"]) == 0
    out = capsys.readouterr().out
    assert "my own NLVR2 card" in out and '"vqa"' in out
