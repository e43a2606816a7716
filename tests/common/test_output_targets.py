"""Every output target is checked before any work: it exists or can be created, is a folder (or a file
path whose folder is one), and is writable; otherwise one `error:` line naming the option and path,
exit 2, and nothing created."""

from __future__ import annotations

import errno
import os

import pytest

import sclbench.common.io as sio
from sclbench.cli import main
from sclbench.common.io import check_output_dir, check_output_file
from sclbench.errors import SCLBenchError


def run_cli(args, capsys):
    capsys.readouterr()
    rc = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, [line for line in err.splitlines() if line.startswith("error:") or line.startswith("Error:")]


# (verb arguments with OUT standing for the target, the option the error names, folder or file target)
TARGETS = [
    (["data", "synth", "OUT"], "OUT", "dir"),
    (["data", "shard", "f30k", "--data-root", "IN", "--out", "OUT"], "--out", "dir"),
    (["eval", "f30k", "--results", "OUT"], "--results", "dir"),
    (["eval", "f30k", "--submission", "OUT"], "--submission", "dir"),
    (["eval", "f30k", "--cache-dir", "OUT"], "--cache-dir", "dir"),
    (["finetune", "vqa", "--out", "OUT"], "--out", "dir"),
    (["pretrain", "--out", "OUT"], "--out", "dir"),
    (["baseline", "IN", "--to", "OUT"], "--to", "dir"),
    (["plot", "IN", "--out", "OUT"], "--out", "dir"),
    (["demo", "--out", "OUT"], "--out", "dir"),
    (["ckpt", "convert", "IN", "OUT"], "OUT", "dir"),
    (["ckpt", "convert", "IN", "OUT.ckpt"], "OUT", "file"),
    (["table", "IN", "--out", "OUT.md"], "--out", "file"),
    (["check", "IN", "--baseline", "IN", "--json", "OUT.json"], "--json", "file"),
]


def _args(template, tmp_path, out):
    inp = tmp_path / "in"
    inp.mkdir(exist_ok=True)
    return [str(inp) if a == "IN" else str(out) + a[3:] if a.startswith("OUT") else a for a in template]


@pytest.mark.parametrize("template,option,kind", TARGETS)
def test_a_target_below_a_file_is_refused_before_work(tmp_path, capsys, template, option, kind):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    rc, errors = run_cli(_args(template, tmp_path, blocker / "sub"), capsys)
    assert rc == 2 and len(errors) == 1, errors
    assert option in errors[0] and "blocker" in errors[0] and "is a file" in errors[0], errors[0]
    assert blocker.read_text() == "a file"


@pytest.mark.parametrize("template,option,kind", [t for t in TARGETS if t[2] == "dir"])
def test_a_file_given_for_a_folder_is_refused(tmp_path, capsys, template, option, kind):
    target = tmp_path / "afile"
    target.write_text("keep")
    rc, errors = run_cli(_args(template, tmp_path, target), capsys)
    assert rc == 2 and len(errors) == 1, errors
    assert "afile" in errors[0] and ("file" in errors[0]), errors[0]
    assert target.read_text() == "keep"


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT])
@pytest.mark.parametrize("template,option,kind", TARGETS)
def test_an_unwritable_target_is_refused_naming_option_and_why(
    tmp_path, capsys, monkeypatch, template, option, kind, code
):
    """Read-only mounts, permissions, a full disk: simulated at the probe (tests run as root, which
    chmod cannot stop), so each reason is seen through every verb's option."""
    real_open = os.open
    monkeypatch.setattr(
        sio.os,
        "open",
        lambda p, *a, **k: (
            (_ for _ in ()).throw(OSError(code, os.strerror(code)))
            if ".sclbench-probe-" in str(p)
            else real_open(p, *a, **k)
        ),
    )
    out = tmp_path / "target"
    if kind == "dir":
        out.mkdir()
    rc, errors = run_cli(_args(template, tmp_path, out), capsys)
    assert rc == 2 and len(errors) == 1, errors
    assert option in errors[0] and "not writable" in errors[0], errors[0]
    assert sio._WHY[code][0] in errors[0]


def test_checks_create_nothing_and_accept_creatable_paths(tmp_path):
    deep = tmp_path / "a" / "b" / "c"
    assert check_output_dir(deep, "--out") == deep and not (tmp_path / "a").exists()
    assert check_output_file(deep / "x.json", "--json") == deep / "x.json" and not (tmp_path / "a").exists()
    assert check_output_dir(tmp_path, "--out") == tmp_path
    assert list(tmp_path.iterdir()) == []  # the probe file is gone
    with pytest.raises(SCLBenchError, match=r"--json .* is a folder"):
        check_output_file(tmp_path, "--json")


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to drop to another user")
def test_a_real_permission_denied_as_an_unprivileged_user():
    """The probe sees real permissions: a child that drops to `nobody` (after its imports: the
    interpreter lives under /root) against a 0o555 folder, and a 0o755 one it does not own."""
    import shutil
    import subprocess
    import sys
    import tempfile

    base = tempfile.mkdtemp(prefix="sclbench-perm-", dir="/tmp")
    try:
        os.chmod(base, 0o755)
        readonly = os.path.join(base, "ro")
        os.mkdir(readonly, 0o555)
        os.chmod(readonly, 0o555)
        code = (
            "import os, sys\nfrom sclbench.common.io import check_output_dir\nos.setgid(65534); os.setuid(65534)\n"
            "for target in sys.argv[1:]:\n    try:\n        check_output_dir(target, '--out')\n"
            "    except Exception as e:\n        print(e)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code, os.path.join(readonly, "run"), readonly, base],
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = proc.stdout.splitlines()
        assert proc.returncode == 0 and len(lines) == 3, (proc.stdout, proc.stderr)
        assert all(line.startswith("--out ") and "permission denied" in line for line in lines), lines
        assert os.listdir(readonly) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)
