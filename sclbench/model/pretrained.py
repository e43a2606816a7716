"""Encoder initialisation for pre-training: CLIP ViT-B/16 and RoBERTa weights under sclbench's names.

The official SCL model starts its two towers from released unimodal weights and everything else
(fusion, heads) at random:

* vision: OpenAI CLIP ViT-B/16. Only the `visual.*` tower is kept; its output projection
  `visual.proj` and the whole CLIP text tower are dropped; only the first `vision_layers` blocks are
  built (the official model keeps 11 of CLIP's 12); the position table is bicubically resized to the
  model's resolution; `visual_mask_token` (and a video model's `temporal_embed`) stay at their random
  init because CLIP has no such tensors.
* text: roberta-base, all of `RobertaModel` except its pooler (never used).

Each source layout has a converter (`*_filter_fn`, timm's `checkpoint_filter_fn` idea): a state dict in
that layout in, a state dict under the official parameter names out, plus the dropped keys with the
reason. Layouts: OpenAI / open_clip (`visual.conv1.weight`, ...), transformers `CLIPVisionModel` /
`CLIPModel` (`vision_model.embeddings.patch_embedding.weight`, ...), transformers `RobertaModel` /
`RobertaForMaskedLM` (`[roberta.]embeddings.word_embeddings.weight`, ...).

A source is a registered name (`checkpoints.yaml`, `kind: encoder-init`), a local state-dict file
(.pt/.pth/.bin/.safetensors, or OpenAI's TorchScript .pt), a folder written by `save_pretrained`, or a
Hugging Face hub id read with transformers' `from_pretrained` (its cache, its offline switches).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sclbench.errors import CheckpointError
from sclbench.model.scl import SCLModel
from sclbench.model.vision import resize_position_table

VISION_PREFIX = "vision_transformer.visual."
TEXT_PREFIX = "text_transformer."
POS_KEY = VISION_PREFIX + "positional_embedding"
# Model tensors the released encoders do not have: they keep the model's own (random) init, as the
# official code does (CLIP's VisualTransformer creates visual_mask_token with torch.randn).
KEPT_INIT = {
    VISION_PREFIX + "visual_mask_token": "no such tensor in CLIP: random init (official)",
    VISION_PREFIX + "temporal_embed": "no such tensor in CLIP: random init",
}
# Weight files looked for in a folder that has no transformers config.json (open_clip downloads).
FOLDER_WEIGHTS = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.bin",
    "model.safetensors",
    "pytorch_model.bin",
)

Converted = tuple[dict[str, torch.Tensor], dict[str, str]]  # (mapped state dict, dropped key -> why)


# ---- converters ---------------------------------------------------------------------------------
def _unwrap(sd: dict[str, Any], marker: str) -> dict[str, torch.Tensor]:
    """Tensors only, without a wrapper prefix (`module.`, `model.`...) in front of `marker`."""
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    hit = next((k for k in sd if k.endswith(marker)), None)
    prefix = hit[: -len(marker)] if hit else ""
    if prefix and all(k.startswith(prefix) for k in sd):
        sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def clip_openai_filter_fn(state_dict: dict[str, Any]) -> Converted:
    """OpenAI / open_clip CLIP layout -> `vision_transformer.visual.*` (names are already CLIP's)."""
    sd = _unwrap(state_dict, "visual.conv1.weight")
    if "visual.conv1.weight" not in sd or "visual.transformer.resblocks.0.attn.in_proj_weight" not in sd:
        raise ValueError("no `visual.conv1.weight` / `visual.transformer.resblocks.*`: not a CLIP ViT state dict")
    out, dropped = {}, {}
    for key, value in sd.items():
        if key == "visual.proj":
            dropped[key] = "CLIP's image projection: the official model has none"
        elif key.startswith("visual."):
            out[VISION_PREFIX + key[len("visual.") :]] = value
        else:
            dropped[key] = "CLIP text tower, logit scale or metadata: the text side is RoBERTa"
    return out, dropped


_HF_CLIP_RENAMES = [  # transformers CLIP vision names -> OpenAI names (after `vision_model.`)
    (r"^embeddings\.class_embedding$", "class_embedding"),
    (r"^embeddings\.patch_embedding\.weight$", "conv1.weight"),
    (r"^embeddings\.position_embedding\.weight$", "positional_embedding"),
    (r"^pre_layrnorm\.", "ln_pre."),
    (r"^post_layernorm\.", "ln_post."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.out_proj\.", r"transformer.resblocks.\1.attn.out_proj."),
    (r"^encoder\.layers\.(\d+)\.layer_norm1\.", r"transformer.resblocks.\1.ln_1."),
    (r"^encoder\.layers\.(\d+)\.layer_norm2\.", r"transformer.resblocks.\1.ln_2."),
    (r"^encoder\.layers\.(\d+)\.mlp\.fc1\.", r"transformer.resblocks.\1.mlp.c_fc."),
    (r"^encoder\.layers\.(\d+)\.mlp\.fc2\.", r"transformer.resblocks.\1.mlp.c_proj."),
]
_HF_QKV = re.compile(r"^encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$")


def clip_hf_filter_fn(state_dict: dict[str, Any]) -> Converted:
    """transformers `CLIPVisionModel` / `CLIPModel` layout -> `vision_transformer.visual.*`.

    Accepts `vision_model.`-prefixed keys (CLIPModel files such as openai/clip-vit-base-patch16,
    transformers 4 CLIPVisionModel) and bare ones (transformers 5 CLIPVisionModel). q/k/v
    projections are concatenated in that order into `nn.MultiheadAttention`'s `in_proj_*`.
    """
    sd = {k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    marker = "embeddings.patch_embedding.weight"
    hit = next((k for k in sd if k.endswith(marker)), None)
    if hit is None:
        raise ValueError(f"no `{marker}`: not a transformers CLIP state dict")
    prefix = hit[: -len(marker)]  # "" or "vision_model." (or a wrapper in front of it)
    out, dropped, qkv = {}, {}, {}
    for key, value in sd.items():
        if not key.startswith(prefix):
            dropped[key] = "CLIP text tower / projections / logit scale: not part of the vision encoder"
            continue
        sub = key[len(prefix) :]
        if match := _HF_QKV.match(sub):
            qkv.setdefault((int(match[1]), match[3]), {})[match[2]] = value
            continue
        for pattern, repl in _HF_CLIP_RENAMES:
            if re.search(pattern, sub):
                out[VISION_PREFIX + re.sub(pattern, repl, sub)] = value
                break
        else:
            dropped[key] = "buffer or tensor without an official counterpart"
    for (layer, kind), parts in sorted(qkv.items()):
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"layer {layer}: {kind} of q/k/v projections incomplete ({sorted(parts)})")
        out[f"{VISION_PREFIX}transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat(
            [parts["q"], parts["k"], parts["v"]], dim=0
        )
    return out, dropped


def roberta_filter_fn(state_dict: dict[str, Any]) -> Converted:
    """transformers `RobertaModel` / `RobertaForMaskedLM` layout -> `text_transformer.*`."""
    sd = _unwrap(state_dict, "embeddings.word_embeddings.weight")
    if "embeddings.word_embeddings.weight" not in sd:
        stripped = {k[len("roberta.") :]: v for k, v in sd.items() if k.startswith("roberta.")}
        if "embeddings.word_embeddings.weight" not in stripped:
            raise ValueError("no `embeddings.word_embeddings.weight`: not a RoBERTa state dict")
        dropped = {
            k: "RoBERTa's own MLM head: SCL's mlm_score is a new head (official)"
            for k in sd
            if not k.startswith("roberta.")
        }
        sd = stripped
    else:
        dropped = {}
    out = {}
    for key, value in sd.items():
        if key.startswith("pooler."):
            dropped[key] = "RoBERTa pooler: never used by SCL"
        elif key == "embeddings.position_ids":
            dropped[key] = "a buffer: recomputed"
        else:
            out[TEXT_PREFIX + key] = value
    return out, dropped


CONVERTERS: dict[str, tuple[str, Callable[[dict[str, Any]], Converted]]] = {
    "openai-clip": ("vision", clip_openai_filter_fn),
    "hf-clip": ("vision", clip_hf_filter_fn),
    "hf-roberta": ("text", roberta_filter_fn),
}


def detect_layout(state_dict: dict[str, Any], encoder: str) -> str:
    keys = [k for k in state_dict if isinstance(k, str)]
    if encoder == "vision":
        if any(k.endswith("embeddings.patch_embedding.weight") for k in keys):
            return "hf-clip"
        if any(k.endswith("visual.conv1.weight") for k in keys):
            return "openai-clip"
    elif any(k.endswith("embeddings.word_embeddings.weight") for k in keys):
        return "hf-roberta"
    want = "CLIP ViT (OpenAI/open_clip or transformers layout)" if encoder == "vision" else "RoBERTa"
    raise ValueError(f"holds no {want} weights (first keys: {', '.join(keys[:3]) or 'none'})")


# ---- report -------------------------------------------------------------------------------------
@dataclass
class EncoderInit:
    """Where one encoder's weights came from and what happened to every key."""

    encoder: str
    source: str
    location: str
    layout: str
    loaded: list[str] = field(default_factory=list)
    kept_init: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    adapted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.encoder}: {len(self.loaded)} tensors from {self.source} ({self.layout}, {self.location})"]
        groups: dict[str, list[str]] = {}
        for key, why in self.dropped.items():
            groups.setdefault(why, []).append(key)
        lines += [f"  dropped {len(ks)} ({why}), e.g. {ks[0]}" for why, ks in groups.items()]
        lines += [f"  kept init: {k} ({why})" for k, why in self.kept_init.items()]
        lines += [f"  adapted: {a}" for a in self.adapted]
        return "\n".join(lines)

    def as_record(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "location": self.location,
            "layout": self.layout,
            "loaded": len(self.loaded),
            "dropped": len(self.dropped),
            "kept_init": sorted(self.kept_init),
            "adapted": self.adapted,
        }


@dataclass
class EncoderInitReport:
    vision: EncoderInit | None = None
    text: EncoderInit | None = None

    def summary(self) -> str:
        return "\n".join(
            e.summary() if e else f"{name}: random init" for name, e in (("vision", self.vision), ("text", self.text))
        )

    __str__ = summary

    def as_record(self) -> dict[str, Any]:
        return {name: e.as_record() if e else "random" for name, e in (("vision", self.vision), ("text", self.text))}


# ---- reading sources ----------------------------------------------------------------------------
def _is_torchscript(path: Path) -> bool:
    """OpenAI's released CLIP .pt files are TorchScript archives (a zip with code + constants.pkl)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(name.endswith("constants.pkl") for name in zf.namelist())


def read_file(path: Path) -> dict[str, Any]:
    """A state dict from a weights file. TorchScript archives are read with `torch.jit.load` (the
    official loader's way; the archive's code is never run, only its tensors are read)."""
    from sclbench.model.readers import read_checkpoint

    if path.suffix != ".safetensors" and _is_torchscript(path):
        try:
            return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
        except Exception as err:  # a damaged archive: torch raises RuntimeError and friends
            raise CheckpointError(
                f"cannot read TorchScript archive {path}: {str(err).strip().splitlines()[0]}. Re-download it."
            ) from err
    obj = read_checkpoint(path)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds no state dict")
    return obj


def _hub_cache_hint() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - transformers always brings huggingface_hub
        return "~/.cache/huggingface/hub"


def _from_transformers(source: str, encoder: str) -> tuple[dict[str, torch.Tensor], str]:
    """`from_pretrained` of a folder or hub id: CLIPVisionModel (also reads CLIPModel repos) or RobertaModel."""
    from transformers import CLIPVisionModel, RobertaModel

    cls = CLIPVisionModel if encoder == "vision" else RobertaModel
    try:
        model = cls.from_pretrained(source)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"cannot load {encoder} encoder weights {source!r} with transformers ({first}). Offline: run once "
            f"with internet access to fill the Hugging Face cache ({_hub_cache_hint()}), or pass a local folder "
            f"written by {cls.__name__}.save_pretrained, or a state-dict file (.pt/.bin/.safetensors)."
        ) from err
    if encoder == "vision":
        act, eps = model.config.hidden_act, model.config.layer_norm_eps
        if act != "quick_gelu" or abs(eps - 1e-5) > 1e-12:
            raise CheckpointError(
                f"{source}: CLIP vision config has hidden_act={act!r}, layer_norm_eps={eps}; "
                "sclbench's CLIP blocks compute QuickGELU with eps 1e-5 (OpenAI CLIP)"
            )
    return model.state_dict(), f"transformers {cls.__name__}.from_pretrained({source!r})"


def load_source(source: str | Path, encoder: str) -> tuple[dict[str, Any], str]:
    """(raw state dict, where it was read from) for a registered name, file, folder or hub id."""
    from sclbench.model.hub import registry_entry, resolve

    text = str(source)
    path = Path(text).expanduser()
    if not path.exists():
        entry = registry_entry(text)
        if entry is not None:
            if entry.get("kind") != "encoder-init":
                raise CheckpointError(
                    f"{text!r} is a registered SCL/METER checkpoint, not an encoder "
                    "initialisation (checkpoints.yaml kind: encoder-init)"
                )
            if entry.get("encoder") != encoder:
                raise CheckpointError(
                    f"{text!r} initialises the {entry.get('encoder')} encoder, not the {encoder} encoder"
                )
            if entry.get("loader") == "transformers":
                return _from_transformers(entry["repo"], encoder)
            path = resolve(text).path
        elif re.fullmatch(r"[\w.-]+(/[\w.-]+)?", text) and not text.endswith((".pt", ".pth", ".bin", ".safetensors")):
            return _from_transformers(text, encoder)
        else:
            raise CheckpointError(
                f"{encoder} encoder source {text!r}: no such file or folder, and not a registered name or hub id"
            )
    if path.is_dir():
        if (path / "config.json").is_file():
            return _from_transformers(str(path), encoder)
        found = next((path / f for f in FOLDER_WEIGHTS if (path / f).is_file()), None)
        if found is None:
            raise CheckpointError(
                f"{path} holds neither a transformers config.json nor one of {', '.join(FOLDER_WEIGHTS)}"
            )
        path = found
    return read_file(path), str(path)


# ---- loading into a model -----------------------------------------------------------------------
def load_encoder(model: SCLModel, source: str | Path, encoder: str) -> EncoderInit:
    """Load one encoder's weights into `model` in place; everything outside that encoder is untouched."""
    raw, location = load_source(source, encoder)
    try:
        layout = detect_layout(raw, encoder)
        mapped, dropped = CONVERTERS[layout][1](raw)
    except ValueError as err:
        raise CheckpointError(f"{location}: {err}") from None
    prefix = VISION_PREFIX if encoder == "vision" else TEXT_PREFIX
    own = {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}
    info = EncoderInit(encoder, str(source), location, layout, dropped=dict(dropped))
    if POS_KEY in mapped and encoder == "vision":
        before = tuple(mapped[POS_KEY].shape)
        mapped[POS_KEY] = resize_position_table(mapped[POS_KEY], model.config.image_size, model.config.patch_size)
        if tuple(mapped[POS_KEY].shape) != before:
            info.adapted.append(
                f"{POS_KEY}: {list(before)} -> {list(mapped[POS_KEY].shape)} (bicubic, {model.config.image_size}px)"
            )
    depth = model.config.vision_layers
    loadable = {}
    for key, value in mapped.items():
        if key not in own:
            block = re.match(re.escape(VISION_PREFIX) + r"transformer\.resblocks\.(\d+)\.", key)
            info.dropped[key] = (
                f"block beyond the model's {depth} (the official model keeps CLIP's first 11)"
                if block and int(block[1]) >= depth
                else "no such parameter in this model"
            )
        elif tuple(value.shape) != tuple(own[key].shape):
            raise CheckpointError(
                f"{location}: {key} has shape {list(value.shape)} in the file but {list(own[key].shape)} in this "
                f"{model.config.preset} model: the {encoder} weights are of another size (the released CLIP "
                "ViT-B/16 and roberta-base fit the base preset only)"
            )
        elif value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"{location}: tensor {key} holds NaN/Inf values; the file is corrupt")
        else:
            loadable[key] = value
    missing = sorted(set(own) - set(loadable))
    info.kept_init = {k: KEPT_INIT[k] for k in missing if k in KEPT_INIT}
    absent = [k for k in missing if k not in KEPT_INIT]
    if absent:
        raise CheckpointError(
            f"{location} lacks {len(absent)} {encoder} encoder tensor(s) this model needs, e.g. "
            f"{absent[0]} (a shallower encoder than the model's, or another architecture)"
        )
    with torch.no_grad():
        for key, value in loadable.items():
            own[key].copy_(value.to(own[key].dtype))
    info.loaded = sorted(loadable)
    return info


def init_encoders(model: SCLModel, vision: str | Path | None, text: str | Path | None) -> EncoderInitReport:
    """Start `model`'s vision and/or text encoder from released weights (None: keep it random)."""
    report = EncoderInitReport()
    if vision:
        report.vision = load_encoder(model, vision, "vision")
    if text:
        report.text = load_encoder(model, text, "text")
    return report
