"""Tiny VQA v2 and NLVR2 folders in the published layouts (field names and value types of the real
release files, optional fields included), for the fault and property tests."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

from PIL import Image

from sclbench.data.formats import nlvr2, vqa


def image_bytes(fmt: str = "PNG", size=(8, 6), color=(200, 30, 90)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG whose header claims width x height (8-bit grey) but holds one tiny IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    )


def vqa_docs(split: str = "val", images=(42, 7), per_image: int = 2) -> tuple[dict, dict]:
    """(questions document, annotations document) as the official files hold them."""
    subtype = vqa.SUBSETS[split]
    questions, annotations = [], []
    for image_id in images:
        for k in range(per_image):
            qid = image_id * 1000 + k
            questions.append({"image_id": image_id, "question": f"What colour is thing {k}?", "question_id": qid})
            answers = [
                {"answer": a, "answer_confidence": "yes", "answer_id": j + 1}
                for j, a in enumerate(["red"] * 7 + ["pink"] * 2 + ["Red."])
            ]
            annotations.append(
                {
                    "question_type": "what color is",
                    "multiple_choice_answer": "red",
                    "answers": answers,
                    "image_id": image_id,
                    "answer_type": "other",
                    "question_id": qid,
                }
            )
    qdoc = {
        "info": {"year": 2017},
        "task_type": "Open-Ended",
        "data_type": "mscoco",
        "license": {"name": "CC"},
        "data_subtype": subtype,
        "questions": questions,
    }
    adoc = {"info": {"year": 2017}, "license": {"name": "CC"}, "data_subtype": subtype, "annotations": annotations}
    return qdoc, adoc


def write_vqa(root: Path, split: str = "val", qdoc: dict | None = None, adoc: dict | None = None) -> tuple[Path, Path]:
    """Write the two JSON files (and a PNG-in-.jpg-name image per image id); returns their paths."""
    if qdoc is None or adoc is None:
        qdoc, adoc = vqa_docs(split)
    root.mkdir(parents=True, exist_ok=True)
    qpath = root / f"v2_OpenEnded_mscoco_{vqa.SUBSETS[split]}_questions.json"
    apath = root / f"v2_mscoco_{vqa.SUBSETS[split]}_annotations.json"
    qpath.write_text(json.dumps(qdoc))
    apath.write_text(json.dumps(adoc))
    for q in qdoc["questions"]:
        if type(q.get("image_id")) is not int:  # a damaged entry (the test's doing): no image to write
            continue
        path = vqa.image_path(root, split, q["image_id"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image_bytes("JPEG"))
    return qpath, apath


def nlvr2_lines(split: str = "dev", pairs=(850, 851), per_pair: int = 2) -> list[dict]:
    lines = []
    for p in pairs:
        for k in range(per_pair):
            line = {
                "validation": {"a1b2": "True"},
                "sentence": f"There are {k + 2} dogs.",
                "left_url": "http://x/l.jpg",
                "writer": "w1",
                "label": "True" if (p + k) % 2 else "False",
                "right_url": "http://x/r.jpg",
                "synset": "dog",
                "query": "dogs",
                "identifier": f"{split}-{p}-0-{k}",
                "extra_validations": {},
            }
            if split == "train":
                line["directory"] = p % 100
            lines.append(line)
    return lines


def write_nlvr2(root: Path, split: str = "dev", lines: list[dict] | None = None) -> Path:
    lines = nlvr2_lines(split) if lines is None else lines
    path = root / "data" / f"{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    for line in lines:
        ident = line["identifier"] if isinstance(line.get("identifier"), str) else ""
        for img in nlvr2.pair_paths(root, split, ident.rsplit("-", 1)[0], line.get("directory")):
            img.parent.mkdir(parents=True, exist_ok=True)
            img.write_bytes(image_bytes())
    return path
