"""Seeing the alignment: which patches match the sentence, which match a word, which words match the image.

SCL aligns a global feature of one modality with the local features of the other. `explain_alignment`
shows three views of that for one image (or clip) and one sentence:
- sentence -> patches: cosine of the sentence's global feature with every patch feature;
- word -> patches: the same for the tokens of one chosen word (their features averaged);
- image -> words: cosine of the image's global feature with every word's feature.

Feature space (`space`):
- "contrastive" (default): the unimodal tokens through the contrastive projections (`language_proj`,
  `vision_proj`), the space where ITC aligns the global features. Applying the projections to local
  tokens is the usual dense-CLIP reading of a contrastive model.
- "fused": the co-attention outputs of the pair (text stream and image stream), L2-normalised; the
  space of SCL's completion objectives, where each stream has already seen the other.
- "gradcam": where the cross-encoder looks when it decides that the pair matches (ALBEF's reading):
  the cross-attention probabilities of one co-attention layer (`layer`, default the first) times the
  positive part of their gradient of the match score (ITM logit, or the rank head of a retrieval
  model), averaged over heads. Sentence map: the text CLS's row over the patches; word map: the rows
  of the word's tokens; image -> words: the image CLS's row over the text tokens. Non-negative.
- "occlusion": what the decision rests on (Zeiler & Fergus's occlusion sensitivity). A window of one
  patch, slid at a quarter-patch stride (`stride`; at most ~25 positions a side), is filled with the
  frame's per-channel median (the background of a scene); a pixel's heat is the mean positive fall
  of the match score (rank head, else ITM margin) over the windows that cover it. Word map: the same
  fall of the cosine between the word's contrastive feature and the image's global feature; image ->
  words: the fall of the match score when the word's tokens become <mask>. Of the four, the one that
  lies on the named object of the demo's scenes (tests/app/test_explain.py): its 4x4 patch grid is
  too coarse for the others.
Heatmaps are the cosines over the patch grid, upsampled (bilinear) to the image, min-max scaled for
display; `AlignmentMaps` keeps the raw cosines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sclbench.app.predict import Media, Predictor, load_predictor
from sclbench.errors import ConfigError
from sclbench.model.scl import VisionFeatures

SPACES = ("contrastive", "fused", "gradcam", "occlusion")


@dataclass
class AlignmentMaps:
    """Raw cosines. sentence_map / word_map: [F, g, g] over the patch grid of each frame."""

    sentence_map: np.ndarray
    word_map: np.ndarray | None
    word: str | None
    words: list[str]
    word_weights: np.ndarray  # one cosine per word of the sentence
    image: np.ndarray  # the input as the model saw it, [H, W, 3] uint8 (first frame)
    space: str

    def upsampled(self, which: str = "sentence", size: tuple[int, int] | None = None) -> np.ndarray:
        """A map (first frame) resized to `size` (H, W; default the image's), bilinear."""
        grid = self.sentence_map if which == "sentence" else self.word_map
        if grid is None:
            raise ConfigError("no word was chosen, so there is no word map")
        h, w = size or self.image.shape[:2]
        t = torch.from_numpy(np.ascontiguousarray(grid[0], dtype=np.float32))[None, None]
        return F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()


def word_spans(sentence: str) -> list[tuple[str, int, int]]:
    """Words (letters/digits runs) with their character spans."""
    return [(m.group(0), m.start(), m.end()) for m in re.finditer(r"[\w']+", sentence)]


def _token_words(tokenizer: Any, sentence: str, max_len: int) -> tuple[list[list[int]], list[str]]:
    """For every word, the positions of its tokens in the encoded sentence (fast tokenizers' offsets)."""
    enc = tokenizer(sentence, truncation=True, max_length=max_len, return_offsets_mapping=True)
    spans = word_spans(sentence)
    positions: list[list[int]] = [[] for _ in spans]
    for pos, (start, end) in enumerate(enc["offset_mapping"]):
        if end <= start:  # special tokens
            continue
        for i, (_, ws, we) in enumerate(spans):
            if start < we and end > ws:
                positions[i].append(pos)
                break
    kept = [(w, p) for (w, _, _), p in zip(spans, positions) if p]
    return [p for _, p in kept], [w for w, _ in kept]


@torch.no_grad()
def alignment_maps(
    p: Predictor,
    media: Media,
    sentence: str,
    word: str | None = None,
    space: str = "contrastive",
    layer: int = 0,
    stride: int | None = None,
) -> AlignmentMaps:
    """The three alignments of one image (or clip) and one sentence (see the module docstring)."""
    if space not in SPACES:
        raise ConfigError(f"space {space!r}: choose one of {', '.join(SPACES)}")
    model = p.model
    if space == "contrastive" and "con" not in model.config.heads:
        raise ConfigError(
            f"{p.name} has no contrastive head (its heads: {', '.join(model.config.heads)}); use --space fused"
        )
    token_pos, words = _token_words(p.tokenizer, sentence, p.max_len)
    if not words:
        raise ConfigError(f"no words in {sentence!r}")
    ids, masks = p.text([sentence])
    pixels = p.pixels(media)
    if space == "gradcam":
        return _gradcam_maps(p, ids, masks, pixels, token_pos, words, word, layer)
    if space == "occlusion":
        return _occlusion_maps(p, ids, masks, pixels, token_pos, words, word, stride)
    text = model.encode_text(ids, masks)
    vision = model.encode_vision(pixels)
    frames = vision.num_frames
    if space == "contrastive":
        tokens_t = F.normalize(model.language_proj(text[0]).float(), dim=-1)  # [L, C]
        tokens_v = F.normalize(model.vision_proj(vision.embeds[0]).float(), dim=-1)  # [F + F*K, C]
        global_t = tokens_t[0]
        global_v = F.normalize(model.vision_proj(vision.cls[0]).float(), dim=-1)
    else:
        fused = model.fuse(text, masks, vision)
        tokens_t = F.normalize(fused.text_feats[0].float(), dim=-1)
        tokens_v = F.normalize(fused.image_feats[0].float(), dim=-1)
        global_t = tokens_t[0]
        global_v = F.normalize(tokens_v[:frames].mean(0), dim=-1)
    patches = tokens_v[frames:]  # [F*K, C], frame-major, each frame row-major over the grid
    grid = int(round((patches.shape[0] // frames) ** 0.5))
    shape = (frames, grid, grid)
    sentence_map = (patches @ global_t).reshape(shape).cpu().numpy()
    word_map, chosen = None, None
    if word:
        i = _choose_word(words, word)
        chosen = words[i]
        feature = F.normalize(tokens_t[token_pos[i]].mean(0), dim=-1)
        word_map = (patches @ feature).reshape(shape).cpu().numpy()
    word_weights = np.array([float(F.normalize(tokens_t[pos].mean(0), dim=-1) @ global_v) for pos in token_pos])
    image = _display_image(pixels[0, 0])
    return AlignmentMaps(sentence_map, word_map, chosen, words, word_weights, image, space)


def _choose_word(words: list[str], word: str) -> int:
    wanted = word.strip().lower()
    matches = [i for i, w in enumerate(words) if w.lower() == wanted]
    if not matches:
        raise ConfigError(f"word {word!r} is not in the sentence; its words: {', '.join(words)}")
    return matches[0]


def _attention_probs(module: torch.nn.Module, store: dict, key: str):
    """A forward hook for a `SelfAttention` that computes the attention explicitly (the same softmax
    SDPA computes) and keeps the probabilities, with their gradient, in `store[key]`."""

    def hook(mod, args, _out):
        x, context, mask = args
        q, k, v = mod._split(mod.query(x)), mod._split(mod.key(context)), mod._split(mod.value(context))
        logits = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
        probs = (logits if mask is None else logits + mask.to(logits.dtype)).softmax(-1)
        if probs.requires_grad:  # (under no_grad the hook only reproduces the forward)
            probs.retain_grad()
        store[key] = probs
        return (probs @ v).transpose(1, 2).flatten(2)

    return module.register_forward_hook(hook)


def _gradcam_maps(
    p: Predictor,
    ids: torch.Tensor,
    masks: torch.Tensor,
    pixels: torch.Tensor,
    token_pos: list[list[int]],
    words: list[str],
    word: str | None,
    layer: int,
) -> AlignmentMaps:
    model = p.model
    _require_match_head(p)
    n_layers = len(model.cross_modal_text_layers)
    if not -n_layers <= layer < n_layers:
        raise ConfigError(f"layer {layer}: the model has {n_layers} co-attention layers")
    store: dict[str, torch.Tensor] = {}
    hooks = [
        _attention_probs(model.cross_modal_text_layers[layer].crossattention.self, store, "text"),
        _attention_probs(model.cross_modal_image_layers[layer].crossattention.self, store, "image"),
    ]
    try:
        with torch.enable_grad():
            vision = model.encode_vision(pixels)
            fused = model.fuse(model.encode_text(ids, masks), masks, vision)
            _match_score(model, fused.cls_feats)[0].backward()
    finally:
        for h in hooks:
            h.remove()
    cam = {k: (v.detach() * v.grad.clamp(min=0)).mean(1)[0].float() for k, v in store.items()}  # [Lq, Lk]
    frames = vision.num_frames
    patches = cam["text"][:, frames:]  # text queries over the patches, frame-major
    grid = int(round((patches.shape[1] // frames) ** 0.5))
    shape = (frames, grid, grid)
    sentence_map = patches[0].reshape(shape).cpu().numpy()
    word_map, chosen = None, None
    if word:
        i = _choose_word(words, word)
        chosen = words[i]
        word_map = patches[token_pos[i]].mean(0).reshape(shape).cpu().numpy()
    word_weights = np.array([float(cam["image"][0, pos].sum()) for pos in token_pos])
    image = _display_image(pixels[0, 0])
    return AlignmentMaps(sentence_map, word_map, chosen, words, word_weights, image, "gradcam")


def _require_match_head(p: Predictor) -> None:
    if not (hasattr(p.model, "rank_output") or hasattr(p.model, "itm_score")):
        raise ConfigError(f"{p.name} has no match head (ITM or rank) to explain; use --space contrastive or fused")


def _match_score(model: Any, cls_feats: torch.Tensor) -> torch.Tensor:
    """The match score of fused pairs [N]: the rank head of a retrieval model, else the ITM logit margin."""
    if hasattr(model, "rank_output"):
        return model.rank_output(cls_feats)[:, 0].float()
    logits = model.itm_score(cls_feats).float()
    return logits[:, 1] - logits[:, 0]


def _fused_scores(model: Any, text: torch.Tensor, masks: torch.Tensor, vision: VisionFeatures) -> torch.Tensor:
    """Match scores of encoded texts with encoded images; a single text or image is paired with each."""
    if text.shape[0] == 1 and vision.embeds.shape[0] > 1:
        text, masks = text.expand(vision.embeds.shape[0], -1, -1), masks.expand(vision.embeds.shape[0], -1)
    elif vision.embeds.shape[0] == 1 and text.shape[0] > 1:
        vision = vision.repeat(text.shape[0])
    return _match_score(model, model.fuse(text, masks, vision).cls_feats)


def _occlusion_maps(
    p: Predictor,
    ids: torch.Tensor,
    masks: torch.Tensor,
    pixels: torch.Tensor,
    token_pos: list[list[int]],
    words: list[str],
    word: str | None,
    stride: int | None,
    chunk: int = 32,
) -> AlignmentMaps:
    model = p.model
    _require_match_head(p)
    if word and "con" not in model.config.heads:
        raise ConfigError(f"{p.name} has no contrastive head for the word map; leave out --word or use --space gradcam")
    size, window = pixels.shape[-1], model.config.patch_size
    stride = stride or occlusion_stride(size, window)
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    boxes = [(r, c) for r in starts for c in starts]
    # Occluded copies, built a chunk at a time: the window, in every frame, filled with the frame's
    # per-channel median (the background of a scene; what is left when the thing there is taken away).
    fill = pixels.flatten(-2).median(-1).values[0, ..., None, None]  # [F, 3, 1, 1]

    def occluded(chunk_boxes: list[tuple[int, int]]) -> torch.Tensor:
        batch = pixels.repeat(len(chunk_boxes), 1, 1, 1, 1)
        for k, (r, c) in enumerate(chunk_boxes):
            batch[k, :, :, r : r + window, c : c + window] = fill
        return batch

    text = model.encode_text(ids, masks)
    vision = model.encode_vision(pixels)
    full_score = _fused_scores(model, text, masks, vision)[0]
    chosen, word_feature = None, None
    if word:
        i = _choose_word(words, word)
        chosen = words[i]
        tokens = F.normalize(model.language_proj(text[0]).float(), dim=-1)
        word_feature = F.normalize(tokens[token_pos[i]].mean(0), dim=-1)
    word_cosine = lambda v: F.normalize(model.vision_proj(v.cls).float(), dim=-1) @ word_feature  # noqa: E731
    full_word = word_cosine(vision)[0] if word_feature is not None else None
    drops, word_drops = [], []
    for start in range(0, len(boxes), chunk):
        part = model.encode_vision(occluded(boxes[start : start + chunk]))
        drops.append(full_score - _fused_scores(model, text, masks, part))
        if word_feature is not None:
            word_drops.append(full_word - word_cosine(part))
    # Positive part, as Grad-CAM keeps only positive gradients: a window whose removal raises the
    # score (a distractor) is not evidence for the match.
    heat = lambda values: _window_average(values.clamp(min=0), boxes, window, size)  # noqa: E731
    sentence_map = heat(torch.cat(drops))
    word_map = heat(torch.cat(word_drops)) if word_feature is not None else None
    # image -> words: how much the match score falls when the word's tokens become <mask>
    masked = ids.repeat(len(token_pos), 1)
    for k, pos in enumerate(token_pos):
        masked[k, pos] = model.config.mask_token_id
    batch_masks = masks.repeat(len(token_pos), 1)
    word_weights = full_score - _fused_scores(model, model.encode_text(masked, batch_masks), batch_masks, vision)
    return AlignmentMaps(
        sentence_map, word_map, chosen, words, word_weights.cpu().numpy(), _display_image(pixels[0, 0]), "occlusion"
    )


def occlusion_stride(size: int, window: int) -> int:
    """The default window step: a quarter patch, but at most ~25 positions per side. A 384 px base
    model would otherwise need 93^2 forward passes (at this bound ~600: minutes on a CPU)."""
    return max(1, window // 4, -(-(size - window) // 24))


def _window_average(values: torch.Tensor, boxes: list[tuple[int, int]], window: int, size: int) -> np.ndarray:
    """Per pixel, the mean of `values` over the occlusion windows that cover it: [1, size, size]."""
    total, count = torch.zeros(size, size), torch.zeros(size, size)
    for v, (r, c) in zip(values.float().cpu(), boxes):
        total[r : r + window, c : c + window] += v
        count[r : r + window, c : c + window] += 1
    return (total / count.clamp(min=1))[None].numpy()


def _display_image(frame: torch.Tensor) -> np.ndarray:
    """Undo the CLIP normalisation of a [3, H, W] tensor for display."""
    from sclbench.data.transforms import CLIP_MEAN, CLIP_STD

    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    rgb = (frame.float().cpu() * std + mean).clamp(0, 1)
    return (rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _scaled(m: np.ndarray) -> np.ndarray:
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def render_png(maps: AlignmentMaps, sentence: str, out: str | Path, show_size: int = 192) -> Path:
    """The figure: image + sentence heatmap, image + word heatmap (if any), words weighted."""
    from PIL import Image

    from sclbench.results.plots import pyplot, save_figure

    plt = pyplot()

    big = np.asarray(Image.fromarray(maps.image).resize((show_size, show_size), Image.BICUBIC))
    panels = [("sentence → patches", maps.upsampled("sentence", (show_size, show_size)))]
    if maps.word_map is not None:
        panels.append((f"“{maps.word}” → patches", maps.upsampled("word", (show_size, show_size))))
    fig, axes = plt.subplots(
        1,
        len(panels) + 1,
        figsize=(3.0 * (len(panels) + 1), 3.3),
        gridspec_kw={"width_ratios": [1] * len(panels) + [1.2]},
    )
    for ax, (title, heat) in zip(axes, panels):
        ax.imshow(big)
        ax.imshow(_scaled(heat), cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    ax = axes[-1]
    weights = maps.word_weights
    colours = plt.get_cmap("viridis")(_scaled(weights))
    ys = np.arange(len(maps.words))[::-1]
    ax.barh(ys, weights, color=colours)
    ax.set_yticks(ys, maps.words, fontsize=8)
    ax.axvline(0, color="#888", lw=0.5)
    reading = {"gradcam": "Grad-CAM", "occlusion": "score fall when masked"}.get(maps.space, "cosine")
    ax.set_title(f"image → words ({reading})", fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    label = "occlusion sensitivity" if maps.space == "occlusion" else f"{maps.space} features"
    fig.suptitle(f"{sentence}   [{label}]", fontsize=9)
    return save_figure(plt, fig, out, dpi=100)


def explain_alignment(
    ckpt: Predictor | str | Path,
    media: Media,
    sentence: str,
    out: str | Path,
    word: str | None = None,
    space: str = "contrastive",
    layer: int = 0,
    stride: int | None = None,
    **load: Any,
) -> tuple[Path, AlignmentMaps]:
    """Write the alignment figure of `media` and `sentence` to `out` (PNG); returns it and the maps."""
    p = ckpt if isinstance(ckpt, Predictor) else load_predictor(ckpt, **load)
    maps = alignment_maps(p, media, sentence, word, space, layer, stride)
    return render_png(maps, sentence, out), maps


def mass_ratio(heat: np.ndarray, mask: np.ndarray) -> float:
    """Mean (min-max scaled) heat on the mask's pixels over the mean heat elsewhere."""
    scaled = _scaled(heat)
    inside, outside = scaled[mask].mean(), scaled[~mask].mean()
    return float(inside / max(outside, 1e-6))
