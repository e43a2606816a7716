"""Shared pieces of the benchmark harness: machine facts, timing, the eager-attention swap, and
synthetic retrieval data that goes through the real `encode_features` path (tokenizer included)."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import torch
import torch.nn.functional as F

# Captured once at import: the swap below replaces the module attribute, and the eager function
# must never call itself.
_SDPA = F.scaled_dot_product_attention


def machine_info() -> dict[str, Any]:
    import transformers

    cpu = platform.processor() or platform.machine()
    try:  # /proc/cpuinfo names the CPU model; platform.processor() is often empty on Linux
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    info = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    try:
        info["git_commit"] = os.popen("git rev-parse --short HEAD 2>/dev/null").read().strip() or None
    except OSError:
        info["git_commit"] = None
    return info


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def median_step_time(step: Callable[[], Any], steps: int, warmup: int) -> tuple[float, list[float]]:
    """Median seconds per call: the median, not the mean, because this machine is shared and a
    single preempted step would otherwise move a ratio by tens of percent."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def eager_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """softmax(Q K^T * scale + mask) V written out, as `nn.MultiheadAttention` computes it (the
    official code's choice): the full score matrix is materialised, nothing is fused."""
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        rep = query.shape[-3] // key.shape[-3]
        key, value = key.repeat_interleave(rep, -3), value.repeat_interleave(rep, -3)
    scale = scale if scale is not None else 1.0 / math.sqrt(query.shape[-1])
    scores = (query * scale) @ key.transpose(-2, -1)
    if is_causal:
        n, m = scores.shape[-2:]
        keep = torch.ones(n, m, dtype=torch.bool, device=scores.device).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:  # SDPA's boolean convention: True = may attend
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    weights = torch.softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ value


@contextlib.contextmanager
def eager_attention_everywhere() -> Iterator[dict[str, int]]:
    """Swap SDPA for `eager_attention` in every attention layer of SCLModel, same weights.

    vision.py, fusion.py and text.py (sclbench's RoBERTa, bit-identical to transformers' RobertaModel
    with SDPA) all look `torch.nn.functional.scaled_dot_product_attention` up at call time, so replacing that one
    attribute reaches all three. The yielded dict counts calls, so a caller can prove the swap
    took effect (a silent no-op would make the SDPA-vs-eager ratio meaningless).
    """
    calls = {"n": 0}

    def counting(*args, **kwargs):
        calls["n"] += 1
        return eager_attention(*args, **kwargs)

    F.scaled_dot_product_attention = counting
    try:
        yield calls
    finally:
        F.scaled_dot_product_attention = _SDPA


# ---- synthetic retrieval data -------------------------------------------------------------------
class HashTokenizer:
    """A stand-in for the RoBERTa tokenizer with its call signature: words hash into the vocabulary,
    so texts have realistic, varying lengths (padding matters to the cross-encoder's cost)."""

    def __init__(self, vocab_size: int, pad: int = 1, bos: int = 0, eos: int = 2):
        self.vocab_size, self.pad, self.bos, self.eos = vocab_size, pad, bos, eos

    def __call__(self, texts, padding="max_length", truncation=True, max_length=50, return_tensors="pt"):
        ids = torch.full((len(texts), max_length), self.pad, dtype=torch.long)
        masks = torch.zeros(len(texts), max_length, dtype=torch.long)
        for row, text in enumerate(texts):
            words = [4 + (hash_word(w) % (self.vocab_size - 4)) for w in text.split()]
            toks = [self.bos, *words[: max_length - 2], self.eos]
            ids[row, : len(toks)] = torch.tensor(toks)
            masks[row, : len(toks)] = 1
        return {"input_ids": ids, "attention_mask": masks}

    def __len__(self) -> int:  # as a Hugging Face tokenizer: the vocabulary size (records describe it)
        return self.vocab_size


def hash_word(word: str) -> int:
    # Python's hash() is salted per process; a fixed polynomial keeps runs reproducible.
    h = 0
    for ch in word:
        h = (h * 131 + ord(ch)) % 1_000_003
    return h


_WORDS = (
    "a man woman dog child red blue street runs sits holds near with the on in of playing "
    "ball water grass two people young old white black car bike riding standing"
).split()


def synthetic_captions(n: int, seed: int = 0, min_words: int = 6, max_words: int = 18) -> list[str]:
    """F30K-like caption lengths (6-18 words), deterministic."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_words, max_words + 1, (n,), generator=g)
    picks = torch.randint(0, len(_WORDS), (int(lengths.sum()),), generator=g).tolist()
    out, pos = [], 0
    for length in lengths.tolist():
        out.append(" ".join(_WORDS[i] for i in picks[pos : pos + length]))
        pos += length
    return out


class SeededImages:
    """`visuals` for encode_features: source i -> a deterministic random image of the given size."""

    def __init__(self, size: int, frames: int = 0):
        self.size, self.frames = size, frames

    def __call__(self, source: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(source))
        shape = (self.frames, 3, self.size, self.size) if self.frames else (3, self.size, self.size)
        return torch.randn(shape, generator=g)


def f30k_links(n_img: int, per_image: int = 5) -> tuple[list[int], list[list[int]]]:
    """Karpathy-style ground truth: text t belongs to image t // per_image."""
    txt2img = [t // per_image for t in range(n_img * per_image)]
    img2txt = [list(range(i * per_image, (i + 1) * per_image)) for i in range(n_img)]
    return txt2img, img2txt


def ratio(a: float | None, b: float | None, digits: int = 2) -> float | None:
    if not a or not b:
        return None
    return round(a / b, digits)
