"""Fuzz every verb's options, arguments and overrides with hostile values (wrong types, NaN/inf, negative,
zero, empty, huge, unicode, paths of every wrong kind): a clean refusal or a run, never a traceback,
never a file of the user's touched.

Two layers. `test_parse_layer`: every verb, its library call replaced by a recorder, so each example
costs only the parse; a value that gets through must be in range (ints), finite (floats). `test_run_layer`:
the real verbs, cheap ones with more examples, the jobs (slow) with a few on tiny models.
"""

from __future__ import annotations

import math

import pytest
from fuzz_cli import FUZZ, VERBS, allowed_codes, assert_clean, base_argvs, changed, remove_new_files, run_cli, snapshot
from fuzz_values import Paths, build_argv, flag_spellings, kind, split_base, values_for
from hypothesis import given, settings
from hypothesis import strategies as st

# Integer options that may be negative (a layer counted from the end: -1 = last).
SIGNED_INTS = {("explain", "layer")}


def _override_keys(verb: str) -> list[str]:
    """Dotted setting names of the card a job verb reads (overrides are fuzzed against real keys)."""
    from sclbench.cards import leaf_keys, load_card

    card = {"eval": "f30k", "finetune": "f30k", "pretrain": "pretrain"}.get(verb)
    if card is None:
        return []
    data = load_card(card).data
    return sorted(k for k in leaf_keys(data) if not k.startswith("paper"))


def _changes(data, command, paths, real, keys, n_max):
    params = [p for p in command.params if p.name != "help"]
    if not params:  # `version`: nothing to fuzz but the verb itself
        return []
    chosen = data.draw(st.lists(st.sampled_from(params), min_size=1, max_size=n_max, unique_by=lambda p: p.name))
    out = []
    for p in chosen:
        value = data.draw(st.sampled_from(flag_spellings(p)) if kind(p) == "flag" else values_for(p, paths, real, keys))
        out.append((p, value))
    return out


def _real_inputs(ws) -> list:
    return [ws.synth / "f30k", ws.records, ws.image, ws.ckpts["f30k"], ws.synth / "tokenizer", ws.sentences]


def test_every_verb_has_a_base_command_line(workspace, tmp_path):
    assert set(VERBS) == set(base_argvs(workspace, tmp_path)), "add the new verb's valid command line to base_argvs"


def test_numeric_options_declare_their_range():
    """Each int option has a range (or is listed as signed on purpose), each float option a finite parser:
    a new option without one fails here before a user finds out."""
    loose = []
    for verb, command in VERBS.items():
        for p in command.params:
            if kind(p) == "int" and p.min is None and (verb, p.name) not in SIGNED_INTS:
                loose.append(f"{verb} {p.opts[0]}")
            if kind(p) == "float" and p.type_descriptor.parameter_info.parser is None:
                loose.append(f"{verb} {p.opts[0]}")
    assert not loose, f"numeric options without a range / finiteness check: {loose}"


def _check_received(verb, command, kwargs) -> None:
    for p in command.params:
        value = kwargs.get(p.name)
        if value is None or isinstance(value, bool):
            continue
        if kind(p) == "int":
            assert abs(value) < 2**32, (verb, p.name, value)
            if (verb, p.name) not in SIGNED_INTS:
                assert value >= 0, (verb, p.name, value)
            assert p.min is None or value >= p.min, (verb, p.name, value)
            assert p.max is None or value <= p.max, (verb, p.name, value)
        if kind(p) == "float":
            assert math.isfinite(value), (verb, p.name, value)


@pytest.mark.parametrize("verb", sorted(VERBS))
@settings(FUZZ, max_examples=25)
@given(data=st.data())
def test_parse_layer(verb, data, workspace, scratch, recorded):
    command = VERBS[verb]
    paths = Paths(scratch)
    base = split_base(command, base_argvs(workspace, scratch / "out")[verb])
    changes = _changes(data, command, paths, _real_inputs(workspace), _override_keys(verb), 3)
    outcome = run_cli([*verb.split(), *build_argv(command, base, changes)])
    assert_clean(outcome)
    if outcome.rc == 0:
        assert recorded and recorded[-1][0] == verb, outcome.report()
        _check_received(verb, command, recorded[-1][1])
    else:  # refused while parsing: the named option (or argument) is one the user gave
        assert outcome.rc == 2, outcome.report()


# The run layer. Options whose valid extremes cost real time are pinned to the base's value (they are
# fuzzed in the parse layer): steps, epochs, record limits, worker processes, synthetic scale, resamples.
PINNED = {"max_steps", "max_epochs", "limit", "num_workers", "scale", "resamples", "workers"}
CHEAP = [
    "version",
    "tasks",
    "ckpt list",
    "ckpt fetch",
    "ckpt inspect",
    "table",
    "check",
    "compare",
    "browse",
    "score",
    "baseline",
    "plot",
    "data check",
    "data shard",
    "data synth",
]
JOBS = [
    "eval",
    "finetune",
    "pretrain",
    "predict vqa",
    "predict nlvr2",
    "predict images",
    "predict texts",
    "explain",
    "ckpt convert",
]
# `demo` runs minutes at its smallest (--quick): its options are fuzzed by the parse layer only.
NOT_RUN = {"demo"}


def test_run_layer_covers_every_verb():
    assert set(CHEAP) | set(JOBS) | NOT_RUN == set(VERBS)


def _run_layer(verb, data, workspace, scratch, n_max=2):
    command = VERBS[verb]
    paths = Paths(scratch)
    fuzzable = [p for p in command.params if p.name not in PINNED]

    class Only:  # the command with its pinned parameters hidden from the draw
        params = fuzzable

    base = split_base(command, base_argvs(workspace, scratch / "out")[verb])
    changes = _changes(data, Only, paths, _real_inputs(workspace), _override_keys(verb), n_max)
    inputs = [*workspace.inputs]
    before = snapshot(*inputs)
    mine_before = snapshot(paths.mine)
    try:
        outcome = run_cli([*verb.split(), *build_argv(command, base, changes)])
        assert_clean(outcome, allowed_codes(verb))
        touched = changed(before, snapshot(*inputs))
        assert not touched, f"input files changed or deleted: {touched[:5]}\n{outcome.report()}"
        lost = [p for p in changed(mine_before, snapshot(paths.mine)) if p.endswith("notes.txt")]
        assert not lost, f"a file of the user's in an output folder was changed or deleted\n{outcome.report()}"
    finally:
        remove_new_files(before, *inputs)


@pytest.mark.parametrize("verb", CHEAP)
@settings(FUZZ, max_examples=20)
@given(data=st.data())
def test_run_layer(verb, data, workspace, scratch):
    _run_layer(verb, data, workspace, scratch)


@pytest.mark.slow
@pytest.mark.parametrize("verb", JOBS)
@settings(FUZZ, max_examples=15)
@given(data=st.data())
def test_run_layer_jobs(verb, data, workspace, scratch):
    _run_layer(verb, data, workspace, scratch, n_max=1)


@pytest.mark.parametrize("verb", CHEAP + [pytest.param(v, marks=pytest.mark.slow) for v in JOBS])
def test_base_command_lines_run(verb, workspace, scratch):
    """The bases are valid (else every fuzzed run would be refused for the base's fault, proving nothing)."""
    outcome = run_cli([*verb.split(), *base_argvs(workspace, scratch / "out")[verb]])
    assert_clean(outcome)
    assert outcome.rc == (2 if verb == "ckpt fetch" else 0), outcome.report()


# End-to-end runs (subprocesses, training, compiling, fuzzing real jobs): CI runs them; the fast lane
# (-m "not slow") leaves them out to stay under two minutes.
pytestmark = pytest.mark.slow
