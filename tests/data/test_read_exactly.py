"""Readers read exactly or refuse, on every annotation file the synthetic generator writes.

Each text file of the synthetic benchmark (JSON, JSON lines, CSV/TSV, split lists) is damaged in one
way at a time and read the way `sclbench data check` reads it (or, for files data check does not
read, by their reader): a byte-order mark (UTF-8 or UTF-16) is read through and changes nothing; an
empty or white-space-only file, a repeated JSON key, bytes that are not UTF-8, a headed CSV without
rows and two files joined together are refused naming the file.
"""

import codecs
import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from sclbench.cli import main
from sclbench.data.check import check_layout
from sclbench.data.formats import arrow, msrvtt, pretrain
from sclbench.data.formats._io import load_json, parse_json, read_csv_table, read_jsonl, text_lines
from sclbench.data.formats.vqa import AnswerVocab
from sclbench.errors import DataError

TEXT_SUFFIXES = (".json", ".csv", ".tsv", ".txt")
TASKS = ("f30k", "coco", "vqa", "nlvr2", "msrvtt", "lsmdc", "pretrain")
HEADED = {"MSRVTT_train.9k.csv", "MSRVTT_JSFUSION_test.csv", "results_train.csv"}
LINE_BASED = (".csv", ".tsv", ".txt")


def _direct(rel: str):
    """Files `data check` does not read (another layout or split): their reader, called directly."""
    name = Path(rel).name
    if name.startswith("MSRVTT_"):  # the csv layout (data check reads the json layout when both exist)
        split = "train" if "train" in name else "test"
        return lambda root: msrvtt.read_msrvtt(root, split, layout="csv")
    if rel == "cc3m/val.tsv":
        return lambda root: pretrain.read_cc3m(root / "cc3m", "val")
    if name == "answer_vocab.json":
        return lambda root: AnswerVocab.load(root / rel)
    return None


def _files(synth_root):
    out = []
    for task in TASKS:
        for path in sorted((synth_root / task).rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES:
                out.append((task, path.relative_to(synth_root / task).as_posix()))
    return out


@pytest.fixture(scope="module")
def files(synth_root):
    found = _files(synth_root)
    assert len(found) >= 25, found  # every format file of every task
    return found


def _clone(src: Path, dst: Path, rel: str) -> Path:
    """A copy of one task root: the damaged file copied, everything else linked (fast, and the
    session's synthetic data stays untouched)."""
    for path in src.rglob("*"):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.relative_to(src).as_posix() == rel:
                shutil.copyfile(path, target)
            else:
                os.symlink(path, target)
    return dst / rel


def _read(task: str, rel: str, root: Path):
    """What the job/check reads from this root: a problem list (empty = read fine) and a summary."""
    direct = _direct(rel)
    if direct is None:
        report = check_layout(task, root)
        return report.problems, (report.found, report.missing, report.notes)
    try:
        result = direct(root)
    except DataError as err:
        return [str(err)], None
    return [], (
        len(result),
        [getattr(r, "video_id", getattr(r, "image_id", r)) for r in result]
        if isinstance(result, list)
        else result.answers,
    )


def _repeat_first_key(text: str) -> str | None:
    match = re.search(r'\{\s*("(?:[^"\\]|\\.)*")\s*:', text)
    if match is None:
        return None  # a file without any object (a list of pairs)
    return text[: match.start() + 1] + f"{match.group(1)}: null, " + text[match.start() + 1 :]


DEFECTS = (
    "zero_bytes",
    "white_space",
    "utf8_bom",
    "utf16_bom",
    "repeated_key",
    "not_utf8",
    "header_only",
    "joined_with_boms",
)


def _damage(defect: str, path: Path) -> str | None:
    """Write the defect into `path`; the message the read must give (None: it must read as before)."""
    data = path.read_bytes()
    text = data.decode("utf-8")
    if defect == "zero_bytes":
        path.write_bytes(b"")
        return f"{path.name} is empty"
    if defect == "white_space":
        path.write_bytes(b"\n  \n\t\n")
        return f"{path.name} is empty"
    if defect == "utf8_bom":
        path.write_bytes(codecs.BOM_UTF8 + data)
        return None
    if defect == "utf16_bom":
        path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
        return None
    if defect == "repeated_key":
        if path.suffix != ".json" or (damaged := _repeat_first_key(text)) is None:
            pytest.skip("no JSON object in this file")
        path.write_text(damaged)
        return "occurs twice in the object at"
    if defect == "not_utf8":
        cut = len(data) // 2
        path.write_bytes(data[:cut] + b"\xff\xfe" + data[cut:])
        line = data[:cut].count(b"\n") + 1
        return f"line {line}: bytes that are not UTF-8"
    if defect == "header_only":
        if path.name not in HEADED:
            pytest.skip("not a headed CSV")
        path.write_text(text.split("\n", 1)[0] + "\n")
        return "holds a header but no rows"
    if defect == "joined_with_boms":
        if path.suffix not in LINE_BASED:
            pytest.skip("JSON refuses a mark inside as malformed already")
        path.write_bytes(codecs.BOM_UTF8 + data + codecs.BOM_UTF8 + data)
        return f"line {text.count(chr(10)) + 1}: a byte-order mark"
    raise AssertionError(defect)


@pytest.mark.parametrize("defect", DEFECTS)
def test_every_format_file_reads_exactly_or_refuses(synth_root, files, tmp_path, defect):
    checked = 0
    for n, (task, rel) in enumerate(files):
        root = tmp_path / f"{task}-{n}"
        path = _clone(synth_root / task, root, rel)
        _, before = _read(task, rel, root)
        try:
            expected = _damage(defect, path)
        except pytest.skip.Exception:
            continue
        problems, after = _read(task, rel, root)
        if expected is None:
            assert not problems and after == before, (rel, problems)
        else:
            named = [p for p in problems if path.name in p and str(path.parent.name) in p]
            assert named and any(expected in p for p in named), (rel, expected, problems)
            assert all("\n" not in p and "Traceback" not in p for p in problems)
        checked += 1
    assert checked >= {"repeated_key": 14, "header_only": 3, "joined_with_boms": 9}.get(defect, 25)


def test_cli_data_check_names_an_empty_file(synth_root, tmp_path, capsys):
    path = _clone(synth_root / "f30k", tmp_path / "f30k", "karpathy/dataset_flickr30k.json")
    path.write_bytes(b"")
    assert main(["data", "check", "f30k", "--data-root", str(tmp_path / "f30k")]) == 1
    assert f"{path} is empty" in capsys.readouterr().out


def test_the_job_reading_it_refuses_too(synth_root, tmp_path):
    from sclbench.data.formats.karpathy import read_karpathy

    path = _clone(synth_root / "f30k", tmp_path / "f30k", "karpathy/dataset_flickr30k.json")
    path.write_text('{"images": []}')
    with pytest.raises(DataError, match="holds no images"):
        read_karpathy(tmp_path / "f30k", "f30k", "test")


# ---- the shared helpers, directly --------------------------------------------------------------------
def test_repeated_key_names_the_path_at_any_depth(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"images": [{"x": 1}, {"sentences": [{"raw": "a", "raw": "b"}]}]}')
    with pytest.raises(
        DataError,
        match=r"a.json: key 'raw' occurs twice in the object at images\[1\]"
        r"\.sentences\[0\]",
    ):
        load_json(path)
    path.write_text('{"a": 1, "b": {}, "a": 2}')
    with pytest.raises(DataError, match="'a' occurs twice in the object at top level"):
        load_json(path)
    lines = tmp_path / "b.jsonl"
    lines.write_text('{"identifier": "x-0-0-0"}\n{"label": "True", "label": "False"}\n')
    with pytest.raises(DataError, match="b.jsonl, line 2: key 'label' occurs twice"):
        list(read_jsonl(lines))
    assert parse_json('{"a": {"b": 1}, "c": [{"b": 2}]}', path) == {"a": {"b": 1}, "c": [{"b": 2}]}


def test_bom_never_reaches_an_id_and_other_marks(tmp_path):
    path = tmp_path / "list.txt"
    for bom, enc in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
    ):
        path.write_bytes(bom + "video7\nvideo8\n".encode(enc))
        assert [line for _, line in text_lines(path)][:2] == ["video7", "video8"]
    csv = tmp_path / "t.csv"
    csv.write_bytes(codecs.BOM_UTF8 + b"video_id,sentence\r\nv1,a man\r\n")
    assert read_csv_table(csv, ("video_id", "sentence")) == [(2, {"video_id": "v1", "sentence": "a man"})]
    csv.write_bytes(b"video_id,video_id\nv1,v2\n")
    with pytest.raises(DataError, match=r"names column\(s\) \['video_id'\] twice"):
        read_csv_table(csv, ("video_id",))
    path.write_bytes(b"video7\n\xc3(\n")
    with pytest.raises(DataError, match="list.txt, line 2: bytes that are not UTF-8"):
        list(text_lines(path))


# ---- arrow: the official writer's empty tables -------------------------------------------------------
def _official_table(path: Path, rows: list, columns: list[str]) -> Path:
    """Written as the official ViLT/METER writers write every table."""
    table = pa.Table.from_pandas(pd.DataFrame(rows, columns=columns))
    with pa.OSFile(str(path), "wb") as sink, pa.RecordBatchFileWriter(sink, table.schema) as writer:
        writer.write_table(table)
    return path


CAPTION = ["image", "caption", "image_id", "split"]
VQA = ["image", "questions", "answers", "answer_labels", "answer_scores", "image_id", "question_id", "split"]
NLVR2 = ["image_0", "image_1", "questions", "answers", "table_id", "identifier"]


@pytest.mark.parametrize(
    "name,columns,read",
    [
        ("f30k_caption_karpathy_val.arrow", CAPTION, lambda root: arrow.read_caption_arrow(root, "f30k", "val")),
        ("vqav2_test.arrow", VQA, lambda root: arrow.read_vqa_arrow(root, "test")),
        ("nlvr2_dev.arrow", NLVR2, lambda root: arrow.read_nlvr2_arrow(root, "dev")),
    ],
)
def test_official_empty_table_is_an_empty_split(tmp_path, name, columns, read):
    path = _official_table(tmp_path / name, [], columns)
    assert all(pa.types.is_null(t) for t in arrow.open_table(path).schema.types)  # what the writer gives
    assert read(tmp_path) == []


def test_non_empty_table_with_wrong_column_type_is_refused(tmp_path):
    png = b"\x89PNG\r\n\x1a\n"
    _official_table(tmp_path / "f30k_caption_karpathy_val.arrow", [[png, "one caption", "1.jpg", "val"]], CAPTION)
    with pytest.raises(DataError, match="column 'caption' should hold lists of captions, holds (large_)?string"):
        arrow.read_caption_arrow(tmp_path, "f30k", "val")
    _official_table(tmp_path / "f30k_caption_karpathy_val.arrow", [[None, ["a"], "1.jpg", "val"]], CAPTION)
    with pytest.raises(DataError, match="column 'image' should hold image bytes, holds null"):
        arrow.read_caption_arrow(tmp_path, "f30k", "val")
    _official_table(tmp_path / "vqav2_val.arrow", [[png, ["q"], [["yes"]], [[0]], [[1.0]], "7", [1], "val"]], VQA)
    with pytest.raises(DataError, match="column 'image_id' should hold integer image ids"):
        arrow.read_vqa_arrow(tmp_path, "val")


def test_data_check_reads_an_arrow_layout(synth_root, tmp_path):
    root = tmp_path / "arrow"
    shutil.copytree(synth_root / "arrow", root)
    assert check_layout("vqa", root).ok
    # the official writer's empty table for an optional split: an empty split, not a problem
    _official_table(root / "vqav2_test.arrow", [], VQA)
    report = check_layout("vqa", root)
    assert report.ok and report.found["test (arrow)"] == 0, report.render()
    damaged = root / "vqav2_val.arrow"
    damaged.write_bytes(damaged.read_bytes()[:300])
    report = check_layout("vqa", root)
    assert not report.ok and any(str(damaged) in p and "damaged" in p for p in report.problems), report.render()


@pytest.mark.parametrize(
    "task,media", [("f30k", "flickr30k-images"), ("msrvtt", "videos/all"), ("nlvr2", "dev"), ("lsmdc", "frames_1fps")]
)
def test_data_check_decode_lists_media_that_do_not_decode(synth_root, tmp_path, capsys, task, media):
    victim = min(p for p in (synth_root / task / media).rglob("*") if p.is_file())
    rel = victim.relative_to(synth_root / task).as_posix()
    path = _clone(synth_root / task, tmp_path / task, rel)
    path.write_bytes(path.read_bytes()[:100])  # cut short
    assert check_layout(task, tmp_path / task).ok  # present: only decoding finds it
    report = check_layout(task, tmp_path / task, decode=True)
    assert not report.ok and sum(report.corrupt.values()) >= 1
    assert main(["data", "check", task, "--data-root", str(tmp_path / task), "--decode"]) == 1
    assert str(path) in capsys.readouterr().out


@pytest.mark.parametrize("defect", ["zero_bytes", "utf8_bom", "utf16_bom", "repeated_key", "not_utf8"])
def test_coco_caption_files_read_exactly(synth_root, tmp_path, defect):
    """COCO's own caption files (not written by the generator): the same classes, the same helpers."""
    from sclbench.data.formats.coco_captions import read_coco_captions
    from tests.data.test_coco_captions import write_coco_files_from_karpathy

    root = tmp_path / "coco"
    root.mkdir()
    write_coco_files_from_karpathy(root, load_json(synth_root / "coco/karpathy/dataset_coco.json"))
    for folder in ("train2014", "val2014"):
        os.symlink(synth_root / "coco" / folder, root / folder)
    before = read_coco_captions(root, "val2014")
    path = root / "annotations/captions_val2014.json"
    expected = _damage(defect, path)
    if expected is None:
        after = read_coco_captions(root, "val2014")
        assert after == before and not any(r.image_id.startswith("\ufeff") for r in after)
    else:
        with pytest.raises(DataError, match=re.escape(expected)) as err:
            read_coco_captions(root, "val2014")
        assert path.name in str(err.value)


def test_data_check_flags_a_required_split_without_samples(synth_root, tmp_path):
    path = _clone(synth_root / "f30k", tmp_path / "f30k", "karpathy/dataset_flickr30k.json")
    doc = load_json(path)
    doc["images"] = [entry for entry in doc["images"] if entry["split"] != "val"]
    path.write_text(json.dumps(doc))
    report = check_layout("f30k", tmp_path / "f30k")
    assert not report.ok and report.found["val"] == 0
    assert any(p.startswith("val: no samples") for p in report.problems), report.render()
