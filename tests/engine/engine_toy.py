"""A toy VQA-style task for engine tests: in-memory random images/ids, soft-target BCE on the tiny model."""

from __future__ import annotations

import random
import time

import torch
import torch.nn.functional as F

from sclbench.engine.sampler import ShardedEvalSampler, gather_in_order
from sclbench.model import SCLConfig, SCLModel

TEXT_LEN = 8
NUM_ANSWERS = 32


def tiny_model(seed: int = 0) -> SCLModel:
    torch.manual_seed(seed)
    # No dropout (exact comparisons) and no MLTC mask token (unused by this loss: DDP would complain).
    return SCLModel(SCLConfig.tiny("vqa", drop_rate=0.0, use_visual_mask_token=False))


class ToyDataset:
    """`n` fixed samples; __getitem__ adds random noise (torch) and a random flip (python random) so
    that augmentation randomness is exercised."""

    def __init__(self, n: int = 64, seed: int = 123):
        g = torch.Generator().manual_seed(seed)
        self.text_ids = torch.randint(3, 999, (n, TEXT_LEN), generator=g)
        self.images = torch.rand(n, 1, 3, 32, 32, generator=g)
        self.answers = torch.randint(0, NUM_ANSWERS, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.answers)

    def __getitem__(self, i: int) -> dict:
        image = self.images[i] + 0.05 * torch.randn_like(self.images[i])
        if random.random() < 0.5:
            image = image.flip(-1)
        return {"index": i, "text_ids": self.text_ids[i], "image": image, "answer": self.answers[i]}


def collate(samples: list[dict]) -> dict:
    return {
        "index": torch.tensor([s["index"] for s in samples]),
        "text_ids": torch.stack([s["text_ids"] for s in samples]),
        "text_masks": torch.ones(len(samples), TEXT_LEN, dtype=torch.long),
        "images": torch.stack([s["image"] for s in samples]),
        "answers": torch.stack([s["answer"] for s in samples]),
    }


def make_loss_fn(step_delay: float = 0.0):
    def loss_fn(model, batch, ctx):
        if step_delay:
            time.sleep(step_delay)  # lets a test kill the process mid-run; does not change results
        logits = model.vqa_classifier(model(batch["text_ids"], batch["text_masks"], batch["images"]).cls_feats)
        targets = F.one_hot(batch["answers"], NUM_ANSWERS).float()
        # Official VQA loss: BCE mean over answers x number of answers.
        loss = F.binary_cross_entropy_with_logits(logits, targets) * NUM_ANSWERS
        acc = (logits.argmax(-1) == batch["answers"]).float().mean()
        return loss, {"acc": float(acc)}

    return loss_fn


def make_evaluate_fn(val: ToyDataset, batch_size: int = 4):
    """Shards the validation split over ranks (each example once), gathers predictions in order."""

    def evaluate(model):
        sampler = ShardedEvalSampler(len(val))
        idx = list(sampler)
        preds = []
        for start in range(0, len(idx), batch_size):
            batch = collate([val[i] for i in idx[start : start + batch_size]])
            device = next(model.parameters()).device
            batch = {k: v.to(device) if k != "index" else v for k, v in batch.items()}
            logits = model.vqa_classifier(model(batch["text_ids"], batch["text_masks"], batch["images"]).cls_feats)
            preds += [
                (int(i), int(p == a))
                for i, p, a in zip(batch["index"], logits.argmax(-1).cpu(), batch["answers"].cpu())
            ]
        preds = gather_in_order(preds)
        assert [i for i, _ in preds] == list(range(len(val)))  # each example exactly once, in order
        return {"score": 100.0 * sum(c for _, c in preds) / len(preds), "n": float(len(preds))}

    return evaluate
