"""Metrics: pure functions of predictions and ground truth, no model code, results in percent.

Each follows the field's official scorer (see conventions.md); the tests pin their semantics.
"""

from sclbench.metrics._common import MetricInputError
from sclbench.metrics.nlvr2 import nlvr2_correct, nlvr2_metrics
from sclbench.metrics.retrieval import TIE_RULES, gt_ranks, recall_at, retrieval_ranks, retrieval_recall
from sclbench.metrics.video import video_retrieval_metrics, video_retrieval_ranks
from sclbench.metrics.vqa import vqa_accuracy, vqa_evaluate, vqa_scores, vqa_soft_score, vqa_vote_score

__all__ = [
    "MetricInputError",
    "TIE_RULES",
    "gt_ranks",
    "nlvr2_correct",
    "nlvr2_metrics",
    "recall_at",
    "retrieval_ranks",
    "retrieval_recall",
    "video_retrieval_metrics",
    "video_retrieval_ranks",
    "vqa_accuracy",
    "vqa_evaluate",
    "vqa_scores",
    "vqa_soft_score",
    "vqa_vote_score",
]
