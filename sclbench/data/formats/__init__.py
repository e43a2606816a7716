"""One reader per published format; each returns plain records (`sclbench.data.records`)."""

from sclbench.data.formats.arrow import (read_caption_arrow, read_family_arrow, read_nlvr2_arrow, read_vqa_arrow,
                                         write_caption_arrow, write_nlvr2_arrow, write_vqa_arrow)
from sclbench.data.formats.coco_captions import read_coco_captions
from sclbench.data.formats.karpathy import read_karpathy
from sclbench.data.formats.lsmdc import read_lsmdc
from sclbench.data.formats.msrvtt import read_msrvtt
from sclbench.data.formats.nlvr2 import read_nlvr2
from sclbench.data.formats.pretrain import read_cc3m, read_coco_pretrain, read_sbu, read_vg, read_webvid
from sclbench.data.formats.vqa import AnswerVocab, apply_minival, read_vqa, split_minival, vote_score
from sclbench.data.formats.vqa_normalize import normalize_answer

__all__ = ["AnswerVocab", "apply_minival", "normalize_answer", "read_caption_arrow", "read_cc3m",
           "read_coco_captions", "read_coco_pretrain", "read_family_arrow", "read_karpathy", "read_lsmdc", "read_msrvtt", "read_nlvr2",
           "read_nlvr2_arrow", "read_sbu", "read_vg", "read_vqa", "read_vqa_arrow", "read_webvid",
           "split_minival", "vote_score", "write_caption_arrow", "write_nlvr2_arrow", "write_vqa_arrow"]
