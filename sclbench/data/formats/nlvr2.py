"""NLVR2: JSON-lines statements about image pairs.

Layout (lil-lab/nlvr release): <root>/data/{train,dev,test1}.json (also accepted: <root>/nlvr2/data/
or <root>/); images <root>/images/train/<directory>/<pair>-img{0,1}.png, <root>/dev/<pair>-img0.png,
<root>/test1/<pair>-img0.png, where <pair> is the identifier without its last `-k`.

Validation: every line is a JSON object with a string `identifier` of the form
<split>-<n>-<k>-<s> (at least one '-': the pair id is what precedes the last one), unique within
the file; a string `sentence`; a `label` "True"/"False" (the published train, dev and test1 files
all carry one on every line, so a line without it is an error, never an unlabelled statement that
training would ignore and evaluation would drop); `directory` on train lines (the image folder).
Splits whose published file has no labels belong in UNLABELLED_SPLITS (none today: the hidden
NLVR2 test set, test2/test-U, was never released).
"""

from __future__ import annotations

from pathlib import Path

from sclbench.data.formats._io import field, find_file, media_ok, read_jsonl
from sclbench.data.records import ImageSource, NLVR2Record, SkipCounter
from sclbench.errors import DataError

SPLITS = ("train", "dev", "test1")
UNLABELLED_SPLITS: tuple[str, ...] = ()


def annotation_file(root: Path, split: str) -> Path:
    return find_file(root, [f"data/{split}.json", f"nlvr2/data/{split}.json", f"{split}.json"], f"NLVR2 {split}.json")


def pair_paths(root: Path, split: str, pair_id: str, directory: int | str | None) -> tuple[Path, Path]:
    if split == "train":
        folder = Path(root) / "images" / "train" / str(directory)
    else:
        folder = Path(root) / split
    return folder / f"{pair_id}-img0.png", folder / f"{pair_id}-img1.png"


def parse_label(value, path: Path, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise DataError(f"{path}, {where}: label should be 'True' or 'False', got {value!r}")


def read_nlvr2(root: str | Path, split: str, *, skip: SkipCounter | None = None) -> list[NLVR2Record]:
    """One record per statement (line), in file order."""
    if split not in SPLITS:
        raise DataError(f"unknown NLVR2 split {split!r}; use one of {SPLITS}")
    root = Path(root)
    path = annotation_file(root, split)
    records = []
    seen: dict[str, int] = {}
    for lineno, obj in read_jsonl(path):
        where = f"line {lineno}"
        identifier = field(obj, "identifier", path, where, str)
        if "-" not in identifier.strip("-"):
            raise DataError(
                f"{path}, {where}: identifier {identifier!r} is not of the form "
                "<split>-<n>-<k>-<s>; the file is not NLVR2's"
            )
        if identifier in seen:
            raise DataError(
                f"{path}, {where}: identifier {identifier!r} already used on line "
                f"{seen[identifier]}; the file is damaged (re-download it)"
            )
        seen[identifier] = lineno
        sentence = field(obj, "sentence", path, where, str)
        if split in UNLABELLED_SPLITS:
            label = None
        elif "label" not in obj:  # the published files label every line: a missing one is damage
            raise DataError(
                f"{path}, {where}: missing field 'label'; every statement of the published "
                f"NLVR2 {split} file is labelled 'True'/'False', so the file is damaged or "
                "not NLVR2's (re-download it)"
            )
        else:
            label = parse_label(obj["label"], path, where)
        pair_id = identifier.rsplit("-", 1)[0]
        directory = field(obj, "directory", path, where, (int, str)) if split == "train" else None
        img0, img1 = pair_paths(root, split, pair_id, directory)
        listed_in = f"{path}, {where}"
        if not (media_ok(img0, skip, listed_in=listed_in) and media_ok(img1, skip, listed_in=listed_in)):
            continue
        records.append(NLVR2Record(identifier, sentence, label, ImageSource(path=img0), ImageSource(path=img1), split))
    return records
