"""One file in the published format per defect class: each is one DataError naming file, entry, field."""

import json
import warnings
from pathlib import Path

import pytest
from PIL import Image
from vqa_nlvr2_builders import image_bytes, nlvr2_lines, png_claiming, vqa_docs, write_nlvr2, write_vqa

from sclbench.data.datasets import _Base
from sclbench.data.formats import read_nlvr2, read_vqa
from sclbench.data.records import ImageSource, SkipCounter
from sclbench.data.video import read_clip
from sclbench.errors import DataError


# ---- decompression bombs -------------------------------------------------------------------------
def test_bomb_png_is_a_data_error_naming_the_file(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(50000, 50000))
    with pytest.raises(Image.DecompressionBombError):  # what Pillow itself does with it
        Image.open(path)
    with pytest.raises(DataError, match=r"bomb\.png refused as a decompression bomb"):
        ImageSource(path=path).open()


def test_bomb_warning_as_error_is_a_data_error(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(png_claiming(10000, 10000))  # between Pillow's warning and error limits
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(DataError, match=r"big\.png refused as a decompression bomb"):
            ImageSource(path=path).open()


class _Images(_Base):
    """The datasets' real skip path (`_Base.__getitem__`) over images or clips, without a tokenizer."""

    def __init__(self, items, skip_corrupt):
        super().__init__(None, 0, skip_corrupt, 0)
        self.items = items

    def sample(self, index):
        item = self.items[index]
        return {"index": index, "n": len(read_clip(item, 2) if isinstance(item, Path) else [item.open()])}


def test_skip_corrupt_skips_a_bomb_image_and_a_bomb_frame(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(50000, 50000))
    frames = tmp_path / "clip"
    frames.mkdir()
    (frames / "000001.png").write_bytes(image_bytes())
    (frames / "000002.png").write_bytes(png_claiming(50000, 50000))
    items = [ImageSource(data=image_bytes()), ImageSource(path=bomb), frames]
    with pytest.raises(DataError, match="bomb.png"):
        _Images(items, skip_corrupt=False)[1]
    with pytest.raises(DataError, match=r"clip/000002\.png"):
        _Images(items, skip_corrupt=False)[2]
    ds = _Images(items, skip_corrupt=True)
    assert ds[0] == {"index": 0, "n": 1}
    assert "bomb.png" in ds[1]["skipped"] and "000002.png" in ds[2]["skipped"]


# ---- NLVR2 -------------------------------------------------------------------------------------
def test_nlvr2_line_without_label_is_an_error(tmp_path):
    lines = nlvr2_lines("dev")
    del lines[2]["label"]
    write_nlvr2(tmp_path, "dev", lines)
    with pytest.raises(DataError, match=r"dev\.json, line 3: missing field 'label'"):
        read_nlvr2(tmp_path, "dev")


@pytest.mark.parametrize("split", ["train", "test1"])
def test_nlvr2_every_published_split_is_labelled(tmp_path, split):
    lines = nlvr2_lines(split)
    write_nlvr2(tmp_path, split, lines)
    records = read_nlvr2(tmp_path, split)
    assert [r.label for r in records] == [line["label"] == "True" for line in lines]
    del lines[0]["label"]
    write_nlvr2(tmp_path, split, lines)
    with pytest.raises(DataError, match=rf"{split}\.json, line 1: missing field 'label'"):
        read_nlvr2(tmp_path, split)


def test_nlvr2_unlabelled_split_stays_allowed(tmp_path, monkeypatch):
    from sclbench.data.formats import nlvr2

    monkeypatch.setattr(nlvr2, "UNLABELLED_SPLITS", ("test1",))
    lines = nlvr2_lines("test1")
    for line in lines:
        del line["label"]
    write_nlvr2(tmp_path, "test1", lines)
    assert [r.label for r in read_nlvr2(tmp_path, "test1")] == [None] * len(lines)


def test_nlvr2_missing_image_names_the_line(tmp_path):
    write_nlvr2(tmp_path, "dev")
    (tmp_path / "dev" / "dev-851-0-img1.png").unlink()
    with pytest.raises(DataError, match=r"dev-851-0-img1\.png \(named by .*dev\.json, line 3\)"):
        read_nlvr2(tmp_path, "dev")


def test_nlvr2_duplicated_identifier_and_bad_identifier(tmp_path):
    lines = nlvr2_lines("dev")
    lines[3]["identifier"] = lines[1]["identifier"]
    write_nlvr2(tmp_path, "dev", lines)
    with pytest.raises(DataError, match=r"dev\.json, line 4: identifier 'dev-850-0-1' already used on line 2"):
        read_nlvr2(tmp_path, "dev")
    lines = nlvr2_lines("dev")
    lines[0]["identifier"] = "dev850"
    write_nlvr2(tmp_path, "dev", lines)
    with pytest.raises(DataError, match=r"dev\.json, line 1: identifier 'dev850'"):
        read_nlvr2(tmp_path, "dev")


# ---- VQA ---------------------------------------------------------------------------------------
def test_vqa_published_layout_reads(tmp_path):
    write_vqa(tmp_path)
    records = read_vqa(tmp_path, "val")
    assert [r.question_id for r in records] == [42000, 42001, 7000, 7001]
    assert records[0].answers == ["red"] * 7 + ["pink"] * 2 + ["Red."]


def test_vqa_annotation_without_question(tmp_path):
    qdoc, adoc = vqa_docs()
    del qdoc["questions"][1]
    write_vqa(tmp_path, "val", qdoc, adoc)
    with pytest.raises(
        DataError,
        match=r"annotations\.json, annotations\[1\]: question_id 42001 has no question "
        r"in .*questions\.json",
    ):
        read_vqa(tmp_path, "val")


def test_vqa_question_without_annotation(tmp_path):
    qdoc, adoc = vqa_docs()
    del adoc["annotations"][2]
    write_vqa(tmp_path, "val", qdoc, adoc)
    with pytest.raises(
        DataError,
        match=r"questions\.json, questions\[2\]: question 7000 has no annotation in "
        r".*annotations\.json",
    ):
        read_vqa(tmp_path, "val")


@pytest.mark.parametrize("which", ["questions", "annotations"])
def test_vqa_duplicated_question_id(tmp_path, which):
    qdoc, adoc = vqa_docs()
    doc = qdoc if which == "questions" else adoc
    doc[which][3]["question_id"] = doc[which][0]["question_id"]
    write_vqa(tmp_path, "val", qdoc, adoc)
    with pytest.raises(
        DataError,
        match=rf"{which}\.json, {which}\[3\]: question_id 42000 already used by "
        rf"{which}\[0\]",
    ):
        read_vqa(tmp_path, "val")


def test_vqa_annotation_on_another_image(tmp_path):
    qdoc, adoc = vqa_docs()
    adoc["annotations"][0]["image_id"] = 7
    write_vqa(tmp_path, "val", qdoc, adoc)
    with pytest.raises(DataError, match=r"annotations\[0\]: question 42000 is about image 7 but"):
        read_vqa(tmp_path, "val")


@pytest.mark.parametrize("field", ["answer_type", "question_type", "multiple_choice_answer", "answers", "image_id"])
def test_vqa_required_annotation_fields(tmp_path, field):
    qdoc, adoc = vqa_docs()
    del adoc["annotations"][1][field]
    write_vqa(tmp_path, "val", qdoc, adoc)
    with pytest.raises(
        DataError,
        match=rf"annotations\.json, annotations\[1\] \(question 42001\): missing field "
        rf"'{field}'",
    ):
        read_vqa(tmp_path, "val")


def test_vqa_vote_that_is_not_an_object(tmp_path):
    qdoc, adoc = vqa_docs()
    adoc["annotations"][0]["answers"][4] = "answer"
    write_vqa(tmp_path, "val", qdoc, adoc)
    with pytest.raises(DataError, match=r"annotations\[0\] \(question 42000\): answers\[4\] should be an object"):
        read_vqa(tmp_path, "val")


def test_vqa_test_split_needs_no_annotations(tmp_path):
    qdoc, _ = vqa_docs("test-dev")
    root = tmp_path
    (root / "v2_OpenEnded_mscoco_test-dev2015_questions.json").write_text(json.dumps(qdoc))
    for q in qdoc["questions"]:
        path = Path(root / "test2015" / f"COCO_test2015_{q['image_id']:012d}.jpg")
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(image_bytes("JPEG"))
    assert [r.answers for r in read_vqa(root, "test-dev")] == [[]] * 4


def test_vqa_non_utf8_file_is_a_data_error(tmp_path):
    qpath, _ = write_vqa(tmp_path)
    qpath.write_bytes(qpath.read_bytes().replace(b"colour", b"col\xffur"))
    with pytest.raises(DataError, match=r"questions\.json, line 1: bytes that are not UTF-8"):
        read_vqa(tmp_path, "val")


def test_vqa_missing_image_is_counted_with_skip(tmp_path):
    write_vqa(tmp_path)
    (tmp_path / "val2014" / "COCO_val2014_000000000007.jpg").unlink()
    with pytest.raises(
        DataError,
        match=r"COCO_val2014_000000000007\.jpg \(named by .*questions\.json, "
        r"questions\[2\] \(question 7000\)\)",
    ):
        read_vqa(tmp_path, "val")
    skip = SkipCounter()
    assert [r.image_id for r in read_vqa(tmp_path, "val", skip=skip)] == [42, 42]
    assert skip.counts == {"missing image": 2}
