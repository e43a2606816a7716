"""Each kind of output file sclbench writes goes through the atomic writer: a write failing with any
errno leaves the previous file byte-identical and is one error naming the file (through the CLI, one
`error:` line and exit 2)."""

from __future__ import annotations

import errno
import os

import pytest

import sclbench.common.io as sio
from sclbench.cli import main
from sclbench.errors import SCLBenchError
from sclbench.results import ResultRecord

OLD = b"previous bytes\n" * 20
CODES = [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EFBIG, errno.EIO]


def fail_replace(monkeypatch, code, only=None):
    """os.replace fails (for the file named `only`, or for every file)."""
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if only is None or os.path.basename(dst) == only:
            raise OSError(code, os.strerror(code))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(sio.os, "replace", replace)


@pytest.fixture
def records(tmp_path):
    root = tmp_path / "results"
    ResultRecord("vqa", "test-dev", {"accuracy": 70.0}, "vqaEval-official", checkpoint={"name": "c"}).save(root)
    return root


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("verb", ["table-md", "table-html", "check-json"])
def test_cli_report_files(records, tmp_path, capsys, monkeypatch, code, verb):
    target = tmp_path / ("report.json" if verb == "check-json" else "table.out")
    target.write_bytes(OLD)
    args = {
        "table-md": ["table", str(records), "--format", "markdown", "--out", str(target)],
        "table-html": ["table", str(records), "--format", "html", "--out", str(target)],
        "check-json": ["check", str(records), "--baseline", str(records), "--json", str(target)],
    }[verb]
    fail_replace(monkeypatch, code)
    capsys.readouterr()
    rc = main(args)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert rc == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert str(target) in errors[0] and f"Errno {code}" in errors[0]
    monkeypatch.undo()
    assert target.read_bytes() == OLD
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def _tiny_model():
    from sclbench.model import SCLModel
    from sclbench.model.config import SCLConfig

    return SCLModel(SCLConfig.tiny("f30k"))


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("what", ["official-ckpt", "config", "meta", "figure", "nlvr2-submission"])
def test_library_output_files(tmp_path, monkeypatch, code, what, request):
    if what == "official-ckpt":
        from sclbench.model.checkpoint import export_official

        model, target = _tiny_model(), tmp_path / "model.ckpt"
        write = lambda: export_official(model, target)  # noqa: E731
    elif what == "config":
        model, target = _tiny_model(), tmp_path / "config.json"
        write = lambda: model.config.save(target)  # noqa: E731
    elif what == "meta":
        from sclbench.model.checkpoint import META_NAME, save_pretrained

        model, target = _tiny_model(), tmp_path / "best" / META_NAME
        save_pretrained(model, tmp_path / "best")
        write = lambda: save_pretrained(model, tmp_path / "best", meta={"step": 1})  # noqa: E731
    elif what == "figure":
        pytest.importorskip("matplotlib")
        from sclbench.results.plots import pyplot, save_figure

        plt = pyplot()
        target = tmp_path / "curve.png"
        write = lambda: save_figure(plt, plt.figure(), target)  # noqa: E731
    else:
        from types import SimpleNamespace

        from sclbench.tasks.base import get_task

        task = get_task("nlvr2", None, data_root=request.getfixturevalue("synth_root") / "nlvr2")
        target = tmp_path / "sub" / f"nlvr2_predictions_{task.card.get('splits.test', 'test')}.csv"
        evaluation = SimpleNamespace(split="test", predictions=[{"identifier": "a-0", "prediction": 1}])
        write = lambda: task.submission(evaluation, tmp_path / "sub")  # noqa: E731
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(OLD)
    fail_replace(monkeypatch, code, only=target.name)
    with pytest.raises(SCLBenchError, match=rf"while writing {target} \[Errno {code}\]"):
        write()
    monkeypatch.undo()
    assert target.read_bytes() == OLD
    assert [p.name for p in target.parent.iterdir() if ".tmp-" in p.name] == []
