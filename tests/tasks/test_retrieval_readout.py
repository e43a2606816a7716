"""The last fusion layer computed only at the positions the poolers read (text CLS, the F frame-CLS
tokens) gives the cls_feats and scores of the full layer, for 1-3 co-attention layers, images and
clips, fp32 and bf16."""

import dataclasses

import pytest
import torch

from sclbench.adapters.scl import SCLEvalModel
from sclbench.adapters.scl_fusion import fused_cls
from sclbench.model import SCLConfig, SCLModel, VisionFeatures
from sclbench.tasks.precision import EvalPrecision
from sclbench.tasks.retrieval_scoring import RetrievalOptions, score_pairs
from tests.tasks.random_features import random_features


def model_with(layers: int) -> SCLModel:
    torch.manual_seed(0)
    return SCLModel(dataclasses.replace(SCLConfig.tiny("f30k"), num_top_layer=layers)).eval()


def features(hidden: int, frames: int, seed: int = 3):
    """Random features of 3 images/clips (`frames` frames of the tiny model's tokens) and 7 texts of 9
    tokens, every other one padded after 5; every pair."""
    return random_features(hidden, n_img=3, n_txt=7, length=9, pad_every=2, seed=seed, frames=frames)


def without_readout_cut(model: SCLModel) -> SCLEvalModel:
    wrapped = SCLEvalModel(model, None).eval()
    wrapped.readout_only = False
    return wrapped


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("frames", [1, 4])
def test_readout_only_equals_the_full_last_layer(layers, frames):
    model = model_with(layers)
    feats, pairs = features(model.config.hidden_size, frames)
    tokens, masks, media = feats.texts["tokens"], feats.texts["masks"], feats.media["tokens"]
    with torch.no_grad():
        text = model.text_stream_inputs(tokens, masks)
        image = model.vision_stream_inputs(VisionFeatures(media, frames))
        txt_of, img_of = pairs[:, 1], pairs[:, 0]
        cut = fused_cls(model, text, txt_of, image, img_of, frames, readout_only=True)
        full = fused_cls(model, text, txt_of, image, img_of, frames, readout_only=False)
        per_pair = model.fuse(tokens[txt_of], masks[txt_of], VisionFeatures(media[img_of], frames)).cls_feats
    assert torch.allclose(cut, full, atol=1e-6, rtol=0)
    assert torch.allclose(cut, per_pair, atol=1e-6, rtol=0)
    assert cut.std(0).min() > 0  # pairs differ: the comparison is not between constants

    opts = RetrievalOptions(pair_batch_size=8)
    scores = score_pairs(model, feats, pairs, opts)  # a bare SCLModel: wrapped, readout cut on
    reference = score_pairs(without_readout_cut(model), feats, pairs, dataclasses.replace(opts, shared_fusion=False))
    assert torch.allclose(scores, reference, atol=1e-6, rtol=0)


def test_readout_only_under_bf16_autocast():
    model = model_with(2)
    feats, pairs = features(model.config.hidden_size, 1)
    bf16 = EvalPrecision("bf16")
    opts = RetrievalOptions(pair_batch_size=8)
    cut = score_pairs(model, feats, pairs, opts, precision=bf16)
    full = score_pairs(without_readout_cut(model), feats, pairs, opts, precision=bf16)
    # bf16 rounds each matmul's output to 8 bits; the same positions see the same operations.
    assert (cut - full).abs().max() < 1e-2
