"""The checkpoint registry (`checkpoints.yaml`): a name -> a verified local file.

Resolution order for `--ckpt X`: an existing local path; else a registered name, looked up in the
cache (`$SCLBENCH_CACHE`, default `~/.cache/sclbench`), else downloaded with huggingface_hub (with
its progress bar) and verified against the recorded sha256. Offline, the error says exactly where
to put the file.
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sclbench.errors import CheckpointError

REGISTRY_ENV, CACHE_ENV = "SCLBENCH_CHECKPOINTS", "SCLBENCH_CACHE"


def registry_path() -> Path:
    if os.environ.get(REGISTRY_ENV):
        return Path(os.environ[REGISTRY_ENV])
    return Path(str(resources.files("sclbench.assets") / "checkpoints.yaml"))


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "sclbench"))


def load_registry(path: Path | None = None) -> dict[str, dict[str, Any]]:
    path = path or registry_path()
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("checkpoints", {})
    if not isinstance(entries, dict):
        raise CheckpointError(f"{path}: 'checkpoints' must be a mapping of name -> entry")
    return entries


def registry_entry(name: str, registry: dict[str, dict[str, Any]] | None = None) -> dict[str, Any] | None:
    registry = load_registry() if registry is None else registry
    seen = set()
    while name in registry and "alias" in registry[name]:
        if name in seen:
            raise CheckpointError(f"checkpoints.yaml: alias loop at {name!r}")
        seen.add(name)
        name = registry[name]["alias"]
    entry = registry.get(name)
    return {**entry, "name": name} if entry else None


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ResolvedCheckpoint:
    path: Path
    name: str
    sha256: str | None
    entry: dict[str, Any] | None = None

    def as_record(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "sha256": self.sha256}


def checkpoint_sha256(path: Path) -> str:
    """sha256 of a file, or of an sclbench directory's weights + config (stable across copies)."""
    if path.is_dir():
        digest = hashlib.sha256()
        for name in ("config.json", "model.safetensors"):
            if (path / name).is_file():
                digest.update(sha256_file(path / name).encode())
        return digest.hexdigest()
    return sha256_file(path)


def resolve(ckpt: str, verify: bool = True) -> ResolvedCheckpoint:
    """A local path as is, or a registered name: cache hit (verified) or hub download (verified)."""
    path = Path(ckpt).expanduser()
    if path.exists():
        return ResolvedCheckpoint(path, path.name if path.is_file() else path.name or str(path),
                                  checkpoint_sha256(path) if verify else None)
    entry = registry_entry(ckpt)
    if entry is None:
        names = ", ".join(sorted(load_registry())) or "none"
        raise CheckpointError(f"checkpoint {ckpt!r} is neither an existing path nor a registered name "
                              f"(registered in {registry_path()}: {names})")
    target = cache_dir() / entry["name"] / entry["file"]
    if not target.is_file():
        target = _download(entry, target)
    digest = sha256_file(target) if verify or entry.get("sha256") else None
    if entry.get("sha256") and digest != entry["sha256"]:
        raise CheckpointError(f"{target} has sha256 {digest}, but checkpoints.yaml records {entry['sha256']} "
                              f"for {entry['name']}: the file is corrupt or not {entry['file']}; delete it and retry")
    return ResolvedCheckpoint(target, entry["name"], digest, entry)


def _download(entry: dict[str, Any], target: Path) -> Path:
    if entry.get("source") != "huggingface":
        raise CheckpointError(f"{entry['name']}: put {entry['file']} at {target} (source {entry.get('source')!r})")
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    where = f"https://huggingface.co/{entry['repo']}/blob/main/{entry['file']}"
    if offline:
        raise CheckpointError(f"{entry['name']} is not in the cache and HF_HUB_OFFLINE=1: download {where} "
                              f"and put it at {target} (or pass --ckpt /path/to/{entry['file']})")
    from huggingface_hub import hf_hub_download

    try:
        downloaded = hf_hub_download(repo_id=entry["repo"], filename=entry["file"], local_dir=target.parent)
    except Exception as err:  # network, auth or missing-file errors of the hub client
        raise CheckpointError(f"cannot download {entry['name']} ({where}): {str(err).splitlines()[0]}. "
                              f"Download it by hand and put it at {target}") from err
    return Path(downloaded)
