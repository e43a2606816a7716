"""Collate per-sample dicts into the batches the model and task code consume.

Batch keys (B = batch size, L = max_len, F = frames (1 for images), K = negative captions):
  all:        index Long[B] (dataset indices), texts list[str], text_ids Long[B,L], text_masks Long[B,L],
              skipped list[str] (samples dropped by the skip option; see SkipCounter.add_batch)
  captions:   images Float[B,F,3,H,W]; with ITM negatives neg_images Float[B,F,3,H,W];
              with retrieval negatives neg_text_ids Long[B,K,L], neg_text_masks Long[B,K,L]
  vqa:        images, vqa_targets Float[B,num_answers] (soft scores), question_ids Long[B]
  nlvr2:      images_0, images_1 Float[B,F,3,H,W], labels Long[B] (1 true, 0 false, -100 unlabelled),
              identifiers list[str]
No randomness here: MLM/SCL masking belongs to the objectives. If every sample of a batch was
skipped, the batch holds only `index` (empty) and `skipped`.
"""

from __future__ import annotations

import torch

# per-sample key -> batch key
_RENAME = {
    "text": "texts",
    "image": "images",
    "image_0": "images_0",
    "image_1": "images_1",
    "neg_image": "neg_images",
    "vqa_target": "vqa_targets",
    "question_id": "question_ids",
    "label": "labels",
    "identifier": "identifiers",
}

REQUIRED = {
    "captions": ("index", "texts", "text_ids", "text_masks", "images"),
    "vqa": ("index", "texts", "text_ids", "text_masks", "images", "vqa_targets", "question_ids"),
    "nlvr2": ("index", "texts", "text_ids", "text_masks", "images_0", "images_1", "labels", "identifiers"),
}


def collate(samples: list[dict]) -> dict:
    """Stack tensors, turn ints into Long tensors, keep strings as lists; drop skipped samples."""
    skipped = [s["skipped"] for s in samples if "skipped" in s]
    kept = [s for s in samples if "skipped" not in s]
    if not kept:
        return {"index": torch.empty(0, dtype=torch.long), "skipped": skipped}
    batch = {"skipped": skipped}
    for key in kept[0]:
        values = [s[key] for s in kept]
        first = values[0]
        if isinstance(first, torch.Tensor):
            value = torch.stack(values)
        elif isinstance(first, bool) or isinstance(first, int):
            value = torch.tensor([int(v) for v in values], dtype=torch.long)
        else:
            value = values
        batch[_RENAME.get(key, key)] = value
    return batch


def _collate_checked(kind: str):
    def fn(samples: list[dict]) -> dict:
        batch = collate(samples)
        if len(batch["index"]):
            missing = [k for k in REQUIRED[kind] if k not in batch]
            if missing:
                raise KeyError(f"{kind} batch lacks {missing}: the dataset does not fit this collate")
        return batch

    fn.__name__ = f"collate_{kind}"
    fn.__doc__ = f"Collate {kind} samples; batch keys: {', '.join(REQUIRED[kind])} (+ optional ones)."
    return fn


collate_captions = _collate_checked("captions")
collate_vqa = _collate_checked("vqa")
collate_nlvr2 = _collate_checked("nlvr2")
