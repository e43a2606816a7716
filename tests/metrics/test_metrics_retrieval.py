"""Retrieval ranks and recalls: tie rules, several captions per item, against a brute-force reference."""

import numpy as np
import pytest
import torch

from sclbench.metrics import (
    MetricInputError,
    gt_ranks,
    nlvr2_metrics,
    retrieval_ranks,
    retrieval_recall,
    video_retrieval_metrics,
    video_retrieval_ranks,
)


def brute_rank(scores: list[float], gts: set[int], ties: str) -> int:
    """Sort every candidate explicitly with the tie rule as a secondary key; first ground truth wins."""
    if ties == "gt_last":
        key = lambda c: (-scores[c], c in gts, c)  # noqa: E731
    elif ties == "gt_first":
        key = lambda c: (-scores[c], c not in gts, c)  # noqa: E731
    else:
        key = lambda c: (-scores[c], c)  # noqa: E731
    order = sorted(range(len(scores)), key=key)
    return min(order.index(g) for g in gts)


def random_case(rng: np.random.Generator, n_img: int, caps_per_img: int):
    n_txt = n_img * caps_per_img
    # Coarse integer scores guarantee many ties, including ties between ground truths.
    s = rng.integers(0, 4, size=(n_img, n_txt)).astype(np.float32)
    txt2img = rng.permutation(np.repeat(np.arange(n_img), caps_per_img))
    img2txt = [np.flatnonzero(txt2img == i).tolist() for i in range(n_img)]
    return s, txt2img.tolist(), img2txt


@pytest.mark.parametrize("ties", ["gt_last", "gt_first", "index"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_with_ties(ties, seed):
    rng = np.random.default_rng(seed)
    s, txt2img, img2txt = random_case(rng, n_img=7, caps_per_img=3)
    ranks = retrieval_ranks(s, None, txt2img, img2txt, ties=ties, chunk_size=2)
    want_tr = [brute_rank(s[i].tolist(), set(img2txt[i]), ties) for i in range(s.shape[0])]
    want_ir = [brute_rank(s[:, t].tolist(), {txt2img[t]}, ties) for t in range(s.shape[1])]
    assert ranks["tr"].tolist() == want_tr
    assert ranks["ir"].tolist() == want_ir


def test_tie_rules_on_a_hand_made_row():
    # One image, captions 0..3; its caption is 2, tied with caption 0 and 3, caption 1 scores higher.
    s = np.array([[0.5, 0.9, 0.5, 0.5]])
    assert gt_ranks(s, [2], ties="gt_last").tolist() == [3]
    assert gt_ranks(s, [2], ties="gt_first").tolist() == [1]
    assert gt_ranks(s, [2], ties="index").tolist() == [2]
    # Two tied ground truths do not push each other back: only non-ground-truth ties count.
    assert gt_ranks(s, [[2, 3]], ties="gt_last").tolist() == [2]
    assert gt_ranks(s, [[2, 3]], ties="index").tolist() == [2]


def test_several_captions_use_the_best_one():
    s = np.array([[0.1, 0.8, 0.3, 0.2], [0.9, 0.1, 0.2, 0.7]])
    img2txt = [[0, 2], [1, 3]]
    r = retrieval_ranks(s, None, None, img2txt)
    assert r["tr"].tolist() == [1, 1]  # image 0: caption 2 is second; image 1: caption 3 second
    assert r["ir"].tolist() == [1, 1, 0, 0]  # txt2img derived from img2txt
    m = retrieval_recall(s, None, [0, 1, 0, 1], img2txt)
    assert m["tr_r1"] == 0.0 and m["tr_r5"] == 100.0 and m["ir_r1"] == 50.0
    assert m["r_mean"] == pytest.approx((0 + 100 + 100 + 50 + 100 + 100) / 6)
    assert m["rsum"] == pytest.approx(450.0)


def test_separate_t2i_scores_and_torch_half_input():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float16)
    t2i = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # text side scored differently: both wrong
    m = retrieval_recall(s, t2i, [0, 1], None, ks=(1,))
    assert m == {"tr_r1": 100.0, "ir_r1": 0.0, "r_mean": 50.0, "rsum": 100.0}


def test_chunking_does_not_change_ranks():
    rng = np.random.default_rng(3)
    s, txt2img, img2txt = random_case(rng, n_img=20, caps_per_img=5)
    full = retrieval_ranks(s, None, txt2img, img2txt)
    tiny = retrieval_ranks(s, None, txt2img, img2txt, chunk_size=3)
    assert all((full[k] == tiny[k]).all() for k in full)


def test_bad_inputs():
    with pytest.raises(MetricInputError, match="NaN"):
        retrieval_recall(np.array([[np.nan]]), None, [0], None)
    with pytest.raises(MetricInputError, match="another image"):
        retrieval_recall(np.zeros((2, 2)), None, [0, 1], [[1], [0]])
    with pytest.raises(MetricInputError, match="tie rule"):
        retrieval_recall(np.zeros((1, 1)), None, [0], None, ties="random")


def test_video_diagonal_medr_meanr():
    # Text t's video is t. Ranks (1-based) t2v: 1, 2, 3, 1.
    sim = np.array(
        [[0.9, 0.1, 0.0, 0.0],
         [0.8, 0.5, 0.0, 0.0],
         [0.1, 0.8, 0.7, 0.9],
         [0.0, 0.0, 0.0, 0.3]]
    )  # fmt: skip
    m = video_retrieval_metrics(sim)
    assert m["t2v_r1"] == 50.0 and m["t2v_r5"] == 100.0
    assert m["t2v_medr"] == 1.5 and m["t2v_meanr"] == pytest.approx(7 / 4)
    # Video->text columns: video 1 is best matched by text 2 (0.8) before its own text 1 (0.5).
    assert video_retrieval_ranks(sim)["v2t"].tolist() == [0, 1, 0, 1]
    assert set(m) == {f"{d}_{n}" for d in ("t2v", "v2t") for n in ("r1", "r5", "r10", "medr", "meanr")}


def test_video_several_captions_and_ties():
    # 3 texts, 2 videos: texts 0, 1 describe video 0; text 2 describes video 1.
    sim = np.array([[0.2, 0.5], [0.6, 0.6], [0.1, 0.9]])
    r = video_retrieval_ranks(sim, [0, 0, 1], ties="gt_last")
    assert r["t2v"].tolist() == [1, 1, 0]  # text 1 ties: ground truth placed last
    assert r["v2t"].tolist() == [0, 0]  # video 0 uses its best caption (text 1)
    assert video_retrieval_ranks(sim, [0, 0, 1], ties="gt_first")["t2v"].tolist() == [1, 0, 0]
    with pytest.raises(MetricInputError, match="square"):
        video_retrieval_metrics(sim)
    with pytest.raises(MetricInputError, match="no caption"):
        video_retrieval_metrics(sim, [0, 0, 0])


def test_nlvr2_accuracy_and_consistency():
    labels = {
        "dev-1-0-0": "True", "dev-1-1-0": "False", "dev-1-2-0": "True",  # one sentence, three pairs
        "dev-1-0-1": "false", "dev-2-0-0": "True",
    }  # fmt: skip
    preds = {"dev-1-0-0": True, "dev-1-1-0": "false", "dev-1-2-0": "FALSE", "dev-1-0-1": False, "dev-2-0-0": "true"}
    m = nlvr2_metrics(preds, labels)
    assert m["accuracy"] == pytest.approx(80.0)
    # Sentences: dev-1--0 (one wrong pair -> inconsistent), dev-1--1 ok, dev-2--0 ok.
    assert m["consistency"] == pytest.approx(200 / 3)
    with pytest.raises(MetricInputError, match="no prediction"):
        nlvr2_metrics({"dev-1-0-0": True}, labels)
    with pytest.raises(MetricInputError, match="split-set-pair-sentence"):
        nlvr2_metrics({"x": True}, {"x": True})
