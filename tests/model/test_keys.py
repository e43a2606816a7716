"""The `base` presets have exactly the official parameter names and shapes (minus unused modules)."""

import gzip
import json
import re
from pathlib import Path

import pytest
import torch

from sclbench.model import SCLConfig, SCLModel
from sclbench.model.checkpoint import BENIGN_UNEXPECTED

# Every parameter name and shape of the official checkpoints, per task (tab-separated: task, key, shape),
# gzipped beside the tests so that no test depends on where the checkout lives.
KEYS_TSV = Path(__file__).resolve().parents[1] / "data" / "official" / "state_dict_keys.tsv.gz"
# Official modules we deliberately do not build: RoBERTa pooler + position_ids buffer, MAE decoder.
UNUSED = re.compile(
    r"^(text_transformer\.pooler\.|text_transformer\.embeddings\.position_ids$|"
    r"vision_transformer\.(decoder_|mask_token$))"
)


def official_keys(task: str) -> dict[str, tuple[int, ...]]:
    out = {}
    for line in gzip.decompress(KEYS_TSV.read_bytes()).decode().splitlines():
        t, key, shape = line.split("\t")
        if t == task:
            out[key] = tuple(json.loads(shape))
    return out


@pytest.mark.parametrize(
    "task, ref",
    [
        ("pretrain", "pretrain"),
        ("vqa", "vqa"),
        ("nlvr2", "nlvr2"),
        ("f30k", "f30k"),
        ("coco", "coco"),
        ("msrvtt", "msrvtt"),
        ("lsmdc", "lsmdc"),
    ],
)
def test_base_keys_and_shapes_equal_official(task, ref):
    with torch.device("meta"):
        model = SCLModel(SCLConfig.base(task))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: s for k, s in official_keys(ref).items() if not UNUSED.search(k)}
    assert ours == theirs


def test_cvpr_v1_pretrain_keys_with_video_variant():
    with torch.device("meta"):
        model = SCLModel(SCLConfig.base("pretrain", use_temporal_embed=True, use_visual_mask_token=False))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: s for k, s in official_keys("pretrain_scl_cvpr_v1").items() if not UNUSED.search(k)}
    assert ours == theirs


def test_every_unused_official_key_is_explained():
    for task in ("pretrain", "vqa", "msrvtt"):
        for key in official_keys(task):
            if UNUSED.search(key):
                assert any(re.search(p, key) for p, _ in BENIGN_UNEXPECTED), key
