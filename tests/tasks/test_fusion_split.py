"""`fuse_prepared` (pair-independent parts computed once per text / image) = `fuse` to 1e-6, and the
retrieval engine's shared-fusion scoring = per-pair `fuse` scoring."""

import torch

from sclbench.adapters.scl import SCLEvalModel
from sclbench.model import SCLConfig, SCLModel, VisionFeatures
from sclbench.tasks.retrieval_scoring import RetrievalOptions, score_pairs
from tests.tasks.random_features import random_features


def tiny_model(num_frames: int = 1) -> SCLModel:
    torch.manual_seed(0)
    return SCLModel(SCLConfig.tiny("f30k")).eval()


def test_fuse_prepared_equals_fuse():
    model = tiny_model()
    d = model.config.hidden_size
    torch.manual_seed(1)
    text = torch.randn(6, 9, d)
    masks = torch.ones(6, 9, dtype=torch.long)
    masks[1, 5:] = 0
    masks[4, 2:] = 0
    vision = VisionFeatures(torch.randn(6, 17, d), 1)
    with torch.no_grad():
        ref = model.fuse(text, masks, vision)
        # Prepared on 3 distinct texts / 2 distinct images, then indexed per pair.
        t_idx, i_idx = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([0, 0, 0, 1, 1, 1])
        ut, ui = torch.tensor([0, 1, 4]), torch.tensor([2, 5])
        t_in = model.text_stream_inputs(text[ut], masks[ut])
        v_in = model.vision_stream_inputs(VisionFeatures(vision.embeds[ui], 1))
        out = model.fuse_prepared(t_in.index(t_idx), v_in.index(i_idx))
        ref_pairs = model.fuse(text[ut][t_idx], masks[ut][t_idx], VisionFeatures(vision.embeds[ui][i_idx], 1))
        assert torch.allclose(out.cls_feats, ref_pairs.cls_feats, atol=1e-6, rtol=0)
        assert torch.allclose(out.text_feats, ref_pairs.text_feats, atol=1e-6, rtol=0)
        assert torch.allclose(out.image_feats, ref_pairs.image_feats, atol=1e-6, rtol=0)
        # and it is not trivially equal: different pairs give different outputs
        assert not torch.allclose(out.cls_feats[0], out.cls_feats[3])
    assert ref.cls_feats.shape == out.cls_feats.shape


def test_shared_fusion_scores_equal_per_pair_scores():
    """The engine hands `score_pairs` each distinct text / image once (shared) or a row per pair."""
    model = SCLEvalModel(tiny_model(), None).eval()
    feats, pairs = random_features(model.scl.config.hidden_size, n_img=4, n_txt=12, length=8, pad_every=3, seed=2)
    shared = score_pairs(model, feats, pairs, RetrievalOptions(pair_batch_size=16))
    per_pair = score_pairs(model, feats, pairs, RetrievalOptions(pair_batch_size=16, shared_fusion=False))
    assert torch.allclose(shared, per_pair, atol=1e-6, rtol=0)
    assert shared.std() > 0
