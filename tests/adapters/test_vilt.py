"""The ViLT adapter gives what transformers' ViLT gives on the same inputs: VQA logits and answers, NLVR2
P(true), retrieval rank scores; and every checkpoint mistake is one CheckpointError naming it."""

from __future__ import annotations

import hf_tiny
import pytest
import torch

from sclbench.adapters.interface import NLVR2Batch, VQABatch, missing_methods
from sclbench.errors import CheckpointError, ConfigError

pytest.importorskip("transformers")

QUESTIONS = [
    "what color is the dog?",
    "how many people are there",
    "is the man sitting left of the car?",
    "what is in the picture",
    "yes or no",
    "two red cats on a table",
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("vilt")
    return {head: hf_tiny.save_vilt(root / head, head) for head in ("vqa", "nlvr2", "retrieval")}


def build(folder, family):
    from sclbench.adapters import vilt

    return vilt.build(ckpt=str(folder), family=family)


def pixels_of(model, imgs):
    """What sclbench's loader gives the model: preprocess().image per image, stacked as [B, 1, 3, H, W]."""
    prep = model.preprocess()
    return torch.stack([prep.image(im) for im in imgs])[:, None]


def test_vqa_logits_and_answers_equal_transformers(folders):
    from transformers import ViltForQuestionAnswering, ViltProcessor

    model = build(folders["vqa"], "vqa")
    imgs = hf_tiny.images(len(QUESTIONS))
    pixels = pixels_of(model, imgs)
    assert pixels.shape[-2:] == (48, 48) and torch.isnan(pixels).any()  # canvases of different images
    batch = VQABatch(pixels, model.preprocess().text(QUESTIONS), QUESTIONS, list(range(len(imgs))), ["yes"])
    ours = model.vqa_logits(batch)

    ref_model = ViltForQuestionAnswering.from_pretrained(folders["vqa"]).eval()
    processor = ViltProcessor.from_pretrained(folders["vqa"])
    inputs = processor(
        images=imgs, text=QUESTIONS, padding="max_length", max_length=40, truncation=True, return_tensors="pt"
    )
    with torch.no_grad():
        ref = ref_model(**inputs).logits
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)
    labels = ref_model.config.id2label
    assert model.answer_vqa(batch) == [labels[i] for i in ref.argmax(-1).tolist()]
    assert len(set(ours.argmax(-1).tolist())) > 1  # the comparison is not between constant answers


def test_nlvr2_prob_true_equals_transformers(folders):
    from transformers import ViltForImagesAndTextClassification, ViltProcessor

    model = build(folders["nlvr2"], "nlvr2")
    left, right = hf_tiny.images(4, seed=1), hf_tiny.images(5, seed=2)[1:]
    statements = QUESTIONS[:4]
    batch = NLVR2Batch(
        pixels_of(model, left),
        pixels_of(model, right),
        model.preprocess().text(statements),
        statements,
        [0, 1, 2, 3],
        [4, 5, 6, 7],
    )
    ours = model.nlvr2_prob_true(batch)

    ref_model = ViltForImagesAndTextClassification.from_pretrained(folders["nlvr2"]).eval()
    processor = ViltProcessor.from_pretrained(folders["nlvr2"])
    img = processor.image_processor(images=left + right, return_tensors="pt")  # one padded batch
    b = len(left)
    text = processor.tokenizer(statements, padding="max_length", max_length=40, truncation=True, return_tensors="pt")
    with torch.no_grad():
        logits = ref_model(
            input_ids=text["input_ids"],
            attention_mask=text["attention_mask"],
            pixel_values=img["pixel_values"].view(2, b, *img["pixel_values"].shape[1:]).transpose(0, 1),
            pixel_mask=img["pixel_mask"].view(2, b, *img["pixel_mask"].shape[1:]).transpose(0, 1),
        ).logits
    torch.testing.assert_close(ours, logits.softmax(-1)[:, 1], atol=1e-5, rtol=1e-4)
    assert ours.shape == (b,) and ((ours > 0) & (ours < 1)).all()


def test_retrieval_pair_scores_equal_transformers_rank_output(folders):
    from transformers import ViltForImageAndTextRetrieval, ViltProcessor

    model = build(folders["retrieval"], "retrieval")
    assert model.has_pair_scorer and missing_methods(model, "retrieval") == []
    imgs, texts = hf_tiny.images(5, seed=3), QUESTIONS[:4]
    # Two media batches of different longest images: their patch rows must still concatenate.
    media = [model.embed_media(pixels_of(model, part)) for part in (imgs[:2], imgs[2:])]
    media = {k: torch.cat([m[k] for m in media]) for k in media[0]}
    tx = model.embed_texts(model.preprocess().text(texts))
    # No first stage: a placeholder embedding, and the engine told to score every pair.
    assert not model.has_first_stage and not tx["embedding"].any() and not media["embedding"].any()
    text_of = torch.arange(len(texts)).repeat_interleave(len(imgs))
    media_of = torch.arange(len(imgs)).repeat(len(texts))
    ours = model.score_pairs(tx, media, text_of, media_of)

    ref_model = ViltForImageAndTextRetrieval.from_pretrained(folders["retrieval"]).eval()
    processor = ViltProcessor.from_pretrained(folders["retrieval"])
    img = processor.image_processor(images=imgs, return_tensors="pt")
    enc = processor.tokenizer(texts, padding="max_length", max_length=40, truncation=True, return_tensors="pt")
    with torch.no_grad():
        ref = ref_model(
            input_ids=enc["input_ids"][text_of],
            attention_mask=enc["attention_mask"][text_of],
            pixel_values=img["pixel_values"][media_of],
            pixel_mask=img["pixel_mask"][media_of],
        ).logits[:, 0]
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)
    # A subset of pairs in another order gives the same scores for those pairs.
    pick = torch.tensor([7, 0, 13, 2])
    torch.testing.assert_close(
        model.score_pairs(tx, media, text_of[pick], media_of[pick]), ref[pick], atol=1e-5, rtol=1e-4
    )


def test_preprocess_is_picklable_and_deterministic(folders):
    import pickle

    model = build(folders["retrieval"], "retrieval")
    prep = pickle.loads(pickle.dumps(model.preprocess()))
    img = hf_tiny.images(1)[0]
    assert prep.deterministic
    torch.testing.assert_close(prep.image(img), model.preprocess().image(img), equal_nan=True)
    assert prep.text(["a dog"])["input_ids"].shape == (1, 40)
    # The canvas holds the largest image the processor makes; a processor unlike ViLT's is refused, not cropped.
    from sclbench.adapters.vilt import CanvasImage

    with pytest.raises(CheckpointError, match="larger than the 16-pixel canvas"):
        CanvasImage(model.processor.image_processor, 16)(img)


def test_checkpoint_mistakes_are_one_clear_error(folders, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(CheckpointError, match="lacks weights .* not a ViLT retrieval model"):
        build(folders["vqa"], "retrieval")  # a VQA release has no rank head
    with pytest.raises(CheckpointError, match="no config.json"):
        build(tmp_path, "vqa")
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="is a file"):
        build(tmp_path / "w.bin", "vqa")
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE=1"):
        build("nobody-here/not-a-model", "vqa")
    with pytest.raises(CheckpointError, match="no such folder"):
        build(str(tmp_path / "missing" / "folder"), "vqa")
    with pytest.raises(CheckpointError, match="dandelin/vilt-b32-finetuned-vqa.*HF_HUB_OFFLINE=1"):
        build("vilt-vqa", "vqa")  # a registered name: its hub id, looked up in the (empty) cache
    with pytest.raises(CheckpointError, match="registered as a blip model; evaluate it with --model blip"):
        build("blip-coco", "retrieval")
    from sclbench.model.hub import resolve

    with pytest.raises(CheckpointError, match="evaluate it with --model vilt --ckpt vilt-vqa"):
        resolve("vilt-vqa")  # the SCL loader (`eval --ckpt vilt-vqa` without --model) points to the adapter
    with pytest.raises(CheckpointError, match="--model scl"):
        build("scl-pretrain", "vqa")  # a registered SCL checkpoint
    clip = hf_tiny.save_clip(tmp_path / "clip")
    with pytest.raises(CheckpointError, match="'clip' model, not a 'vilt'"):
        build(clip, "vqa")
    with pytest.raises(ConfigError, match="no pretrain adapter"):
        build(folders["vqa"], "pretrain")
