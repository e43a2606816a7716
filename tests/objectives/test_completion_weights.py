"""The completion loss is global_weight x MGSC + local_weight x MLTC, the card keys reach it, and the
defaults are the official weights (1 and 0.2)."""

import pytest
import torch

from sclbench.objectives.completion import CompletionConfig, completion_contrast


def features(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    b, d, tokens = 4, 8, 5
    v_hat, v = torch.randn(b, 1, d, generator=g), torch.randn(b, 1, d, generator=g)
    t_hat, t = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
    selected = torch.rand(b, tokens, generator=g) < 0.5
    selected[:, 0] = True
    text = (torch.randn(b, tokens, d, generator=g), torch.randn(b, tokens, d, generator=g), selected)
    image = (torch.randn(b, 1, tokens, d, generator=g), torch.randn(b, 1, tokens, d, generator=g), selected[:, None, :])
    return v_hat, v, t_hat, t, text, image


def test_weights_scale_the_terms():
    v_hat, v, t_hat, t, text, image = features()
    assert (CompletionConfig().global_weight, CompletionConfig().local_weight) == (1.0, 0.2)
    # local_slice: the card weights alone (the default also scales gathered terms by world / 8,
    # tests/objectives/test_fidelity_loss_balance.py)
    official = CompletionConfig(gather_grad="local_slice")
    loss, terms = completion_contrast(v_hat, v, t_hat, t, official, text, image)
    mgsc = terms["mgsc_img_loss"] + terms["mgsc_txt_loss"]
    mltc = terms["mltc_img_loss"] + terms["mltc_txt_loss"]
    assert float(loss) == pytest.approx(float(mgsc + 0.2 * mltc), rel=1e-6)
    small, small_terms = completion_contrast(
        v_hat,
        v,
        t_hat,
        t,
        CompletionConfig(global_weight=0.1, local_weight=0.02, gather_grad="local_slice"),
        text,
        image,
    )
    assert float(small) == pytest.approx(float(0.1 * mgsc + 0.02 * mltc), rel=1e-6)
    # the logged terms are the unweighted losses, whatever the weights
    assert all(float(small_terms[k]) == pytest.approx(float(terms[k])) for k in terms)


def test_card_keys_reach_the_objective():
    from sclbench.cards import load_card

    # what PretrainTask.objective builds its CompletionConfig from
    card = load_card("pretrain", ["completion.global_weight=0.1", "completion.local_weight=0.02"])
    cfg = CompletionConfig(**card.section("completion"))
    assert (cfg.global_weight, cfg.local_weight) == (0.1, 0.02)
    official = CompletionConfig(**load_card("pretrain").section("completion"))
    assert (official.global_weight, official.local_weight) == (1.0, 0.2)
