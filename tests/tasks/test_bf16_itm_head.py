"""Retrieval scores under bf16 autocast: the ITM head runs in fp32, so bf16 rounding of the logit does
not turn distinct pairs into ties (which the gt_last tie rule counts against the model); fp32 scores
are exactly what `rank_output` of the fused pair gives."""

import torch

from sclbench.adapters.scl import SCLEvalModel
from sclbench.model import SCLConfig, VisionFeatures
from sclbench.model.factory import assemble
from sclbench.tasks.precision import EvalPrecision
from sclbench.tasks.retrieval_scoring import RetrievalOptions, score_pairs
from tests.tasks.random_features import random_features


def setup():
    torch.manual_seed(0)
    model = SCLEvalModel(assemble(SCLConfig.tiny("f30k"))[0], None).eval()
    feats, pairs = random_features(model.scl.config.hidden_size, n_img=6, n_txt=20, length=8, pad_every=4, seed=3)
    return model, feats, pairs


def test_fp32_scores_are_rank_output_of_the_fused_pair():
    model, feats, pairs = setup()
    got = score_pairs(model, feats, pairs, RetrievalOptions(pair_batch_size=32, shared_fusion=False))
    img, txt = pairs[:, 0], pairs[:, 1]
    scl, texts, media = model.scl, feats.texts, feats.media
    with torch.no_grad():
        cls = scl.fuse(texts["tokens"][txt], texts["masks"][txt], VisionFeatures(media["tokens"][img], 1))
        want = scl.rank_output(cls.cls_feats).squeeze(-1)
    assert torch.allclose(got, want, atol=1e-6, rtol=0)


def test_bf16_scores_are_not_rounded_to_bf16_ties():
    model, feats, pairs = setup()
    opts = RetrievalOptions(pair_batch_size=32)
    fp32 = score_pairs(model, feats, pairs, opts)
    bf16 = score_pairs(model, feats, pairs, opts, precision=EvalPrecision("bf16"))
    assert len(pairs) == 120 and fp32.unique().numel() == len(pairs)
    # A bf16 logit has 8 significant bits: on these close scores (std ~0.03) it would hold far fewer
    # distinct values than there are pairs, and most pairs would tie with another.
    assert fp32.std() < 0.1
    assert bf16.unique().numel() == len(pairs)
    assert not torch.equal(bf16, bf16.bfloat16().float())  # not on the bf16 grid
    assert not torch.equal(bf16, fp32) and (bf16 - fp32).abs().max() < 0.05  # autocast reached the fusion
