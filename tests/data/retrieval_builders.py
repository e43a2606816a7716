"""Tiny valid datasets in the published layouts of the caption/video readers (one builder each).

Each builder writes a complete, valid dataset under a folder and returns a `Case`: the annotation
files worth damaging and a function that reads every split of it. Media files are empty (the
readers only check that they exist), except in arrow tables, whose cells hold a few bytes.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sclbench.data.formats import arrow, coco_captions, karpathy, lsmdc, msrvtt, pretrain


@dataclass
class Case:
    files: list[Path]  # annotation files, in the published format
    read: Callable[[], list]  # reads every split the layout has


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def _json(path: Path, doc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))  # one value per line: truncations and flips hit lines
    return path


def karpathy_doc(dataset: str) -> dict:
    splits = ["train", "val", "test"] + (["restval"] if dataset == "coco" else [])
    images = []
    for i, split in enumerate(splits):
        entry = {
            "filename": f"img{i}.jpg",
            "imgid": i,
            "split": split,
            "sentences": [
                {"raw": f"a photo number {i}", "tokens": ["a"]},
                {"raw": f"another caption {i}", "tokens": ["b"]},
            ],
        }
        if dataset == "coco":
            entry["filepath"] = "train2014" if split == "train" else "val2014"
        images.append(entry)
    return {"images": images, "dataset": dataset}


def build_karpathy(root: Path, dataset: str = "f30k", doc: dict | None = None) -> Case:
    doc = doc or karpathy_doc(dataset)
    for e in doc["images"]:
        folder = e.get("filepath", karpathy.F30K_IMAGE_DIR) if isinstance(e, dict) else "x"
        if isinstance(e, dict) and isinstance(e.get("filename"), str):
            _touch(root / str(folder) / e["filename"])
    path = _json(root / "karpathy" / karpathy.JSON_NAMES[dataset], doc)
    splits = ("train", "val", "test") + (("restval",) if dataset == "coco" else ())
    return Case([path], lambda: [r for s in splits for r in karpathy.read_karpathy(root, dataset, s)])


VIDEOS = [f"video{i}" for i in range(5)]  # 0-2 train, 3-4 test


def build_msrvtt_json(root: Path) -> Case:
    anns = [
        {"image_id": v, "caption": f"{v} caption {k}", "id": i * 3 + k} for i, v in enumerate(VIDEOS) for k in range(3)
    ]
    caps = _json(root / "annotation/MSR_VTT.json", {"annotations": anns})
    lists = root / msrvtt.LISTS
    lists.mkdir(parents=True)
    (lists / "train_list_jsfusion.txt").write_text("\n".join(VIDEOS[:3]) + "\n")
    (lists / "val_list_jsfusion.txt").write_text("\n".join(VIDEOS[3:]) + "\n")
    (lists / "jsfusion_val_caption_idx.pkl").write_bytes(pickle.dumps({"video3": 1, "video4": 2}, protocol=0))
    for v in VIDEOS:
        _touch(root / "videos/all" / f"{v}.mp4")
    files = [
        caps,
        lists / "train_list_jsfusion.txt",
        lists / "val_list_jsfusion.txt",
        lists / "jsfusion_val_caption_idx.pkl",
    ]
    return Case(
        files,
        lambda: [
            r
            for s in ("train", "test")
            for c in ("first", "all")
            for r in msrvtt.read_msrvtt(root, s, layout="json", captions=c)
        ],
    )


def build_msrvtt_csv(root: Path) -> Case:
    data = root / "msrvtt_data"
    sentences = [
        {"video_id": v, "caption": f"{v}, caption {k}", "sen_id": i * 3 + k}
        for i, v in enumerate(VIDEOS)
        for k in range(3)
    ]
    caps = _json(data / "MSRVTT_data.json", {"sentences": sentences})
    (data / "MSRVTT_train.9k.csv").write_text("video_id\n" + "\n".join(VIDEOS[:3]) + "\n")
    (data / "MSRVTT_JSFUSION_test.csv").write_text(
        ",key,vid_key,video_id,sentence\n"
        + "".join(f'{i},ret{i},msr{i},{v},"{v}, said ""twice"""\n' for i, v in enumerate(VIDEOS[3:]))
    )
    for v in VIDEOS:
        _touch(root / "videos/all" / f"{v}.mp4")
    return Case(
        [caps, data / "MSRVTT_train.9k.csv", data / "MSRVTT_JSFUSION_test.csv"],
        lambda: [r for s in ("train", "test") for r in msrvtt.read_msrvtt(root, s, layout="csv")],
    )


LSMDC_CLIPS = {
    "train": ["0001_Movie_00.00.01.000-00.00.02.000", "0001_Movie_00.00.03.000-00.00.04.000"],
    "val": ["0002_Other_00.01.00.000-00.01.02.000"],
    "test": ["0003_Third_00.02.00.000-00.02.01.000"],
}


def build_lsmdc(root: Path) -> Case:
    files = []
    for split, clips in LSMDC_CLIPS.items():
        lines = [
            f"{c}\t0\t1\t0\t1\tSomeone does thing {k} here." for c in clips for k in range(2 if split == "train" else 1)
        ]
        path = root / lsmdc.FILES[split]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        files.append(path)
        for c in clips:
            (root / lsmdc.FRAMES_DIR / c).mkdir(parents=True)
    return Case(
        files, lambda: [r for s in lsmdc.FILES for c in ("first", "all") for r in lsmdc.read_lsmdc(root, s, captions=c)]
    )


def build_vg(root: Path) -> Case:
    doc = [
        {
            "id": i,
            "regions": [{"phrase": f"thing {k}", "region_id": k, "image_id": i} for k in range(3)]
            + [{"phrase": "thing 0", "region_id": 9, "image_id": i}],
        }
        for i in (1, 2)
    ]
    for i in (1, 2):
        _touch(root / "images/VG_100K" / f"{i}.jpg")
    path = _json(root / "annotations/region_descriptions.json", doc)
    return Case([path], lambda: pretrain.read_vg(root))


def build_sbu(root: Path) -> Case:
    for k in range(3):
        _touch(root / "images_train" / f"{k}.jpg")
    path = _json(root / "annot.json", [[f"{k}.jpg", f"sbu caption {k}"] for k in range(3)])
    return Case([path], lambda: pretrain.read_sbu(root))


def build_cc3m_tsv(root: Path) -> Case:
    for k in range(3):
        _touch(root / "images" / f"{k}.jpg")
    path = root / "train.tsv"
    path.write_text("".join(f"cc caption {k}\timages/{k}.jpg\n" for k in range(3)))
    return Case([path], lambda: pretrain.read_cc3m(root, "train"))


def build_webvid(root: Path) -> Case:
    for k in range(3):
        _touch(root / "videos" / "000" / f"{k}.mp4")
    official = root / "results_train.csv"
    official.write_text(
        "videoid,contentUrl,duration,page_dir,name\n"
        + "".join(f'{k},http://x/{k},PT10S,000,"clip {k}, with comma"\n' for k in range(3))
    )
    tsv = root / "webvid_train.tsv"
    tsv.write_text("".join(f"clip {k}\t000/{k}.mp4\n" for k in range(3)))
    return Case(
        [official, tsv],
        lambda: pretrain.read_webvid(official, root / "videos") + pretrain.read_webvid(tsv, root / "videos"),
    )


def coco_captions_doc(year_split: str) -> dict:
    images = [{"id": 10 + k, "file_name": f"COCO_{year_split}_{k:012d}.jpg", "height": 8, "width": 8} for k in range(3)]
    anns = [
        {"id": 100 + 3 * k + j, "image_id": 10 + k, "caption": f"caption {j} of {k}"}
        for k in range(3)
        for j in range(2)
    ] + [{"id": 999, "image_id": 10, "caption": "caption 0 of 0"}]
    return {"info": {}, "images": images, "annotations": anns}


def build_coco_captions(root: Path) -> Case:
    files = []
    for year_split in ("train2014", "val2014"):
        doc = coco_captions_doc(year_split)
        for image in doc["images"]:
            _touch(root / year_split / image["file_name"])
        files.append(_json(root / "annotations" / f"captions_{year_split}.json", doc))
    return Case(files, lambda: [r for s in ("train2014", "val2014") for r in coco_captions.read_coco_captions(root, s)])


def caption_columns() -> dict[str, list]:
    return {
        "image": [b"img0", b"img1"],
        "caption": [["a cat", "a cat", "a dog"], ["a car"]],
        "image_id": ["0.jpg", "1.jpg"],
        "split": ["test", "test"],
    }


def vqa_columns() -> dict[str, list]:
    return {
        "image": [b"img0", b"img1"],
        "questions": [["what?", "why?"], ["how?"]],
        "answers": [[["yes"], ["no", "2"]], [["3"]]],
        "answer_labels": [[[0], [1, 2]], [[3]]],
        "answer_scores": [[[1.0], [0.6, 0.3]], [[1.0]]],
        "image_id": [5, 6],
        "question_id": [[50, 51], [60]],
        "split": ["val", "val"],
    }


def nlvr2_columns() -> dict[str, list]:
    return {
        "image_0": [b"l0", b"l1"],
        "image_1": [b"r0", b"r1"],
        "questions": [["one dog", "two dogs"], ["a cat"]],
        "answers": [["True", "False"], ["True"]],
        "identifier": ["dev-1-0", "dev-2-0"],
    }


def build_arrow(root: Path) -> Case:
    files = [
        arrow.write_table(caption_columns(), root / "f30k_caption_karpathy_test.arrow"),
        arrow.write_table(vqa_columns(), root / "vqav2_val.arrow"),
        arrow.write_table(nlvr2_columns(), root / "nlvr2_dev.arrow"),
    ]
    return Case(
        files,
        lambda: (
            arrow.read_family_arrow("image_retrieval", root, "test", dataset="f30k")
            + arrow.read_family_arrow("vqa", root, "val")
            + arrow.read_family_arrow("nlvr2", root, "dev")
        ),
    )


BUILDERS: dict[str, Callable[[Path], Case]] = {
    "karpathy_f30k": lambda r: build_karpathy(r, "f30k"),
    "karpathy_coco": lambda r: build_karpathy(r, "coco"),
    "msrvtt_json": build_msrvtt_json,
    "msrvtt_csv": build_msrvtt_csv,
    "lsmdc": build_lsmdc,
    "vg": build_vg,
    "sbu": build_sbu,
    "cc3m_tsv": build_cc3m_tsv,
    "webvid": build_webvid,
    "coco_captions": build_coco_captions,
    "arrow": build_arrow,
}
