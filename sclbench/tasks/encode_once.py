"""What makes two images of an evaluation batch the same image (`source_key`).

VQA v2 asks ~5 questions about each image and NLVR2 pairs each image pair with several statements.
The tasks give a model each image's key (`VQABatch.image_keys`, `NLVR2Batch.image_keys_*`), so that it
can encode each distinct image of a batch once: SCL does (`adapters.scl.encode_images_once`, re-exported
here with `group` for older imports).
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from typing import Any

from sclbench.adapters.scl import encode_images_once, group

__all__ = ["encode_images_once", "group", "source_key"]


def source_key(source: Any) -> Hashable:
    """What makes two images of a batch the same image: the file, the arrow cell or the bytes."""
    for name in ("path", "arrow"):
        value = getattr(source, name, None)
        if value is not None:
            return name, str(value)
    data = getattr(source, "data", None)
    if data is not None:
        return "data", hashlib.sha256(data).hexdigest()
    return "other", str(source)
