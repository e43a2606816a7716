"""What a browse page knows about a split's samples beyond the predictions: texts, labels and media.

The results floor does not read datasets (that is the tasks' job); `sclbench.app.browse` fills a
`SplitView` from the task's own readers and hands it here. Every field may be empty: a page is still
made from the predictions alone, with ids where pictures would be.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image


@dataclass(frozen=True)
class MediaItem:
    """One picture or clip. `load(n)` decodes it: one RGB image for a picture, `n` frames for a clip."""

    media_id: str  # shown on the card
    key: str  # what the thumbnail file name hashes: the task, the id and where the file lives
    load: Callable[[int], list[Image.Image]]
    video: bool = False


@dataclass
class SplitView:
    """One published split as the task's readers see it (filled by sclbench.app.browse)."""

    family: str = ""  # vqa, nlvr2, retrieval, video_retrieval ('' when unknown)
    media: dict[str, MediaItem] = field(default_factory=dict)  # media id -> item
    # VQA: question id (as text) -> question, answers (the ten), answer_type, question_type, image_id
    questions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # NLVR2: identifier -> sentence, label, images [left id, right id]
    statements: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Retrieval: the media id of each record index (the "image/<i>" / "video/<i>" of a query), and each
    # caption (the "text/<t>") with the index of its image or video.
    gallery: list[str] = field(default_factory=list)
    captions: list[tuple[str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # shown at the top of the page (e.g. a data mismatch)
