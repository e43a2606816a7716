"""Every numeric option and every input path of every verb, read from the app, against each class of bad
value: refused before the verb runs, as one `error:` line naming the option, exit 2. (The fuzz draws
mixtures; this walks each option through each class once, so a new option without its check fails by
name.)"""

from __future__ import annotations

import pytest
from fuzz_cli import VERBS, assert_clean, base_argvs, run_cli
from fuzz_values import build_argv, kind, split_base
from test_fuzz_options import SIGNED_INTS

NOT_FINITE = ["nan", "NaN", "inf", "-inf", "1e400"]
NOT_AN_INT = ["abc", "1.5", "", "nan", "1e3", str(2**64)]


def _options(kinds: tuple[str, ...]):
    return [(verb, p) for verb, command in sorted(VERBS.items()) for p in command.params if kind(p) in kinds]


def _id(case) -> str:
    verb, param = case
    return f"{verb} {param.opts[0]}"


def _refused(verb, param, value, workspace, scratch, recorded) -> None:
    command = VERBS[verb]
    base = split_base(command, base_argvs(workspace, scratch / "out")[verb])
    outcome = run_cli([*verb.split(), *build_argv(command, base, [(param, value)])])
    assert_clean(outcome)
    assert outcome.rc == 2 and not recorded, f"{verb} {param.opts[0]} {value!r} got through\n{outcome.report()}"
    [line] = outcome.error_lines()
    shown = param.opts[0] if param.param_type_name == "option" else param.name
    assert shown in line, outcome.report()


FLOATS = _options(("float",))
INTS = _options(("int",))
INPUTS = _options(("path_in",))


@pytest.mark.parametrize("case", FLOATS, ids=[_id(c) for c in FLOATS])
@pytest.mark.parametrize("value", NOT_FINITE)
def test_a_float_option_refuses_what_is_not_finite(case, value, workspace, scratch, recorded):
    _refused(*case, value, workspace, scratch, recorded)


@pytest.mark.parametrize("case", INTS, ids=[_id(c) for c in INTS])
@pytest.mark.parametrize("value", NOT_AN_INT)
def test_an_int_option_refuses_what_is_not_an_int(case, value, workspace, scratch, recorded):
    _refused(*case, value, workspace, scratch, recorded)


@pytest.mark.parametrize(
    "case",
    [c for c in INTS if (c[0], c[1].name) not in SIGNED_INTS],
    ids=[_id(c) for c in INTS if (c[0], c[1].name) not in SIGNED_INTS],
)
def test_an_int_option_refuses_a_negative(case, workspace, scratch, recorded):
    _refused(*case, "-1", workspace, scratch, recorded)


@pytest.mark.parametrize("case", INPUTS, ids=[_id(c) for c in INPUTS])
def test_an_input_path_must_exist(case, workspace, scratch, recorded):
    _refused(*case, str(scratch / "no" / "such"), workspace, scratch, recorded)
