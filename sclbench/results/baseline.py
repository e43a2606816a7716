"""Replacing a drift baseline with fresh records: the explicit, reviewable way to accept a change.

The baseline folder may hold files sclbench did not write (a README, notes, a CI config): they are
kept. What sclbench wrote is listed in `<to>/.sclbench-baseline.json`; a folder without that manifest
(made by an older sclbench) counts its result records, their predictions, `.history/` and record locks
as sclbench's. The new baseline (the user's files, hard-linked, plus the new records) is built in a
sibling temporary folder and swapped in with one atomic `renameat2(RENAME_EXCHANGE)`, so at every
moment -- SIGTERM or SIGKILL included -- `<to>` is the complete old baseline or the complete new one.
Where the exchange is not available (not Linux, or a file system without it) two renames are used and
a baseline left moved aside by a kill between them is put back by the next run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import secrets
import shutil
from pathlib import Path

from sclbench.common.io import atomic_write, check_output_dir, write_error
from sclbench.errors import DataError, SCLBenchError
from sclbench.results.record import HISTORY_DIR, LOCK_NAME, PREDICTIONS_SUFFIX, ResultRecord, collect, load

MANIFEST = ".sclbench-baseline.json"


def replace_baseline(results: str | Path, to: str | Path) -> int:
    """Make `to` hold every record under `results` (with its predictions) and the files of `to` that
    sclbench did not write; returns the record count. A record no longer produced leaves the baseline."""
    records = collect(results)
    if not records:
        raise DataError(f"no result records under {results} (run `sclbench demo` or `sclbench eval` first)")
    to = Path(to)
    if to.resolve() in [Path(results).resolve(), *Path(results).resolve().parents]:
        raise DataError(f"--to {to} contains the results folder {results}; choose another baseline folder")
    check_output_dir(to, "--to")
    predictions = [r.read_predictions() for r in records]  # read (and verify) everything before writing
    _recover(to)
    new = to.parent / f".{to.name}.baseline-new-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        kept = _copy_unmanaged(to, new)
        for record, preds in zip(records, predictions):
            record.save(new, predictions=preds)
        written = sorted(
            str(p.relative_to(new)) for p in new.rglob("*") if not p.is_dir() and str(p.relative_to(new)) not in kept
        )
        atomic_write(new / MANIFEST, json.dumps({"written_by": "sclbench baseline", "files": written}, indent=1) + "\n")
        _swap_in(new, to)
    except OSError as err:
        raise write_error(err, getattr(err, "filename", None) or to, "replacing the baseline") from None
    finally:
        shutil.rmtree(new, ignore_errors=True)  # after a swap: the old baseline; after a failure: the draft
    return len(records)


def _managed(to: Path) -> set[str]:
    """Relative paths of the files in `to` that sclbench wrote (and may therefore drop)."""
    manifest = to / MANIFEST
    if manifest.is_file():
        try:
            listed = json.loads(manifest.read_text(encoding="utf-8")).get("files", [])
        except (ValueError, OSError, AttributeError):
            raise SCLBenchError(
                f"{manifest} is damaged; restore it (or remove it: the result records are then "
                "recognised by their contents)"
            ) from None
        return {str(p) for p in listed} | {MANIFEST}
    managed = set()
    for record in _own_records(to) if to.is_dir() else []:
        rel = record.source.relative_to(to)
        managed.add(str(rel))
        if record.predictions_file:
            managed.add(str(rel.with_name(record.predictions_file)))
    for path in to.rglob("*") if to.is_dir() else []:
        rel = path.relative_to(to)
        if path.name == LOCK_NAME or HISTORY_DIR in rel.parts or path.name.endswith(PREDICTIONS_SUFFIX):
            managed.add(str(rel))
    return managed


def _own_records(to: Path) -> list[ResultRecord]:
    """The result records in a baseline folder without a manifest: the files that read as complete sclbench
    records. Any other JSON file -- the user's own, another tool's, or one that is damaged, not UTF-8 or only
    claims the record schema -- is not sclbench's to drop: it is kept as the user's (and `check` then names
    it if it is in the way), never a reason to stop the replacement (`collect` would refuse the folder)."""
    records = []
    for path in sorted(to.rglob("*.json")):
        if any(part.startswith(".") for part in path.relative_to(to).parts):
            continue  # .history/ is sclbench's as a whole (listed below); temporary files are not records
        try:
            records.append(load(path))
        except SCLBenchError:
            continue
    return records


def _copy_unmanaged(to: Path, new: Path) -> set[str]:
    """Recreate in `new` every file of `to` that sclbench did not write (hard links: instant, and the
    bytes are the user's own); returns their relative paths."""
    new.mkdir(parents=True)
    if not to.is_dir():
        return set()
    managed, kept = _managed(to), set()
    for path in sorted(to.rglob("*")):
        rel = path.relative_to(to)
        if str(rel) in managed or any(str(Path(*rel.parts[:i])) in managed for i in range(1, len(rel.parts))):
            continue
        target = new / rel
        if path.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(path), target)
        elif path.is_dir():  # kept only when it holds nothing of sclbench's (a folder of the user's own)
            if not any(m.startswith(f"{rel}/") for m in managed):
                target.mkdir(parents=True, exist_ok=True)
            continue
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)
        kept.add(str(rel))
    return kept


def _old_name(to: Path) -> Path:
    return to.parent / f".{to.name}.baseline-old"


def _recover(to: Path) -> None:
    """Put back a baseline moved aside by a run killed between the fallback's two renames, and remove
    drafts of runs that died."""
    old = _old_name(to)
    if old.is_dir() and not to.exists():
        old.rename(to)
    elif old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    for draft in to.parent.glob(f".{to.name}.baseline-new-*") if to.parent.is_dir() else []:
        pid = draft.name.rsplit("-", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(draft, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _swap_in(new: Path, to: Path) -> None:
    """Make `new` be `to`, atomically where the system allows; afterwards `new` holds the old one."""
    if not to.exists():
        os.rename(new, to)
        new.mkdir()  # the caller removes `new` either way
        return
    if _exchange(new, to):
        return
    old = _old_name(to)
    os.rename(to, old)  # a kill right here: the next run's _recover puts `old` back
    os.rename(new, to)
    os.rename(old, new)


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError, TypeError):
        return False
    at_fdcwd = -100
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL / ENOSYS / EOPNOTSUPP: the file system cannot exchange
        return False
    raise OSError(err, os.strerror(err), str(b))
