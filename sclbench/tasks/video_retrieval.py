"""Video-text retrieval (MSRVTT 1k-A, LSMDC 1000): the image retrieval task over clips.

Clips are `[F, 3, H, W]` (F = `data.num_frames`, 4 officially); the vision encoder's frame-CLS tokens
carry time. Metrics: R@1/5/10, MedR, MeanR both ways (`t2v_*`, `v2t_*`).
"""

from __future__ import annotations

from typing import Any

from sclbench.data.formats import lsmdc, msrvtt
from sclbench.metrics import video_retrieval_metrics, video_retrieval_ranks
from sclbench.tasks.base import register
from sclbench.tasks.retrieval import RetrievalTask


@register("video_retrieval")
class VideoRetrievalTask(RetrievalTask):
    default_main_metric = "t2v_r1"

    def read_records(self, split: str) -> list:
        dataset = self.card.get("data.dataset", self.name)
        captions = self.captions_protocol()
        if dataset == "msrvtt":
            return msrvtt.read_msrvtt(self.root, split, layout=self.card.get("data.layout", "auto"), captions=captions,
                                      skip=self.skip)
        return lsmdc.read_lsmdc(self.root, split, media=self.card.get("data.media", "auto"), captions=captions,
                                skip=self.skip)

    def captions_protocol(self) -> str:
        """Training captions per video: `first` (the official datasets) or `all` (CLIP4Clip)."""
        default = msrvtt.DEFAULT_CAPTIONS if self.card.get("data.dataset", self.name) == "msrvtt" else lsmdc.DEFAULT_CAPTIONS
        return msrvtt.caption_protocol(str(self.card.get("data.captions", default)))["train_captions"]

    def media(self, record: Any) -> Any:
        return record.video

    def metrics(self, scored: dict, owner: list[int], n_media: int, ties: str) -> tuple[dict, list[dict]]:
        # text->video from the text-query matrix, video->text from the video-query matrix (they differ
        # in two-stage mode, where each direction has its own candidates).
        t2v = video_retrieval_metrics(scored["t2i"], owner, ties=ties)
        v2t = video_retrieval_metrics(scored["i2t"].t(), owner, ties=ties)
        metrics = {**{k: v for k, v in t2v.items() if k.startswith("t2v")},
                   **{k: v for k, v in v2t.items() if k.startswith("v2t")}}
        # Per-sample ranks of both directions (intervals and p-values need them): each text query's
        # rank of its video, and each video query's rank of its best caption, from the same matrices.
        t2v_ranks = video_retrieval_ranks(scored["t2i"], owner, ties=ties)["t2v"]
        v2t_ranks = video_retrieval_ranks(scored["i2t"].t(), owner, ties=ties)["v2t"]
        preds = [{"id": f"text/{t}", "rank": int(r), "scores": {"t2v_r1": float(r < 1), "t2v_r5": float(r < 5), "t2v_r10": float(r < 10)}}
                 for t, r in enumerate(t2v_ranks)]
        preds += [{"id": f"video/{v}", "rank": int(r), "scores": {"v2t_r1": float(r < 1), "v2t_r5": float(r < 5), "v2t_r10": float(r < 10)}}
                  for v, r in enumerate(v2t_ranks)]
        return metrics, preds
