"""The BLIP adapter gives what transformers' BLIP gives on the same inputs: the contrastive similarity, the ITM
logit plus that similarity (BLIP's evaluation score), and the generated VQA answers."""

from __future__ import annotations

import hf_tiny
import pytest
import torch

from sclbench.adapters.interface import VQABatch, missing_methods
from sclbench.errors import ConfigError

pytest.importorskip("transformers")

CAPTIONS = [
    "Two dogs (running) on the grass!",
    "a man; sitting at a table.",
    "THE red car ~ in the street",
    "one   woman with a blue shirt",
    "a cat",
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("blip")
    return {
        "retrieval": hf_tiny.save_blip(root / "retrieval", "retrieval"),
        "vqa": hf_tiny.save_blip(root / "vqa", "vqa"),
        "no_enc": hf_tiny.save_blip(root / "no_enc", "retrieval", enc_token=False),
    }


def build(folder, family):
    from sclbench.adapters import blip

    return blip.build(ckpt=str(folder), family=family)


def pixels_of(model, imgs):
    prep = model.preprocess()
    return torch.stack([prep.image(im) for im in imgs])[:, None]


def test_caption_and_question_normalisation_as_blip():
    from sclbench.adapters.blip import pre_caption, pre_question

    assert pre_caption("Two dogs (running) on the grass!") == "two dogs running on the grass"
    assert pre_caption("  A  man:  sits.\n") == "a man sits"
    assert pre_caption(" ".join(["w"] * 40)) == " ".join(["w"] * 30)
    assert pre_question("What color is the dog?") == "what color is the dog?"  # '?' is kept
    assert pre_question("Is it (red)...") == "is it red"


@pytest.mark.parametrize("kind", ["retrieval", "no_enc"])
def test_retrieval_embeddings_and_pair_scores_equal_transformers(folders, kind):
    from transformers import BlipForImageTextRetrieval, BlipProcessor

    from sclbench.adapters.blip import pre_caption

    model = build(folders[kind], "retrieval")
    assert model.has_pair_scorer and missing_methods(model, "retrieval") == []
    assert (model.enc_id is not None) == (kind == "retrieval")
    imgs = hf_tiny.images(4, seed=5)
    media = model.embed_media(pixels_of(model, imgs))
    texts = model.embed_texts(model.preprocess().text(CAPTIONS))
    text_of = torch.arange(len(CAPTIONS)).repeat_interleave(len(imgs))
    media_of = torch.arange(len(imgs)).repeat(len(CAPTIONS))
    ours = model.score_pairs(texts, media, text_of, media_of)

    ref_model = BlipForImageTextRetrieval.from_pretrained(folders[kind]).eval()
    processor = BlipProcessor.from_pretrained(folders[kind])
    pixel_values = processor.image_processor(images=imgs, return_tensors="pt")["pixel_values"]
    enc = processor.tokenizer(
        [pre_caption(c) for c in CAPTIONS], padding="max_length", max_length=35, truncation=True, return_tensors="pt"
    )
    with torch.no_grad():
        # ITC: transformers' own use_itm_head=False gives image x text cosine similarities.
        sim = ref_model(
            input_ids=enc["input_ids"],
            attention_mask=enc["attention_mask"],
            pixel_values=pixel_values,
            use_itm_head=False,
        ).itm_score
        torch.testing.assert_close(media["embedding"] @ texts["embedding"].t(), sim, atol=1e-5, rtol=1e-4)
        # ITM on the same pairs, [ENC] first as BLIP's evaluation when the tokenizer has it.
        ids = enc["input_ids"].clone()
        if kind == "retrieval":
            ids[:, 0] = processor.tokenizer.convert_tokens_to_ids("[ENC]")
        itm = ref_model(
            input_ids=ids[text_of],
            attention_mask=enc["attention_mask"][text_of],
            pixel_values=pixel_values[media_of],
            use_itm_head=True,
        ).itm_score
    expected = itm[:, 1] + sim[media_of, text_of]
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)
    assert ours.std() > 1e-3  # scores that differ between pairs


def test_vqa_answers_equal_transformers_generate(folders):
    from transformers import BlipForQuestionAnswering, BlipProcessor

    from sclbench.adapters.blip import pre_question

    model = build(folders["vqa"], "vqa")
    questions = ["What color is the dog?", "how many people are there", "is it red", "What is (in) the image?"]
    imgs = hf_tiny.images(len(questions), seed=6)
    batch = VQABatch(pixels_of(model, imgs), model.preprocess().text(questions), questions, [0, 1, 2, 3], ["yes"])
    ours = model.answer_vqa(batch)

    ref_model = BlipForQuestionAnswering.from_pretrained(folders["vqa"]).eval()
    processor = BlipProcessor.from_pretrained(folders["vqa"])
    inputs = processor(
        images=imgs,
        text=[pre_question(q) for q in questions],
        padding="longest",
        truncation=True,
        max_length=35,
        return_tensors="pt",
    )
    inputs["input_ids"][:, 0] = processor.tokenizer.convert_tokens_to_ids("[ENC]")
    with torch.no_grad():
        tokens = ref_model.generate(**inputs, num_beams=3, max_length=10, min_length=1)
    expected = [a.strip() for a in processor.tokenizer.batch_decode(tokens, skip_special_tokens=True)]
    assert ours == expected and all(isinstance(a, str) for a in ours)
    assert any(ours)  # some answer is not empty


def test_families_blip_does_not_have(folders):
    with pytest.raises(ConfigError, match="no nlvr2 adapter"):
        build(folders["vqa"], "nlvr2")


def test_vqa_rank_scores_equal_blips_ranking_through_transformers(folders):
    """build_rank: the top-k answers by first-token probability, each scored by minus transformers' own
    decoder loss (reduction 'none', BLIP's label smoothing 0.1); the argmax answer is the best of them."""
    from transformers import BlipForQuestionAnswering, BlipProcessor

    from sclbench.adapters import blip
    from sclbench.adapters.blip import pre_question

    model = blip.build_rank(ckpt=str(folders["vqa"]))
    assert model.describe()["inference"] == "rank"
    vocabulary = ["yes", "no", "2", "red", "two dogs", "on the table", "a man", "left", "cat", "blue shirt"] * 15
    vocabulary = [f"{a} {i // 10}" if i >= 10 else a for i, a in enumerate(vocabulary)]  # 150 answers > k = 128
    questions = ["What color is the dog?", "how many people are there", "is it red"]
    imgs = hf_tiny.images(len(questions), seed=10)
    batch = VQABatch(pixels_of(model, imgs), model.preprocess().text(questions), questions, [0, 1, 2], vocabulary)
    scores = model.answer_vqa(batch)
    assert scores.shape == (3, 150) and (torch.isfinite(scores).sum(1) == 128).all()

    ref = BlipForQuestionAnswering.from_pretrained(folders["vqa"]).eval()
    ref.text_decoder.label_smoothing = 0.1
    processor = BlipProcessor.from_pretrained(folders["vqa"])
    tok = processor.tokenizer
    q = tok(
        [pre_question(x) for x in questions], padding="longest", truncation=True, max_length=35, return_tensors="pt"
    )
    q["input_ids"][:, 0] = tok.convert_tokens_to_ids("[ENC]")
    answers = tok(vocabulary, padding="longest", return_tensors="pt")
    answers["input_ids"][:, 0] = ref.config.text_config.bos_token_id
    with torch.no_grad():
        images = ref.vision_model(processor.image_processor(images=imgs, return_tensors="pt")["pixel_values"])[0]
        states = ref.text_encoder(q["input_ids"], attention_mask=q["attention_mask"], encoder_hidden_states=images)[0]
        for i in range(len(questions)):
            kept = torch.isfinite(scores[i]).nonzero()[:, 0]
            ids, mask = answers["input_ids"][kept], answers["attention_mask"][kept]
            labels = ids.masked_fill(ids == tok.pad_token_id, -100)
            loss = ref.text_decoder(
                ids,
                attention_mask=mask,
                encoder_hidden_states=states[i : i + 1].expand(len(ids), -1, -1),
                encoder_attention_mask=q["attention_mask"][i : i + 1].expand(len(ids), -1),
                labels=labels,
                reduction="none",
            ).loss
            torch.testing.assert_close(scores[i, kept], -loss, atol=1e-4, rtol=1e-4)
            # The kept answers are the k likeliest first tokens after the start token.
            first = (
                ref.text_decoder(
                    answers["input_ids"][:1, :1],
                    encoder_hidden_states=states[i : i + 1],
                    encoder_attention_mask=q["attention_mask"][i : i + 1],
                )
                .logits[0, 0]
                .softmax(-1)
            )
            p = first[answers["input_ids"][:, 1]]
            assert p[kept].min() >= p[~torch.isin(torch.arange(150), kept)].max() - 1e-7


def test_records_of_build_rank_meet_blips_published_numbers():
    from sclbench.results.paper import model_family

    assert model_family({"name": "blip-vqa-capfilt-large", "model": "sclbench.adapters.blip:build_rank"}) == "blip"
    assert model_family({"name": "x", "model": "my_pkg.models:build"}) == "my_pkg.models:build"
