"""Text masking for the pre-training objectives: MLM and SCL's masked-text view.

Both take `text_ids`/`text_masks` Long[B,L] and an optional `torch.Generator` (same generator state ->
same masks) and never touch special tokens or padding.

Where and why we differ from the official code (scl-official.md §3.1, §3.4, §8.17-18):
- MLM. The official collator (transformers 4.6 whole-word masking) draws round(0.15 * 50) = 8
  candidate positions among all 50 slots, pads and `<s>`/`</s>` included, and then drops those that
  hit specials: ~16% of real tokens on average and sometimes none in a short caption; its "whole
  word" grouping never applies to RoBERTa's BPE. We select each real token independently with
  probability 0.15 (the BERT/RoBERTa recipe the official intended) and apply 80% `<mask>`, 10%
  random token, 10% unchanged. Random replacements are drawn from non-special ids only, so a
  `<pad>` or `<s>` never appears inside a caption.
- SCL text masking. The official picks mask_len = int((n-2) * 0.4) + 1 positions among 1..n-2 WITH
  replacement (so often fewer distinct masks than intended) and reads the ids from `input_ids`,
  which hold whichever text key was encoded last. We pick mask_len DISTINCT positions among the real
  tokens of `text_ids` itself. Texts with n <= 2 real tokens stay unmasked, as in the official.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MaskSpec:
    """What masking needs to know about the tokenizer."""

    mask_id: int
    vocab_size: int
    special_ids: tuple[int, ...]

    @classmethod
    def from_tokenizer(cls, tokenizer) -> MaskSpec:
        return cls(tokenizer.mask_token_id, len(tokenizer), tuple(sorted(set(tokenizer.all_special_ids))))


def _real_tokens(ids: torch.Tensor, masks: torch.Tensor, spec: MaskSpec) -> torch.Tensor:
    # non_blocking: a blocking host-to-device copy waits for the device's queue (a sync every step).
    special = torch.isin(ids, torch.tensor(spec.special_ids).to(ids.device, non_blocking=True))
    return masks.bool() & ~special


def mlm_mask(
    text_ids: torch.Tensor,
    text_masks: torch.Tensor,
    spec: MaskSpec,
    prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input ids with MLM corruption, labels with -100 where no prediction is asked)."""
    real = _real_tokens(text_ids, text_masks, spec)
    rand = lambda: torch.rand(text_ids.shape, generator=generator, device=text_ids.device)  # noqa: E731
    chosen = real & (rand() < prob)
    labels = torch.where(chosen, text_ids, torch.full_like(text_ids, -100))
    roll = rand()
    to_mask = chosen & (roll < 0.8)
    to_random = chosen & (roll >= 0.8) & (roll < 0.9)
    specials = sorted({i for i in spec.special_ids if 0 <= i < spec.vocab_size})
    pick = torch.randint(spec.vocab_size - len(specials), text_ids.shape, generator=generator, device=text_ids.device)
    # The pick-th non-special id, on the device: step over each special id at or below it (ascending).
    for special_id in specials:
        pick = pick + (pick >= special_id).long()
    ids = torch.where(to_mask, torch.full_like(text_ids, spec.mask_id), text_ids)
    ids = torch.where(to_random, pick, ids)
    return ids, labels


def scl_text_mask(
    text_ids: torch.Tensor,
    text_masks: torch.Tensor,
    mask_id: int,
    ratio: float = 0.4,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked ids, Bool[B,L] masked positions): int((n-2)*ratio)+1 distinct positions in 1..n-2 -> mask_id.

    n = number of attended tokens (incl. `<s>` and `</s>`); rows with n <= 2 are left unchanged.
    """
    b, length = text_ids.shape
    n = text_masks.long().sum(1)
    pos = torch.arange(length, device=text_ids.device).expand(b, length)
    candidate = (pos >= 1) & (pos <= (n - 2).unsqueeze(1))
    k = torch.where(n > 2, ((n - 2).double() * ratio).long() + 1, torch.zeros_like(n))
    k = torch.minimum(k, (n - 2).clamp(min=0))
    # A random order of the candidates per row; the first k of that order are masked.
    score = torch.rand((b, length), generator=generator, device=text_ids.device)
    score = score.masked_fill(~candidate, 2.0)
    rank = score.argsort(1).argsort(1)
    masked = candidate & (rank < k.unsqueeze(1))
    return text_ids.masked_fill(masked, mask_id), masked
