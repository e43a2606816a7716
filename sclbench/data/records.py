"""Plain sample records: what every format reader returns.

A record says *what* a sample is (its image or video, its text, its labels), never how it becomes a
tensor. Raw readers and arrow readers of the same data produce records that compare equal: an
`ImageSource` compares by the SHA-256 of its encoded bytes, because the ViLT/METER arrow writers
store each image file's bytes verbatim, so the same picture read from a JPEG on disk or from an
arrow cell has the same digest.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from sclbench.data.arrow_cells import read_cell
from sclbench.errors import DataError

# Every way Pillow reports an image it cannot (or will not) decode. Corrupt bytes surface as OSError
# (UnidentifiedImageError, truncated data), SyntaxError (bad PNG chunks), ValueError, EOFError,
# struct/zlib errors or an IndexError/KeyError/TypeError/ZeroDivisionError from a header with absurd
# values; a "decompression bomb" (a header claiming e.g. 50000x50000 pixels) raises
# DecompressionBombError, or DecompressionBombWarning where warnings are turned into errors. All of
# them are a bad file, never a bug of ours: they become one DataError naming the file, which the
# datasets' skip option (`--skip-corrupt`) catches like any other corrupt sample.
IMAGE_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


def _grey_to_rgb(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer and float greyscale scaled to 8 bits (PIL's convert clips them at 255,
    so a 16-bit picture comes out nearly all white).

    I;16 (every byte order): value / 257, 65535 -> 255. I (32-bit): the same when the values fit in
    16 bits (a 16-bit PNG/TIFF read as I), else the picture's own range spread over 0..255 (such a
    file has no fixed white point). F (float): [0, 1] scaled by 255 when every value lies there (float
    TIFFs), else taken as 0..255 and clipped; NaN/inf count as 0.
    """
    values = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if img.mode.startswith("I;16") or (img.mode == "I" and 0 <= low and high <= 65535):
        values = values / 257.0
    elif img.mode == "I":
        values = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    elif 0 <= low and high <= 1:
        values = values * 255.0
    grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any mode Pillow decodes, as RGB with the right values.

    Deep greyscale (I;16*, I, F) is scaled (`_grey_to_rgb`). Everything else goes through PIL's
    convert("RGB"), which the official datasets call on every image: palette (P, PA) through its
    palette, CMYK inverted, 1-bit to 0/255, YCbCr/LAB/HSV converted. Alpha (LA, RGBA, PA, P with a
    transparent colour) is dropped, not composited: the official pipeline drops it, so the pixels
    under a transparent area are what the published checkpoints were trained and scored on, and
    compositing on white (or black) here would feed the model pictures the official code never saw.
    Premultiplied modes (La, RGBa) are un-premultiplied first, as PIL does for RGBa.
    """
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        return _grey_to_rgb(img)
    if img.mode == "La":  # PIL has no La -> RGB route
        img = img.convert("LA")
    with warnings.catch_warnings():  # "palette images with transparency ... should be converted to RGBA"
        warnings.simplefilter("ignore", UserWarning)
        return img.convert("RGB")


def decode_rgb(
    data: bytes, where: str, fix: str = "replace the file or re-run with the skip option to leave it out"
) -> Image.Image:
    """Decode encoded image bytes to RGB (`to_rgb`); any decode failure is a DataError naming `where`."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(
            f"image {where} refused as a decompression bomb ({err}); it is not a real picture of the dataset: {fix}"
        ) from None
    except IMAGE_DECODE_ERRORS as err:
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise DataError(f"corrupt image {where}: {reason}; {fix}") from None


@dataclass(frozen=True, eq=False)
class ImageSource:
    """An encoded image: a file on disk, a cell of an arrow table, or bytes in memory.

    Exactly one of `path`, `arrow` (file, column, row) or `data` is set. Arrow cells are fetched
    lazily through a per-process memory map, so pickling a record to a dataloader worker costs a
    few bytes, not the image (and never the whole table).
    """

    path: Path | None = None
    arrow: tuple[str, str, int] | None = None
    data: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.path, self.arrow, self.data)) != 1:
            raise ValueError("ImageSource needs exactly one of path, arrow, data")

    @property
    def where(self) -> str:
        """Human-readable location for error messages."""
        if self.path is not None:
            return str(self.path)
        if self.arrow is not None:
            file, column, row = self.arrow
            return f"{file} (column {column!r}, row {row})"
        return "<in-memory image>"

    def read_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.arrow is not None:
            return read_cell(*self.arrow)
        try:
            return self.path.read_bytes()
        except OSError as err:
            raise DataError(
                f"cannot read image {self.path}: {err.strerror}; restore the file or "
                "re-run with the skip option to leave it out"
            ) from None

    def open(self) -> Image.Image:
        """Decode to an RGB PIL image; a corrupt image is a DataError naming where it lives."""
        return decode_rgb(self.read_bytes(), self.where)

    def digest(self) -> str:
        cached = self.__dict__.get("_digest")
        if cached is None:
            cached = hashlib.sha256(self.read_bytes()).hexdigest()
            object.__setattr__(self, "_digest", cached)
        return cached

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImageSource):
            return NotImplemented
        return self is other or self.digest() == other.digest()

    def __hash__(self) -> int:
        return hash(self.digest())

    def __getstate__(self):  # the cached digest travels too; harmless and saves a re-read
        return dict(self.__dict__)

    def __setstate__(self, state):
        for key, value in state.items():
            object.__setattr__(self, key, value)


@dataclass
class CaptionRecord:
    """One image with its captions (Flickr30K, COCO, VG, SBU, CC3M)."""

    image: ImageSource
    image_id: str
    captions: list[str]
    split: str


@dataclass
class VQARecord:
    """One VQA v2 question.

    `answers` holds the 10 raw human answers ([] for test-dev/test). Arrow tables written by the
    official ViLT scripts keep only the soft targets; such records carry them in `label_scores`
    (normalised answer -> score) and have `answers == []`.
    """

    question_id: int
    image: ImageSource
    image_id: int
    question: str
    answers: list[str]
    answer_type: str
    question_type: str
    multiple_choice_answer: str
    split: str
    label_scores: dict[str, float] | None = None


@dataclass
class NLVR2Record:
    """One NLVR2 statement about an image pair; `label` is None where the split has no labels."""

    identifier: str
    sentence: str
    label: bool | None
    image_0: ImageSource
    image_1: ImageSource
    split: str

    @property
    def pair_id(self) -> str:
        """The image-pair id: the identifier without its last `-k` (sentence) part."""
        return self.identifier.rsplit("-", 1)[0]


@dataclass
class VideoRecord:
    """One video clip (an mp4/avi file or a folder of frames) with its captions."""

    video: Path
    video_id: str
    captions: list[str]
    split: str


class SkipCounter:
    """Counts samples left out because their image/video is missing or corrupt.

    Pass one to a reader (or dataset) to skip instead of failing; the run record reads `counts`
    and `examples`. Nothing is ever replaced by another sample.
    """

    def __init__(self, keep: int = 20) -> None:
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}
        self._keep = keep

    def add(self, reason: str, where: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        paths = self.examples.setdefault(reason, [])
        if len(paths) < self._keep:
            paths.append(where)

    def add_batch(self, batch: dict) -> None:
        """Count the samples a collate dropped (dataloader workers cannot update this object)."""
        for where in batch.get("skipped", []):
            self.add("corrupt", where)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict:
        return {"total": self.total, "counts": dict(self.counts), "examples": dict(self.examples)}

    def __repr__(self) -> str:
        return f"SkipCounter({self.counts})"
