"""Typed card values: every override and every value of a card file is checked for kind, range and
finiteness when the card is loaded, by classes of setting (positive numbers, counts, ratios, flags,
texts, lists), each refusal one ConfigError naming the key (and the card file or the override)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sclbench.cards import available_cards, load_card
from sclbench.config_rules import RULES, packaged_rules, rule_for
from sclbench.errors import ConfigError
from sclbench.tasks.base import settings_read_by_code

BUDGET = settings(max_examples=60, deadline=None, derandomize=True)

POSITIVE_NUMBERS = ["train.lr", "train.lr_mult_head", "train.lr_mult_cross_modal", "completion.temperature"]
NON_NEGATIVE_NUMBERS = ["train.weight_decay", "train.con_weight", "con_weight", "completion.global_weight"]
RATIOS = ["completion.text_mask_ratio", "completion.image_token_mask_ratio"]
COUNTS = [
    "train.per_device_batch_size",
    "train.global_batch_size",
    "train.max_epochs",
    "eval.k",
    "data.num_frames",
    "train.chunk_size",
    "model.image_size",
    "train.log_every",
]
ZERO_OK_COUNTS = ["train.neg_texts", "train.num_workers", "train.keep_last", "train.seed", "data.minival_seed"]
FLAGS = ["data.dedup_captions", "eval.tf32", "train.grad_checkpointing", "data.cache_images"]
TEXT_LISTS = ["metrics.report", "objectives"]

NOT_NUMBERS = ["abc", "''", "true", "false", "null", "[1]", "{a: 1}", "1,5", "1e", "0x"]
NON_FINITE = ["nan", ".nan", "NaN", "inf", "-inf", ".inf", "-.inf", "Infinity", "1e999"]


def load(card: str, *overrides: str):
    return load_card(card, list(overrides), valid_keys=settings_read_by_code())


def card_for(key: str) -> str:
    """A packaged card that may hold the setting (pre-training keys live in the pretrain card)."""
    if key.startswith("data.minival"):
        return "vqa"
    return "pretrain" if key.split(".")[0] in ("completion", "objectives", "con_weight", "mlm_prob") else "f30k"


def refused(key: str, raw: str, needs: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(card_for(key), f"{key}={raw}")
    message = str(info.value)
    assert key in message and needs in message, message
    assert "\n" not in message


@pytest.mark.parametrize("key", POSITIVE_NUMBERS)
@pytest.mark.parametrize("raw", NOT_NUMBERS + NON_FINITE + ["0", "-1", "-1e-5", "0.0", "-0.0"])
def test_positive_numbers_refuse_words_non_finite_zero_and_negative(key, raw):
    refused(key, raw, "needs a number > 0")


@pytest.mark.parametrize("key", NON_NEGATIVE_NUMBERS)
@pytest.mark.parametrize("raw", NOT_NUMBERS + NON_FINITE + ["-1", "-1e-9"])
def test_non_negative_numbers(key, raw):
    refused(key, raw, "needs a number >= 0")


@pytest.mark.parametrize("key", RATIOS)
@pytest.mark.parametrize("raw", NOT_NUMBERS + NON_FINITE + ["-0.1", "1.01", "2", "100"])
def test_ratios_lie_in_zero_one(key, raw):
    refused(key, raw, "in [0, 1]")


@pytest.mark.parametrize("key", COUNTS)
@pytest.mark.parametrize("raw", NOT_NUMBERS + NON_FINITE + ["0", "-3", "2.5", "0.5", "1e-3", "-1e3"])
def test_counts_refuse_zero_negative_and_fractions(key, raw):
    refused(key, raw, "needs an integer >= 1")


@pytest.mark.parametrize("key", ZERO_OK_COUNTS)
@pytest.mark.parametrize("raw", NOT_NUMBERS + NON_FINITE + ["-1", "2.5"])
def test_counts_where_zero_means_something(key, raw):
    if raw == "null" and rule_for(key).nullable:
        return  # train.num_workers=null: chosen from the CPUs
    refused(key, raw, "needs an integer >= 0")


@pytest.mark.parametrize("key", FLAGS)
@pytest.mark.parametrize("raw", ["maybe", "2", "0.5", "[true]", "abc", "nan"])
def test_flags_take_true_or_false(key, raw):
    refused(key, raw, "true or false")


@pytest.mark.parametrize("key", TEXT_LISTS)
@pytest.mark.parametrize("raw", ["5", "true", "[1, 2]", "[mlm, 3]", "{a: b}", "[[mlm]]"])
def test_lists_of_texts(key, raw):
    refused(key, raw, "a list of texts")


@pytest.mark.parametrize("raw", ["[train, 1]", "[[train]]", "[true]", "[train, [val]]", "[1.5]"])
def test_split_settings_take_a_name_or_a_list_of_names(raw):
    refused("splits.train", raw, "a text or a list of texts")


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.lr=1", 1),  # an int where a number belongs is a number
        ("train.lr=1e-5", 1e-5),
        ("train.lr=5.0e-6", 5e-6),
        ("train.lr=0.001", 0.001),
        ("train.per_device_batch_size=4", 4),
        ("train.per_device_batch_size=4.0", 4),  # whole: nothing truncated
        ("train.max_steps=1e5", 100000),
        ("train.max_steps=null", None),
        ("train.warmup=100", 100),
        ("train.warmup=0", 0),
        ("train.warmup=0.2", 0.2),
        ("train.warmup=1.0", 1.0),  # a fraction (all steps), not one step
        ("data.dedup_captions=false", False),
        ("eval.tf32=true", True),
        ("splits.train=[train,val]", ["train", "val"]),
        ("splits.train=val", "val"),
        ("metrics.report=[tr_r1, ir_r1]", ["tr_r1", "ir_r1"]),
        ("eval.mode=exhaustive", "exhaustive"),
        ("data.root=/data/2024", "/data/2024"),
        ("data.root=2024", "2024"),
        ("data.root=inf", "inf"),
        ("eval.transform=yes", "yes"),  # a text setting keeps what was typed, not YAML's True
        ("model.drop_rate=0", 0),
        ("train.val_check_interval=0.5", 0.5),
    ],
)
def test_good_values_keep_working(override, expected):
    key = override.split("=", 1)[0]
    value = load("f30k", override).get(key)
    assert value == expected and type(value) is type(expected)


def test_warmup_accepts_a_fraction_or_a_number_of_steps_only():
    for raw in ("1.5", "-1", "-0.1", "abc", "nan", "inf", "true"):
        refused("train.warmup", raw, "train.warmup needs a number in [0, 1] or an integer >= 0")


@pytest.mark.parametrize(
    "override, needs",
    [
        ("train.schedule=cosinus", "one of linear, cosine"),
        ("train.precision=fp8", "one of fp32, bf16, fp16"),
        ("eval.precision=int8", "one of fp32, bf16, fp16"),
        ("train.select_mode=median", "one of max, min"),
        ("train.val_check_interval=0", "in (0, 1]"),
        ("train.val_check_interval=1.5", "in (0, 1]"),
        ("train.max_grad_norm=0", "> 0"),
        ("train.max_grad_norm=nan", "> 0"),
        ("model.hidden_size=abc", "integer >= 1"),
        ("model.drop_rate=1", "in [0, 1)"),
        ("model.text_layer_norm_eps=0", "> 0"),
        ("model.heads=itm", "a list of texts"),
        ("train=5", "a mapping"),
        ("mlm_prob=0", "in (0, 1)"),
    ],
)
def test_ranges_of_single_settings(override, needs):
    key = override.split("=", 1)[0]
    card = "pretrain" if key == "mlm_prob" else "f30k"
    with pytest.raises(ConfigError, match=rf"{key}.*{needs.replace('(', '.').replace(')', '.').replace('[', '.')}"):
        load(card, override)


def test_the_error_names_the_override_and_what_it_needs():
    with pytest.raises(ConfigError) as info:
        load("f30k", "train.lr=abc")
    assert str(info.value) == "override 'train.lr=abc': train.lr needs a number > 0, got 'abc'"


# ---- user cards --------------------------------------------------------------------------------------
USER_CARD = """name: mycard
family: image_retrieval
data:
  root: data/x
train:
  lr: {lr}
  per_device_batch_size: {batch}
"""


@pytest.mark.parametrize(
    "lr, batch, key",
    [
        ("abc", 8, "train.lr"),
        (".nan", 8, "train.lr"),
        ("-1", 8, "train.lr"),
        (".inf", 8, "train.lr"),
        ("1e-4", 0, "train.per_device_batch_size"),
        ("1e-4", 2.5, "train.per_device_batch_size"),
        ("1e-4", "eight", "train.per_device_batch_size"),
        ("1e-4", "true", "train.per_device_batch_size"),
    ],
)
def test_a_user_card_with_a_wrong_value_is_refused_naming_file_and_key(tmp_path, monkeypatch, lr, batch, key):
    card = tmp_path / "mycard.yaml"
    card.write_text(USER_CARD.format(lr=lr, batch=batch))
    for how in (str(card), "mycard"):  # a path to the card, or a name found in $SCLBENCH_TASKS_DIR (--cards)
        monkeypatch.setenv("SCLBENCH_TASKS_DIR", str(tmp_path))
        with pytest.raises(ConfigError) as info:
            load_card(how)
        assert str(card) in str(info.value) and key in str(info.value), str(info.value)


def test_a_good_user_card_loads_and_yaml_exponents_are_numbers(tmp_path):
    card = tmp_path / "mycard.yaml"
    card.write_text(USER_CARD.format(lr="1e-4", batch=8))  # YAML 1.1 reads 1e-4 as a string
    loaded = load_card(str(card))
    assert loaded.get("train.per_device_batch_size") == 8
    card.write_text(USER_CARD.format(lr="0.0001", batch="8.0"))
    assert load_card(str(card)).get("train.per_device_batch_size") == 8


# ---- the rules cover what the code reads ----------------------------------------------------------
def test_every_packaged_card_passes_its_rules():
    for name in available_cards():
        load(name)


def test_every_setting_the_code_reads_has_a_rule():
    """A setting the code reads with no rule would take any value: TrainConfig and SCLConfig fields,
    OPTIONAL_SETTINGS and every key of a packaged card each have one."""
    unruled = sorted(k for k in settings_read_by_code() | set(packaged_rules()) if rule_for(k) is None)
    assert not unruled, unruled


def test_every_code_default_passes_its_rule():
    """The defaults of TrainConfig and SCLConfig are valid values of their settings (a rule narrower
    than the code, e.g. not nullable where the default is None, would refuse the code's own value)."""
    import dataclasses

    from sclbench.common.values import check_value
    from sclbench.engine.trainer import TrainConfig
    from sclbench.model.config import SCLConfig

    for prefix, config in (("train.", TrainConfig()), ("model.", SCLConfig()), ("model.", SCLConfig.tiny("vqa"))):
        for f in dataclasses.fields(config):
            default = getattr(config, f.name)
            default = list(default) if isinstance(default, tuple) else default
            check_value(default, rule_for(prefix + f.name), prefix + f.name)
    assert SCLConfig().preset == "base"


def test_the_table_matches_the_packaged_kinds():
    """Where the table and the packaged cards both speak, a packaged value must pass the table's rule
    (else the table would refuse the official card) - checked through every card loading above - and
    the table never narrows a number setting to a text or the like."""
    for key, rule in packaged_rules().items():
        if key in RULES:
            kinds = {RULES[key].kind, *(a.kind for a in RULES[key].alternatives)}
            packaged = {rule.kind, *(a.kind for a in rule.alternatives)}
            assert packaged & kinds or (packaged == {"int"} and "float" in kinds), (key, kinds, packaged)


# ---- properties -------------------------------------------------------------------------------------
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6))


@BUDGET
@given(value=numbers)
def test_lr_is_accepted_exactly_when_finite_and_positive(value):
    ok = math.isfinite(value) and value > 0
    try:
        got = load("f30k", f"train.lr={value!r}").get("train.lr")
    except ConfigError as err:
        assert not ok and "train.lr" in str(err)
    else:
        assert ok and got == value


@BUDGET
@given(value=numbers)
def test_batch_size_is_accepted_exactly_when_a_whole_number_at_least_one(value):
    ok = math.isfinite(value) and float(value).is_integer() and value >= 1
    try:
        got = load("f30k", f"train.per_device_batch_size={value!r}").get("train.per_device_batch_size")
    except ConfigError as err:
        assert not ok and "train.per_device_batch_size" in str(err)
    else:
        assert ok and got == value and isinstance(got, int)


@BUDGET
@given(text=st.text(max_size=12))
def test_any_text_for_a_number_setting_is_a_number_or_one_config_error(text):
    if "\n" in text or "\r" in text:
        return
    try:
        value = load("f30k", f"train.lr={text}").get("train.lr")
    except ConfigError as err:
        assert "train.lr" in str(err)
    else:
        assert isinstance(value, (int, float)) and not isinstance(value, bool)
        assert math.isfinite(value) and value > 0


@pytest.mark.parametrize(
    "override", ["train.lr=[1", "train.lr={a", "train.per_device_batch_size=a: b: c", 'train.lr="1']
)
def test_unparsable_values_are_one_line(override):
    with pytest.raises(ConfigError) as info:
        load("f30k", override)
    assert "\n" not in str(info.value) and override in str(info.value)


def test_text_settings_take_any_text():
    for raw in ("a: b", "C:\\data\\f30k", "[x", "{y", "@home"):
        assert load("f30k", f"data.root={raw}").get("data.root") == raw


@pytest.mark.parametrize("content", [b"name: x\nfamily: [", b"\xff\xfe\x00garbage", b"family: a\n  bad: indent\n b: c"])
def test_a_damaged_user_card_is_one_line_naming_it(tmp_path, content):
    card = tmp_path / "bad.yaml"
    card.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_card(str(card))
    assert str(card) in str(info.value) and "\n" not in str(info.value)


@BUDGET
@given(
    key=st.sampled_from(sorted(RULES)),
    raw=st.one_of(st.text(max_size=10), numbers.map(repr), st.sampled_from(NOT_NUMBERS + NON_FINITE)),
)
def test_any_value_of_any_setting_passes_its_rule_or_is_one_error(key, raw):
    """Whatever is typed after `key=`, the loaded card holds a value its rule accepts, or the load is
    one single-line ConfigError naming the key."""
    from sclbench.common.values import check_value

    if "\n" in raw or "\r" in raw or "\x85" in raw or "\u2028" in raw or "\u2029" in raw:
        return
    try:
        card = load_card("f30k", [f"{key}={raw}"])
    except ConfigError as err:
        assert key in str(err) and "\n" not in str(err)
    else:
        check_value(card.get(key), RULES[key], key)
