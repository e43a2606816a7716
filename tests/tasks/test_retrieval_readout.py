"""The last fusion layer computed only at the positions the poolers read (text CLS, the F frame-CLS
tokens) gives the cls_feats and scores of the full layer, for 1-3 co-attention layers, images and
clips, fp32 and bf16."""

import dataclasses

import pytest
import torch

from sclbench.model import SCLConfig, SCLModel, VisionFeatures
from sclbench.tasks.precision import EvalPrecision
from sclbench.tasks.retrieval_fusion import fused_cls
from sclbench.tasks.retrieval_scoring import Features, RetrievalOptions, candidate_pairs, score_pairs


def model_with(layers: int) -> SCLModel:
    torch.manual_seed(0)
    return SCLModel(dataclasses.replace(SCLConfig.tiny("f30k"), num_top_layer=layers)).eval()


def features(hidden: int, frames: int, seed: int = 3) -> tuple[Features, torch.Tensor]:
    torch.manual_seed(seed)
    n_img, n_txt, length, tokens = 3, 7, 9, frames + frames * 6  # frame-CLS tokens first, then patches
    masks = torch.ones(n_txt, length, dtype=torch.long)
    masks[::2, 4:] = 0
    feats = Features(
        torch.randn(n_txt, length, hidden),
        masks,
        torch.randn(n_txt, 8),
        torch.randn(n_img, tokens, hidden),
        torch.randn(n_img, 8),
        frames,
    )
    pairs, _, _ = candidate_pairs(torch.randn(n_img, n_txt), RetrievalOptions(mode="exhaustive"))
    return feats, pairs


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("frames", [1, 4])
def test_readout_only_equals_the_full_last_layer(layers, frames):
    model = model_with(layers)
    feats, pairs = features(model.config.hidden_size, frames)
    with torch.no_grad():
        text = model.text_stream_inputs(feats.text_embeds, feats.text_masks)
        image = model.vision_stream_inputs(VisionFeatures(feats.vision_embeds, frames))
        txt_of, img_of = pairs[:, 1], pairs[:, 0]
        cut = fused_cls(model, text, txt_of, image, img_of, frames, readout_only=True)
        full = fused_cls(model, text, txt_of, image, img_of, frames, readout_only=False)
        per_pair = model.fuse(
            feats.text_embeds[txt_of], feats.text_masks[txt_of], VisionFeatures(feats.vision_embeds[img_of], frames)
        ).cls_feats
    assert torch.allclose(cut, full, atol=1e-6, rtol=0)
    assert torch.allclose(cut, per_pair, atol=1e-6, rtol=0)
    assert cut.std(0).min() > 0  # pairs differ: the comparison is not between constants

    opts = RetrievalOptions(pair_batch_size=8)
    scores = score_pairs(model, feats, pairs, opts)
    reference = score_pairs(model, feats, pairs, dataclasses.replace(opts, readout_only=False, shared_fusion=False))
    assert torch.allclose(scores, reference, atol=1e-6, rtol=0)


def test_readout_only_under_bf16_autocast():
    model = model_with(2)
    feats, pairs = features(model.config.hidden_size, 1)
    bf16 = EvalPrecision("bf16")
    opts = RetrievalOptions(pair_batch_size=8)
    cut = score_pairs(model, feats, pairs, opts, precision=bf16)
    full = score_pairs(model, feats, pairs, dataclasses.replace(opts, readout_only=False), precision=bf16)
    # bf16 rounds each matmul's output to 8 bits; the same positions see the same operations.
    assert (cut - full).abs().max() < 1e-2
