"""Result records: one JSON per (task, split, checkpoint) run, with everything needed to trust it.

A record says which split and which scorer made each number, under which protocol (retrieval mode,
fusion, zero-shot, parity options), from which checkpoint (name + sha256), data (fingerprint), code
(git commit, versions) and hardware. Per-sample predictions go to a JSON-lines file beside it, so a
later drift check can tell a real change from noise.

Layout: ``<root>/<task>/<task>_<split>_<checkpoint>.json`` (+ ``.predictions.jsonl``). Names are
predictable so a baseline folder and a fresh one line up file by file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sclbench.errors import DataError

SCHEMA = "sclbench.result/1"
PREDICTIONS_SUFFIX = ".predictions.jsonl"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sanitise(name: str) -> str:
    """A file-name-safe version of a task, split or checkpoint name (ckpt paths become readable names)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-.") or "unnamed"


def _jsonable(obj: Any) -> Any:
    # numpy/torch scalars and arrays, paths and sets turn up in configs and predictions.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and os.replace: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@dataclass
class ResultRecord:
    """The outcome of evaluating one checkpoint on one split of one task."""

    task: str
    split: str
    metrics: dict[str, float]
    scorer: str  # e.g. "vqaEval-official", "recall-gt_last", "nlvr2-official"
    protocol: dict[str, Any] = field(default_factory=dict)  # retrieval mode, k, fusion, zero_shot, parity...
    config: dict[str, Any] = field(default_factory=dict)
    checkpoint: dict[str, Any] = field(default_factory=dict)  # {name, path, sha256}
    data_fingerprint: str | None = None
    git_commit: str | None = None
    versions: dict[str, str | None] = field(default_factory=dict)
    device: str | None = None
    world_size: int = 1
    wall_time_s: float | None = None
    throughput: float | None = None  # samples per second
    seed: int | None = None
    created_at: str = field(default_factory=_now)
    notes: str = ""
    predictions_file: str | None = None  # relative to the record's folder
    extra: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA
    # Where the record was loaded from; not part of the content.
    source: Path | None = field(default=None, compare=False, repr=False)

    @property
    def checkpoint_name(self) -> str:
        return str(self.checkpoint.get("name") or "unnamed")

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies a result across runs: task, split and checkpoint name."""
        return (self.task, self.split, self.checkpoint_name)

    @property
    def relative_path(self) -> Path:
        task = sanitise(self.task)
        return Path(task) / f"{task}_{sanitise(self.split)}_{sanitise(self.checkpoint_name)}.json"

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "source"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: Path | None = None) -> ResultRecord:
        where = f" in {source}" if source else ""
        missing = [k for k in ("task", "split", "metrics", "scorer") if k not in data]
        if missing:
            raise DataError(f"result record{where} lacks {', '.join(missing)}")
        names = {f.name for f in dataclasses.fields(cls)} - {"source"}
        known = {k: v for k, v in data.items() if k in names}
        unknown = {k: v for k, v in data.items() if k not in names}
        if unknown:  # written by a newer sclbench: keep rather than drop silently
            known["extra"] = {**known.get("extra", {}), "unknown_fields": unknown}
        if not isinstance(known["metrics"], Mapping):
            raise DataError(f"result record{where}: 'metrics' must be an object of name -> number")
        return cls(**known, source=source)

    def save(self, root: str | Path, predictions: Iterable[Mapping[str, Any]] | None = None) -> Path:
        """Write ``<root>/<task>/<task>_<split>_<ckpt>.json`` (and the predictions file); return its path.

        predictions: per-sample dicts, ideally ``{"id": ..., ..., "scores": {metric: value}}`` where the
        mean of ``value`` x 100 is the record's metric (used by the drift check's bootstrap).
        """
        path = Path(root) / self.relative_path
        if predictions is not None:
            pred_path = path.with_name(path.stem + PREDICTIONS_SUFFIX)
            lines = (json.dumps(p, default=_jsonable, ensure_ascii=False) for p in predictions)
            # Predictions first: the record must never point at a file that is not there yet.
            _atomic_write(pred_path, "".join(line + "\n" for line in lines))
            self.predictions_file = pred_path.name
        text = json.dumps(self.to_dict(), indent=2, default=_jsonable, ensure_ascii=False)
        _atomic_write(path, text + "\n")
        self.source = path
        return path

    @classmethod
    def load(cls, path: str | Path) -> ResultRecord:
        return load(path)

    def read_predictions(self) -> list[dict[str, Any]] | None:
        """The per-sample predictions, or None when the record has none (or was never saved)."""
        if not self.predictions_file or self.source is None:
            return None
        path = self.source.parent / self.predictions_file
        if not path.is_file():
            raise DataError(f"{self.source} refers to predictions file {path}, which does not exist")
        from sclbench.data.formats._io import read_jsonl

        return [row for _, row in read_jsonl(path)]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON (line {err.lineno}: {err.msg}); fix or remove it") from None
    except OSError as err:
        raise DataError(f"cannot read result file {path}: {err.strerror}") from None


def load(path: str | Path) -> ResultRecord:
    """Load one record, raising DataError naming the file when it is missing or malformed."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"result file {p} does not exist")
    data = _read_json(p)
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith("sclbench.result/"):
        raise DataError(f"{p} is not an sclbench result record (no 'schema': '{SCHEMA}')")
    return ResultRecord.from_dict(data, source=p)


def collect(root: str | Path) -> list[ResultRecord]:
    """Every record under a folder (recursively, sorted by path); a single record file also works.

    Other JSON files (EvalAI submissions, rendered tables) are skipped; malformed JSON is an error.
    """
    base = Path(root)
    if base.is_file():
        return [load(base)]
    if not base.is_dir():
        raise DataError(f"results folder {base} does not exist (run `sclbench eval` first, or pass the right path)")
    records = []
    for path in sorted(base.rglob("*.json")):
        if path.name.startswith("."):
            continue
        data = _read_json(path)
        if isinstance(data, dict) and str(data.get("schema", "")).startswith("sclbench.result/"):
            records.append(ResultRecord.from_dict(data, source=path))
    return records


def _git_commit() -> str | None:
    """HEAD of the repository around the working directory, '-dirty' if tracked files changed."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5
        )
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):  # no git, or not a repository: never fail a run
        return None


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("sclbench", "torch", "transformers", "numpy"):
        try:  # metadata lookups avoid importing transformers (seconds) just to read a version
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _device() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            n = torch.cuda.device_count()
            return f"{torch.cuda.get_device_name(0)}" + (f" x{n}" if n > 1 else "")
    except Exception:  # a broken CUDA set-up must not stop a result from being written
        pass
    return f"cpu ({platform.machine() or 'unknown'})"


def environment_info() -> dict[str, Any]:
    """`git_commit`, `versions` and `device`, ready to splat into a ResultRecord."""
    return {"git_commit": _git_commit(), "versions": _versions(), "device": _device()}


def fingerprint_files(paths: Iterable[str | Path], root: str | Path | None = None) -> str:
    """sha256 over the sorted relative paths, sizes and contents of the given files (folders expand).

    Meant for annotation files (small), not images or videos. Paths are taken relative to `root`, or to
    the files' common folder, so the same data in another place has the same fingerprint.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(f for f in p.rglob("*") if f.is_file())
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"cannot fingerprint {p}: no such file or folder")
    if not files:
        raise DataError("no files to fingerprint")
    resolved = sorted({f.resolve() for f in files})
    base = Path(root).resolve() if root else Path(os.path.commonpath([f.parent for f in resolved]))
    outside = [f for f in resolved if not f.is_relative_to(base)]
    if outside:
        raise DataError(f"cannot fingerprint {outside[0]}: it is not under {base}")
    digest = hashlib.sha256()
    for f in sorted(resolved, key=lambda f: f.relative_to(base).as_posix()):
        rel = f.relative_to(base).as_posix()
        digest.update(f"{rel}\0{f.stat().st_size}\0".encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()
