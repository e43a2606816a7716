"""One file in the published format per defect class, for the caption/video readers and the arrow
tables: each is one DataError naming the file, the line or entry, and the field."""

from __future__ import annotations

import json
import pickle
import re

import pytest
from retrieval_builders import (
    build_arrow,
    build_cc3m_tsv,
    build_coco_captions,
    build_karpathy,
    build_lsmdc,
    build_msrvtt_csv,
    build_msrvtt_json,
    build_sbu,
    build_vg,
    build_webvid,
    caption_columns,
    karpathy_doc,
    nlvr2_columns,
    vqa_columns,
)

from sclbench.data.formats import arrow, coco_captions, karpathy, lsmdc, msrvtt, pretrain
from sclbench.errors import ConfigError, DataError


def raises(match: str):
    return pytest.raises(DataError, match=match)


# ---- MSRVTT: the case and its relatives ---------------------------------------------------
def test_msrvtt_listed_video_without_caption_names_list_line_and_caption_file(tmp_path):
    case = build_msrvtt_json(tmp_path)
    caps = case.files[0]
    doc = json.loads(caps.read_text())
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] != "video1"]
    caps.write_text(json.dumps(doc))
    with raises(r"train_list_jsfusion.txt, line 2: video video1 has no caption in .*MSR_VTT.json"):
        msrvtt.read_msrvtt(tmp_path, "train", layout="json")


def test_msrvtt_csv_listed_video_without_caption(tmp_path):
    build_msrvtt_csv(tmp_path)
    path = tmp_path / "msrvtt_data/MSRVTT_train.9k.csv"
    path.write_text(path.read_text() + "video77\n")
    with raises(r"MSRVTT_train.9k.csv, line 5: video video77 has no caption in .*MSRVTT_data.json"):
        msrvtt.read_msrvtt(tmp_path, "train", layout="csv")


def test_msrvtt_duplicated_video_in_split_list(tmp_path):
    build_msrvtt_json(tmp_path)
    path = tmp_path / msrvtt.LISTS / "val_list_jsfusion.txt"
    path.write_text("video3\nvideo4\nvideo3\n")
    with raises(r"val_list_jsfusion.txt, line 3: duplicated video id 'video3' \(first at line 1\)"):
        msrvtt.read_msrvtt(tmp_path, "test", layout="json")


@pytest.mark.parametrize(
    "index,match",
    [
        ({"video3": 1}, r"val_list_jsfusion.txt, line 2: test video video4 has no integer caption index"),
        ({"video3": 1, "video4": 0, "video9": 0}, r"caption index for video\(s\) not in .*val_list_jsfusion.txt"),
        ({"video3": 1, "video4": "2"}, r"line 2: test video video4 has no integer caption index"),
        ({"video3": 1, "video4": 7}, r"caption index 7 of test video video4 .* outside its 3 captions"),
        (["video3"], r"expected a mapping video id -> caption index, got list"),
    ],
)
def test_msrvtt_caption_index_joined_both_ways(tmp_path, index, match):
    build_msrvtt_json(tmp_path)
    (tmp_path / msrvtt.LISTS / "jsfusion_val_caption_idx.pkl").write_bytes(pickle.dumps(index))
    with raises(match):
        msrvtt.read_msrvtt(tmp_path, "test", layout="json")


def test_msrvtt_caption_index_that_runs_code_is_refused(tmp_path):
    build_msrvtt_json(tmp_path)
    import os

    (tmp_path / msrvtt.LISTS / "jsfusion_val_caption_idx.pkl").write_bytes(pickle.dumps(os.getcwd))
    with raises(r"jsfusion_val_caption_idx.pkl: .*refused"):
        msrvtt.read_msrvtt(tmp_path, "test", layout="json")


def test_msrvtt_caption_entry_missing_field_and_wrong_top_level(tmp_path):
    case = build_msrvtt_json(tmp_path)
    doc = json.loads(case.files[0].read_text())
    del doc["annotations"][4]["caption"]
    case.files[0].write_text(json.dumps(doc))
    with raises(r"MSR_VTT.json, annotations\[4\]: missing field 'caption'"):
        msrvtt.read_msrvtt(tmp_path, "train", layout="json")
    case.files[0].write_text("[]")
    with raises(r"MSR_VTT.json, top level: expected an object, got list"):
        msrvtt.read_msrvtt(tmp_path, "train", layout="json")


def test_msrvtt_csv_malformed_and_missing_column(tmp_path):
    build_msrvtt_csv(tmp_path)
    path = tmp_path / "msrvtt_data/MSRVTT_JSFUSION_test.csv"
    path.write_text(',key,vid_key,video_id,sentence\n0,r,m,video3,"never closed\n')
    with raises(r"MSRVTT_JSFUSION_test.csv: malformed CSV"):
        msrvtt.read_msrvtt(tmp_path, "test", layout="csv")
    path.write_text("key,video\n0,video3\n")
    with raises(r"MSRVTT_JSFUSION_test.csv: header lacks column\(s\) \['video_id', 'sentence'\]"):
        msrvtt.read_msrvtt(tmp_path, "test", layout="csv")
    path.write_text(",key,vid_key,video_id,sentence\n0,r,m,video3,\n")
    with raises(r"MSRVTT_JSFUSION_test.csv, line 2: empty value in column\(s\) \['sentence'\]"):
        msrvtt.read_msrvtt(tmp_path, "test", layout="csv")


def test_msrvtt_missing_video_names_the_list_line(tmp_path):
    build_msrvtt_json(tmp_path)
    (tmp_path / "videos/all/video2.mp4").unlink()
    with raises(r"missing video .*video2.mp4 \(named by .*train_list_jsfusion.txt, line 3\)"):
        msrvtt.read_msrvtt(tmp_path, "train", layout="json")


def test_msrvtt_caption_protocol_is_a_checked_option(tmp_path):
    build_msrvtt_json(tmp_path)
    first = msrvtt.read_msrvtt(tmp_path, "train", layout="json")
    every = msrvtt.read_msrvtt(tmp_path, "train", layout="json", captions="all")
    assert [r.captions for r in first] == [[f"video{i} caption 0"] for i in range(3)]
    assert [len(r.captions) for r in every] == [3, 3, 3]
    assert msrvtt.caption_protocol()["train_captions"] == "first" == msrvtt.DEFAULT_CAPTIONS
    with raises("MSRVTT captions must be one of"):
        msrvtt.read_msrvtt(tmp_path, "train", captions="random")


# ---- Karpathy -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dataset,edit,match",
    [
        ("f30k", lambda d: d["images"][1].update(split="holdout"), r"images\[1\]: split 'holdout' is not a Karpathy"),
        (
            "f30k",
            lambda d: d["images"][2].update(filename="img0.jpg"),
            r"images\[2\]: duplicated image .*img0.jpg.* \(first at images\[0\]\)",
        ),
        ("f30k", lambda d: d["images"][0].update(sentences=[]), r"images\[0\]: no sentences"),
        (
            "f30k",
            lambda d: d["images"][0]["sentences"][1].update(raw=5),
            r"images\[0\].sentences\[1\]: field 'raw' should be str, got int",
        ),
        ("f30k", lambda d: d["images"].append("img9.jpg"), r"images\[3\]: expected an object, got str"),
        ("coco", lambda d: d["images"][3].pop("filepath"), r"images\[3\]: missing field 'filepath'"),
    ],
)
def test_karpathy_defects(tmp_path, dataset, edit, match):
    doc = karpathy_doc(dataset)
    edit(doc)
    build_karpathy(tmp_path, dataset, doc)
    with raises(re.escape(karpathy.JSON_NAMES[dataset]) + ", " + match):
        karpathy.read_karpathy(tmp_path, dataset, "test")  # any split: the whole file is checked


def test_karpathy_non_utf8_names_the_line(tmp_path):
    case = build_karpathy(tmp_path, "f30k")
    data = case.files[0].read_bytes().replace(b"another caption 1", b"another \xff caption 1")
    case.files[0].write_bytes(data)
    line = data[: data.index(b"\xff")].count(b"\n") + 1
    with raises(rf"dataset_flickr30k.json, line {line}: bytes that are not UTF-8"):
        karpathy.read_karpathy(tmp_path, "f30k", "train")


# ---- LSMDC ----------------------------------------------------------------------------------------
def test_lsmdc_defects(tmp_path):
    build_lsmdc(tmp_path)
    path = tmp_path / lsmdc.FILES["val"]
    clip = path.read_text().split("\t")[0]
    path.write_bytes(path.read_bytes() + f"{clip}\t0\t1\t0\t1\t\n".encode())
    with raises(r"LSMDC16_annos_val.csv, line 2: expected 6 tab-separated fields .* empty clip id or sentence"):
        lsmdc.read_lsmdc(tmp_path, "val")
    path.write_bytes(f"{clip}\t0\t1\t0\t1\tA man \x80 walks.\n".encode("latin-1"))
    with raises(r"LSMDC16_annos_val.csv, line 1: bytes that are not UTF-8"):
        lsmdc.read_lsmdc(tmp_path, "val")
    path.write_text("\n\n")
    with raises(r"LSMDC16_annos_val.csv is empty"):
        lsmdc.read_lsmdc(tmp_path, "val")


def test_lsmdc_captions_first_is_the_official_default(tmp_path):
    build_lsmdc(tmp_path)
    assert [len(r.captions) for r in lsmdc.read_lsmdc(tmp_path, "train")] == [1, 1]
    assert [len(r.captions) for r in lsmdc.read_lsmdc(tmp_path, "train", captions="all")] == [2, 2]


# ---- pre-training corpora -------------------------------------------------------------------------
def test_vg_defects(tmp_path):
    case = build_vg(tmp_path)
    good = json.loads(case.files[0].read_text())
    for edit, match in [
        (lambda d: d[1].update(id=1), r"entry 1: duplicated image id '1' \(first at entry 0\)"),
        (lambda d: d[0].update(id=[1]), r"entry 0: field 'id' should be int/str, got list"),
        (lambda d: d[0]["regions"].__setitem__(0, "a phrase"), r"entry 0 region 0: expected an object, got str"),
        (lambda d: d[1]["regions"][2].pop("phrase"), r"entry 1 region 2: missing field 'phrase'"),
    ]:
        doc = json.loads(json.dumps(good))
        edit(doc)
        case.files[0].write_text(json.dumps(doc))
        with raises(r"region_descriptions.json, " + match):
            pretrain.read_vg(tmp_path)


def test_pair_corpora_defects(tmp_path):
    build_sbu(tmp_path / "sbu")
    (tmp_path / "sbu/annot.json").write_text("[]")
    with raises(r"annot.json: the list of \[image path, caption\] pairs is empty"):
        pretrain.read_sbu(tmp_path / "sbu")
    case = build_cc3m_tsv(tmp_path / "cc3m")
    case.files[0].write_text(case.files[0].read_text() + "a caption without image\n")
    with raises(r"train.tsv, line 4: expected caption<TAB>image path"):
        pretrain.read_cc3m(tmp_path / "cc3m")


def test_webvid_defects(tmp_path):
    case = build_webvid(tmp_path)
    official = case.files[0]
    official.write_text("videoid,page_dir,name\n0,000,\n")
    with raises(r"results_train.csv, line 2: empty value in column\(s\) \['name'\]"):
        pretrain.read_webvid(official, tmp_path / "videos")
    official.write_text("videoid,page_dir,name\n7,000,a clip\n")
    with raises(r"missing video .*7.mp4 \(named by .*results_train.csv, line 2\)"):
        pretrain.read_webvid(official, tmp_path / "videos")


# ---- COCO's own caption files ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "edit,match",
    [
        (
            lambda d: d["annotations"].append({"id": 5000, "image_id": 77, "caption": "x"}),
            r", annotations\[7\]: image_id 77 is not in 'images'",
        ),
        (
            lambda d: d["images"].append({"id": 99, "file_name": "lonely.jpg"}),
            r": 1 image\(s\) without any caption \(first: id 99",
        ),
        (lambda d: d["annotations"][1].update(id=100), r", annotations\[1\]: duplicated annotation id 100"),
        (lambda d: d["images"][0].pop("file_name"), r", images\[0\]: missing field 'file_name'"),
        (lambda d: d["annotations"][0].update(caption=None), r", annotations\[0\]: field 'caption' should be str"),
    ],
)
def test_coco_captions_defects(tmp_path, edit, match):
    case = build_coco_captions(tmp_path)
    doc = json.loads(case.files[1].read_text())
    edit(doc)
    case.files[1].write_text(json.dumps(doc))
    with raises(r"captions_val2014.json" + match):
        coco_captions.read_coco_captions(tmp_path, "val2014")


# ---- arrow tables -----------------------------------------------------------------------------------
def _write(tmp_path, name, cols):
    return arrow.write_table(cols, tmp_path / name)


def test_arrow_truncated_and_foreign_files(tmp_path):
    case = build_arrow(tmp_path)
    data = case.files[0].read_bytes()
    case.files[0].write_bytes(data[: len(data) // 2])
    with raises(r"f30k_caption_karpathy_test.arrow is not an Arrow IPC file or is damaged"):
        arrow.read_caption_arrow(tmp_path, "f30k", "test")


@pytest.mark.parametrize(
    "name,split,family,edit,match",
    [
        (
            "f30k_caption_karpathy_test.arrow",
            "test",
            "image_retrieval",
            lambda c: c.update(image_id=["0.jpg", "0.jpg"]),
            r"row 1: duplicated image id '0.jpg'",
        ),
        (
            "f30k_caption_karpathy_test.arrow",
            "test",
            "image_retrieval",
            lambda c: c.update(caption=[["a"], []]),
            r"column 'caption' row 1: no caption",
        ),
        (
            "f30k_caption_karpathy_test.arrow",
            "test",
            "image_retrieval",
            lambda c: c.update(caption=["a cat", "a car"]),
            r"column 'caption' should hold lists of captions, holds (large_)?string",
        ),
        (
            "vqav2_val.arrow",
            "val",
            "vqa",
            lambda c: c.update(question_id=[[50], [60]]),
            r"column 'question_id' row 0: 1 entries where the row has 2 questions",
        ),
        (
            "vqav2_val.arrow",
            "val",
            "vqa",
            lambda c: c.update(question_id=[[50, 51], [50]]),
            r"row 1: duplicated question_id 50",
        ),
        (
            "vqav2_val.arrow",
            "val",
            "vqa",
            lambda c: c.update(answer_scores=[[[1.0], [0.6]], [[1.0]]]),
            r"column 'answer_scores' row 0: question 51: 2 answers, 1 scores",
        ),
        (
            "nlvr2_dev.arrow",
            "dev",
            "nlvr2",
            lambda c: c.update(answers=[["True", "yes"], ["True"]]),
            r"column 'answers' row 0: expected 2 answers, each 'True', 'False' or null",
        ),
        (
            "nlvr2_dev.arrow",
            "dev",
            "nlvr2",
            lambda c: c.update(answers=[["True"], ["True"]]),
            r"column 'answers' row 0: expected 2 answers",
        ),
        (
            "nlvr2_dev.arrow",
            "dev",
            "nlvr2",
            lambda c: c.update(image_0=["l0", "l1"]),
            r"column 'image_0' should hold image bytes",
        ),
    ],
)
def test_arrow_cell_defects(tmp_path, name, split, family, edit, match):
    cols = {"f": caption_columns, "v": vqa_columns, "n": nlvr2_columns}[name[0]]()
    edit(cols)
    _write(tmp_path, name, cols)
    with raises(re.escape(name) + ".*" + match):
        arrow.read_family_arrow(family, tmp_path, split, dataset="f30k")


def test_arrow_dispatch_refuses_families_without_tables(tmp_path):
    with pytest.raises(ConfigError, match="data.format: arrow is available for"):
        arrow.read_family_arrow("video_retrieval", tmp_path, "test")
    with pytest.raises(ConfigError, match="needs data.dataset f30k or coco"):
        arrow.read_family_arrow("image_retrieval", tmp_path, "test", dataset="vg")
