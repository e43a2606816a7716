"""Tiny-model forward passes: images, image pairs (NLVR2), video, masking modes, attention maths."""

import pytest
import torch
import torch.nn.functional as F

from sclbench.model import SCLConfig, SCLModel
from sclbench.model.vision import FrameAttention, resize_position_table


def text_batch(b=2, length=10, pad_from=7):
    ids = torch.randint(4, 900, (b, length))
    ids[:, 0] = 0
    masks = torch.ones_like(ids)
    masks[-1, pad_from:] = 0
    ids[-1, pad_from:] = 1
    return ids, masks


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {t: SCLModel(SCLConfig.tiny(t)).eval() for t in ("pretrain", "vqa", "nlvr2", "f30k", "msrvtt")}


def test_image_forward_shapes_and_heads(models):
    ids, masks = text_batch()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = models["vqa"](ids, masks, images)
        assert out.text_feats.shape == (2, 10, 64)
        assert out.image_feats.shape == (2, 1 + 16, 64)
        assert out.cls_feats.shape == (2, 128)
        assert torch.equal(out.cls_feats[:, :64], out.cls_feats_text)
        assert models["vqa"].vqa_classifier(out.cls_feats).shape == (2, 32)
        # [B,3,H,W] and [B,1,3,H,W] are the same input
        assert torch.equal(out.cls_feats, models["vqa"](ids, masks, images[:, None]).cls_feats)
        pre = models["pretrain"](ids, masks, images)
        assert models["pretrain"].mlm_score(pre.text_feats).shape == (2, 10, 1000)
        assert models["pretrain"].itm_score(pre.cls_feats).shape == (2, 2)


def test_padding_does_not_leak(models):
    """Changing padded token ids must not change the outputs of the real tokens."""
    ids, masks = text_batch()
    images = torch.randn(2, 3, 32, 32)
    ids2 = ids.clone()
    ids2[-1, 7:] = 5  # still masked out
    with torch.no_grad():
        a = models["vqa"](ids, masks, images)
        b = models["vqa"](ids2, masks, images)
    # position ids of RoBERTa depend on the pad id, so compare only image-side and pooled outputs
    torch.testing.assert_close(a.cls_feats, b.cls_feats, atol=1e-5, rtol=0)


def test_nlvr2_pair_and_token_types(models):
    m = models["nlvr2"]
    assert m.token_type_embeddings.weight.shape[0] == 3
    ids, masks = text_batch()
    im0, im1 = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = m.nlvr2_logits(ids, masks, im0, im1)
        assert logits.shape == (2, 2)
        # pass 2 uses token type 2: differs from a pass with token type 1 unless rows are equal
        manual = m.nlvr2_classifier(torch.cat([m(ids, masks, im0, 1).cls_feats, m(ids, masks, im1, 2).cls_feats], -1))
    torch.testing.assert_close(logits, manual)


def test_video_forward_and_pooling(models):
    m = models["msrvtt"]
    ids, masks = text_batch()
    clips = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        out = m(ids, masks, clips)
    assert out.image_feats.shape == (2, 4 + 4 * 16, 64)
    assert out.cross_image_feat.shape == (2, 4, 64)
    manual_pool = torch.tanh(m.cross_modal_image_pooler.dense(out.image_feats[:, :4].mean(1)))
    torch.testing.assert_close(out.cls_feats_image, manual_pool)


def test_frame_attention_matches_reference_and_reduces_to_vit():
    torch.manual_seed(1)
    attn = FrameAttention(32, 4)
    mha = torch.nn.MultiheadAttention(32, 4, batch_first=True)
    mha.load_state_dict(
        {
            "in_proj_weight": attn.in_proj_weight,
            "in_proj_bias": attn.in_proj_bias,
            "out_proj.weight": attn.out_proj.weight,
            "out_proj.bias": attn.out_proj.bias,
        }
    )
    x = torch.randn(2, 3, 5, 32)  # B, F, N (1 CLS + 4 patches), D
    with torch.no_grad():
        out = attn(x)
        for f in range(3):
            # patch tokens: attention within their own frame
            ref_p = mha(x[:, f, 1:], x[:, f], x[:, f], need_weights=False)[0]
            torch.testing.assert_close(out[:, f, 1:], ref_p, atol=1e-5, rtol=1e-5)
        # frame CLS tokens: attention over every token of every frame
        allk = x.reshape(2, 15, 32)
        ref_c = mha(x[:, :, 0], allk, allk, need_weights=False)[0]
        torch.testing.assert_close(out[:, :, 0], ref_c, atol=1e-5, rtol=1e-5)
        one = attn(x[:, :1])
        torch.testing.assert_close(
            one[:, 0], mha(x[:, 0], x[:, 0], x[:, 0], need_weights=False)[0], atol=1e-5, rtol=1e-5
        )


def test_masking_modes(models):
    m = models["pretrain"]
    ids, masks = text_batch()
    images = torch.randn(2, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        drop = m(ids, masks, images, mask_mode="drop", mask_ratio=0.8, generator=g)
        assert drop.image_feats.shape[1] == 1 + int(16 * 0.2)
        assert drop.ids_keep.shape == (2, 3)
        tok = m(ids, masks, images, mask_mode="token", mask_ratio=0.3, generator=g)
        assert tok.image_feats.shape[1] == 17 and tok.ids_mask.sum(1).tolist() == [4, 4]
        # video: the kept patches are shared by every frame (tube masking)
        v = models["msrvtt"].vision_transformer.visual.embed(torch.randn(2, 3, 3, 32, 32), "drop", 0.5, g)
        assert v.tokens.shape == (2, 3, 1 + 8, 64)
        assert v.ids_keep.shape == (2, 8)


def test_masked_drop_keeps_the_right_patches(models):
    """Dropping = gathering the kept patches of the unmasked embedding (same positions)."""
    visual = models["pretrain"].vision_transformer.visual
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        full = visual.embed(images)
        dropped = visual.embed(images, "drop", 0.5, torch.Generator().manual_seed(3))
    kept = torch.gather(full.tokens[:, 0, 1:], 1, dropped.ids_keep[..., None].expand(-1, -1, 64))
    torch.testing.assert_close(dropped.tokens[:, 0, 1:], kept)
    torch.testing.assert_close(dropped.tokens[:, 0, 0], full.tokens[:, 0, 0])


def test_position_table_resize():
    table = torch.randn(1 + 18 * 18, 8)
    same = resize_position_table(table, 288, 16)
    assert torch.equal(same, table)
    big = resize_position_table(table, 384, 16)
    assert big.shape == (1 + 24 * 24, 8)
    assert torch.equal(big[0], table[0])  # CLS row untouched
    grid = table[1:].reshape(1, 18, 18, 8).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, size=(24, 24), mode="bicubic", align_corners=False)
    torch.testing.assert_close(big[1:], ref.permute(0, 2, 3, 1).reshape(-1, 8))
    assert resize_position_table(table[None], 224, 16).shape == (1, 197, 8)
