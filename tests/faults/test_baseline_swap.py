"""`sclbench baseline RESULTS --to DIR` never deletes what it did not write, and swaps the whole baseline
at once: a failure at any step, or a SIGKILL / SIGTERM at any moment, leaves the old baseline or the new
one complete -- never a mix, never neither."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sclbench.cli import main
from sclbench.errors import SCLBenchError
from sclbench.results import ResultRecord, collect
from sclbench.results import baseline as B
from sclbench.results.baseline import MANIFEST, replace_baseline

CHILD = Path(__file__).with_name("baseline_child.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "SCLBENCH_NO_PROGRESS": "1"}
USER_FILES = {
    "README.md": b"# our baseline\n",
    "notes/why.txt": b"accepted on 2026-01-01\n",
    "ci/settings.json": b'{"not": "a record"}\n',
}


def make_results(root: Path, version: str, tasks=("vqa", "nlvr2", "f30k"), n_predictions=50) -> Path:
    for i, task in enumerate(tasks):
        rec = ResultRecord(
            task,
            "test",
            {"accuracy": 50.0 + i + (1 if version == "B" else 0)},
            "scorer",
            checkpoint={"name": "ckpt"},
            notes=version,
        )
        rec.save(root, predictions=[{"id": j, "v": version, "pad": "x" * 100} for j in range(n_predictions)])
    return root


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (symlinks by target) -- the exact state a reader sees."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = b"->" + os.readlink(path).encode()
        elif path.is_file():
            out[rel] = path.read_bytes()
    return out


def add_user_files(to: Path) -> None:
    for rel, data in USER_FILES.items():
        (to / rel).parent.mkdir(parents=True, exist_ok=True)
        (to / rel).write_bytes(data)
    os.symlink("README.md", to / "LATEST")


def user_part(snapshot: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in snapshot.items() if k in USER_FILES or k == "LATEST"}


def drafts(to: Path) -> list[str]:
    return sorted(p.name for p in to.parent.iterdir() if p.name.startswith(f".{to.name}.baseline-"))


def test_user_files_survive_and_records_no_longer_produced_leave(tmp_path):
    a = make_results(tmp_path / "a", "A", tasks=("vqa", "nlvr2", "f30k"))
    b = make_results(tmp_path / "b", "B", tasks=("vqa", "coco"))
    to = tmp_path / "baseline"
    to.mkdir()
    add_user_files(to)
    assert replace_baseline(a, to) == 3
    add_user_files_later = to / "added-after.txt"
    add_user_files_later.write_bytes(b"mine too")
    assert replace_baseline(b, to) == 2
    snap = tree(to)
    assert user_part(snap) == {**USER_FILES, "LATEST": b"->README.md"}
    assert snap["added-after.txt"] == b"mine too"
    assert sorted(r.task for r in collect(to)) == ["coco", "vqa"] and {r.notes for r in collect(to)} == {"B"}
    assert not (to / "nlvr2").exists() and not (to / "f30k").exists()  # dropped with their records
    for record in collect(to):
        assert len(record.read_predictions()) == 50  # predictions match their record (sha checked)
    assert MANIFEST in snap and drafts(to) == []
    assert main(["check", str(b), "--baseline", str(to)]) == 0


def test_a_baseline_of_an_older_sclbench_keeps_what_is_not_a_record(tmp_path):
    """No manifest: records, their predictions, .history/ and record locks are sclbench's; the rest stays."""
    to = make_results(tmp_path / "baseline", "A", tasks=("vqa", "nlvr2"))
    make_results(to, "A", tasks=("vqa",))  # a replaced record: .history/ exists
    add_user_files(to)
    assert (to / "vqa" / ".history").is_dir()
    replace_baseline(make_results(tmp_path / "b", "B", tasks=("coco",)), to)
    snap = tree(to)
    assert user_part(snap) == {**USER_FILES, "LATEST": b"->README.md"}
    assert [r.task for r in collect(to)] == ["coco"] and not (to / "vqa").exists()


STEPS = ["copy", "save", "manifest", "exchange", "fallback-rename"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EFBIG])
@pytest.mark.parametrize("step", STEPS)
def test_a_failure_at_any_step_leaves_the_old_baseline_byte_identical(tmp_path, monkeypatch, step, code):
    a, b = make_results(tmp_path / "a", "A"), make_results(tmp_path / "b", "B", tasks=("vqa", "coco"))
    to = tmp_path / "baseline"
    to.mkdir()
    add_user_files(to)
    replace_baseline(a, to)
    before = tree(to)

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    if step == "copy":
        monkeypatch.setattr(B.os, "link", fail)
        monkeypatch.setattr(B.shutil, "copy2", fail)
    elif step == "save":
        real_save, calls = ResultRecord.save, [0]

        def save(self, *args, **kwargs):
            calls[0] += 1
            if calls[0] == 2:  # the second record: the first is already in the draft
                fail()
            return real_save(self, *args, **kwargs)

        monkeypatch.setattr(ResultRecord, "save", save)
    elif step == "manifest":
        real_write = B.atomic_write
        monkeypatch.setattr(
            B, "atomic_write", lambda path, data: fail() if path.name == MANIFEST else real_write(path, data)
        )
    elif step == "exchange":
        monkeypatch.setattr(B, "_exchange", fail)
    else:
        monkeypatch.setattr(B, "_exchange", lambda x, y: False)
        monkeypatch.setattr(B.os, "rename", fail)
    with pytest.raises(SCLBenchError) as info:
        replace_baseline(b, to)
    message = str(info.value)
    assert "\n" not in message and " while " in message and f"Errno {code}" in message, message
    monkeypatch.undo()
    assert tree(to) == before
    assert drafts(to) == []


@pytest.mark.parametrize("n", [1, 2, 3])
def test_the_fallback_swap_killed_between_renames_is_recovered(tmp_path, n):
    """Without renameat2's exchange: killed after rename n of 3 (old aside / new in / old to the draft)."""
    a, b = make_results(tmp_path / "a", "A"), make_results(tmp_path / "b", "B")
    to = tmp_path / "baseline"
    to.mkdir()
    add_user_files(to)
    replace_baseline(a, to)
    old = tree(to)
    replace_baseline(b, to)
    new = tree(to)
    replace_baseline(a, to)
    proc = subprocess.run([sys.executable, str(CHILD), "die-at-rename", str(n), str(b), str(to)], env=ENV, timeout=300)
    assert proc.returncode == 9
    if n == 1:  # killed before anything moved
        assert tree(to) == old
    elif n == 2:  # the old one is aside, the new one not yet in: the next run puts the old back first
        assert not to.exists()
    else:  # the new one is in place
        assert tree(to) == new
    replace_baseline(b, to)
    assert tree(to) == new and drafts(to) == []


@pytest.mark.slow
def test_sigkill_or_sigterm_at_random_moments_leaves_one_complete_baseline(tmp_path):
    a = make_results(tmp_path / "a", "A", tasks=("vqa", "nlvr2", "f30k", "coco"), n_predictions=3000)
    b = make_results(tmp_path / "b", "B", tasks=("vqa", "msrvtt"), n_predictions=3000)
    to = tmp_path / "baseline"
    to.mkdir()
    add_user_files(to)
    began = time.perf_counter()
    replace_baseline(a, to)
    swap_a = time.perf_counter() - began
    tree_a = tree(to)
    began = time.perf_counter()
    replace_baseline(b, to)
    swap_b = time.perf_counter() - began
    tree_b = tree(to)
    rng, seen = random.Random(0), set()
    for trial in range(8):
        marker = tmp_path / f"started-{trial}"
        proc = subprocess.Popen([sys.executable, str(CHILD), "loop", str(a), str(b), str(to), str(marker)], env=ENV)
        end = time.time() + 120
        while not marker.exists():
            assert proc.poll() is None and time.time() < end
            time.sleep(0.02)
        # After the marker the child swaps in B, then A, then B...: aim half the kills into the first swap
        # and half into the second, at random moments inside each (as measured here, one swap each).
        if trial % 4 < 2:
            time.sleep(rng.uniform(0.0, swap_b))
        else:
            time.sleep(swap_b + rng.uniform(0.0, swap_a))
        proc.send_signal(signal.SIGKILL if trial % 2 else signal.SIGTERM)
        proc.wait(60)
        now = tree(to)
        assert now in (tree_a, tree_b), f"trial {trial}: a mixed or partial baseline"
        seen.add("A" if now == tree_a else "B")
    assert seen == {"A", "B"}  # the kills landed in both phases
    replace_baseline(a, to)  # the next run cleans the drafts of the killed ones
    assert tree(to) == tree_a and drafts(to) == []
