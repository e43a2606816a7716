"""Flickr30K and COCO with the Karpathy splits (`dataset_flickr30k.json`, `dataset_coco.json`).

Layout (as published, and as the ViLT writers expect it):
  f30k:  <root>/karpathy/dataset_flickr30k.json, <root>/flickr30k-images/<filename>
  coco:  <root>/karpathy/dataset_coco.json, <root>/<filepath>/<filename> (train2014/, val2014/)
  other: <root>/karpathy/dataset_<dataset>.json (the name a card's `data.dataset` gives), images under
         each entry's `filepath` (default flickr30k-images/): a seventh Karpathy benchmark is a card only.
The JSON may also sit directly in <root>. `image_id` is the file name, as in the arrow tables.

Captions are de-duplicated per image by default (`dedup_captions`), as the official caption datasets
do in every split (`BaseDataset(remove_duplicate=True)`).
"""

from __future__ import annotations

from pathlib import Path

from sclbench.data.formats._io import (
    dedup,
    expect_dict,
    field,
    find_file,
    load_json,
    media_ok,
    not_empty,
    str_list,
    unique,
)
from sclbench.data.records import CaptionRecord, ImageSource, SkipCounter
from sclbench.errors import DataError

SPLITS = ("train", "val", "test", "restval")
JSON_NAMES = {"f30k": "dataset_flickr30k.json", "coco": "dataset_coco.json"}
F30K_IMAGE_DIR = "flickr30k-images"


def json_name(dataset: str) -> str:
    """The split file of a dataset: the published name for Flickr30K and COCO, else `dataset_<name>.json`."""
    return JSON_NAMES.get(dataset, f"dataset_{dataset}.json")


def annotation_path(root: Path, dataset: str) -> Path:
    name = json_name(dataset)
    return find_file(root, [f"karpathy/{name}", name], f"Karpathy split file {name}")


def read_karpathy(
    root: str | Path,
    dataset: str,
    split: str,
    *,
    coco_train_with_restval: bool = True,
    dedup_captions: bool = True,
    skip: SkipCounter | None = None,
) -> list[CaptionRecord]:
    """Records of one Karpathy split, in file order.

    `dataset` is "f30k", "coco" or another name (its file `dataset_<name>.json`). For COCO, split "train"
    includes `restval` by default (113,287 images, the setting of ViLT/METER/SCL); pass
    `coco_train_with_restval=False` for the bare 82,783.
    Validated over the whole file (not only the split asked for): each entry's split is a Karpathy
    split, file names are unique, every image has at least one caption, COCO entries name their folder.
    """
    if not dataset or "/" in dataset or "\\" in dataset:
        raise DataError(f"Karpathy dataset {dataset!r}: expected a name such as f30k or coco (data.dataset)")
    if split not in SPLITS:
        raise DataError(f"unknown Karpathy split {split!r}; use one of {SPLITS}")
    root = Path(root)
    path = annotation_path(root, dataset)
    wanted = {split}
    if dataset == "coco" and split == "train" and coco_train_with_restval:
        wanted.add("restval")
    doc = load_json(path)
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected an object with an 'images' list (Karpathy format)")
    images = not_empty(field(doc, "images", path, "top level", list), path, "images")
    records, seen = [], {}
    for i, entry in enumerate(images):
        where = f"images[{i}]"
        expect_dict(entry, path, where)
        entry_split = field(entry, "split", path, where, str)
        if entry_split not in SPLITS:
            raise DataError(f"{path}, {where}: split {entry_split!r} is not a Karpathy split {SPLITS}")
        filename = field(entry, "filename", path, where, str)
        # COCO's images live in train2014/ or val2014/: the folder is part of the format there.
        folder = (
            field(entry, "filepath", path, where, str) if dataset == "coco" else entry.get("filepath") or F30K_IMAGE_DIR
        )
        if not isinstance(folder, str):
            raise DataError(f"{path}, {where}: field 'filepath' should be str")
        unique(f"{folder}/{filename}", seen, path, where, "image")
        sentences = field(entry, "sentences", path, where, list)
        captions = [field(sent, "raw", path, f"{where}.sentences[{j}]", str) for j, sent in enumerate(sentences)]
        str_list(captions, path, where, "sentences")
        if entry_split not in wanted:
            continue
        image_path = root / folder / filename
        if not media_ok(image_path, skip, listed_in=f"{path}, {where}"):
            continue
        records.append(
            CaptionRecord(
                ImageSource(path=image_path), filename, dedup(captions) if dedup_captions else captions, entry_split
            )
        )
    return records
