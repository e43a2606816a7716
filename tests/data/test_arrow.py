"""ViLT arrow tables: same records as the raw readers; official tables without our extra columns."""

import pickle

import pyarrow as pa
import pytest

from sclbench.data.formats import (
    AnswerVocab,
    read_caption_arrow,
    read_karpathy,
    read_nlvr2,
    read_nlvr2_arrow,
    read_vqa,
    read_vqa_arrow,
)
from sclbench.data.formats.arrow import write_table
from sclbench.errors import DataError


@pytest.mark.parametrize(
    "dataset,splits", [("f30k", ("train", "val", "test")), ("coco", ("train", "restval", "val", "test"))]
)
def test_caption_tables_equal_raw(synth_root, dataset, splits):
    for split in splits:
        raw = read_karpathy(synth_root / dataset, dataset, split, coco_train_with_restval=False)
        assert read_caption_arrow(synth_root / "arrow", dataset, split) == raw


def test_vqa_and_nlvr2_tables_equal_raw(synth_root):
    for split in ("train", "val", "test-dev", "test"):
        assert read_vqa_arrow(synth_root / "arrow", split) == read_vqa(synth_root / "vqa", split)
    for split in ("train", "dev", "test1"):
        assert read_nlvr2_arrow(synth_root / "arrow", split) == read_nlvr2(synth_root / "nlvr2", split)


def test_arrow_is_ipc_file_and_records_pickle_small(synth_root):
    path = synth_root / "arrow" / "f30k_caption_karpathy_train.arrow"
    with pa.memory_map(str(path)) as source:
        assert pa.ipc.open_file(source).read_all().num_rows > 0
    record = read_caption_arrow(synth_root / "arrow", "f30k", "train")[0]
    assert len(pickle.dumps(record.image)) < 400  # a reference to the cell, not the image
    assert pickle.loads(pickle.dumps(record)).image.open().size == (64, 64)


def test_official_tables_without_extra_columns(synth_root, tmp_path):
    for name, extras in (
        ("vqav2_val", ("raw_answers", "answer_types", "question_types", "multiple_choice_answers")),
        ("nlvr2_dev", ("identifiers",)),
    ):
        table = pa.ipc.open_file(pa.memory_map(str(synth_root / "arrow" / f"{name}.arrow"))).read_all()
        write_table(
            {c: table.column(c).to_pylist() for c in table.column_names if c not in extras}, tmp_path / f"{name}.arrow"
        )
    vocab = AnswerVocab.load(synth_root / "vqa" / "answer_vocab.json")
    raw = read_vqa(synth_root / "vqa", "val")
    official = read_vqa_arrow(tmp_path, "val")
    assert [r.question_id for r in official] == [r.question_id for r in raw]
    assert all(o.answers == [] for o in official)
    assert all(vocab.target(o).tolist() == vocab.target(r).tolist() for o, r in zip(official, raw))
    nl = read_nlvr2_arrow(tmp_path, "dev")
    assert [r.pair_id for r in nl] == [r.pair_id for r in read_nlvr2(synth_root / "nlvr2", "dev")]


def test_missing_table(tmp_path):
    with pytest.raises(DataError, match="vqav2_train.arrow not found"):
        read_vqa_arrow(tmp_path, "train")
    (tmp_path / "vqav2_train.arrow").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not an Arrow IPC file"):
        read_vqa_arrow(tmp_path, "train")


@pytest.mark.parametrize(
    "family,dataset,split,raw",
    [
        ("image_retrieval", "f30k", "test", lambda r: read_karpathy(r / "f30k", "f30k", "test")),
        ("image_retrieval", "coco", "train", lambda r: read_karpathy(r / "coco", "coco", "train")),  # + restval
        ("vqa", None, "val", lambda r: read_vqa(r / "vqa", "val")),
        ("nlvr2", None, "dev", lambda r: read_nlvr2(r / "nlvr2", "dev")),
    ],
)
def test_family_dispatch_gives_the_raw_readers_records(synth_root, family, dataset, split, raw):
    """`data.format: arrow` cards read through read_family_arrow: the same records as the raw layout."""
    from sclbench.data.formats.arrow import read_family_arrow

    records = read_family_arrow(family, synth_root / "arrow", split, dataset=dataset)
    expected = raw(synth_root)
    assert records == expected and records
    assert type(records[0]) is type(expected[0])
