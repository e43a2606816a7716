"""What the disk can do to a run, as a user sees it: every OSError about the user's paths (permission,
read-only file system, not a folder, no space, quota, file too large, name too long, is a folder) is one
`error:` line naming the path, exit 2; an exception that is nobody's input is one line saying it is a
bug, exit 1, with the traceback only under SCLBENCH_DEBUG=1."""

from __future__ import annotations

import builtins
import errno
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from fuzz_cli import BUG_MARK, REPO, assert_clean, run_cli

USER_ERRNOS = [
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.ENAMETOOLONG,
    errno.ENOENT,
    errno.EMFILE,
    errno.EIO,
]


@pytest.fixture
def failing_writes(monkeypatch):
    """fail(dir, errno): every open-for-writing and mkdir under `dir` raises that OSError, whichever way
    the library writes (open, os.open as tempfile uses, Path.mkdir)."""

    def fail(folder: Path, code: int) -> None:
        folder = str(folder)
        real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

        def inside(path) -> bool:
            return isinstance(path, (str, os.PathLike)) and os.fspath(path).startswith(folder)

        def guarded_open(file, mode="r", *args, **kwargs):
            if inside(file) and any(c in mode for c in "wax+"):
                raise OSError(code, os.strerror(code), os.fspath(file))
            return real_open(file, mode, *args, **kwargs)

        def guarded_os_open(path, flags, *args, **kwargs):
            if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                raise OSError(code, os.strerror(code), os.fspath(path))
            return real_os_open(path, flags, *args, **kwargs)

        def guarded_mkdir(path, *args, **kwargs):
            if inside(path):
                raise OSError(code, os.strerror(code), os.fspath(path))
            return real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", guarded_open)
        monkeypatch.setattr(os, "open", guarded_os_open)
        monkeypatch.setattr(os, "mkdir", guarded_mkdir)

    return fail


@pytest.mark.parametrize("code", USER_ERRNOS, ids=[errno.errorcode[c] for c in USER_ERRNOS])
@pytest.mark.parametrize("verb", ["table", "check", "baseline", "data synth"])
def test_an_os_error_on_an_output_is_one_line(verb, code, workspace, scratch, failing_writes):
    target = scratch / "target"
    argv = {
        "table": ["table", workspace.records, "--format", "markdown", "--out", target / "t.md"],
        "check": ["check", workspace.records, "--baseline", workspace.records, "--json", target / "r.json"],
        "baseline": ["baseline", workspace.records, "--to", target / "base"],
        "data synth": ["data", "synth", target / "synth", "--scale", "0.01"],
    }[verb]
    failing_writes(target, code)
    outcome = run_cli(argv)
    assert_clean(outcome)
    assert outcome.rc == 2, outcome.report()
    [line] = outcome.error_lines()
    assert str(target) in line, outcome.report()  # names the path


def test_an_os_error_without_a_path_is_one_line(monkeypatch, workspace, scratch):
    # A write on an open file that hits a full disk carries no file name.
    import sclbench.results.renderers as table_module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(table_module, "render", full)
    outcome = run_cli(["table", workspace.records, "--format", "csv"])
    assert outcome.rc == 2 and "no space left" in outcome.err and "Traceback" not in outcome.text, outcome.report()


@pytest.mark.parametrize("debug", ["", "1"])
def test_a_bug_is_one_line_and_the_traceback_only_when_asked(monkeypatch, workspace, scratch, debug):
    import sclbench.results.renderers as table_module

    def broken(*args, **kwargs):
        raise KeyError("a programming error")

    monkeypatch.setattr(table_module, "render", broken)
    monkeypatch.setenv("SCLBENCH_DEBUG", debug)
    outcome = run_cli(["table", workspace.records, "--format", "csv"])
    assert outcome.rc == 1 and BUG_MARK in outcome.err and "KeyError" in outcome.err, outcome.report()
    assert len(outcome.error_lines()) == 1
    assert ("Traceback" in outcome.err) == bool(debug), outcome.report()


def test_an_unexpected_os_error_is_reported_as_a_bug(monkeypatch, workspace, scratch):
    # EBADF is sclbench misusing a file descriptor, not the user's disk.
    import sclbench.results.renderers as table_module

    def bad_fd(*args, **kwargs):
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    monkeypatch.setattr(table_module, "render", bad_fd)
    monkeypatch.setenv("SCLBENCH_DEBUG", "")
    outcome = run_cli(["table", workspace.records, "--format", "csv"])
    assert outcome.rc == 1 and BUG_MARK in outcome.err and "Traceback" not in outcome.text, outcome.report()


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # SIGXFSZ is ignored by Python: writes get EFBIG


def test_a_real_file_size_limit_is_one_line(tmp_path):
    """A real process under `ulimit -f` (EFBIG from the kernel, not a mock): the synthetic benchmark's
    tokenizer.json alone is bigger than 4 KiB."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "SCLBENCH_NO_PROGRESS": "1",
        "SCLBENCH_DEBUG": "",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "sclbench", "data", "synth", str(tmp_path / "s"), "--scale", "0.01"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        preexec_fn=_limit_file_size,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "file too large" in proc.stderr, proc.stderr
    assert len([x for x in proc.stderr.splitlines() if x.startswith("error:")]) == 1, proc.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_one_line(workspace, scratch):
    folder = scratch / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        for argv in (
            ["table", workspace.records, "--format", "csv", "--out", folder / "t.csv"],
            ["baseline", workspace.records, "--to", folder / "base"],
            ["data", "synth", folder / "s", "--scale", "0.01"],
        ):
            outcome = run_cli(argv)
            assert_clean(outcome)
            assert outcome.rc == 2 and str(folder) in outcome.err, outcome.report()
    finally:
        folder.chmod(0o755)


def test_a_closed_pipe_is_quiet(workspace, tmp_path):
    """`sclbench table | head -1`: the reader leaves early; no traceback, no error line."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SCLBENCH_NO_PROGRESS": "1", "SCLBENCH_DEBUG": ""}
    many = tmp_path / "records"
    for i in range(40):  # enough rows that the table outlives the pipe's buffer
        for record in workspace.records.rglob("*.json"):
            target = many / f"copy{i}" / record.relative_to(workspace.records)
            target.parent.mkdir(parents=True, exist_ok=True)
            data = record.read_text(encoding="utf-8").replace('"demo-scl"', f'"demo-scl-{i}"')
            target.write_text(data, encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sclbench", "table", str(many), "--format", "csv", "--no-intervals"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=env,
    )
    proc.stdout.read(10)
    proc.stdout.close()  # the reader goes away
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) in (0, 1), err
    assert "Traceback" not in err and BUG_MARK not in err, err


# End-to-end runs (subprocesses, training, compiling, fuzzing real jobs): CI runs them; the fast lane
# (-m "not slow") leaves them out to stay under two minutes.
pytestmark = pytest.mark.slow
