"""The text stream: a RoBERTa encoder from transformers (`text_transformer.*`).

Built from the config's sizes, or from a local directory / hub id of RoBERTa weights. The RoBERTa
pooler is not built: SCL never uses it (its keys in official checkpoints are ignored when loading).
"""

from __future__ import annotations

from transformers import RobertaConfig, RobertaModel

from sclbench.errors import CheckpointError
from sclbench.model.config import SCLConfig


def roberta_config(config: SCLConfig) -> RobertaConfig:
    return RobertaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=config.text_intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        type_vocab_size=1,
        layer_norm_eps=config.text_layer_norm_eps,
        hidden_dropout_prob=config.drop_rate,
        attention_probs_dropout_prob=config.drop_rate,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        initializer_range=config.text_init_std,
    )


def build_text_encoder(config: SCLConfig) -> RobertaModel:
    """RoBERTa with SDPA attention: random weights, or `config.text_encoder` (dir or hub id)."""
    if config.text_encoder:
        try:
            return RobertaModel.from_pretrained(
                config.text_encoder, add_pooling_layer=False, attn_implementation="sdpa"
            )
        except OSError as err:
            raise CheckpointError(
                f"cannot load RoBERTa weights from {config.text_encoder!r}: {err}. Pass a local "
                "directory holding config.json + model weights, or run once with internet access."
            ) from err
    rc = roberta_config(config)
    rc._attn_implementation = "sdpa"
    return RobertaModel(rc, add_pooling_layer=False)
