"""Loading the transformers models behind the built-in adapters (ViLT, BLIP, CLIP), and the small picklable
preprocessing pieces they share.

`--ckpt` for these adapters is a local folder written by `save_pretrained` (model and processor), a
registered name (`checkpoints.yaml` entries with `loader: transformers`: a hub id and its pinned
revision), or a hub id (`owner/name`). No `--ckpt`: the adapter's default release for the task family.
Every way this can fail (no such folder, not in the Hugging Face cache while HF_HUB_OFFLINE=1, a folder
of another model type, weights that lack the head the task needs) is one CheckpointError naming it.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sclbench.errors import CheckpointError

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


@dataclass(frozen=True)
class Source:
    """Where a model's files come from: a local folder or a hub id at a revision."""

    location: str  # folder path or hub id
    revision: str | None
    name: str  # what the record calls it: the --ckpt value, the registered name or the default id
    local: bool

    def identity(self, config: Any) -> dict[str, Any]:
        """What pins the outputs (the feature cache's key, the record's source): a local folder's digest over
        all its files (weights, config, tokenizer and processor files), or the hub id and the commit it
        resolved to (else the revision asked for)."""
        if self.local:
            return {"checkpoint_sha256": folder_digest(Path(self.location)), "path": self.location}
        commit = getattr(config, "_commit_hash", None)
        return {"source": self.location, "revision": commit or self.revision}


def folder_digest(folder: Path) -> str:
    """sha256 over a folder's top-level files, by name and content (memoised per file by the hub layer)."""
    from sclbench.model.hub import memo_sha256

    digest = hashlib.sha256()
    for child in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{child.name}\0{memo_sha256(child)}\n".encode())
    return digest.hexdigest()


def resolve_source(ckpt: str | None, default: str, adapter: str) -> Source:
    """A --ckpt value (or the adapter's default) as a Source; a path that is not a model folder is refused here."""
    if ckpt is None:
        return Source(default, None, default, local=False)
    path = Path(ckpt).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CheckpointError(
                f"--ckpt {ckpt}: the folder has no config.json; a --model {adapter} checkpoint is a folder written by "
                "transformers' save_pretrained (model and processor), or a hub id"
            )
        return Source(str(path), None, path.name or str(path), local=True)
    if path.exists():
        raise CheckpointError(
            f"--ckpt {ckpt} is a file; --model {adapter} loads a folder written by save_pretrained, or a hub id"
        )
    from sclbench.model.hub import registry_entry

    entry = registry_entry(ckpt)
    if entry is not None:
        if entry.get("loader") != "transformers" or "file" in entry:
            raise CheckpointError(
                f"--ckpt {ckpt} is a registered SCL/METER checkpoint, not a {adapter} model: "
                "evaluate it with --model scl (the default)"
            )
        if entry.get("family") not in (None, adapter):
            raise CheckpointError(
                f"--ckpt {ckpt} is registered as a {entry['family']} model; evaluate it with --model {entry['family']}"
            )
        return Source(str(entry["repo"]), entry.get("revision"), entry["name"], local=False)
    if not HUB_ID.fullmatch(ckpt):  # "./x", "/x/y", "a/b/c": a path that does not exist
        raise CheckpointError(
            f"--ckpt {ckpt}: no such folder, registered name or hub id (a hub id is 'owner/name'; "
            "`sclbench ckpt list` shows the registered names)"
        )
    return Source(ckpt, None, ckpt, local=False)


def _load_error(source: Source, what: str, err: Exception) -> CheckpointError:
    if not source.local and os.environ.get("HF_HUB_OFFLINE") == "1" and isinstance(err, OSError):
        # transformers' own message here is several lines about connecting; ours says what to do.
        return CheckpointError(
            f"cannot load the {what} {source.location!r}: it is not in the Hugging Face cache and HF_HUB_OFFLINE=1; "
            f"download it once online (`hf download {source.location}`) or pass --ckpt FOLDER saved with "
            "save_pretrained"
        )
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return CheckpointError(f"cannot load the {what} {source.location!r}: {first}")


def load_config(source: Source, model_type: str, what: str) -> Any:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source.location, revision=source.revision)
    except Exception as err:  # OSError (missing, offline), ValueError (unknown model type), JSON errors
        raise _load_error(source, what, err) from None
    if config.model_type != model_type:
        raise CheckpointError(
            f"--ckpt {source.name}: a {config.model_type!r} model, not a {model_type!r} one (the {what})"
        )
    return config


def load_model(cls: type, source: Source, config: Any, what: str) -> Any:
    """`cls.from_pretrained` with the checked config; weights missing for `cls` (a retrieval head asked of a
    VQA release, say) are refused rather than left randomly initialised."""
    if os.environ.get("SCLBENCH_NO_PROGRESS") == "1":  # sclbench's switch for progress bars, transformers' too
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    try:
        model, info = cls.from_pretrained(
            source.location, config=config, revision=source.revision, output_loading_info=True
        )
    except Exception as err:
        raise _load_error(source, what, err) from None
    missing = sorted(info.get("missing_keys") or [])
    mismatched = info.get("mismatched_keys") or []
    if missing or mismatched:
        names = [str(k) for k in missing] + [str(k[0] if isinstance(k, tuple) else k) for k in mismatched]
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        raise CheckpointError(
            f"--ckpt {source.name} lacks weights that {cls.__name__} needs ({', '.join(names[:3])}{more}): "
            f"it is not a {what}"
        )
    return model.eval()


def load_processor(source: Source, what: str) -> Any:
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(source.location, revision=source.revision)
    except Exception as err:
        raise _load_error(source, f"{what}'s processor", err) from None


def size_of(size: Any, key: str) -> int | None:
    """A value of an image processor's `size` (a dict in some transformers versions, a SizeDict in others)."""
    value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
    return int(value) if value is not None else None


class ProcessorImage:
    """`Preprocess.image` through a transformers image processor: one PIL image -> Float[3, H, W].
    A callable object (not a closure), so that data-loader workers can receive it."""

    def __init__(self, image_processor: Any, **options: Any):
        self.image_processor, self.options = image_processor, options

    def __call__(self, image: Any) -> torch.Tensor:
        return self.image_processor(images=image, return_tensors="pt", **self.options)["pixel_values"][0]


class ProcessorText:
    """`Preprocess.text` through a transformers tokenizer: strings -> ids and masks padded to `max_len`,
    after the model's own caption normalisation (`normalise`, a module-level function or None)."""

    def __init__(self, tokenizer: Any, max_len: int, normalise: Any = None):
        self.tokenizer, self.max_len, self.normalise = tokenizer, max_len, normalise

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        texts = [self.normalise(t) for t in texts] if self.normalise else list(texts)
        out = self.tokenizer(texts, padding="max_length", truncation=True, max_length=self.max_len, return_tensors="pt")
        return {"input_ids": out["input_ids"], "attention_mask": out["attention_mask"]}


def frames_as_images(pixels: torch.Tensor) -> torch.Tensor:
    """[B, 1, 3, H, W] -> [B, 3, H, W] for image models (a clip of several frames is refused)."""
    if pixels.dim() != 5 or pixels.shape[1] != 1:
        raise ValueError(f"expected images as [B, 1, 3, H, W], got {tuple(pixels.shape)}")
    return pixels[:, 0]


def compile_submodules(model: Any, names: list[str], options: dict[str, Any]) -> list[str]:
    """`--compile` for the adapters: torch.compile the transformers submodules they call, in place (their
    family methods decode strings or loop in Python, which does not trace as one graph)."""
    done = []
    for name in names:
        module = model
        for part in name.split("."):
            module = getattr(module, part)
        module.compile(**options)
        done.append(name)
    return done
