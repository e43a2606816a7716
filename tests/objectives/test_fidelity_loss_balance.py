"""Loss balance (issue 26, item 2): on any number of processes the default gather_grad reproduces the
official per-term weights of 8 processes x 16 samples (scl/config.py num_gpus 8, per_gpu_batchsize 16;
scl/modules/dist_utils.py AllGather_multi keeps each rank's own rows of its own loss, so after DDP's
mean a gathered term weighs 1/8 of its card weight). The negatives per step are not reproducible."""

import pytest
import torch

from sclbench.cards import load_card
from sclbench.objectives.balance import describe, loss_balance
from sclbench.objectives.completion import CompletionConfig, completion_contrast
from sclbench.objectives.itc import itc_loss
from sclbench.objectives.losses import gathered_term_scale

# The official weights, derived by hand from the official code at 8 processes (HEAD compute_scl for
# images: the MGSC text CLS and MLTC image tokens are local; v1 for clips: the text CLS is gathered).
OFFICIAL_PRETRAIN_IMAGE = {
    "mlm": 1,
    "itm": 1,
    "itc": 0.5 / 8,
    "mgsc_image": 1 / 8,
    "mgsc_text": 1,
    "mltc_text": 0.2 / 8,
    "mltc_image": 0.2,
}
OFFICIAL_PRETRAIN_VIDEO = {"mlm": 1, "itm": 1, "itc": 0.5 / 8, "mgsc_image": 1 / 8, "mgsc_text": 1 / 8}
OFFICIAL_RETRIEVAL = {"f30k": 0.5 / 8, "coco": 0.5 / 8, "lsmdc": 1.0 / 8, "msrvtt": 1.0 / 8}


def _weights(balance, kind):
    return {name: t["weight"] for name, t in balance["terms"][kind].items()}


@pytest.mark.parametrize("world", [1, 2, 4, 8, 16])
def test_default_pretraining_weights_equal_the_official_8x16_ones(world):
    balance = loss_balance(load_card("pretrain"), world)
    assert balance["gather_grad"] == "official" and balance["official_weights"] is True
    assert _weights(balance, "image") == pytest.approx(OFFICIAL_PRETRAIN_IMAGE)
    assert _weights(balance, "video") == pytest.approx(OFFICIAL_PRETRAIN_VIDEO)
    itc = balance["terms"]["image"]["itc"]
    assert (itc["negatives_from"], itc["official_negatives_from"]) == (16 * world, 128)  # not reproducible


@pytest.mark.parametrize("world", [1, 2, 8])
@pytest.mark.parametrize("name", sorted(OFFICIAL_RETRIEVAL))
def test_default_retrieval_weights_equal_the_official_ones(name, world):
    balance = loss_balance(load_card(name), world)
    assert _weights(balance, "batch") == pytest.approx({"rank": 1.0, "itc": OFFICIAL_RETRIEVAL[name]})


@pytest.mark.parametrize(
    "mode, world, itc",
    [("local_slice", 1, 0.5), ("local_slice", 2, 0.25), ("local_slice", 8, 0.5 / 8), ("exact", 8, 0.5)],
)
def test_the_other_modes_change_the_balance_off_8_processes(mode, world, itc):
    balance = loss_balance(load_card("pretrain", [f"train.gather_grad={mode}"]), world)
    assert balance["terms"]["image"]["itc"]["weight"] == pytest.approx(itc)
    assert balance["official_weights"] is (mode == "local_slice" and world == 8)


def test_vqa_and_nlvr2_have_no_gathered_term():
    assert loss_balance(load_card("vqa"), 1) == {} == loss_balance(load_card("nlvr2"), 4)


def test_description_names_every_term():
    text = describe(loss_balance(load_card("pretrain"), 1))
    assert all(name in text for name in OFFICIAL_PRETRAIN_IMAGE) and "official 128" in text


def test_real_losses_scale_the_gathered_terms_on_one_process():
    """The loss code applies the factor world / 8 = 1/8 here to the gathered terms and to no other."""
    assert gathered_term_scale("official") == 1 / 8 and gathered_term_scale("local_slice") == 1.0
    g = torch.Generator().manual_seed(0)

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cl_temp = torch.nn.Parameter(torch.tensor(0.07))

        def contrastive_features(self, text, image):
            return text, image

    text = torch.randn(6, 5, generator=g, requires_grad=True)
    image = torch.randn(6, 5, generator=g)
    grads = {}
    for mode in ("official", "local_slice", "exact"):
        loss, logs = itc_loss(Tiny(), text, image, 0.5, mode)
        grads[mode] = torch.autograd.grad(loss, text)[0]
        assert loss.item() == pytest.approx(0.5 * logs["itc_loss"] * gathered_term_scale(mode))
    torch.testing.assert_close(grads["official"] * 8, grads["exact"])
    torch.testing.assert_close(grads["local_slice"], grads["exact"])  # one process: nothing to slice

    b, d, length, patches = 4, 5, 3, 6
    x = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    for frames, text_scaled in ((1, False), (2, True)):  # images: text CLS local; clips (v1): gathered
        cfg = CompletionConfig(gather_grad="official")
        tt = (x(b, length, d), x(b, length, d), torch.ones(b, length, dtype=torch.bool))
        it = (x(b, frames, patches, d), x(b, frames, patches, d), torch.ones(b, frames, patches, dtype=torch.bool))
        loss, t = completion_contrast(x(b, frames, d), x(b, frames, d), x(b, d), x(b, d), cfg, tt, it)
        txt = t["mgsc_txt_loss"] / 8 if text_scaled else t["mgsc_txt_loss"]
        want = t["mgsc_img_loss"] / 8 + txt + 0.2 * (t["mltc_txt_loss"] / 8 + t["mltc_img_loss"])
        assert loss.item() == pytest.approx(want.item(), rel=1e-6)
