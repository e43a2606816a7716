"""Fuzz the environment variables sclbench reads, each with the cheapest command that reads it: a bad
value is one `error:` line (or is ignored where the variable is a hint), never a traceback."""

from __future__ import annotations

import pytest
from fuzz_cli import FUZZ, assert_clean, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

BAD = ["", " ", "abc", "-1", "0", "1.5", "nan", "99999999999999999999", "ünï", "\udcff", "/no/such/place", "{"]


def _with_file(scratch, text: str):
    path = scratch / "env_file.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


# variable -> (values beyond BAD, argv). Paths are produced per example from the scratch folder.
CASES = {
    "SCLBENCH_TASKS_DIR": lambda ws: ["tasks"],
    "SCLBENCH_CHECKPOINTS": lambda ws: ["ckpt", "list"],
    "SCLBENCH_CACHE": lambda ws: ["ckpt", "list"],
    "SCLBENCH_VIDEO_BACKEND": lambda ws: ["data", "check", "msrvtt", "--data-root", ws.synth / "msrvtt"],
    "SCLBENCH_DEMO_WORKERS": lambda ws: ["demo", "--quick", "--out", "demo"],
    "RANK": lambda ws: [
        "eval",
        "f30k",
        "--ckpt",
        ws.ckpts["f30k"],
        "--data-root",
        ws.synth / "f30k",
        "--split",
        "val",
        "--limit",
        "2",
    ],
    "WORLD_SIZE": lambda ws: [
        "eval",
        "f30k",
        "--ckpt",
        ws.ckpts["f30k"],
        "--data-root",
        ws.synth / "f30k",
        "--split",
        "val",
        "--limit",
        "2",
    ],
}


@pytest.fixture
def no_demo(monkeypatch):
    """The demo's work replaced by a recorder: its variables are read before any work starts."""
    import sclbench.app.demo as demo

    calls = []
    monkeypatch.setattr(demo, "run_demo", lambda *a, **kw: calls.append(kw) or [])
    monkeypatch.setattr(demo, "print_leaderboard", lambda records: None)
    return calls


@pytest.mark.parametrize("variable", sorted(CASES))
@settings(FUZZ, max_examples=8)
@given(data=st.data())
def test_environment_variable(variable, data, workspace, scratch, monkeypatch, no_demo):
    value = data.draw(st.sampled_from([*BAD, "damaged_yaml", "a_file"]), label="value")
    if value == "damaged_yaml":
        value = _with_file(scratch, "checkpoints: [unclosed\n  - : :\n")
    elif value == "a_file":
        value = _with_file(scratch, "not a folder\n")
    monkeypatch.setenv(variable, value)
    for rendezvous in ("MASTER_ADDR", "MASTER_PORT"):  # never wait for a peer that will not come
        monkeypatch.delenv(rendezvous, raising=False)
    if variable == "RANK":  # both are needed before sclbench thinks torchrun started it
        monkeypatch.setenv("WORLD_SIZE", "2")
    if variable == "WORLD_SIZE":
        monkeypatch.setenv("RANK", "0")
    outcome = run_cli(CASES[variable](workspace))
    assert_clean(outcome, (0, 1, 2) if variable == "SCLBENCH_VIDEO_BACKEND" else (0, 2))
    if variable == "SCLBENCH_DEMO_WORKERS" and outcome.rc == 0:
        assert no_demo and (no_demo[-1]["workers"] is None or no_demo[-1]["workers"] >= 1), outcome.report()
