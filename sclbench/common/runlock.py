"""A run folder belongs to one run at a time.

Two `finetune` / `pretrain` processes writing one `--out` would interleave checkpoints, logs and weights,
and both would report success. The run holds an exclusive `fcntl.flock` on `<out>/.sclbench-run.lock`
for its whole life; the file says who holds it (pid, host, start time, command). A second run into the
same folder is refused naming that holder. The kernel drops a flock when its process dies (even on
SIGKILL), so a lock left by a dead run is simply taken over: there is no stale-lock guessing by pid.
(flock is advisory and local to one machine's kernel on most network file systems: runs on different
hosts sharing an NFS folder are not excluded.)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from sclbench.common.io import write_error
from sclbench.errors import SCLBenchError

LOCK_NAME = ".sclbench-run.lock"


class RunFolderBusy(SCLBenchError):
    """Another live process holds the run folder."""


@contextlib.contextmanager
def run_folder_lock(out_dir: str | Path, option: str = "--out") -> Iterator[Path]:
    """Hold `out_dir`'s run lock for the duration of the block (creating the folder)."""
    out_dir = Path(out_dir)
    path = out_dir / LOCK_NAME
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise write_error(err, path, f"locking the run folder {option}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderBusy(
                f"{option} {out_dir} is in use by another run ({_holder(fd)}); wait for it to end, "
                "or choose another folder"
            ) from None
        except OSError as err:  # a file system without flock: say so rather than run unguarded silently
            raise write_error(err, path, f"locking the run folder {option}") from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(sys.argv),
        }
        try:  # in place (the lock is on this inode): truncate, then write who we are
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError as err:
            raise write_error(err, path, f"locking the run folder {option}") from None
        yield path
    finally:
        os.close(fd)  # releases the flock; the file stays (removing it would race with a new locker)


def _holder(fd: int) -> str:
    """Who holds the lock, from the file's contents (written by the holder right after locking)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "its details are not written yet"
    return (
        f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}: "
        f"{str(info.get('command', ''))[:200]}"
    )
