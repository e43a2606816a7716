"""Files written so that a reader (or a killed writer) never sees half of one, output targets checked
before work starts, and JSON-lines reading with errors that name the file and line."""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from sclbench.common.textfile import read_jsonl as read_exactly
from sclbench.errors import SCLBenchError

# What each write failure means for the user, by errno, and what to do (the message names the file too).
_WHY = {
    errno.ENOSPC: ("no space left on the device", "free some space or write elsewhere"),
    errno.EDQUOT: ("the disk quota is exhausted", "free some space or write elsewhere"),
    errno.EFBIG: (
        "the file is larger than this system or process allows (file-size limit)",
        "raise the limit (ulimit -f) or write to another file system",
    ),
    errno.EROFS: ("the file system is read-only", "write elsewhere"),
    errno.EACCES: ("permission denied", "fix the permissions or write elsewhere"),
    errno.EPERM: ("operation not permitted", "fix the permissions or write elsewhere"),
    errno.ENOTDIR: ("not a folder: a part of the path is a file", "choose another path"),
    errno.EISDIR: ("a folder is where the file belongs", "choose another path"),
    errno.EEXIST: ("a file of that name is in the way", "choose another path"),
    errno.ENAMETOOLONG: ("the name is too long", "choose a shorter path"),
    errno.EIO: ("an input/output error of the device", "check the disk and rerun"),
}


def _why(err: OSError) -> tuple[str, str]:
    return _WHY.get(err.errno or -1, (err.strerror or str(err), "check the path and the disk, then rerun"))


def write_error(err: OSError, path: str | Path, doing: str = "writing") -> SCLBenchError:
    """One clear error for an OSError met while `doing` `path` (the caller raises it `from None`)."""
    why, todo = _why(err)
    return SCLBenchError(
        f"{why} while {doing} {path} [Errno {err.errno}]: {todo}; the previous file, if any, is unchanged"
    )


class _WriteTracker:
    """A file wrapper that remembers an OSError raised by `write`: writers such as torch.save wrap it in
    their own exception type (RuntimeError), and the cause must still be told to the user."""

    def __init__(self, fh: IO[bytes]):
        self._fh, self.error = fh, None

    def write(self, data: Any) -> int:
        try:
            return self._fh.write(data)
        except OSError as err:
            self.error = err
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


def atomic_write(path: str | Path, data: str | bytes | Callable[[IO[bytes]], None]) -> Path:
    """Write `data` (text, bytes, or a function writing to a binary file) to a temporary file in the
    same folder, fsync it, rename it over `path` (os.replace is atomic on POSIX) and fsync the folder:
    readers see the old file or the new one, never a partial one. Any OSError (no space, file too
    large, read-only, permission, not a folder) is one SCLBenchError naming the file; the temporary file
    is removed and the previous file, if any, is unchanged."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    tracker = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: never write through a name someone else made; 0o666 under the umask, like open(path, "w").
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as fh:
            if callable(data):
                tracker = _WriteTracker(fh)
                data(tracker)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except OSError as err:
        raise write_error(err, path) from None
    except Exception:
        if tracker is not None and tracker.error is not None:  # e.g. torch.save's RuntimeError over ENOSPC
            raise write_error(tracker.error, path) from None
        raise
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # the folder itself became unwritable: nothing more to clean
            pass
    return path


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (a power loss after it keeps the new name)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


def check_output_dir(path: str | Path, option: str) -> Path:
    """Before any work: `path` (given as `option`) is a folder we can write into, or can be created as
    one. One SCLBenchError naming the option and path otherwise. Nothing is created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SCLBenchError(f"{option} {path} is a file, not a folder; pass a folder (it may not exist yet)")
    _check_writable(path if path.is_dir() else _existing_parent(path, option), option, path)
    return path


def check_output_file(path: str | Path, option: str) -> Path:
    """Before any work: the file `path` (given as `option`) can be written: not a folder, and its folder
    exists (or can be created) and is writable."""
    path = Path(path)
    if path.is_dir():
        raise SCLBenchError(f"{option} {path} is a folder; pass a file name")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise SCLBenchError(f"{option} {path}: {parent} is a file, not a folder")
    _check_writable(parent if parent.is_dir() else _existing_parent(parent, option), option, path)
    return path


def _existing_parent(path: Path, option: str) -> Path:
    """The nearest existing ancestor of a path to be created; it must be a folder."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise SCLBenchError(f"{option} {path} cannot be created: {parent} is a file, not a folder")
            return parent
    return Path(path.absolute().anchor)


def _check_writable(folder: Path, option: str, target: Path) -> None:
    """Create and remove a probe file: the one test that sees read-only mounts, ACLs and root alike."""
    probe = folder / f".sclbench-probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as err:
        why = _why(err)[0]
        where = "" if folder == target else f" (its folder {folder})"
        raise SCLBenchError(
            f"{option} {target} is not writable{where}: {why}; choose another path or fix the permissions"
        ) from None


def read_jsonl(
    path: str | Path, fix: str = "re-create it (re-run the command that wrote it)"
) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-empty line of a JSON-lines file sclbench wrote (predictions, logs),
    read exactly (common/textfile): bytes that are not UTF-8, malformed lines and an object repeating a key
    are one DataError naming the file and the line, then `fix`. An empty file holds no rows."""
    return read_exactly(Path(path), allow_empty=True, fix=fix)
