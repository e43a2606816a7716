"""The parameter names and shapes of METER's released CLIP16-RoBERTa models, derived by hand from
METER's module definitions (zdou0830/METER @ f4f0934), independently of sclbench's model code:

* meter/modules/meter_module.py `METERTransformerSS.__init__`: text_transformer =
  RobertaModel.from_pretrained(roberta-base) (pooler included, transformers 4.6.0 per requirements.txt,
  whose `embeddings.position_ids` buffer is saved); vit_model = clip_model.build_model(ViT-B/16);
  cross_modal_{text,image}_transform Linear(768, 768); token_type_embeddings Embedding(2, 768), re-made
  with 3 rows for NLVR2; 6 + 6 BertCrossLayer; two heads.Pooler; mlm_score (loss mlm), itm_score
  (loss itm), vqa_classifier (loss vqa), nlvr2_classifier (loss nlvr2), rank_output (loss irtr: declared
  Linear(768, 1) but given itm_score.fc's [1, 1536] "match" row).
* meter/modules/clip_model.py: `Transformer` builds layers - 1 = 11 blocks; `VisualTransformer` has
  conv1 (no bias), class_embedding, positional_embedding (resolution_after), ln_pre, ln_post, no proj;
  `CLIP` keeps the text tower's positional_embedding [77, 512] and ln_final [512] only.
* meter/modules/bert_model.py `BertCrossLayer`: attention, crossattention (BertAttention: self.query/
  key/value, output.dense/LayerNorm), intermediate.dense, output.dense/LayerNorm.
* meter/modules/heads.py: Pooler.dense, ITMHead.fc (Linear(1536, 2)), MLMHead.transform (transformers'
  BertPredictionHeadTransform: dense, LayerNorm), decoder (no bias), bias.
* meter/config.py: loss_names per task (pretrain mlm+itm; vqa; nlvr2; irtr itm+irtr), vqav2_label_size
  3129, image sizes (README: pre-training 288, VQA 576, NLVR2 288, F30K/COCO 384), vocab 50265.
"""

from __future__ import annotations

# Released task models (README "Pre-trained Checkpoints" 1, 4, 5, 7, 8): METER's loss set and resolution.
RELEASED = {
    "meter-clip16-288-pretrain": dict(task="pretrain", heads=("mlm", "itm"), image_size=288),
    "meter-vqa": dict(task="vqa", heads=("vqa",), image_size=576),
    "meter-nlvr2": dict(task="nlvr2", heads=("nlvr2",), image_size=288),
    "meter-f30k": dict(task="f30k", heads=("itm", "rank"), image_size=384),
    "meter-coco": dict(task="coco", heads=("itm", "rank"), image_size=384),
}
BASE = dict(
    hidden=768,
    text_layers=12,
    intermediate=3072,
    vocab=50265,
    text_positions=514,
    vision_layers=11,
    patch=16,
    top_layers=6,
    answers=3129,
    clip_context=77,
    clip_text_width=512,
)


def _linear(prefix: str, d_in: int, d_out: int, bias: bool = True) -> dict[str, tuple[int, ...]]:
    out = {f"{prefix}.weight": (d_out, d_in)}
    if bias:
        out[f"{prefix}.bias"] = (d_out,)
    return out


def _norm(prefix: str, d: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (d,), f"{prefix}.bias": (d,)}


def _bert_attention(prefix: str, h: int) -> dict[str, tuple[int, ...]]:
    keys = {}
    for name in ("query", "key", "value"):
        keys |= _linear(f"{prefix}.self.{name}", h, h)
    return keys | _linear(f"{prefix}.output.dense", h, h) | _norm(f"{prefix}.output.LayerNorm", h)


def _ffn(prefix: str, h: int, inter: int) -> dict[str, tuple[int, ...]]:
    return (
        _linear(f"{prefix}.intermediate.dense", h, inter)
        | _linear(f"{prefix}.output.dense", inter, h)
        | _norm(f"{prefix}.output.LayerNorm", h)
    )


def meter_keys(task: str, heads: tuple[str, ...], image_size: int, **sizes: int) -> dict[str, tuple[int, ...]]:
    """{key: shape} of a METER CLIP16-RoBERTa Lightning checkpoint's `state_dict` (METER's own names)."""
    s = {**BASE, **sizes}
    h, inter = s["hidden"], s["intermediate"]
    keys: dict[str, tuple[int, ...]] = {
        "text_transformer.embeddings.position_ids": (1, s["text_positions"]),
        "text_transformer.embeddings.word_embeddings.weight": (s["vocab"], h),
        "text_transformer.embeddings.position_embeddings.weight": (s["text_positions"], h),
        "text_transformer.embeddings.token_type_embeddings.weight": (1, h),
    }
    keys |= _norm("text_transformer.embeddings.LayerNorm", h)
    for i in range(s["text_layers"]):
        keys |= _bert_attention(f"text_transformer.encoder.layer.{i}.attention", h)
        keys |= _ffn(f"text_transformer.encoder.layer.{i}", h, inter)
    keys |= _linear("text_transformer.pooler.dense", h, h)

    v = "vit_model.visual"
    grid = image_size // s["patch"]
    keys |= {
        f"{v}.conv1.weight": (h, 3, s["patch"], s["patch"]),
        f"{v}.class_embedding": (h,),
        f"{v}.positional_embedding": (grid * grid + 1, h),
    }
    keys |= _norm(f"{v}.ln_pre", h) | _norm(f"{v}.ln_post", h)
    for i in range(s["vision_layers"]):
        b = f"{v}.transformer.resblocks.{i}"
        keys |= {f"{b}.attn.in_proj_weight": (3 * h, h), f"{b}.attn.in_proj_bias": (3 * h,)}
        keys |= _linear(f"{b}.attn.out_proj", h, h) | _norm(f"{b}.ln_1", h) | _norm(f"{b}.ln_2", h)
        keys |= _linear(f"{b}.mlp.c_fc", h, 4 * h) | _linear(f"{b}.mlp.c_proj", 4 * h, h)
    keys |= {"vit_model.positional_embedding": (s["clip_context"], s["clip_text_width"])}
    keys |= _norm("vit_model.ln_final", s["clip_text_width"])

    keys |= _linear("cross_modal_text_transform", h, h) | _linear("cross_modal_image_transform", h, h)
    keys["token_type_embeddings.weight"] = (3 if task == "nlvr2" else 2, h)
    for side in ("image", "text"):
        for i in range(s["top_layers"]):
            layer = f"cross_modal_{side}_layers.{i}"
            keys |= _bert_attention(f"{layer}.attention", h) | _bert_attention(f"{layer}.crossattention", h)
            keys |= _ffn(layer, h, inter)
        keys |= _linear(f"cross_modal_{side}_pooler.dense", h, h)

    if "mlm" in heads:
        keys |= _linear("mlm_score.transform.dense", h, h) | _norm("mlm_score.transform.LayerNorm", h)
        keys |= {"mlm_score.decoder.weight": (s["vocab"], h), "mlm_score.bias": (s["vocab"],)}
    if "itm" in heads:
        keys |= _linear("itm_score.fc", 2 * h, 2)
    if "vqa" in heads:
        keys |= (
            _linear("vqa_classifier.0", 2 * h, 2 * h)
            | _norm("vqa_classifier.1", 2 * h)
            | _linear("vqa_classifier.3", 2 * h, s["answers"])
        )
    if "nlvr2" in heads:
        keys |= (
            _linear("nlvr2_classifier.0", 4 * h, 2 * h)
            | _norm("nlvr2_classifier.1", 2 * h)
            | _linear("nlvr2_classifier.3", 2 * h, 2)
        )
    if "rank" in heads:
        keys |= {"rank_output.weight": (1, 2 * h), "rank_output.bias": (1,)}
    return keys


# What one side has and the other has not, after METER's vit_model.* is read as vision_transformer.*.
METER_ONLY = {
    "text_transformer.embeddings.position_ids",
    "text_transformer.pooler.dense.weight",
    "text_transformer.pooler.dense.bias",
    "vision_transformer.positional_embedding",
    "vision_transformer.ln_final.weight",
    "vision_transformer.ln_final.bias",
}
SCL_ONLY_ALL = {"vision_transformer.visual.visual_mask_token"}
SCL_ONLY_PRETRAIN = {
    "cl_temp",
    "vision_proj.0.weight",
    "vision_proj.0.bias",
    "vision_proj.1.weight",
    "vision_proj.1.bias",
    "vision_proj.3.weight",
    "vision_proj.3.bias",
    "language_proj.0.weight",
    "language_proj.0.bias",
    "language_proj.1.weight",
    "language_proj.1.bias",
    "language_proj.3.weight",
    "language_proj.3.bias",
}
SCL_ONLY_RETRIEVAL = SCL_ONLY_PRETRAIN  # SCL's retrieval models keep the contrastive head; METER's have none
