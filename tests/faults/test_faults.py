"""Faults survived, with real processes and signals: SIGKILL while a result or a checkpoint is being
written, two writers into one results folder, a full disk (a small tmpfs when this machine may mount
one, else an injected ENOSPC)."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sclbench.common import io as common_io
from sclbench.engine.checkpointing import latest, list_checkpoints, load_checkpoint, save_checkpoint
from sclbench.engine.logs import truncate_log
from sclbench.errors import DataError, SCLBenchError
from sclbench.results import ResultRecord, collect, load

CHILD = Path(__file__).with_name("fault_child.py")


def env() -> dict:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "SCLBENCH_NO_PROGRESS": "1",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
    }


def spawn(tmp_path: Path, *args: str) -> subprocess.Popen:
    log = open(tmp_path / f"child-{time.monotonic_ns()}.log", "w")
    return subprocess.Popen(
        [sys.executable, str(CHILD), *args], env=env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"child ended early with {proc.returncode}"
        assert time.time() < end, f"{path} never appeared"
        time.sleep(0.02)


def kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL


def visible_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


# Real child processes (each imports torch): seconds each, longer on a loaded machine.
pytestmark = pytest.mark.slow


# ---- SIGKILL while a result is written ------------------------------------------------------------
@pytest.mark.parametrize("stall_on", [".predictions.jsonl.tmp", ".json.tmp"])
def test_sigkill_during_a_result_write_leaves_the_old_record_whole(tmp_path, stall_on):
    """Killed inside the write of the new predictions, or of the new record: the old record (A) is
    there and whole; its predictions are its own, or are refused as not matching (never trusted)."""
    root, marker = tmp_path / "results", tmp_path / "stalled"
    proc = spawn(tmp_path, "records-stall", str(root), stall_on, str(marker))
    wait_for(marker, proc)
    assert ".tmp-" in marker.read_text()  # the kill lands on the temporary file, before the rename
    kill(proc)
    (rec,) = collect(root)
    assert rec.notes == "A" and rec.metrics == {"accuracy": 70.0}
    preds = rec.read_predictions()  # killed before the predictions' rename: A's are still in place
    assert {p["version"] for p in preds} == {"A"} and len(preds) == 2000
    assert visible_files(root / "vqa") == ["vqa_test-dev_ckpt.json", "vqa_test-dev_ckpt.predictions.jsonl"]


def test_sigkill_at_random_moments_of_repeated_writes_never_leaves_a_partial_record(tmp_path):
    root = tmp_path / "results"
    rng = random.Random(0)
    for trial in range(3):
        marker = tmp_path / f"saved-{trial}"
        proc = spawn(tmp_path, "records-loop", str(root), str(marker))
        wait_for(marker, proc)
        time.sleep(rng.uniform(0.0, 0.6))
        kill(proc)
        path = root / "vqa" / "vqa_test-dev_ckpt.json"
        rec = load(path)  # parses: old or new, never torn
        assert rec.notes in ("A", "B")
        try:
            preds = rec.read_predictions()
        except DataError as err:  # killed between the two renames: detected, not trusted
            assert "does not match its record" in str(err)
        else:
            assert {p["version"] for p in preds} == {rec.notes}


# ---- SIGKILL while a checkpoint is written --------------------------------------------------------
def test_sigkill_during_a_checkpoint_write_keeps_the_previous_one_and_resume_works(tmp_path):
    """(That a resumed run ends on the uninterrupted run's exact weights is tested in
    tests/engine/test_engine_subprocess.py; here the kill lands inside a checkpoint write.)"""
    run, marker = tmp_path / "run", tmp_path / "stalled"
    proc = spawn(tmp_path, "train", str(run), "--stall-on", "step-00000004.pt", "--marker", str(marker))
    wait_for(marker, proc, timeout=300)
    kill(proc)
    ckpt_dir = run / "checkpoints"
    assert [p.name for p in list_checkpoints(run)] == ["step-00000002.pt"]
    assert any(p.name.startswith(".step-00000004.pt.tmp-") for p in ckpt_dir.iterdir())  # killed mid-save
    payload = load_checkpoint(latest(run))
    assert payload["state"]["step"] == 2
    assert all(torch.isfinite(v).all() for v in payload["model"].values() if v.is_floating_point())
    proc = spawn(tmp_path, "train", str(run))
    assert proc.wait(300) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_from"].endswith("step-00000002.pt") and summary["step"] == 6
    assert [p.name for p in list_checkpoints(run)] == ["step-00000002.pt", "step-00000004.pt", "step-00000006.pt"]
    log_steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert log_steps == sorted(set(log_steps)) == list(range(1, 7))  # each step once in the log after the resume


# ---- two writers into one results folder ----------------------------------------------------------
def test_two_processes_writing_one_results_folder_lose_nothing(tmp_path):
    root, start, n = tmp_path / "results", tmp_path / "go", 24
    procs = [spawn(tmp_path, "records-many", str(root), tag, str(start), str(n)) for tag in ("p1", "p2")]
    time.sleep(3)  # both imported and waiting
    start.write_text("go")
    assert [p.wait(120) for p in procs] == [0, 0]
    visible = collect(root)
    own = {(r.notes, r.checkpoint_name) for r in visible if not r.checkpoint_name.startswith("shared-")}
    expected = {(tag, f"{tag}-{i}") for tag in ("p1", "p2") for i in range(n) if i % 4}
    assert own == expected  # every record of its own key from both writers
    for rec in visible:  # each record reads its own predictions, never the other writer's
        preds = rec.read_predictions()
        assert {(p["writer"], p["i"]) for p in preds} == {(rec.notes, int(rec.metrics["r_mean"]))}
    history = sorted((root / "f30k" / ".history").glob("*.json"))
    shared_saves = sum(1 for i in range(n) if i % 4 == 0) * 2
    shared_visible = [r for r in visible if r.checkpoint_name.startswith("shared-")]
    assert len(shared_visible) == 3
    assert len(shared_visible) + len(history) == shared_saves  # the replaced ones are kept, with predictions
    for path in history:
        rec = load(path)
        assert {p["writer"] for p in rec.read_predictions()} == {rec.notes}


# ---- a full disk ----------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs when this process may mount one (root in a container that allows it), else None."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        yield None
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def big_record(version: str) -> tuple[ResultRecord, list[dict]]:
    rec = ResultRecord(
        "vqa",
        "val",
        {"accuracy": 1.0 if version == "A" else 2.0},
        "vqaEval-official",
        checkpoint={"name": "c"},
        notes=version,
    )
    return rec, [{"id": i, "pad": "z" * 100} for i in range(20 if version == "A" else 5000)]  # B: ~600 KB


def assert_disk_full_leaves_old_record(root: Path) -> None:
    rec, preds = big_record("A")
    rec.save(root, predictions=preds)
    rec, preds = big_record("B")
    with pytest.raises(SCLBenchError, match="no space left on the device") as info:
        rec.save(root, predictions=preds)
    assert "Traceback" not in str(info.value)
    (kept,) = collect(root)
    assert kept.notes == "A" and len(kept.read_predictions()) == 20
    leftovers = [p.name for p in (root / "vqa").iterdir() if ".tmp-" in p.name]
    assert leftovers == []  # the temporary file of the failed write is removed


def test_full_disk_on_a_real_small_filesystem(small_disk):
    if small_disk is None:
        pytest.skip("cannot mount a tmpfs here; the injected-ENOSPC tests below cover the same paths")
    assert_disk_full_leaves_old_record(small_disk / "results")


@pytest.fixture
def enospc_after(monkeypatch):
    """fsync raises ENOSPC for files whose name contains `needle` (as a full disk does on flush)."""

    def arm(needle: str):
        real = os.fsync

        def fsync(fd):
            if needle in os.readlink(f"/proc/self/fd/{fd}"):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(fd)

        monkeypatch.setattr(common_io.os, "fsync", fsync)

    return arm


def test_full_disk_while_writing_a_record_is_one_clear_error(tmp_path, enospc_after):
    root = tmp_path / "results"
    rec, preds = big_record("A")
    rec.save(root, predictions=preds)
    enospc_after(".predictions.jsonl")
    rec, preds = big_record("B")
    with pytest.raises(SCLBenchError, match=r"no space left on the device while writing .*predictions"):
        rec.save(root, predictions=preds)
    (kept,) = collect(root)
    assert kept.notes == "A" and len(kept.read_predictions()) == 20
    assert not [p for p in (root / "vqa").iterdir() if ".tmp-" in p.name]


def test_full_disk_while_writing_a_checkpoint_keeps_the_previous_ones(tmp_path, enospc_after):
    save_checkpoint(tmp_path, {"w": torch.ones(3)}, step=2)
    save_checkpoint(tmp_path, {"w": torch.ones(3) * 2}, step=4, keep_last=1)
    enospc_after("step-00000006.pt")
    with pytest.raises(SCLBenchError, match="no space left"):
        save_checkpoint(tmp_path, {"w": torch.ones(3) * 3}, step=6, keep_last=1)
    # The failed save removed nothing (pruning happens only after a complete write).
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000004.pt"]
    assert torch.equal(load_checkpoint(latest(tmp_path))["w"], torch.ones(3) * 2)
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if ".tmp-" in p.name]


def test_full_disk_while_truncating_the_log_keeps_it(tmp_path, enospc_after):
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"kind": "train", "step": s}) + "\n" for s in range(1, 6)))
    before = log.read_text()
    enospc_after("log.jsonl")
    with pytest.raises(SCLBenchError, match="no space left"):
        truncate_log(log, 3)
    assert log.read_text() == before
