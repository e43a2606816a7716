"""Each format reader on the synthetic data in its real layout, including the error cases."""

import json
import shutil

import pytest

from sclbench.data.formats import (
    AnswerVocab,
    apply_minival,
    normalize_answer,
    read_cc3m,
    read_karpathy,
    read_lsmdc,
    read_msrvtt,
    read_nlvr2,
    read_sbu,
    read_vg,
    read_vqa,
    read_webvid,
    split_minival,
    vote_score,
)
from sclbench.data.formats.lsmdc import FILES as LSMDC_FILES
from sclbench.data.records import SkipCounter
from sclbench.errors import DataError


def test_karpathy_splits(synth_root):
    doc = json.loads((synth_root / "coco/karpathy/dataset_coco.json").read_text())
    by_split = {s: sum(e["split"] == s for e in doc["images"]) for s in ("train", "restval", "val", "test")}
    train = read_karpathy(synth_root / "coco", "coco", "train")
    assert len(train) == by_split["train"] + by_split["restval"]
    bare = read_karpathy(synth_root / "coco", "coco", "train", coco_train_with_restval=False)
    assert len(bare) == by_split["train"]
    f30k = read_karpathy(synth_root / "f30k", "f30k", "test")
    assert f30k and all(len(r.captions) == 5 and r.split == "test" for r in f30k)
    assert f30k[0].image.open().size == (64, 64)
    assert f30k[0].image_id.endswith(".jpg")


def test_missing_image_errors_or_is_counted(synth_root, tmp_path):
    root = tmp_path / "f30k"
    shutil.copytree(synth_root / "f30k", root)
    victim = read_karpathy(root, "f30k", "val")[0].image.path
    victim.unlink()
    with pytest.raises(DataError, match=str(victim)):
        read_karpathy(root, "f30k", "val")
    skip = SkipCounter()
    records = read_karpathy(root, "f30k", "val", skip=skip)
    assert skip.total == 1 and skip.examples["missing image"] == [str(victim)]
    assert victim not in [r.image.path for r in records]


def test_corrupt_image_names_path(synth_root, tmp_path):
    root = tmp_path / "f30k"
    shutil.copytree(synth_root / "f30k", root)
    record = read_karpathy(root, "f30k", "test")[0]
    record.image.path.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="corrupt image .*" + record.image.path.name):
        read_karpathy(root, "f30k", "test")[0].image.open()


def test_malformed_json_names_file_and_line(synth_root, tmp_path):
    root = tmp_path / "f30k"
    shutil.copytree(synth_root / "f30k", root)
    path = root / "karpathy/dataset_flickr30k.json"
    path.write_text('{"images": [\n{"split": "train",,}\n]}')
    with pytest.raises(DataError, match=r"dataset_flickr30k.json, line 2"):
        read_karpathy(root, "f30k", "train")
    path.write_text('{"images": [{"split": "train", "sentences": []}]}')
    with pytest.raises(DataError, match=r"images\[0\]: missing field 'filename'"):
        read_karpathy(root, "f30k", "train")


def test_vqa_reader_vocab_scores(synth_root):
    train, val = read_vqa(synth_root / "vqa", "train"), read_vqa(synth_root / "vqa", "val")
    assert all(len(r.answers) == 10 and r.answer_type in ("yes/no", "number", "other") for r in train)
    for split in ("test-dev", "test"):
        test = read_vqa(synth_root / "vqa", split)
        assert test and all(r.answers == [] and r.multiple_choice_answer == "" for r in test)
    assert len(read_vqa(synth_root / "vqa", "test-dev")) < len(read_vqa(synth_root / "vqa", "test"))
    vocab = AnswerVocab.build(train + val, min_count=3)
    assert "yes" in vocab.index and "one" not in vocab.index  # normalised: "one" -> "1"
    record = next(r for r in train if r.answers.count(r.answers[0]) == 10)
    target = vocab.target(record)
    if record.answers[0] in vocab.index:
        assert target[vocab.index[record.answers[0]]] == 1.0 and target.sum() == 1.0
    assert [vote_score(n) for n in range(6)] == [0.0, 0.3, 0.6, 0.9, 1.0, 1.0]


def test_vqa_soft_scores_count_raw_votes():
    from sclbench.data.records import ImageSource, VQARecord

    r = VQARecord(
        1, ImageSource(data=b"x"), 1, "q?", ["2"] * 3 + ["two"] + ["3"] * 6, "number", "how many", "3", "train"
    )
    assert AnswerVocab(["3", "2"]).scores(r) == {"2": 0.9, "3": 1.0}  # "two" is a raw vote for "two" only


@pytest.mark.parametrize(
    "raw,norm",
    [
        ("Two", "2"),
        ("the dog.", "dog"),
        ("dont", "don't"),
        ("1,000", "1000"),
        ("red-white", "red white"),
        ("yes!", "yes"),
        ("1.5", "1.5"),
        ("A cat (big)", "cat big"),
        ("couldnt've", "couldn't've"),
        ("couldntve", "couldntve"),
    ],
)  # only the official table's spellings
def test_normalize_answer(raw, norm):
    assert normalize_answer(raw) == norm


def test_minival_seeded_and_recorded(synth_root):
    val = read_vqa(synth_root / "vqa", "val")
    rest, mini, manifest = split_minival(val, num_images=2, seed=1)
    assert len(manifest["image_ids"]) == 2 and {r.image_id for r in mini} == set(manifest["image_ids"])
    assert not {r.question_id for r in rest} & {r.question_id for r in mini}
    assert apply_minival(val, json.loads(json.dumps(manifest))) == (rest, mini)
    assert split_minival(val, 2, seed=1)[2] == manifest
    with pytest.raises(DataError, match="minival"):
        split_minival(val, num_images=10_000)


def test_nlvr2_reader_and_errors(synth_root, tmp_path):
    train = read_nlvr2(synth_root / "nlvr2", "train")
    labels = [r.label for r in train]
    assert labels.count(True) == labels.count(False)  # balanced by construction
    assert all(r.image_0.path.name == f"{r.pair_id}-img0.png" for r in train)
    assert "/images/train/" in str(train[0].image_0.path)
    root = tmp_path / "nlvr2"
    shutil.copytree(synth_root / "nlvr2", root)
    path = root / "data/dev.json"
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:-3]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"dev.json, line 3"):
        read_nlvr2(root, "dev")
    img = read_nlvr2(root, "test1")[0].image_1.path
    img.unlink()
    with pytest.raises(DataError, match=str(img)):
        read_nlvr2(root, "test1")
    skip = SkipCounter()
    assert len(read_nlvr2(root, "test1", skip=skip)) == len(read_nlvr2(synth_root / "nlvr2", "test1")) - 2
    assert skip.counts == {"missing image": 2}  # both statements about that pair


def test_msrvtt_json_and_csv_layouts_agree(synth_root):
    for split in ("train", "test"):
        a = read_msrvtt(synth_root / "msrvtt", split, layout="json")
        b = read_msrvtt(synth_root / "msrvtt", split, layout="csv")
        assert a == b and a
    test = read_msrvtt(synth_root / "msrvtt", "test")
    assert all(len(r.captions) == 1 and r.video.suffix == ".mp4" for r in test)
    everything = read_msrvtt(synth_root / "msrvtt", "train", captions="all")
    assert all(len(r.captions) == 5 for r in everything)
    first = read_msrvtt(synth_root / "msrvtt", "train")  # the official one caption per video
    assert [r.captions for r in first] == [r.captions[:1] for r in everything]
    with pytest.raises(DataError, match="MSRVTT"):
        read_msrvtt(synth_root / "f30k", "train")


def test_lsmdc_media_and_errors(synth_root, tmp_path):
    frames = read_lsmdc(synth_root / "lsmdc", "test")
    videos = read_lsmdc(synth_root / "lsmdc", "test", media="video")
    assert [r.video_id for r in frames] == [r.video_id for r in videos]
    assert all(r.video.is_dir() for r in frames) and all(r.video.suffix == ".mp4" for r in videos)
    first = frames[0].video_id
    assert read_lsmdc(synth_root / "lsmdc", "test", exclude=(first,))[0].video_id != first
    root = tmp_path / "lsmdc"
    shutil.copytree(synth_root / "lsmdc", root)
    path = root / LSMDC_FILES["val"]
    path.write_text(path.read_text() + "broken line without tabs\n")
    n = len(path.read_text().splitlines())
    with pytest.raises(DataError, match=rf"LSMDC16_annos_val.csv, line {n}"):
        read_lsmdc(root, "val")


def test_pretraining_corpora(synth_root):
    pre = synth_root / "pretrain"
    vg = read_vg(pre / "vg")
    assert vg and all(r.captions and r.image.path.exists() for r in vg)
    assert read_sbu(pre / "sbu") and read_cc3m(pre / "cc3m") and read_cc3m(pre / "cc3m", "val")
    tsv = read_webvid(pre / "webvid/webvid_train.tsv", pre / "webvid/videos")
    official = read_webvid(pre / "webvid/results_train.csv", pre / "webvid/videos")
    assert tsv == official and len(tsv) > 0
    with pytest.raises(DataError, match="annot.json"):
        read_sbu(pre / "vg")
