"""The fuzz suite's shared pieces: run the command line in-process and judge what a user would see.

Every fuzz test states one contract for the user surface: the exit code is 0 or 2 (1 only where a verb
means it: `check` found a drift, `data check` found something missing), at most one `error:` line,
never a Python traceback, never an existing file changed or deleted outside the run's outputs.

The verbs and their options are read from the typer app itself, so a new verb or option is fuzzed
without editing this suite; a new verb only needs its valid base command line in `base_argvs`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import typer
from hypothesis import HealthCheck, settings

from sclbench.cli import app, main

REPO = Path(__file__).resolve().parents[2]

# Deterministic (derandomize), no deadline (the first call of a verb imports torch), and the examples
# run inside a function-scoped tmp folder on purpose (each example restores what it damaged).
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)

BUG_MARK = "this is a bug in sclbench"


def verbs(group=None, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    """(argv prefix, click command) for every verb and sub-verb of the app, from the app itself."""
    group = group or typer.main.get_command(app)
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):
            yield from verbs(command, (*prefix, name))
        else:
            yield (*prefix, name), command


VERBS = {" ".join(path): command for path, command in verbs()}


@dataclass
class Outcome:
    argv: list[str]
    rc: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def error_lines(self) -> list[str]:
        return [line for line in self.text.splitlines() if line.strip().lower().startswith("error:")]

    def report(self) -> str:
        return (
            f"argv={self.argv!r}\nrc={self.rc}\n--- stdout ---\n{self.out[-3000:]}\n--- stderr ---\n{self.err[-6000:]}"
        )


def run_cli(argv: Sequence[object]) -> Outcome:
    """`sclbench ARGV` in this process, stdout and stderr captured (a subprocess costs ~3 s of imports)."""
    argv = [str(a) for a in argv]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return Outcome(argv, rc, out.getvalue(), err.getvalue())


def assert_clean(outcome: Outcome, allowed: Sequence[int] = (0, 2)) -> None:
    """The contract of every command line: a known exit code, one error line at most, no traceback."""
    assert BUG_MARK not in outcome.text and "Traceback" not in outcome.text, outcome.report()
    assert outcome.rc in allowed, outcome.report()
    assert len(outcome.error_lines()) <= 1, outcome.report()
    if outcome.rc == 2:  # a refusal says what is wrong (click's usage errors say `Error:`)
        assert outcome.error_lines(), outcome.report()


def allowed_codes(verb: str) -> tuple[int, ...]:
    """Exit 1 is a verb's own verdict for `check` (drift) and `data check` (layout incomplete)."""
    return (0, 1, 2) if verb in ("check", "data check") else (0, 2)


# --------------------------------------------------------------------------------------------------
# Snapshots: what must not change.


def snapshot(*roots: Path) -> dict[str, tuple[int, int, int]]:
    """{path: (size, mtime_ns, mode)} of every file under `roots`: cheap enough for every example."""
    files: dict[str, tuple[int, int, int]] = {}
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                files[path] = (st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
    return files


def digest(*roots: Path) -> dict[str, str]:
    """{path: sha256} of every file under `roots` (the end-of-test check of contents)."""
    out = {}
    for path, _ in snapshot(*roots).items():
        out[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


def changed(before: dict, after: dict) -> list[str]:
    """Files of `before` that are gone or differ in `after` (new files are a run's outputs, allowed)."""
    return sorted(p for p, v in before.items() if after.get(p) != v)


def remove_new_files(before: dict, *roots: Path) -> None:
    """Put an input tree back to its snapshot's file list (a fuzzed `--out` may have pointed into it)."""
    for root in roots:
        for dirpath, dirnames, names in os.walk(root, topdown=False):
            for name in names:
                path = os.path.join(dirpath, name)
                if path not in before:
                    os.unlink(path)
            for name in dirnames:
                path = os.path.join(dirpath, name)
                if (
                    os.path.isdir(path)
                    and not os.listdir(path)
                    and not any(p.startswith(path + os.sep) for p in before)
                ):
                    os.rmdir(path)


# --------------------------------------------------------------------------------------------------
# The workspace: copies of real files of every kind sclbench reads, built once per session.


@dataclass
class Workspace:
    root: Path
    synth: Path  # `sclbench data synth` output (scale 0.25)
    ckpts: dict[str, Path]  # task -> tiny sclbench checkpoint folder
    records: Path  # result records with predictions (the committed demo baseline)
    image: Path
    clip: Path
    sentences: Path
    card: Path  # a folder holding one task card (for --cards)
    run: Path  # a finished 2-step fine-tuning run: log.jsonl, checkpoints/step-*.pt, final/
    official: Path  # the f30k checkpoint in the official .ckpt format
    shards: Path  # webdataset shards of the synthetic COCO (index.json + tars)

    @property
    def inputs(self) -> list[Path]:
        return [self.synth, self.records, self.card, self.run, self.official, self.shards, *self.ckpts.values()]


def base_argvs(ws: Workspace, out: Path) -> dict[str, list[str]]:
    """A valid command line per verb (exit 0), small enough to run in a second or two; fuzzing changes
    or adds options to it. A verb missing here fails `test_every_verb_has_a_base_command_line`."""
    s = ws.synth
    tiny_train = ["--preset", "tiny", "--tokenizer", s / "tokenizer", "--max-steps", "1", "--precision", "fp32"]
    return {
        k: [str(x) for x in v]
        for k, v in {
            "version": [],
            "tasks": [],
            "ckpt list": [],
            "ckpt fetch": ["scl-mgsc-100k"],  # offline: the one-line "not in the cache" error (exit 2)
            "ckpt inspect": [ws.ckpts["f30k"]],
            "ckpt convert": [ws.ckpts["f30k"], out / "converted.ckpt"],
            "table": [ws.records],
            "check": [ws.records, "--baseline", ws.records],
            "compare": [ws.records, ws.records, "--bootstrap", "200"],
            "browse": [ws.records, "-o", out / "site", "--no-media"],
            "score": ["nlvr2", "--predictions", ws.root / "nlvr2_predictions_dev.csv", "--data-root", s / "nlvr2"]
            + ["--split", "val", "--results", out / "scored"],
            "baseline": [ws.records, "--to", out / "baseline"],
            "plot": [ws.records, "--out", out / "plots"],
            "data check": ["f30k", "--data-root", s / "f30k"],
            "data synth": [out / "synth", "--scale", "0.01"],
            "data shard": ["f30k", "--data-root", s / "f30k", "--out", out / "shards"],
            "eval": [
                "f30k",
                "--ckpt",
                ws.ckpts["f30k"],
                "--data-root",
                s / "f30k",
                "--split",
                "val",
                "--limit",
                "2",
                "--results",
                out / "results",
            ],
            "finetune": [
                "f30k",
                *tiny_train,
                "--data-root",
                s / "f30k",
                "--limit",
                "4",
                "--out",
                out / "run",
                "train.global_batch_size=2",
                "train.per_device_batch_size=2",
            ],
            "pretrain": [
                *tiny_train,
                "--random-init",
                "--data-root",
                s / "pretrain",
                "--limit",
                "4",
                "--out",
                out / "pre",
                "train.global_batch_size=2",
                "train.per_device_batch_size=2",
                "train.chunk_size=2",
                "data.corpora=[{name: sbu, root: sbu}]",
            ],
            "demo": ["--quick", "--out", out / "demo"],
            "predict vqa": [ws.image, "what shape is it?", "--ckpt", ws.ckpts["vqa"], "--answers", s / "vqa"],
            "predict nlvr2": [ws.image, ws.image, "there is a red square", "--ckpt", ws.ckpts["nlvr2"]],
            "predict images": ["a red square", s / "f30k" / "flickr30k-images", "--ckpt", ws.ckpts["f30k"]],
            "predict texts": [ws.image, ws.sentences, "--ckpt", ws.ckpts["f30k"]],
            "explain": [ws.image, "a red square", "--ckpt", ws.ckpts["f30k"], "--out", out / "alignment.png"],
        }.items()
    }
