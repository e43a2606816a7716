"""A checkpoint registry file is read exactly: every class of damage is one CheckpointError naming the file
and the entry, never a YAML parser error, an AttributeError or a KeyError later in resolve()."""

from __future__ import annotations

import pytest

from sclbench.cli import main
from sclbench.errors import CheckpointError
from sclbench.model import hub

GOOD = "checkpoints:\n  demo:\n    source: huggingface\n    repo: someone/demo\n    file: a.ckpt\n"


@pytest.fixture
def registry(tmp_path, monkeypatch):
    path = tmp_path / "my registry.yaml"
    monkeypatch.setenv("SCLBENCH_CHECKPOINTS", str(path))
    monkeypatch.setenv("SCLBENCH_CACHE", str(tmp_path / "cache"))
    return path


def test_the_packaged_registry_passes_its_own_checks(monkeypatch):
    monkeypatch.delenv("SCLBENCH_CHECKPOINTS", raising=False)
    registry = hub.load_registry()
    assert "scl-glscl-100k" in registry and hub.registry_entry("scl-pretrain")["name"] == "scl-glscl-100k"


def test_a_good_file_an_empty_file_and_a_bom(registry):
    registry.write_text(
        GOOD + "  again:\n    alias: demo\n  sized: {source: url, url: 'file:///x', file: d/b.pt, "
        "size_bytes: 10, sha256: " + "0f" * 32 + ", revision: null}\n",
        encoding="utf-8",
    )
    assert set(hub.load_registry()) == {"demo", "again", "sized"}
    assert hub.registry_entry("again")["repo"] == "someone/demo"
    registry.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert set(hub.load_registry()) == {"demo"}
    registry.write_text("", encoding="utf-8")
    assert hub.load_registry() == {}


# (file content, words the message must hold besides the file's path)
DAMAGED = [
    (b"checkpoints: [unclosed\n  - : :\n", ["line", "not valid YAML"]),
    (b"checkpoints:\n  a: {b: c\n", ["not valid YAML"]),
    (b"\t- x\n", ["not valid YAML"]),
    (b"- demo\n- other\n", ["mapping", "list"]),
    (b"just text\n", ["mapping", "str"]),
    (b"42\n", ["mapping", "int"]),
    (b"checkpoints: [a, b]\n", ["'checkpoints' must be a mapping", "list"]),
    (b"checkpoints: {}\nextra: 1\n", ["one key", "extra"]),
    ("checkpoints:\n  dé: {file: x}\n".encode("utf-16"), ["not UTF-8"]),
    (bytes(range(256)), ["not UTF-8"]),
    (b"checkpoints:\n  demo:\n", ["entry 'demo'", "mapping", "NoneType"]),
    (b"checkpoints:\n  demo: a.ckpt\n", ["entry 'demo'", "mapping", "str"]),
    (b"checkpoints:\n  demo: {file: [a, b]}\n", ["entry 'demo'", "'file'", "text", "list"]),
    (b"checkpoints:\n  demo: {file: a.ckpt, size_bytes: big}\n", ["entry 'demo'", "size_bytes", "whole number"]),
    (b"checkpoints:\n  demo: {file: a.ckpt, size_bytes: true}\n", ["entry 'demo'", "size_bytes", "bool"]),
    (b"checkpoints:\n  demo: {file: a.ckpt, size_bytes: -1}\n", ["entry 'demo'", "size_bytes -1"]),
    (b"checkpoints:\n  demo: {file: a.ckpt, revision: 1234567}\n", ["entry 'demo'", "revision", "quote it"]),
    (b"checkpoints:\n  demo: {file: a.ckpt, sha265: abc}\n", ["entry 'demo'", "unknown field 'sha265'", "sha256"]),
    (b"checkpoints:\n  demo: {file: a.ckpt, sha256: abc}\n", ["entry 'demo'", "64 lower-case hex"]),
    (b"checkpoints:\n  demo: {file: ../../etc/x}\n", ["entry 'demo'", "relative file name"]),
    (b"checkpoints:\n  demo: {file: /etc/x}\n", ["entry 'demo'", "relative file name"]),
    (b"checkpoints:\n  demo: {source: huggingface, file: a.ckpt}\n", ["entry 'demo'", "needs the field 'repo'"]),
    (b"checkpoints:\n  demo: {source: url, file: a.ckpt}\n", ["entry 'demo'", "needs the field 'url'"]),
    (b"checkpoints:\n  demo: {alias: nowhere}\n", ["entry 'demo'", "alias 'nowhere'"]),
    (b"checkpoints:\n  demo: {alias: demo2, file: a}\n  demo2: {file: b}\n", ["entry 'demo'", "no other fields"]),
    (b"checkpoints:\n  ../up: {file: a}\n", ["'../up'", "plain name"]),
    (b"checkpoints:\n  12: {file: a}\n", ["12", "plain name"]),
]


@pytest.mark.parametrize("content, words", DAMAGED, ids=[f"damage{i}" for i in range(len(DAMAGED))])
def test_damage_is_one_error_naming_file_and_entry(registry, content, words):
    registry.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        hub.load_registry()
    message = str(err.value)
    assert f"SCLBENCH_CHECKPOINTS={registry}" in message and "\n" not in message, message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("make", ["missing", "folder"])
def test_a_named_registry_must_be_a_file(registry, make):
    if make == "folder":
        registry.mkdir()
    with pytest.raises(CheckpointError, match="SCLBENCH_CHECKPOINTS=.* (does not exist|is a folder)"):
        hub.load_registry()


def test_the_cli_prints_one_line(registry, capsys):
    registry.write_bytes(b"checkpoints:\n  demo: {file: a.ckpt, sha256: [1]}\n")
    assert main(["ckpt", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint registry SCLBENCH_CHECKPOINTS=") and err.count("\n") == 1, err
    assert "entry 'demo'" in err and "sha256" in err
