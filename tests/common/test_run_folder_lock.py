"""A run folder is locked by its run: a second finetune/pretrain into it is refused naming the holder
(pid, start time); a lock left by a dead process is taken over. Real processes throughout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sclbench.common.runlock import LOCK_NAME, RunFolderBusy, run_folder_lock

ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "SCLBENCH_NO_PROGRESS": "1",
}
HOLD = (
    "import sys, time; from pathlib import Path; from sclbench.common.runlock import run_folder_lock\n"
    "with run_folder_lock(sys.argv[1]):\n    Path(sys.argv[2]).write_text('held')\n    time.sleep(600)\n"
)


def wait_for(predicate, proc, timeout=120.0):
    end = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, f"child ended early with {proc.returncode}: {proc.stderr and proc.stderr.read()}"
        assert time.time() < end, "timed out"
        time.sleep(0.05)


def finetune_args(synth_root, out, steps):
    return [
        sys.executable,
        "-m",
        "sclbench",
        "finetune",
        "vqa",
        "--preset",
        "tiny",
        "--tokenizer",
        str(synth_root / "tokenizer"),
        "--data-root",
        str(synth_root / "vqa"),
        "--out",
        str(out),
        "--max-steps",
        str(steps),
        "data.minival_images=4",
        "train.global_batch_size=4",
        "train.per_device_batch_size=2",
        "train.log_every=1",
    ]


def test_a_held_folder_refuses_a_second_process_and_a_dead_holder_is_taken_over(tmp_path):
    out, held = tmp_path / "run", tmp_path / "held"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out), str(held)], env=ENV)
    try:
        wait_for(held.exists, holder)
        with pytest.raises(RunFolderBusy, match=rf"--out {out} is in use by another run \(pid {holder.pid} on "):
            with run_folder_lock(out):
                pass
        info = json.loads((out / LOCK_NAME).read_text())
        assert info["pid"] == holder.pid and info["started"] and "-c" in info["command"]
    finally:
        holder.send_signal(signal.SIGKILL)  # dies holding it: no cleanup ran
        holder.wait(60)
    with run_folder_lock(out):  # the kernel dropped the dead holder's lock: taken over at once
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
    with run_folder_lock(out):  # and released again when the block ends
        pass


@pytest.mark.slow
def test_two_finetunes_into_one_out_the_second_refuses_naming_the_first(synth_root, tmp_path):
    out = tmp_path / "run"
    # Long enough that the second (a fresh interpreter: several seconds of imports) starts while it trains:
    # 40 steps of the tiny model on this round's synthetic VQA ended before the second reached the lock.
    first = subprocess.Popen(
        finetune_args(synth_root, out, 200), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        # The lock is taken before any work, so the second starts while the first is still training.
        wait_for(lambda: (out / LOCK_NAME).is_file() and (out / LOCK_NAME).read_text().strip(), first)
        second = subprocess.run(
            finetune_args(synth_root, out, 40), env=ENV, capture_output=True, text=True, timeout=300
        )
        running = first.poll() is None
        assert second.returncode == 2, second.stderr[-2000:]
        errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in second.stderr
        assert f"is in use by another run (pid {first.pid} on" in errors[0] and "started" in errors[0]
        assert running  # it was refused while the first still ran
        assert first.wait(600) == 0, first.stdout.read()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 201))  # one run's log, whole, each step once
    third = subprocess.run(finetune_args(synth_root, out, 40), env=ENV, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr[-2000:]  # the first run's lock went with it
