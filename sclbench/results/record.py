"""Result records: one JSON per (task, split, checkpoint) run, with everything needed to trust it.

A record says which split and which scorer made each number, under which protocol (retrieval mode,
fusion, zero-shot, parity options), from which checkpoint (name + sha256), data (fingerprint), code
(git commit, versions) and hardware. Per-sample predictions go to a JSON-lines file beside it, so a
later drift check can tell a real change from noise.

Layout: ``<root>/<task>/<task>_<split>_<checkpoint>.json`` (+ ``.predictions.jsonl``). Names are
predictable so a baseline folder and a fresh one line up file by file.

Writing is safe against kills, full disks and concurrent writers: each file goes through
`sclbench.common.io.atomic_write` (a reader sees the old file or the new one, never a torn one); the
record and its predictions are written as a pair under a per-task-folder lock (two processes never mix
one's record with the other's predictions); a record that a new one of the same key replaces is kept,
with its predictions, under ``<task>/.history/`` (the last few per key; hidden folders are not
collected), so nothing written is lost; the record holds its predictions' sha256, so predictions
left by a write killed between the two files are detected instead of trusted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sclbench.common.io import atomic_write
from sclbench.common.textfile import load_json
from sclbench.common.values import Rule, check_value
from sclbench.errors import ConfigError, DataError

try:  # POSIX; elsewhere concurrent writers of one folder are not serialised
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

SCHEMA = "sclbench.result/1"
PREDICTIONS_SUFFIX = ".predictions.jsonl"
HISTORY_DIR = ".history"
HISTORY_KEEP = 5  # replaced records kept per key
LOCK_NAME = ".records.lock"

_TEXT, _MAYBE_TEXT, _MAPPING = Rule("str"), Rule("str", nullable=True), Rule("dict")
# What each field of a record holds. A record is read by `table` and `check`, the CI guard: a field of
# another kind must stop them with the file and field named, never be skipped (a metric that is a string
# used to vanish from both, one check fewer and still PASS). Metrics are numbers; NaN is kept (the check
# fails it and the table shows it), a text, a bool or null is refused.
FIELD_RULES: dict[str, Rule] = {
    "task": _TEXT,
    "split": _TEXT,
    "scorer": _TEXT,
    "schema": _TEXT,
    "created_at": _TEXT,
    "notes": _TEXT,
    "metrics": _MAPPING,
    "protocol": _MAPPING,
    "config": _MAPPING,
    "checkpoint": _MAPPING,
    "versions": _MAPPING,
    "extra": _MAPPING,
    "breakdown": _MAPPING,
    "data_fingerprint": _MAYBE_TEXT,
    "git_commit": _MAYBE_TEXT,
    "device": _MAYBE_TEXT,
    "predictions_file": _MAYBE_TEXT,
    "predictions_sha256": _MAYBE_TEXT,
    "world_size": Rule("int", low=1),
    "wall_time_s": Rule("float", low=0, nullable=True),
    "throughput": Rule("float", low=0, nullable=True),
    "seed": Rule("int", nullable=True),
}


def is_metric_value(value: Any) -> bool:
    """A metric's value: a real number (NaN and inf included: they are reported, never skipped), not a bool."""
    import numbers

    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _checked_fields(data: dict[str, Any], where: str) -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        try:
            out[key] = check_value(value, FIELD_RULES[key], f"result record{where}: field {key!r}")
        except ConfigError as err:
            raise DataError(str(err)) from None
    for name in ("task", "split", "scorer"):
        if not out[name].strip():
            raise DataError(f"result record{where}: field {name!r} is empty")
    for metric, value in out["metrics"].items():
        if not isinstance(metric, str) or not metric:
            raise DataError(f"result record{where}: metric name {metric!r} is not a non-empty text")
        if not is_metric_value(value):
            raise DataError(
                f"result record{where}: metric {metric!r} needs a number, got {value!r} (a record "
                "the check and the table cannot read is an error, never skipped)"
            )
    preds = out.get("predictions_file")
    if preds is not None and (not preds or Path(preds).name != preds or preds in (".", "..")):
        raise DataError(
            f"result record{where}: field 'predictions_file' must name a file beside the record, got {preds!r}"
        )
    return out


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


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """An exclusive lock on `folder` between processes (the kernel drops it if the holder is killed)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_NAME, "a") as fh:
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # the old content stays reachable even after src is replaced
    except OSError:
        shutil.copy2(src, dst)


def _keep_replaced(path: Path) -> None:
    """Before `path` is replaced: keep its record (and predictions) under .history/, pruned to the
    newest HISTORY_KEEP per key. A record that cannot be parsed is kept as it is."""
    if not path.is_file():
        return
    history = path.parent / HISTORY_DIR
    history.mkdir(exist_ok=True)
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        old = None
    stamp = sanitise(str(old.get("created_at", ""))) if isinstance(old, dict) else "unreadable"
    base, n = f"{path.stem}.{stamp}", 0
    while (history / f"{base}.{n}.json").exists() or (history / f"{base}.{n}{PREDICTIONS_SUFFIX}").exists():
        n += 1
    kept = history / f"{base}.{n}.json"
    if isinstance(old, dict):
        preds = old.get("predictions_file")
        if preds and (path.parent / preds).is_file():
            kept_preds = kept.with_name(kept.stem + PREDICTIONS_SUFFIX)
            _link_or_copy(path.parent / preds, kept_preds)
            old["predictions_file"] = kept_preds.name
        atomic_write(kept, json.dumps(old, indent=2, ensure_ascii=False) + "\n")
    else:
        _link_or_copy(path, kept)
    for stale in sorted(history.glob(f"{path.stem}.*.json"))[:-HISTORY_KEEP]:
        stale.with_name(stale.stem + PREDICTIONS_SUFFIX).unlink(missing_ok=True)
        stale.unlink(missing_ok=True)
    # Predictions whose record never followed (a writer killed in between; we hold the lock now).
    for orphan in history.glob(f"{path.stem}.*{PREDICTIONS_SUFFIX}"):
        if not orphan.with_name(orphan.name[: -len(PREDICTIONS_SUFFIX)] + ".json").exists():
            orphan.unlink(missing_ok=True)


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
    predictions_sha256: str | None = None  # of that file's bytes, checked when it is read
    # Metrics per group of samples, percent: VQA's {"per_answer_type": {...}, "per_question_type": {...}};
    # {} for other tasks and in records older than the field.
    breakdown: dict[str, Any] = field(default_factory=dict)
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
        known = _checked_fields({k: v for k, v in data.items() if k in names}, where)
        unknown = {k: v for k, v in data.items() if k not in names}
        if unknown:  # written by a newer sclbench: keep rather than drop silently
            known["extra"] = {**known.get("extra", {}), "unknown_fields": unknown}
        known["metrics"] = dict(known["metrics"])
        return cls(**known, source=source)

    def save(self, root: str | Path, predictions: Iterable[Mapping[str, Any]] | None = None) -> Path:
        """Write ``<root>/<task>/<task>_<split>_<ckpt>.json`` (and the predictions file); return its path.

        predictions: per-sample dicts, ideally ``{"id": ..., ..., "scores": {metric: value}}`` where the
        mean of ``value`` x 100 is the record's metric (used by the drift check's bootstrap).
        """
        path = Path(root) / self.relative_path
        payload = None
        if predictions is not None:
            lines = (json.dumps(p, default=_jsonable, ensure_ascii=False) for p in predictions)
            payload = "".join(line + "\n" for line in lines).encode("utf-8")
            self.predictions_file = path.stem + PREDICTIONS_SUFFIX
            self.predictions_sha256 = "sha256:" + hashlib.sha256(payload).hexdigest()
        # Serialise first: a record that cannot be written as JSON must not replace anything.
        text = json.dumps(self.to_dict(), indent=2, default=_jsonable, ensure_ascii=False) + "\n"
        try:  # encoded here too: a name holding a lone surrogate must fail before anything is written
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise DataError(
                f"result record {path.name}: a name or value is not valid UTF-8 text ({err.reason})"
            ) from None
        with _folder_lock(path.parent):
            _keep_replaced(path)
            if payload is not None:
                # Predictions first: the record must never point at a file that is not there yet.
                atomic_write(path.with_name(self.predictions_file), payload)
            atomic_write(path, text)
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
        if self.predictions_sha256:
            digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != self.predictions_sha256:
                raise DataError(
                    f"{path} does not match its record {self.source} (sha256 differs: written by another "
                    "run, or a write was interrupted); re-run the evaluation"
                )
        from sclbench.common.io import read_jsonl

        return [row for _, row in read_jsonl(path)]


def _read_json(path: Path) -> Any:
    """The JSON in `path`, read exactly (common/textfile): bytes that are not UTF-8 (a BOM is removed), an
    empty file, malformed JSON or an object repeating a key (the plain reader would keep one copy of a
    metric silently) are one DataError naming the file. NaN is read: a record keeps a NaN metric."""
    return load_json(path, fix="fix or remove it")


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
        if any(part.startswith(".") for part in path.relative_to(base).parts):
            continue  # temporary files and .history/ (records replaced by newer ones)
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
