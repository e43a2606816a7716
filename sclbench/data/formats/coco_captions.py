"""COCO's own caption files (`captions_train2014.json`, `captions_val2014.json`), read with pycocotools.

An alternative COCO source beside Karpathy's `dataset_coco.json`, for a user who has only what
cocodataset.org ships:
  <root>/annotations/captions_{train,val}2014.json (or directly in <root>), images <root>/{train,val}2014/.
Split mapping (what these files can honestly give):
  train2014 (alias train)  the 82,783 train2014 images, all their captions
  val2014   (alias val)    the 40,504 val2014 images: COCO's own validation set
There is no `test` and no `restval` here: the paper's COCO 5K test and the 113,287-image training set
are Karpathy's partition of val2014, which only `dataset_coco.json` records. Asking for them names that
file instead of guessing a partition; a number computed on val2014 is not comparable with the 5K table.
Records equal the Karpathy reader's for the same image: `image_id` is the file name, captions in file
order, de-duplicated per image by default (as the official datasets do).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from sclbench.data.formats._io import dedup, field, find_file, load_json, media_ok, not_empty, unique
from sclbench.data.records import CaptionRecord, ImageSource, SkipCounter
from sclbench.errors import DataError

SPLITS = {"train2014": "train2014", "train": "train2014", "val2014": "val2014", "val": "val2014"}
KARPATHY_ONLY = ("test", "restval")


def captions_file(root: Path, year_split: str) -> Path:
    name = f"captions_{year_split}.json"
    return find_file(root, [f"annotations/{name}", name], f"COCO caption file {name}")


def load_coco(path: Path):
    """A pycocotools COCO index over a validated caption file (its own loader would raise bare
    KeyError/AssertionError on a damaged file, and prints to stdout)."""
    from pycocotools.coco import COCO

    doc = load_json(path)
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected an object with 'images' and 'annotations' (COCO format)")
    images = not_empty(field(doc, "images", path, "top level", list), path, "images")
    annotations = field(doc, "annotations", path, "top level", list)
    image_ids: dict = {}
    for i, image in enumerate(images):
        where = f"images[{i}]"
        unique(field(image, "id", path, where, int), image_ids, path, where, "image id")
        field(image, "file_name", path, where, str)
    ann_ids: dict = {}
    captioned = set()
    for i, ann in enumerate(annotations):
        where = f"annotations[{i}]"
        unique(field(ann, "id", path, where, int), ann_ids, path, where, "annotation id")
        image_id = field(ann, "image_id", path, where, int)
        field(ann, "caption", path, where, str)
        if image_id not in image_ids:  # both directions: every caption has its image ...
            raise DataError(f"{path}, {where}: image_id {image_id} is not in 'images'")
        captioned.add(image_id)
    bare = [i for i in image_ids if i not in captioned]  # ... and every image has a caption
    if bare:
        raise DataError(
            f"{path}: {len(bare)} image(s) without any caption (first: id {bare[0]} at "
            f"{image_ids[bare[0]]}); is this a caption file (captions_*.json)?"
        )
    coco = COCO()
    coco.dataset = doc
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools reports its progress on stdout
        coco.createIndex()
    return coco


def read_coco_captions(
    root: str | Path, split: str, *, dedup_captions: bool = True, skip: SkipCounter | None = None
) -> list[CaptionRecord]:
    """One record per image of COCO's own train2014 or val2014 caption file, in file order."""
    if split in KARPATHY_ONLY:
        raise DataError(
            f"COCO split {split!r} is Karpathy's partition of val2014; COCO's own caption files "
            "cannot give it. Put karpathy/dataset_coco.json under the root (read_karpathy), or "
            f"use one of {sorted(SPLITS)} (val2014 is not the 5K test)"
        )
    if split not in SPLITS:
        raise DataError(f"unknown COCO caption split {split!r}; use one of {sorted(SPLITS)}")
    root = Path(root)
    year_split = SPLITS[split]
    path_json = captions_file(root, year_split)
    coco = load_coco(path_json)
    records = []
    for image_id in coco.getImgIds():
        info = coco.loadImgs(image_id)[0]
        captions = [ann["caption"] for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))]
        path = root / year_split / info["file_name"]
        if media_ok(path, skip, listed_in=f"{path_json}, image id {image_id}"):
            records.append(
                CaptionRecord(
                    ImageSource(path=path),
                    info["file_name"],
                    dedup(captions) if dedup_captions else captions,
                    year_split,
                )
            )
    return records
