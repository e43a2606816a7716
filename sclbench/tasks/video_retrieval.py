"""Video-text retrieval (MSRVTT 1k-A, LSMDC 1000): the image retrieval task over clips.

Clips are `[F, 3, H, W]` (F = `data.num_frames`, 4 officially); the vision encoder's frame-CLS tokens
carry time. Metrics: R@1/5/10, MedR, MeanR both ways (`t2v_*`, `v2t_*`).
"""

from __future__ import annotations

from typing import Any

from sclbench.data.formats import format_name, lsmdc, msrvtt
from sclbench.errors import ConfigError
from sclbench.metrics import video_retrieval_ranks
from sclbench.metrics.video import rank_metrics
from sclbench.tasks.base import register
from sclbench.tasks.retrieval import RetrievalTask
from sclbench.tasks.retrieval_predictions import query_predictions

VIDEO_FORMATS = {"msrvtt": msrvtt, "lsmdc": lsmdc}  # format name -> its reader module


@register("video_retrieval")
class VideoRetrievalTask(RetrievalTask):
    default_main_metric = "t2v_r1"

    def read_records(self, split: str) -> list:
        captions = self.captions_protocol()
        if self._format() == "msrvtt":
            return msrvtt.read_msrvtt(
                self.root, split, layout=self.card.get("data.layout", "auto"), captions=captions, skip=self.skip
            )
        return lsmdc.read_lsmdc(
            self.root, split, media=self.card.get("data.media", "auto"), captions=captions, skip=self.skip
        )

    def _format(self) -> str:
        """The card's data format (`format:`): msrvtt or lsmdc, the two video layouts."""
        name = format_name(self.card)
        if name not in VIDEO_FORMATS:
            raise ConfigError(
                f"task card {self.card.name!r}: a video retrieval card's format is one of "
                f"{', '.join(VIDEO_FORMATS)}, not {name!r}"
            )
        return name

    def captions_protocol(self) -> str:
        """Training captions per video: `first` (the official datasets) or `all` (CLIP4Clip)."""
        default = VIDEO_FORMATS[self._format()].DEFAULT_CAPTIONS
        return msrvtt.caption_protocol(str(self.card.get("data.captions", default)))["train_captions"]

    media_kind = "video"

    def media(self, record: Any) -> Any:
        return record.video

    def media_id(self, record: Any) -> str:
        return str(record.video_id)

    def metrics(
        self, scored: dict, owner: list[int], records: list, texts: list[str], ties: str
    ) -> tuple[dict, list[dict]]:
        # text->video from the text-query matrix, video->text from the video-query matrix (they differ
        # in two-stage mode, where each direction has its own candidates). The same per-query ranks
        # give the metrics and the per-sample predictions (intervals and p-values need both directions).
        t2v_ranks = video_retrieval_ranks(scored["t2i"], owner, ties=ties)["t2v"]
        v2t_ranks = video_retrieval_ranks(scored["i2t"].t(), owner, ties=ties)["v2t"]
        metrics = {**rank_metrics(t2v_ranks, "t2v"), **rank_metrics(v2t_ranks, "v2t")}
        video_preds, text_preds = query_predictions(
            scored,
            {"media": v2t_ranks, "text": t2v_ranks},
            owner,
            [self.media_id(r) for r in records],
            texts,
            self.media_kind,
            ("v2t", "t2v"),
            ties,
        )
        return metrics, text_preds + video_preds
