"""config.json of an sclbench checkpoint directory, read exactly: a string where a number belongs, a
missing or unknown key, a negative size, NaN, a non-object, a repeated key, a damaged file: each one
ConfigError naming config.json and the key, never a traceback or a silently changed model."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sclbench.errors import ConfigError, SCLBenchError
from sclbench.model.config import FIELD_RULES, OPTIONAL_FIELDS, SCLConfig

BUDGET = settings(max_examples=40, deadline=None, derandomize=True)
NUMBER_FIELDS = sorted(k for k, r in FIELD_RULES.items() if r.kind in ("int", "float"))
INT_FIELDS = sorted(k for k, r in FIELD_RULES.items() if r.kind == "int")
FLAG_FIELDS = sorted(k for k, r in FIELD_RULES.items() if r.kind == "bool")
REQUIRED = sorted(set(FIELD_RULES) - OPTIONAL_FIELDS)


def good() -> dict:
    return SCLConfig.tiny("vqa").to_dict()


def write(tmp_path, data) -> str:
    path = tmp_path / "config.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def refused(path, *words: str) -> str:
    with pytest.raises(ConfigError) as info:
        SCLConfig.load(path)
    message = str(info.value)
    assert str(path) in message and all(w in message for w in words), message
    assert "\n" not in message
    return message


def test_a_saved_config_loads_back(tmp_path):
    config = SCLConfig.tiny("vqa")
    config.save(tmp_path / "config.json")
    assert SCLConfig.load(tmp_path / "config.json") == config


@pytest.mark.parametrize("field", NUMBER_FIELDS)
@pytest.mark.parametrize("value", ["64", "abc", None, True, [64], {"a": 1}, -1])
def test_a_wrong_number_names_file_and_key(tmp_path, field, value):
    if value == -1 and FIELD_RULES[field].low is not None and FIELD_RULES[field].low < 0:
        return
    refused(write(tmp_path, {**good(), field: value}), field)


@pytest.mark.parametrize("field", INT_FIELDS)
@pytest.mark.parametrize("value", [0.5, 64.5, -64, 1e300])
def test_a_fraction_or_negative_where_a_count_belongs(tmp_path, field, value):
    rule = FIELD_RULES[field]
    if rule.low is not None and value >= rule.low and float(value).is_integer():
        return
    refused(write(tmp_path, {**good(), field: value}), field)


@pytest.mark.parametrize("field", ["drop_rate", "text_layer_norm_eps", "cl_temp_init", "text_init_std"])
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_literals_are_refused(tmp_path, field, literal):
    text = json.dumps({**good(), field: 0.5}).replace(f'"{field}": 0.5', f'"{field}": {literal}')
    refused(write(tmp_path, text), literal)


@pytest.mark.parametrize("field", FLAG_FIELDS)
@pytest.mark.parametrize("value", ["true", 1, 0, None])
def test_flags_are_booleans(tmp_path, field, value):
    refused(write(tmp_path, {**good(), field: value}), field)


@pytest.mark.parametrize("field", REQUIRED)
def test_a_missing_key_is_named(tmp_path, field):
    data = good()
    del data[field]
    refused(write(tmp_path, data), field, "missing")


@pytest.mark.parametrize("field", sorted(OPTIONAL_FIELDS))
def test_optional_keys_may_be_absent(tmp_path, field):
    data = good()
    del data[field]
    assert getattr(SCLConfig.load(write(tmp_path, data)), field) == getattr(SCLConfig(), field)


@pytest.mark.parametrize("key", ["hiden_size", "", "extra_field", "0"])
def test_an_unknown_key_is_named(tmp_path, key):
    refused(write(tmp_path, {**good(), key: 1}), repr(key), "unknown")


@pytest.mark.parametrize(
    "text, words",
    [
        ("[1, 2]", ["JSON object", "list"]),
        ('"config"', ["JSON object", "str"]),
        ("3", ["JSON object", "int"]),
        ("null", ["JSON object", "NoneType"]),
        ("", ["not valid JSON"]),
        ("{", ["not valid JSON"]),
    ],
)
def test_not_an_object(tmp_path, text, words):
    refused(write(tmp_path, text), *words)


def test_a_repeated_key_is_named(tmp_path):
    text = json.dumps(good())
    text = text[:-1] + ', "hidden_size": 128}'
    refused(write(tmp_path, text), "'hidden_size'", "twice")


def test_heads_must_be_known_names(tmp_path):
    refused(write(tmp_path, {**good(), "heads": "vqa"}), "heads")
    refused(write(tmp_path, {**good(), "heads": ["vqa", 3]}), "heads")
    refused(write(tmp_path, {**good(), "heads": ["answer"]}), "answer")


def test_non_utf8_and_unreadable(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b"\xff\xfe{}")
    refused(path)
    refused(tmp_path / "absent" / "config.json")


def test_a_checkpoint_directory_with_a_bad_config_fails_before_reading_weights(tmp_path):
    import torch

    from sclbench.model import SCLModel
    from sclbench.model.checkpoint import save_pretrained
    from sclbench.model.factory import load_pretrained

    folder = save_pretrained(SCLModel(SCLConfig.tiny("vqa")), tmp_path / "ckpt")
    data = json.loads((folder / "config.json").read_text())
    data["hidden_size"] = "64"
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"config\.json.*hidden_size"):
        load_pretrained(folder)
    del torch


@BUDGET
@given(
    field=st.sampled_from(sorted(FIELD_RULES)),
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**9), 10**9),
        st.floats(allow_nan=False),
        st.text(max_size=8),
        st.lists(st.integers(), max_size=2),
    ),
)
def test_any_value_in_any_field_loads_or_is_one_sclbench_error(tmp_path_factory, field, value):
    path = tmp_path_factory.mktemp("cfg") / "config.json"
    path.write_text(json.dumps({**good(), field: value}))
    try:
        config = SCLConfig.load(path)
    except SCLBenchError as err:
        assert "config.json" in str(err)
    else:
        got = getattr(config, field)
        assert got == (tuple(value) if field == "heads" else value)
