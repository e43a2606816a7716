"""Fuzz every kind of file sclbench reads with the damage files really suffer: cut short, empty, random
bytes, flipped bytes, a BOM or UTF-16 from another tool, CRLF line ends, a repeated JSON key, a JSON
value of the wrong type, a field deleted. The command that reads the file must refuse cleanly (one
`error:` line, exit 2, or its own verdict: `data check` exit 1) or read it, never crash, never change
the damaged file or any other input."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from fuzz_cli import FUZZ, Workspace, allowed_codes, assert_clean, changed, run_cli, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

# --------------------------------------------------------------------------------------------------
# Damage: bytes -> bytes.

BOM = b"\xef\xbb\xbf"


# A JSON value replaced by one of another type (1e309 is written as the non-standard `Infinity`).
VALUE_MUTATIONS: list[Callable[[object], object]] = [
    lambda v: "x",
    lambda v: None,
    lambda v: [],
    lambda v: {},
    lambda v: -1,
    lambda v: 1e309,
    lambda v: True,
    lambda v: str(v),
    lambda v: [v, v],
]


def _leaves(node, path=()):
    """(path, value) of every leaf of a JSON document, first 200 (deep documents are large)."""
    out = []
    stack = [(path, node)]
    while stack and len(out) < 200:
        p, n = stack.pop()
        if isinstance(n, dict) and n:
            stack += [((*p, k), v) for k, v in n.items()]
        elif isinstance(n, list) and n:
            stack += [((*p, i), v) for i, v in enumerate(n[:20])]
        else:
            out.append((p, n))
    return out


def _set(node, path, value):
    if not path:
        return value
    *head, last = path
    target = node
    for key in head:
        target = target[key]
    target[last] = value
    return node


def _delete(node, path):
    if not path:
        return node
    *head, last = path
    target = node
    for key in head:
        target = target[key]
    del target[last]
    return node


@st.composite
def damage(draw, original: bytes, is_json: bool, lines: bool):
    """(name, damaged bytes) for one file."""
    n = len(original)
    kinds = ["truncate", "empty", "random", "flip", "bom", "utf16", "crlf", "nul"]
    if is_json:
        kinds += ["json_leaf", "json_leaf", "json_delete", "json_top", "json_dupkey", "json_nan"]
    if lines:
        kinds += ["line_drop_field", "line_garbage"]
    which = draw(st.sampled_from(kinds))
    if which == "truncate":
        return which, original[: draw(st.integers(0, max(0, n - 1)))]
    if which == "empty":
        return which, b""
    if which == "random":
        return which, draw(st.binary(min_size=1, max_size=256))
    if which == "flip":
        data = bytearray(original or b"\0")
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= draw(st.integers(1, 255))
        return which, bytes(data)
    if which == "bom":
        return which, BOM + original
    if which == "utf16":
        return which, original.decode("utf-8", "replace").encode("utf-16")
    if which == "crlf":
        return which, original.replace(b"\n", b"\r\n")
    if which == "nul":
        return which, original[: n // 2] + b"\0" + original[n // 2 :]
    text = original.decode("utf-8")
    if which.startswith("json"):
        jsonl = _is_jsonl(text)
        docs = [json.loads(line) for line in text.splitlines() if line.strip()] if jsonl else [json.loads(text)]
        doc_index = draw(st.integers(0, len(docs) - 1))
        doc = docs[doc_index]
        if which == "json_top":
            doc = draw(st.sampled_from(["x", 1, None, [], {}, [doc]]))
        elif which == "json_nan":
            leaves = _leaves(doc)
            path, _ = draw(st.sampled_from(leaves)) if leaves else ((), None)
            doc = _set(doc, path, float("nan"))
        elif which == "json_dupkey":  # the same key twice: json.dumps cannot write it, so by hand
            dumped = json.dumps(doc)
            if isinstance(doc, dict) and doc:
                key = draw(st.sampled_from(sorted(doc)))
                dumped = "{" + json.dumps(key) + ": " + json.dumps("duplicate") + ", " + dumped[1:]
            docs[doc_index] = None
            return which, _join(docs, doc_index, dumped, _is_jsonl(text))
        else:
            leaves = _leaves(doc)
            if leaves:
                path, value = draw(st.sampled_from(leaves))
                if which == "json_delete" and path:
                    doc = _delete(doc, path)
                else:
                    doc = _set(doc, path, draw(st.sampled_from(VALUE_MUTATIONS))(value))
        return which, _join(docs, doc_index, json.dumps(doc), _is_jsonl(text))
    # delimited lines: drop a field / add garbage on one line
    rows = text.split("\n")
    i = draw(st.integers(0, max(0, len(rows) - 1)))
    sep = "\t" if "\t" in text else ","
    if which == "line_drop_field":
        rows[i] = sep.join(rows[i].split(sep)[:-1])
    else:
        rows[i] = rows[i] + sep + draw(st.sampled_from(['"', "\x00", "ünï", sep * 3, "nan"]))
    return which, "\n".join(rows).encode("utf-8")


def _is_jsonl(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return False
    try:
        json.loads(lines[0])
        return True
    except ValueError:
        return False


def _join(docs, index, replaced: str, jsonl: bool) -> bytes:
    if not jsonl:
        return replaced.encode("utf-8")
    lines = [replaced if i == index else json.dumps(d) for i, d in enumerate(docs)]
    return ("\n".join(lines) + "\n").encode("utf-8")


# --------------------------------------------------------------------------------------------------
# The file kinds, each with the cheapest command that reads it.


@dataclass(frozen=True)
class Kind:
    name: str
    path: Callable[[Workspace], Path]
    argv: Callable[[Workspace, Path], list]
    verb: str
    required: bool = False  # `data check` must not pass an empty one
    # A folder the command writes into (a run folder it resumes): copied to OUT/private for each example,
    # and the copy damaged, so that the run's outputs never reach the next example.
    private: Callable[[Workspace], Path] | None = None


def _first(folder: Path, pattern: str) -> Path:
    return sorted(folder.rglob(pattern))[0]


def _data_check(task):
    return lambda ws, out: ["data", "check", task, "--data-root", ws.synth / task]


KINDS = [
    Kind(
        "karpathy json (f30k)",
        lambda ws: ws.synth / "f30k/karpathy/dataset_flickr30k.json",
        _data_check("f30k"),
        "data check",
        True,
    ),
    Kind(
        "karpathy json (coco)",
        lambda ws: ws.synth / "coco/karpathy/dataset_coco.json",
        _data_check("coco"),
        "data check",
        True,
    ),
    Kind(
        "vqa questions",
        lambda ws: ws.synth / "vqa/v2_OpenEnded_mscoco_val2014_questions.json",
        _data_check("vqa"),
        "data check",
        True,
    ),
    Kind(
        "vqa annotations",
        lambda ws: ws.synth / "vqa/v2_mscoco_val2014_annotations.json",
        _data_check("vqa"),
        "data check",
        True,
    ),
    Kind("nlvr2 json lines", lambda ws: ws.synth / "nlvr2/data/dev.json", _data_check("nlvr2"), "data check", True),
    Kind("lsmdc csv", lambda ws: ws.synth / "lsmdc/LSMDC16_annos_val.csv", _data_check("lsmdc"), "data check", True),
    Kind(
        "msrvtt json", lambda ws: ws.synth / "msrvtt/annotation/MSR_VTT.json", _data_check("msrvtt"), "data check", True
    ),
    Kind(
        "msrvtt csv",
        lambda ws: ws.synth / "msrvtt/msrvtt_data/MSRVTT_JSFUSION_test.csv",
        _data_check("msrvtt"),
        "data check",
        True,
    ),
    Kind(
        "msrvtt caption index pkl", lambda ws: _first(ws.synth / "msrvtt", "*.pkl"), _data_check("msrvtt"), "data check"
    ),
    Kind(
        "msrvtt split list txt",
        lambda ws: _first(ws.synth / "msrvtt", "val_list_jsfusion.txt"),
        _data_check("msrvtt"),
        "data check",
    ),
    Kind(
        "arrow table",
        lambda ws: ws.synth / "arrow/f30k_caption_karpathy_val.arrow",
        lambda ws, out: [
            "data",
            "shard",
            "f30k",
            "--data-root",
            ws.synth / "arrow",
            "--format",
            "arrow",
            "--split",
            "val",
            "--out",
            out / "shards",
        ],
        "data shard",
    ),
    Kind(
        "answer vocabulary json",
        lambda ws: ws.synth / "vqa/answer_vocab.json",
        lambda ws, out: [
            "predict",
            "vqa",
            ws.image,
            "what is it?",
            "--ckpt",
            ws.ckpts["vqa"],
            "--answers",
            ws.synth / "vqa/answer_vocab.json",
        ],
        "predict vqa",
    ),
    Kind(
        "image",
        lambda ws: ws.image,
        lambda ws, out: [
            "predict",
            "vqa",
            ws.image,
            "what is it?",
            "--ckpt",
            ws.ckpts["vqa"],
            "--answers",
            ws.synth / "vqa",
        ],
        "predict vqa",
    ),
    Kind(
        "checkpoint config.json",
        lambda ws: ws.ckpts["f30k"] / "config.json",
        lambda ws, out: ["ckpt", "inspect", ws.ckpts["f30k"]],
        "ckpt inspect",
    ),
    Kind(
        "checkpoint safetensors",
        lambda ws: ws.ckpts["f30k"] / "model.safetensors",
        lambda ws, out: ["ckpt", "inspect", ws.ckpts["f30k"]],
        "ckpt inspect",
    ),
    Kind(
        "tokenizer.json",
        lambda ws: ws.ckpts["f30k"] / "tokenizer.json",
        lambda ws, out: ["predict", "texts", ws.image, ws.sentences, "--ckpt", ws.ckpts["f30k"]],
        "predict texts",
    ),
    Kind(
        "tokenizer_config.json",
        lambda ws: ws.ckpts["f30k"] / "tokenizer_config.json",
        lambda ws, out: ["predict", "texts", ws.image, ws.sentences, "--ckpt", ws.ckpts["f30k"]],
        "predict texts",
    ),
    Kind(
        "sentences file",
        lambda ws: ws.sentences,
        lambda ws, out: ["predict", "texts", ws.image, ws.sentences, "--ckpt", ws.ckpts["f30k"]],
        "predict texts",
    ),
    Kind(
        "result record (table)",
        lambda ws: ws.records / "f30k/f30k_test_demo-scl.json",
        lambda ws, out: ["table", ws.records, "--format", "markdown"],
        "table",
    ),
    Kind(
        "result record (check)",
        lambda ws: ws.records / "nlvr2/nlvr2_test1_demo-scl.json",
        lambda ws, out: ["check", ws.records / "nlvr2", "--baseline", out / "pristine" / "nlvr2"],
        "check",
    ),
    Kind(
        "predictions json lines (check)",
        lambda ws: ws.records / "nlvr2/nlvr2_test1_demo-scl.predictions.jsonl",
        lambda ws, out: ["check", ws.records / "nlvr2", "--baseline", out / "pristine" / "nlvr2"],
        "check",
    ),
    Kind(
        "predictions json lines (table)",
        lambda ws: ws.records / "f30k/f30k_test_demo-scl.predictions.jsonl",
        lambda ws, out: ["table", ws.records / "f30k", "--format", "csv"],
        "table",
    ),
    Kind(
        "result record (plot)",
        lambda ws: ws.records / "coco/coco_test_demo-scl.json",
        lambda ws, out: ["plot", ws.records / "coco", "--out", out / "plots"],
        "plot",
    ),
    Kind("task card yaml", lambda ws: ws.card / "myf30k.yaml", lambda ws, out: ["--cards", ws.card, "tasks"], "tasks"),
    Kind(
        "training log json lines",
        lambda ws: ws.run / "log.jsonl",
        lambda ws, out: ["plot", ws.run, "--out", out / "plots"],
        "plot",
    ),
    Kind("official .ckpt", lambda ws: ws.official, lambda ws, out: ["ckpt", "inspect", ws.official], "ckpt inspect"),
]
# Costlier readers: decoding a clip, the pretraining corpora (each data check reads them all).
SLOW_KINDS = [
    Kind(
        "video",
        lambda ws: ws.clip,
        lambda ws, out: [
            "predict",
            "texts",
            ws.clip,
            ws.sentences,
            "--ckpt",
            ws.ckpts["f30k"],
            "--task",
            "msrvtt",
            "--frames",
            "2",
        ],
        "predict texts",
    ),
    Kind("cc3m tsv", lambda ws: ws.synth / "pretrain/cc3m/val.tsv", _data_check("pretrain"), "data check"),
    Kind(
        "cc3m json", lambda ws: ws.synth / "pretrain/cc3m/train_annot.json", _data_check("pretrain"), "data check", True
    ),
    Kind("sbu json", lambda ws: ws.synth / "pretrain/sbu/annot.json", _data_check("pretrain"), "data check", True),
    Kind(
        "visual genome json",
        lambda ws: ws.synth / "pretrain/vg/annotations/region_descriptions.json",
        _data_check("pretrain"),
        "data check",
        True,
    ),
    Kind(
        "webvid tsv",
        lambda ws: ws.synth / "pretrain/webvid/webvid_train.tsv",
        _data_check("pretrain"),
        "data check",
        True,
    ),
    Kind(
        "resume checkpoint",
        lambda ws: sorted((ws.run / "checkpoints").glob("step-*"))[-1],
        lambda ws, out: [
            "finetune",
            "f30k",
            "--preset",
            "tiny",
            "--tokenizer",
            ws.synth / "tokenizer",
            "--precision",
            "fp32",
            "--data-root",
            ws.synth / "f30k",
            "--limit",
            "4",
            "--out",
            out / "private",
            "--max-steps",
            "3",
            "train.global_batch_size=2",
            "train.per_device_batch_size=2",
        ],
        "finetune",
        private=lambda ws: ws.run,
    ),
    Kind(
        "shard index.json", lambda ws: ws.shards / "index.json", lambda ws, out: _pretrain_shards(ws, out), "pretrain"
    ),
    Kind(
        "shard tar",
        lambda ws: sorted(ws.shards.glob("*.tar"))[0],
        lambda ws, out: _pretrain_shards(ws, out),
        "pretrain",
    ),
    Kind(
        "f30k annotations (eval)",
        lambda ws: ws.synth / "f30k/karpathy/dataset_flickr30k.json",
        lambda ws, out: [
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
            "--results",
            out / "results",
        ],
        "eval",
    ),
]


def _pretrain_shards(ws: Workspace, out: Path) -> list:
    return [
        "pretrain",
        "--preset",
        "tiny",
        "--tokenizer",
        ws.synth / "tokenizer",
        "--precision",
        "fp32",
        "--random-init",
        "--max-steps",
        "1",
        "--data-root",
        ws.shards.parent,
        "--out",
        out / "pre",
        "train.global_batch_size=2",
        "train.per_device_batch_size=1",
        "train.chunk_size=2",
        f"data.corpora=[{{name: coco, root: {ws.shards.name}, format: shards}}]",
    ]


def _fuzz_file(kind: Kind, data, ws: Workspace, scratch: Path) -> None:
    import shutil

    target = kind.path(ws)
    out = scratch / "out"
    if kind.private is not None:
        shutil.rmtree(out / "private", ignore_errors=True)
        shutil.copytree(kind.private(ws), out / "private")
        target = out / "private" / target.relative_to(kind.private(ws))
    original = target.read_bytes()
    text_like = target.suffix in (".json", ".jsonl", ".csv", ".tsv", ".txt", ".yaml")
    is_json = target.suffix in (".json", ".jsonl")
    if is_json:
        try:
            json.loads(original) if not _is_jsonl(original.decode()) else None
        except ValueError:
            is_json = False
    how, damaged = data.draw(
        damage(original, is_json, lines=target.suffix in (".csv", ".tsv"))
        if text_like or is_json
        else damage(original, False, False),
        label="damage",
    )
    if not (out / "pristine").exists():
        shutil.copytree(ws.records, out / "pristine")
    try:
        target.write_bytes(damaged)
        before = snapshot(*ws.inputs)
        outcome = run_cli(kind.argv(ws, out))
        assert_clean(outcome, allowed_codes(kind.verb))
        touched = changed(before, snapshot(*ws.inputs))
        assert not touched, f"inputs changed by reading a damaged {kind.name}: {touched[:5]}\n{outcome.report()}"
        if kind.required and how == "empty":
            assert outcome.rc != 0, f"an empty {kind.name} passed\n{outcome.report()}"
    finally:
        target.write_bytes(original)
        os.utime(target)


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
@settings(FUZZ, max_examples=10)
@given(data=st.data())
def test_damaged_file(kind, data, workspace, scratch):
    _fuzz_file(kind, data, workspace, scratch)


@pytest.mark.slow
@pytest.mark.parametrize("kind", SLOW_KINDS, ids=[k.name for k in SLOW_KINDS])
@settings(FUZZ, max_examples=10)
@given(data=st.data())
def test_damaged_file_slow(kind, data, workspace, scratch):
    _fuzz_file(kind, data, workspace, scratch)


@pytest.mark.parametrize("kind", KINDS + SLOW_KINDS, ids=[k.name for k in KINDS + SLOW_KINDS])
def test_undamaged_file_reads(kind, workspace, scratch):
    """The readers' commands pass on the undamaged files (else a refusal above proves nothing)."""
    import shutil

    out = scratch / "out"
    shutil.copytree(workspace.records, out / "pristine")
    outcome = run_cli(kind.argv(workspace, out))
    assert_clean(outcome)
    assert outcome.rc == 0, outcome.report()


# End-to-end runs (subprocesses, training, compiling, fuzzing real jobs): CI runs them; the fast lane
# (-m "not slow") leaves them out to stay under two minutes.
pytestmark = pytest.mark.slow
