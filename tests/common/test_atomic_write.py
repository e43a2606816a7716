"""Every OSError while writing is one SCLBenchError naming the file; the previous file stays
byte-identical and no temporary file is left -- whichever errno, at whichever step of the write, and also
when the writer (torch.save) wraps the OSError in its own exception."""

from __future__ import annotations

import errno
import os

import pytest
import torch

import sclbench.common.io as sio
from sclbench.common.io import atomic_write
from sclbench.errors import SCLBenchError

ERRNOS = [errno.EROFS, errno.EACCES, errno.ENOTDIR, errno.ENOSPC, errno.EFBIG, errno.EPERM, errno.EDQUOT, errno.EIO]
STEPS = ["mkdir", "open", "write", "fsync", "replace"]
OLD = b"old contents \x00\xff" * 100


def _fail(code):
    def raise_(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return raise_


def inject(monkeypatch, step, code):
    """Make one step of atomic_write fail with `code` (only for the write under test)."""
    if step == "mkdir":
        monkeypatch.setattr(sio.Path, "mkdir", _fail(code))
    elif step == "open":
        real_open = os.open
        monkeypatch.setattr(
            sio.os, "open", lambda p, *a, **k: _fail(code)() if ".tmp-" in str(p) else real_open(p, *a, **k)
        )
    elif step == "fsync":
        monkeypatch.setattr(sio.os, "fsync", _fail(code))
    elif step == "replace":
        monkeypatch.setattr(sio.os, "replace", _fail(code))


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("code", ERRNOS)
@pytest.mark.parametrize("kind", ["bytes", "text", "writer"])
def test_every_errno_at_every_step_keeps_the_old_file(tmp_path, monkeypatch, step, code, kind):
    target = tmp_path / "record.json"
    target.write_bytes(OLD)
    if step == "write":
        data = _fail(code) if kind == "writer" else None
        if data is None:  # a failing write of bytes/text: the file object's write raises
            real_fdopen = os.fdopen

            def fdopen(fd, *a, **k):
                fh = real_fdopen(fd, *a, **k)
                fh.write = _fail(code)
                return fh

            monkeypatch.setattr(sio.os, "fdopen", fdopen)
    else:
        inject(monkeypatch, step, code)
    payload = {"bytes": b"new" * 1000, "text": "new" * 1000, "writer": lambda fh: fh.write(b"new" * 1000)}[kind]
    if step == "write" and kind == "writer":
        payload = lambda fh: fh.write(b"x") and _fail(code)()  # noqa: E731 - partial bytes, then the error
    with pytest.raises(SCLBenchError) as info:
        atomic_write(target, payload)
    message = str(info.value)
    assert str(target) in message and "\n" not in message and f"Errno {code}" in message
    assert "unchanged" in message
    monkeypatch.undo()
    assert target.read_bytes() == OLD
    assert leftovers(tmp_path) == []


class _DiskFillsAfter:
    """A file object whose writes fail with ENOSPC once `limit` bytes are written (a disk filling up)."""

    def __init__(self, fh, limit, code=errno.ENOSPC):
        self._fh, self.left, self.code = fh, limit, code

    def write(self, data):
        if len(data) > self.left:
            raise OSError(self.code, os.strerror(self.code))
        self.left -= len(data)
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG, errno.EIO])
@pytest.mark.parametrize("limit", [0, 100, 5000])
def test_torch_save_wrapping_the_oserror_is_still_one_clear_error(tmp_path, monkeypatch, code, limit):
    """torch.save turns a failed write into RuntimeError ('file write failed'): the cause is still named."""
    target = tmp_path / "step-00000004.pt"
    target.write_bytes(OLD)
    real_fdopen = os.fdopen
    monkeypatch.setattr(sio.os, "fdopen", lambda fd, *a, **k: _DiskFillsAfter(real_fdopen(fd, *a, **k), limit, code))
    with pytest.raises(SCLBenchError, match=rf"while writing {target}.*Errno {code}"):
        atomic_write(target, lambda fh: torch.save({"w": torch.zeros(4096)}, fh))
    monkeypatch.undo()
    assert target.read_bytes() == OLD and leftovers(tmp_path) == []


def test_a_file_where_the_folder_belongs_is_named(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_bytes(OLD)
    with pytest.raises(SCLBenchError, match=r"a part of the path is a file while writing .*results/vqa/r\.json"):
        atomic_write(blocker / "vqa" / "r.json", "{}")
    assert blocker.read_bytes() == OLD


def test_a_folder_where_the_file_belongs_is_named(tmp_path):
    (tmp_path / "r.json").mkdir()
    with pytest.raises(SCLBenchError, match=r"a folder is where the file belongs while writing .*r\.json"):
        atomic_write(tmp_path / "r.json", "{}")
    assert (tmp_path / "r.json").is_dir() and leftovers(tmp_path) == []


def test_success_replaces_whole_and_keeps_the_umask_mode(tmp_path):
    target = tmp_path / "r.json"
    target.write_bytes(OLD)
    old_umask = os.umask(0o022)
    try:
        atomic_write(target, "new")
    finally:
        os.umask(old_umask)
    assert target.read_text() == "new" and (target.stat().st_mode & 0o777) == 0o644
    assert leftovers(tmp_path) == []
