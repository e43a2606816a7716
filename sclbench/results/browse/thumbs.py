"""Thumbnails: small JPEGs under SITE/thumbs/, made once and named by a hash of the media's key.

A rerun into the same site finds a thumbnail by its name and decodes nothing again. A picture that
does not decode (missing, corrupt) gets no thumbnail: its card shows the id and the reason instead.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from PIL import Image

from sclbench.common.io import atomic_write
from sclbench.errors import SCLBenchError
from sclbench.results.browse.media import MediaItem

THUMB_DIR = "thumbs"
MAX_SIDE = 160  # pixels, the longer side
QUALITY = 80


def thumb_name(key: str, frame: int | None = None) -> str:
    suffix = "" if frame is None else f"-f{frame}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:20] + suffix + ".jpg"


def encode_thumbnail(image: Image.Image) -> bytes:
    small = image.convert("RGB")
    small.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=QUALITY, optimize=True)
    return out.getvalue()


class Thumbnailer:
    """Makes (or finds) the thumbnails of media items; remembers what failed so it is tried once."""

    def __init__(self, site: Path, frames: int = 4) -> None:
        self.folder = Path(site) / THUMB_DIR
        self.frames = frames
        self.made = 0
        self.reused = 0
        self._done: dict[str, list[str] | str] = {}  # key -> thumbnail names, or the error message

    def get(self, item: MediaItem) -> tuple[list[str], str]:
        """(paths relative to the site, error message or ''): one path per picture, `frames` per clip."""
        if item.key not in self._done:
            self._done[item.key] = self._make(item)
        found = self._done[item.key]
        if isinstance(found, str):
            return [], found
        return [f"{THUMB_DIR}/{name}" for name in found], ""

    def _make(self, item: MediaItem) -> list[str] | str:
        count = self.frames if item.video else 1
        names = [thumb_name(item.key, i if item.video else None) for i in range(count)]
        if all((self.folder / n).is_file() for n in names):
            self.reused += len(names)
            return names
        try:
            images = item.load(count)
        except SCLBenchError as err:  # a missing or corrupt file: the card says so
            return str(err)
        if not images:
            return f"{item.media_id}: nothing decoded"
        self.folder.mkdir(parents=True, exist_ok=True)
        names = names[: len(images)]
        for name, image in zip(names, images):
            atomic_write(self.folder / name, encode_thumbnail(image))
            self.made += 1
        return names
