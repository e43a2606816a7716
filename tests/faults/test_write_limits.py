"""A real file-size limit (RLIMIT_FSIZE, as `ulimit -f` sets; SIGXFSZ ignored so writes fail with
EFBIG) hit by each kind of write through the command line: one `error:` line naming the file and the
limit, exit 2, the previous file byte-identical, no temporary file left."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sclbench.results import ResultRecord

ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "SCLBENCH_NO_PROGRESS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def limited(limit: int):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def run_limited(args, limit):
    proc = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=300, preexec_fn=limited(limit))
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    return proc, errors


def tmp_files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if ".tmp-" in p.name or ".baseline-new-" in p.name)


def test_baseline_over_the_file_size_limit(tmp_path):
    old_base, new = tmp_path / "baseline", tmp_path / "fresh"
    for root, rows in ((old_base, 10), (new, 20000)):  # the new predictions file is ~3 MB
        ResultRecord("vqa", "test", {"accuracy": 50.0}, "s", checkpoint={"name": "c"}).save(
            root, predictions=[{"id": i, "pad": "x" * 150} for i in range(rows)]
        )
    before = {p: p.read_bytes() for p in old_base.rglob("*") if p.is_file()}
    proc, errors = run_limited(
        [sys.executable, "-m", "sclbench", "baseline", str(new), "--to", str(old_base)], limit=1 << 20
    )
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
    assert "file-size limit" in errors[0] and "predictions.jsonl" in errors[0] and "Traceback" not in proc.stderr
    assert {p: p.read_bytes() for p in old_base.rglob("*") if p.is_file()} == before
    assert tmp_files(tmp_path) == []


@pytest.mark.parametrize("what", ["checkpoint", "record"])
def test_library_writes_over_the_file_size_limit(tmp_path, what):
    """torch.save of a training checkpoint (its RuntimeError over EFBIG) and a result record."""
    target = tmp_path / ("checkpoints/step-00000004.pt" if what == "checkpoint" else "vqa/vqa_test_c.json")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"previous" * 10)
    code = {
        "checkpoint": "import torch; from sclbench.engine.checkpointing import save_checkpoint\n"
        "save_checkpoint(sys.argv[1], {'w': torch.zeros(1 << 20)}, 4, keep_last=None)",
        "record": "from sclbench.results import ResultRecord\n"
        "ResultRecord('vqa', 'test', {'accuracy': 1.0}, 's', checkpoint={'name': 'c'}, notes='x' * 3000000)"
        ".save(sys.argv[1])",
    }[what]
    script = (
        "import sys\nfrom sclbench.errors import SCLBenchError\ntry:\n"
        + "".join(f"    {line}\n" for line in code.splitlines())
        + "except SCLBenchError as err:\n    print('error:', err, file=sys.stderr); sys.exit(2)\n"
    )
    proc, errors = run_limited([sys.executable, "-c", script, str(tmp_path)], limit=1 << 20)
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
    assert "file-size limit" in errors[0] and target.name in errors[0]
    assert target.read_bytes() == b"previous" * 10 and tmp_files(tmp_path) == []


def test_the_limit_is_real(tmp_path):
    """The same writes succeed without the limit (the failures above come from it)."""
    target = tmp_path / "big.pt"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, torch; from sclbench.common.io import atomic_write\n"
            "atomic_write(sys.argv[1], lambda fh: torch.save({'w': torch.zeros(1 << 20)}, fh))",
            str(target),
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert torch.load(target, weights_only=True)["w"].numel() == 1 << 20


# End-to-end runs (subprocesses, training, compiling, fuzzing real jobs): CI runs them; the fast lane
# (-m "not slow") leaves them out to stay under two minutes.
pytestmark = pytest.mark.slow
