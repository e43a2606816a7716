"""Property tests: whatever is done to a valid VQA / NLVR2 file or image, the readers either read it or
raise one sclbench error naming a file of the dataset — never KeyError, JSONDecodeError, TypeError,
AssertionError, never a hang. Example budgets are small (CI)."""

import copy
import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vqa_nlvr2_builders import image_bytes, nlvr2_lines, vqa_docs, write_nlvr2, write_vqa

from sclbench.data.formats import read_nlvr2, read_vqa
from sclbench.data.records import ImageSource
from sclbench.errors import DataError, SCLBenchError

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

QUESTION_FIELDS = ("question_id", "image_id", "question")
ANNOTATION_FIELDS = ("question_id", "image_id", "answers", "answer_type", "question_type", "multiple_choice_answer")
NLVR2_FIELDS = ("identifier", "sentence", "label")

# JSON values of every type; each wrong-type replacement is drawn from the types the field does not take
JSON_VALUES = {
    "int": st.integers(-5, 10**6),
    "str": st.text(max_size=6),
    "list": st.lists(st.integers(), max_size=2),
    "dict": st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    "float": st.floats(),
    "null": st.none(),
    "bool": st.booleans(),
}
FIELD_TYPES = {
    "question_id": "int",
    "image_id": "int",
    "question": "str",
    "answers": "list",
    "answer_type": "str",
    "question_type": "str",
    "multiple_choice_answer": "str",
    "identifier": "str",
    "sentence": "str",
    "label": "str",
}


def wrong_value(field: str):
    allowed = {FIELD_TYPES[field]} | ({"bool"} if field == "label" else set())  # label: JSON true/false is read
    return st.one_of(*[s for kind, s in JSON_VALUES.items() if kind not in allowed])


def _fresh(tmp_path, name):
    root = tmp_path / name
    shutil.rmtree(root, ignore_errors=True)
    return root


def _read_or_clear_error(read, root):
    """Run a reader; it may succeed, or fail with an sclbench error naming a file under `root`."""
    try:
        return read()
    except SCLBenchError as err:
        assert str(root) in str(err), f"error does not name the file: {err}"
        return err


# ---- VQA ---------------------------------------------------------------------------------------
@SETTINGS
@given(data=st.data())
def test_vqa_deleted_required_field_is_named(tmp_path, data):
    qdoc, adoc = vqa_docs()
    in_questions = data.draw(st.booleans())
    entries = qdoc["questions"] if in_questions else adoc["annotations"]
    i = data.draw(st.integers(0, len(entries) - 1))
    name = data.draw(st.sampled_from(QUESTION_FIELDS if in_questions else ANNOTATION_FIELDS))
    del entries[i][name]
    root = _fresh(tmp_path, "vqa")
    write_vqa(root, "val", qdoc, adoc)
    with pytest.raises(DataError, match=rf"\[{i}\].*missing field '{name}'") as err:
        read_vqa(root, "val")
    assert ("questions.json" if in_questions else "annotations.json") in str(err.value)


@SETTINGS
@given(data=st.data())
def test_vqa_wrong_type_is_named(tmp_path, data):
    qdoc, adoc = vqa_docs()
    in_questions = data.draw(st.booleans())
    entries = qdoc["questions"] if in_questions else adoc["annotations"]
    i = data.draw(st.integers(0, len(entries) - 1))
    name = data.draw(st.sampled_from(QUESTION_FIELDS if in_questions else ANNOTATION_FIELDS))
    entries[i][name] = data.draw(wrong_value(name))
    root = _fresh(tmp_path, "vqa")
    write_vqa(root, "val", qdoc, adoc)
    with pytest.raises(DataError, match=rf"\[{i}\].*field '{name}' should be"):
        read_vqa(root, "val")


@SETTINGS
@given(data=st.data())
def test_vqa_optional_fields_may_go(tmp_path, data):
    """Fields the reader does not need (answer_confidence, answer_id, info, license) are not required."""
    qdoc, adoc = vqa_docs()
    for doc in (qdoc, adoc):
        for key in data.draw(st.sets(st.sampled_from(["info", "license", "data_subtype"]))):
            doc.pop(key, None)
    for ann in adoc["annotations"]:
        for vote in ann["answers"]:
            for key in data.draw(st.sets(st.sampled_from(["answer_confidence", "answer_id"]))):
                del vote[key]
    root = _fresh(tmp_path, "vqa")
    write_vqa(root, "val", qdoc, adoc)
    assert len(read_vqa(root, "val")) == len(qdoc["questions"])


@SETTINGS
@given(data=st.data())
def test_vqa_duplicated_or_dropped_entries_are_named(tmp_path, data):
    qdoc, adoc = vqa_docs()
    in_questions = data.draw(st.booleans())
    entries = qdoc["questions"] if in_questions else adoc["annotations"]
    i = data.draw(st.integers(0, len(entries) - 1))
    if data.draw(st.booleans()):
        entries.insert(data.draw(st.integers(0, len(entries))), copy.deepcopy(entries[i]))
        expected = "already used by"
    else:
        del entries[i]
        expected = "has no question in" if in_questions else "has no annotation in"
    root = _fresh(tmp_path, "vqa")
    write_vqa(root, "val", qdoc, adoc)
    with pytest.raises(DataError, match=expected):
        read_vqa(root, "val")


@SETTINGS
@given(which=st.sampled_from(["questions", "annotations"]), data=st.data())
def test_vqa_truncated_or_flipped_files(tmp_path, which, data):
    root = _fresh(tmp_path, "vqa")
    qpath, apath = write_vqa(root, "val")
    path = qpath if which == "questions" else apath
    raw = bytearray(path.read_bytes())
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(raw))
    _read_or_clear_error(lambda: read_vqa(root, "val"), root)


# ---- NLVR2 -------------------------------------------------------------------------------------
@SETTINGS
@given(split=st.sampled_from(["train", "dev", "test1"]), data=st.data())
def test_nlvr2_deleted_or_mistyped_field_is_named(tmp_path, split, data):
    lines = nlvr2_lines(split)
    k = data.draw(st.integers(0, len(lines) - 1))
    name = data.draw(st.sampled_from(NLVR2_FIELDS + (("directory",) if split == "train" else ())))
    if data.draw(st.booleans()) or name == "directory":
        del lines[k][name]
        expected = f"missing field '{name}'"
    else:
        lines[k][name] = data.draw(wrong_value(name))
        expected = f"field '{name}' should be" if name != "label" else "label should be 'True' or 'False'"
    root = _fresh(tmp_path, "nlvr2")
    write_nlvr2(root, split, lines)
    with pytest.raises(DataError, match=rf"{split}\.json, line {k + 1}: .*{expected}"):
        read_nlvr2(root, split)


@SETTINGS
@given(data=st.data())
def test_nlvr2_duplicated_line_is_named(tmp_path, data):
    lines = nlvr2_lines("dev")
    i = data.draw(st.integers(0, len(lines) - 1))
    at = data.draw(st.integers(0, len(lines)))
    lines.insert(at, dict(lines[i]))
    root = _fresh(tmp_path, "nlvr2")
    write_nlvr2(root, "dev", lines)
    with pytest.raises(DataError, match="already used on line"):
        read_nlvr2(root, "dev")


@SETTINGS
@given(data=st.data())
def test_nlvr2_truncated_or_flipped_file(tmp_path, data):
    root = _fresh(tmp_path, "nlvr2")
    path = write_nlvr2(root, "dev")
    raw = bytearray(path.read_bytes())
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(raw))
    _read_or_clear_error(lambda: read_nlvr2(root, "dev"), root)


# ---- images ------------------------------------------------------------------------------------
VALID_IMAGES = {fmt: image_bytes(fmt, size=(12, 10)) for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP")}


@settings(max_examples=40, deadline=None, derandomize=True)
@given(fmt=st.sampled_from(sorted(VALID_IMAGES)), data=st.data())
def test_damaged_image_decodes_or_names_the_file(fmt, data):
    raw = bytearray(VALID_IMAGES[fmt])
    how = data.draw(st.sampled_from(["truncate", "flip", "header"]))
    if how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:  # "header": flips in the first 40 bytes, where sizes and chunk lengths live
        top = min(len(raw), 40) if how == "header" else len(raw)
        for _ in range(data.draw(st.integers(1, 6))):
            raw[data.draw(st.integers(0, top - 1))] = data.draw(st.integers(0, 255))
    source = ImageSource(data=bytes(raw))
    try:
        img = source.open()
    except DataError as err:
        assert "<in-memory image>" in str(err)
    else:
        assert img.mode == "RGB" and img.width * img.height > 0


def test_nlvr2_published_lines_still_read(tmp_path):
    """The property tests' baseline: the unmodified files read completely."""
    lines = nlvr2_lines("train")
    write_nlvr2(tmp_path, "train", lines)
    assert [r.identifier for r in read_nlvr2(tmp_path, "train")] == [line["identifier"] for line in lines]
    assert json.loads(json.dumps(lines)) == lines
