"""The checkpoint registry (`checkpoints.yaml`, shipped in the package): a name -> a verified local file.

Resolution order for `--ckpt X`: an existing local path; else a registered name, looked up in the
cache (`$SCLBENCH_CACHE`, default `~/.cache/sclbench`), else downloaded with huggingface_hub (with
its progress bar) and verified against the recorded sha256. Offline, the error says exactly where
to put the file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sclbench.errors import CheckpointError
from sclbench.model.registry_file import read_registry

REGISTRY_ENV, CACHE_ENV = "SCLBENCH_CHECKPOINTS", "SCLBENCH_CACHE"


def registry_path() -> Path:
    if os.environ.get(REGISTRY_ENV):
        return Path(os.environ[REGISTRY_ENV])
    return Path(str(resources.files("sclbench.assets") / "checkpoints.yaml"))


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "sclbench"))


def load_registry(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """name -> entry, every entry checked (registry_file.read_registry): a damaged registry is one error
    naming the file and the entry. A registry the user named in $SCLBENCH_CHECKPOINTS must exist."""
    origin = ""
    if path is None:
        path = registry_path()
        origin = f"{REGISTRY_ENV}=" if os.environ.get(REGISTRY_ENV) else ""
        if origin and not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            raise CheckpointError(
                f"{REGISTRY_ENV}={path} {what}: it must name a checkpoints.yaml file "
                "(unset it to use the packaged registry)"
            )
    if not path.is_file():
        return {}
    return read_registry(path, origin)


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
    """sha256 of a file, or of an sclbench directory's weights + config (stable across copies).
    Memoised by (path, size, mtime): a verified 4.4 GB file is not re-hashed on every run."""
    if path.is_dir():
        digest = hashlib.sha256()
        for name in ("config.json", "model.safetensors"):
            if (path / name).is_file():
                digest.update(memo_sha256(path / name).encode())
        return digest.hexdigest()
    return memo_sha256(path)


# ---- digests: memoised local hashes and digests recorded on first download --------------------------
def _state_file(name: str) -> Path:
    return cache_dir() / name


def _read_state(name: str) -> dict[str, Any]:
    import json

    path = _state_file(name)
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):  # a damaged memo is only a lost speed-up: start afresh
        data = {}
    return data if isinstance(data, dict) else {}


def _write_state(name: str, data: dict[str, Any]) -> None:
    import json

    from sclbench.common.io import atomic_write

    try:
        atomic_write(_state_file(name), json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError:  # a read-only cache folder: the memo is an optimisation, never a requirement
        pass


def memo_sha256(path: Path) -> str:
    """sha256 of a file, taken from the memo when (absolute path, size, mtime_ns) are unchanged."""
    st = path.stat()
    key = str(path.resolve())
    memo = _read_state("digests.json")
    hit = memo.get(key)
    if isinstance(hit, dict) and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
        return str(hit["sha256"])
    digest = sha256_file(path)
    memo = _read_state("digests.json")  # re-read: another process may have added entries meanwhile
    memo[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    _write_state("digests.json", memo)
    return digest


def expected_sha256(entry: dict[str, Any]) -> tuple[str | None, str]:
    """The digest a registered file must have, and where it comes from: the registry, else the one
    recorded from the hub's metadata (or on the first download) in the cache."""
    if entry.get("sha256"):
        return str(entry["sha256"]), "checkpoints.yaml"
    recorded = _read_state("recorded.json").get(entry["name"], {})
    if recorded.get("sha256"):
        return str(recorded["sha256"]), f"{_state_file('recorded.json')} (recorded on first download)"
    return None, ""


def record_download(entry: dict[str, Any], sha256: str, revision: str | None) -> None:
    recorded = _read_state("recorded.json")
    recorded[entry["name"]] = {"sha256": sha256, "revision": revision, "file": entry.get("file")}
    _write_state("recorded.json", recorded)


def direct_url(entry: dict[str, Any]) -> str:
    """Where to download a registered file by hand (a browser or curl; `/resolve/` serves the file)."""
    if entry.get("source") == "url":
        return str(entry.get("url"))
    return f"https://huggingface.co/{entry['repo']}/resolve/{entry.get('revision') or 'main'}/{entry['file']}"


def cache_target(entry: dict[str, Any]) -> Path:
    return cache_dir() / entry["name"] / entry["file"]


def resolve(ckpt: str, verify: bool = True) -> ResolvedCheckpoint:
    """A local path as is, or a registered name: cache hit (verified) or hub download (verified)."""
    path = Path(ckpt).expanduser()
    if path.exists():
        return ResolvedCheckpoint(
            path, path.name if path.is_file() else path.name or str(path), checkpoint_sha256(path) if verify else None
        )
    entry = registry_entry(ckpt)
    if entry is None:
        import difflib

        names = sorted(load_registry())
        near = difflib.get_close_matches(ckpt, names, n=1)
        hint = f"; did you mean {near[0]}?" if near else ""
        raise CheckpointError(
            f"checkpoint {ckpt!r} is neither an existing path nor a registered name{hint} "
            f"(registered: {', '.join(names) or 'none'}; `sclbench ckpt list` shows them)"
        )
    if "file" not in entry and entry.get("kind") == "hf-model":  # a ViLT/BLIP/CLIP release (sclbench.adapters)
        raise CheckpointError(
            f"{entry['name']} is a {entry.get('family')} model loaded with transformers ({entry.get('repo')}), not "
            f"an SCL checkpoint: evaluate it with --model {entry.get('family')} --ckpt {entry['name']} "
            "(transformers downloads it into its own cache)"
        )
    if "file" not in entry:
        raise CheckpointError(
            f"{entry['name']} is an encoder initialisation loaded with transformers "
            f"({entry.get('repo')}), not a checkpoint file: use it as an encoder init"
        )
    target = cache_target(entry)
    if not target.is_file():
        target = _download(entry, target)
    expected, where = expected_sha256(entry)
    digest = memo_sha256(target) if verify or expected else None
    if expected and digest != expected:
        raise CheckpointError(
            f"{target} has sha256 {digest}, but {where} records {expected} for {entry['name']}: "
            f"the file is corrupt or not {entry['file']}; delete it and fetch it again "
            f"(sclbench ckpt fetch {entry['name']})"
        )
    if digest and not expected:
        record_download(entry, digest, entry.get("revision"))
    return ResolvedCheckpoint(target, entry["name"], digest, entry)


def hub_sha256(entry: dict[str, Any]) -> tuple[str | None, str | None]:
    """The sha256 the hub lists for an LFS file (its ETag) and the commit it resolved the revision to;
    (None, None) when the hub cannot be asked."""
    if entry.get("source") != "huggingface" or os.environ.get("HF_HUB_OFFLINE") == "1":
        return None, None
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        meta = get_hf_file_metadata(hf_hub_url(entry["repo"], entry["file"], revision=entry.get("revision")))
    except Exception:  # network or auth: the digest is then recorded from the downloaded bytes
        return None, None
    etag = (meta.etag or "").strip('"')
    return (etag if len(etag) == 64 else None), meta.commit_hash


def registry_status() -> list[dict[str, Any]]:
    """Every registry entry with its aliases and whether its file is in the cache (no network)."""
    registry = load_registry()
    aliases: dict[str, list[str]] = {}
    for name, entry in registry.items():
        if isinstance(entry, dict) and "alias" in entry:
            target = registry_entry(name, registry)
            aliases.setdefault(target["name"] if target else entry["alias"], []).append(name)
    rows = []
    for name, entry in registry.items():
        if not isinstance(entry, dict) or "alias" in entry:
            continue
        full = {**entry, "name": name}
        if "file" in full:
            target = cache_target(full)
            cached = str(target) if target.is_file() else "not cached"
        else:
            cached = "transformers cache (hub id " + str(full.get("repo")) + ")"
        rows.append(
            {
                "name": name,
                "aliases": aliases.get(name, []),
                "kind": full.get("kind", "checkpoint"),
                "description": full.get("description", ""),
                "source": direct_url(full) if "file" in full else f"hf:{full.get('repo')}",
                "revision": full.get("revision"),
                "cache": cached,
                "sha256": expected_sha256(full)[0] if "file" in full else None,
            }
        )
    return rows


def fetch(name: str) -> ResolvedCheckpoint:
    """Download (or find in the cache) and verify a registered checkpoint; the digest is taken from the
    hub's metadata when online, else recorded from the downloaded file, and checked from then on."""
    entry = registry_entry(name)
    if entry is None:
        return resolve(name)  # the same message for an unknown name
    if "file" in entry and not expected_sha256(entry)[0]:
        digest, commit = hub_sha256(entry)
        if digest:
            record_download(entry, digest, commit or entry.get("revision"))
    return resolve(name, verify=True)


def _download(entry: dict[str, Any], target: Path) -> Path:
    if entry.get("source") == "url":
        return _download_url(entry, target)
    if entry.get("source") != "huggingface":
        raise CheckpointError(f"{entry['name']}: put {entry['file']} at {target} (source {entry.get('source')!r})")
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    where = direct_url(entry)
    if offline:
        raise CheckpointError(
            f"{entry['name']} is not in the cache and HF_HUB_OFFLINE=1: download {where} "
            f"and put it at {target} (or pass --ckpt /path/to/{entry['file']})"
        )
    from huggingface_hub import hf_hub_download

    try:
        downloaded = hf_hub_download(
            repo_id=entry["repo"], filename=entry["file"], local_dir=target.parent, revision=entry.get("revision")
        )
    except Exception as err:  # network, auth or missing-file errors of the hub client
        raise CheckpointError(
            f"cannot download {entry['name']} ({where}): {str(err).splitlines()[0]}. "
            f"Download it by hand and put it at {target}"
        ) from err
    return Path(downloaded)


def _download_url(entry: dict[str, Any], target: Path) -> Path:
    """A plain https download (GitHub releases, OpenAI's CLIP bucket) into a `.part` file, renamed when
    complete, so an interrupted download never looks like a checkpoint. Offline: where to put it."""
    url = entry["url"]
    by_hand = f"download {url} and put it at {target} (or pass --ckpt /path/to/{entry['file']})"
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("SCLBENCH_OFFLINE") == "1":
        raise CheckpointError(f"{entry['name']} is not in the cache and downloads are off: {by_hand}")
    import shutil
    import urllib.request

    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 22)
        part.replace(target)
    except (OSError, ValueError) as err:  # URLError/HTTPError are OSErrors; ValueError: a malformed url
        part.unlink(missing_ok=True)
        raise CheckpointError(f"cannot download {entry['name']}: {str(err).splitlines()[0]}. {by_hand}") from err
    return target
