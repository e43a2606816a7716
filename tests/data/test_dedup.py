"""Caption de-duplication per image, as the official caption datasets do (`remove_duplicate=True`:
`list(set(texts))` per image, every split): same set of captions, each once; here in file order."""

from __future__ import annotations

import json

from retrieval_builders import build_arrow, build_coco_captions, build_karpathy, build_vg, karpathy_doc

from sclbench.data.formats import arrow, coco_captions, karpathy, pretrain


def official_remove_duplicate(texts: list[str]) -> set[str]:
    return set(texts)  # the official result, up to its hash-seed-dependent order


def test_karpathy_dedup_every_split_in_file_order(tmp_path):
    doc = karpathy_doc("f30k")
    for entry in doc["images"]:
        raws = [s["raw"] for s in entry["sentences"]]
        entry["sentences"] = [{"raw": r} for r in (raws[1], raws[0], raws[1], raws[1])]
    build_karpathy(tmp_path, "f30k", doc)
    for split, entry in zip(("train", "val", "test"), doc["images"]):
        raws = [s["raw"] for s in entry["sentences"]]
        (record,) = karpathy.read_karpathy(tmp_path, "f30k", split)
        assert record.captions == [raws[0], raws[1]]  # first appearances, in order
        assert set(record.captions) == official_remove_duplicate(raws) and len(record.captions) == 2
        (kept,) = karpathy.read_karpathy(tmp_path, "f30k", split, dedup_captions=False)
        assert kept.captions == raws  # the named option: every caption, as the file has them


def test_vg_phrases_dedup_per_image_not_across_images(tmp_path):
    build_vg(tmp_path)  # each image repeats "thing 0"; both images share phrases
    records = pretrain.read_vg(tmp_path)
    assert [r.captions for r in records] == [["thing 0", "thing 1", "thing 2"]] * 2
    assert [len(r.captions) for r in pretrain.read_vg(tmp_path, dedup_captions=False)] == [4, 4]


def test_arrow_and_coco_files_dedup_like_the_raw_reader(tmp_path):
    build_arrow(tmp_path / "arrow")  # row 0 holds "a cat" twice
    rows = arrow.read_caption_arrow(tmp_path / "arrow", "f30k", "test")
    assert rows[0].captions == ["a cat", "a dog"]
    assert arrow.read_caption_arrow(tmp_path / "arrow", "f30k", "test", dedup_captions=False)[0].captions == [
        "a cat",
        "a cat",
        "a dog",
    ]
    build_coco_captions(tmp_path / "coco")  # image 10 has "caption 0 of 0" twice
    first = coco_captions.read_coco_captions(tmp_path / "coco", "val2014")[0]
    assert first.captions == ["caption 0 of 0", "caption 1 of 0"]
    assert len(coco_captions.read_coco_captions(tmp_path / "coco", "val2014", dedup_captions=False)[0].captions) == 3


def test_cards_state_the_protocols():
    from importlib import resources

    import yaml

    cards = resources.files("sclbench.assets") / "tasks"
    for name in ("f30k", "coco"):
        assert yaml.safe_load((cards / f"{name}.yaml").read_text())["data"]["dedup_captions"] is True
    assert yaml.safe_load((cards / "msrvtt.yaml").read_text())["data"]["captions"] == "first"
    json.dumps(karpathy_doc("coco"))  # the builders' documents stay JSON
