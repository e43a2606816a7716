"""The hub layer: registry names, cache hits, digests memoised and recorded, clear offline errors."""

from __future__ import annotations

import os

import pytest

from sclbench.errors import CheckpointError
from sclbench.model import hub


@pytest.fixture
def registry(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    reg = tmp_path / "checkpoints.yaml"
    reg.write_text(
        "checkpoints:\n"
        "  demo-a:\n    source: huggingface\n    repo: someone/demo\n    file: a.ckpt\n    revision: abc123\n"
        "  demo-b:\n    source: huggingface\n    repo: someone/demo\n    file: b.ckpt\n    sha256: " + "ab" * 32 + "\n"
        "  demo-alias:\n    alias: demo-a\n"
    )
    monkeypatch.setenv("SCLBENCH_CHECKPOINTS", str(reg))
    monkeypatch.setenv("SCLBENCH_CACHE", str(cache))
    return cache


def test_packaged_registry_is_found():
    assert not os.environ.get("SCLBENCH_CHECKPOINTS")
    assert hub.registry_path().parts[-3:] == ("sclbench", "assets", "checkpoints.yaml")
    assert hub.registry_entry("scl-pretrain")["name"] == "scl-glscl-100k"


def test_offline_miss_names_the_direct_download_address_and_place(registry):
    with pytest.raises(CheckpointError) as err:
        hub.resolve("demo-alias")
    message = str(err.value)
    assert "https://huggingface.co/someone/demo/resolve/abc123/a.ckpt" in message
    assert str(registry / "demo-a" / "a.ckpt") in message


def test_first_resolution_records_the_digest_and_later_ones_check_it(registry):
    target = registry / "demo-a" / "a.ckpt"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"weights v1")
    first = hub.resolve("demo-a")
    assert first.sha256 == hub.sha256_file(target)
    assert hub.expected_sha256({"name": "demo-a"})[0] == first.sha256
    target.write_bytes(b"weights v2 (corrupt)")
    with pytest.raises(CheckpointError, match="recorded on first download"):
        hub.resolve("demo-a")


def test_registry_digest_mismatch_is_refused(registry):
    target = registry / "demo-b" / "b.ckpt"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not the registered file")
    with pytest.raises(CheckpointError, match="checkpoints.yaml records"):
        hub.resolve("demo-b")


def test_local_digest_is_memoised_by_path_size_and_mtime(registry, tmp_path, monkeypatch):
    path = tmp_path / "model.bin"
    path.write_bytes(b"x" * 1000)
    calls = []
    real = hub.sha256_file
    monkeypatch.setattr(hub, "sha256_file", lambda p, *a: calls.append(p) or real(p, *a))
    d1 = hub.memo_sha256(path)
    d2 = hub.memo_sha256(path)
    assert d1 == d2 and len(calls) == 1  # the second call is a memo hit
    path.write_bytes(b"y" * 1001)  # changed size (and mtime): hashed again
    assert hub.memo_sha256(path) != d1 and len(calls) == 2


def test_unknown_name_suggests_the_nearest(registry):
    with pytest.raises(CheckpointError, match="did you mean demo-a"):
        hub.resolve("demo-aa")


def test_status_lists_aliases_and_cache(registry):
    rows = {r["name"]: r for r in hub.registry_status()}
    assert rows["demo-a"]["aliases"] == ["demo-alias"] and rows["demo-a"]["cache"] == "not cached"
    assert rows["demo-a"]["revision"] == "abc123"
