"""COCO's own caption files through pycocotools: the same records as the Karpathy reader for the
same images; Karpathy-only splits refused with the file to fetch."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from retrieval_builders import build_coco_captions

from sclbench.data.formats import coco_captions, karpathy
from sclbench.errors import DataError


def write_coco_files_from_karpathy(root, doc):
    """COCO's layout of the same images: one file per folder, ids numeric, captions interleaved."""
    by_folder = defaultdict(lambda: {"images": [], "annotations": []})
    for k, entry in enumerate(doc["images"]):
        part = by_folder[entry["filepath"]]
        part["images"].append({"id": k, "file_name": entry["filename"]})
        for j, sent in enumerate(entry["sentences"]):
            part["annotations"].append({"id": 1000 * j + k, "image_id": k, "caption": sent["raw"]})
    for part in by_folder.values():  # COCO's files list captions by caption id, not grouped by image
        part["annotations"].sort(key=lambda a: a["id"])
    (root / "annotations").mkdir(exist_ok=True)
    for folder, part in by_folder.items():
        (root / "annotations" / f"captions_{folder}.json").write_text(json.dumps(part))
    return sorted(by_folder)


def test_same_records_as_karpathy_for_the_same_images(synth_root, tmp_path):
    root = synth_root / "coco"
    doc = json.loads((root / "karpathy/dataset_coco.json").read_text())
    work = tmp_path / "coco"
    work.mkdir()
    for folder in ("train2014", "val2014"):
        (work / folder).symlink_to(root / folder)
    folders = write_coco_files_from_karpathy(work, doc)
    assert folders == ["train2014", "val2014"]
    every = [r for s in karpathy.SPLITS for r in karpathy.read_karpathy(root, "coco", s, coco_train_with_restval=False)]
    expected = {r.image_id: (r.captions, r.image.digest()) for r in every}
    got = [r for s in ("train", "val") for r in coco_captions.read_coco_captions(work, s)]
    assert {r.image_id: (r.captions, r.image.digest()) for r in got} == expected
    assert len(got) == len(doc["images"])
    assert {r.split for r in got} == {"train2014", "val2014"}


@pytest.mark.parametrize("split", ["test", "restval"])
def test_karpathy_only_splits_name_the_karpathy_file(tmp_path, split):
    build_coco_captions(tmp_path)
    with pytest.raises(DataError, match="Karpathy's partition of val2014.*dataset_coco.json"):
        coco_captions.read_coco_captions(tmp_path, split)


def test_missing_file_and_silence(tmp_path, capsys):
    with pytest.raises(DataError, match=r"captions_train2014.json not found; looked for .*annotations"):
        coco_captions.read_coco_captions(tmp_path, "train")
    build_coco_captions(tmp_path)
    assert coco_captions.read_coco_captions(tmp_path, "train2014")
    assert capsys.readouterr().out == ""  # pycocotools' progress lines do not reach the user
