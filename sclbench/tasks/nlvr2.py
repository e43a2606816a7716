"""NLVR2: is the statement true of the image pair? Two fused passes, one per image (ViLT "pair").

Splits: train; val = dev (model selection); test = test1 (test-P, evaluated once). The official
code selected checkpoints on test-P (scl-official.md §4.2); here selection uses dev only.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from sclbench.common.io import atomic_write
from sclbench.data.datasets import NLVR2Dataset
from sclbench.data.formats import nlvr2 as fmt
from sclbench.metrics import nlvr2_metrics
from sclbench.model import SCLModel
from sclbench.tasks.base import Evaluation, Task, register
from sclbench.tasks.encode_once import encode_images_once, source_key


@register("nlvr2")
class NLVR2Task(Task):
    model_task = "nlvr2"
    default_main_metric = "accuracy"

    def read_records(self, split: str) -> list:
        if self.card.get("data.format", "files") == "arrow":  # the ViLT/METER tables
            return fmt.read_family_arrow("nlvr2", self.root, split)
        return fmt.read_nlvr2(self.root, split, skip=self.skip)

    def build_dataset(self, split: str, train: bool) -> NLVR2Dataset:
        records = self.role_records(split)
        return NLVR2Dataset(
            records,
            self.visuals(train),
            self.tokenizer,
            self.max_len,
            seed=self.seed,
            skip_corrupt=self.skip is not None,
        )

    @staticmethod
    def logits(model: SCLModel, batch: dict) -> torch.Tensor:
        return model.nlvr2_logits(batch["text_ids"], batch["text_masks"], batch["images_0"], batch["images_1"])

    def loss(self, model: SCLModel, batch: dict, ctx: Any = None) -> tuple[torch.Tensor, dict[str, float]]:
        self.observe(batch)
        logits = self.logits(model, batch)
        loss = F.cross_entropy(logits, batch["labels"])
        acc = (logits.detach().argmax(1) == batch["labels"]).float().mean()  # device tensors: no sync per step
        return loss, {"nlvr2_loss": loss.detach(), "nlvr2_acc": acc}

    def evaluate(
        self, model: SCLModel, split: str, batch_size: int = 32, num_workers: int | None = None, **options: Any
    ) -> Evaluation:
        dataset = self.build_dataset(split, train=False)

        def step(m: SCLModel, batch: dict) -> list[dict]:
            # Both images of every statement, each distinct image once (NLVR2 pairs each image pair
            # with several statements); then `SCLModel.nlvr2_logits`'s two passes on the features.
            records = [dataset.records[i] for i in batch["index"].tolist()]
            keys = [source_key(r.image_0) for r in records] + [source_key(r.image_1) for r in records]
            vision = encode_images_once(m, torch.cat([batch["images_0"], batch["images_1"]]), keys)
            b, masks = len(records), batch["text_masks"]
            text = m.encode_text(batch["text_ids"], masks)
            out0 = m.fuse(text, masks, vision.index(slice(0, b)), image_token_type_idx=1)
            out1 = m.fuse(text, masks, vision.index(slice(b, 2 * b)), image_token_type_idx=2)
            logits = m.nlvr2_classifier(torch.cat([out0.cls_feats, out1.cls_feats], dim=-1))
            prob = logits.float().softmax(1)[:, 1]  # fp32 probabilities under autocast too
            return [
                {"id": i, "identifier": i, "prediction": p > 0.5, "prob_true": p}
                for i, p in zip(batch["identifiers"], prob.tolist())
            ]

        precision = self.eval_precision(model, options)
        preds, wall = self.run_eval(model, dataset, batch_size, num_workers, step, precision)
        labels = {r.identifier: r.label for r in dataset.records if r.label is not None}
        metrics: dict[str, float] = {}
        if labels:
            predictions = {p["identifier"]: p["prediction"] for p in preds}
            metrics = nlvr2_metrics(predictions, labels)
            for p in preds:
                p["scores"] = {"accuracy": float(p["prediction"] == labels[p["identifier"]])}
        return Evaluation(
            self.name,
            split,
            metrics,
            "nlvr2-official",
            preds,
            {"split_file": self.card.get(f"splits.{split}", split), "passes": "pair", **precision.protocol()},
            num_samples=len(preds),
            wall_time_s=wall,
            skipped=self.skip.as_dict() if self.skip else {},
        )

    def submission(self, evaluation: Evaluation, out_dir: Path) -> Path:
        """The official prediction CSV: `identifier,prediction` with True/False."""
        published = self.card.get(f"splits.{evaluation.split}", evaluation.split)  # dev / test1, not the role
        path = Path(out_dir) / f"nlvr2_predictions_{published}.csv"
        rows = io.StringIO(newline="")
        writer = csv.writer(rows)
        for p in evaluation.predictions:
            writer.writerow([p["identifier"], "True" if p["prediction"] else "False"])
        return atomic_write(path, rows.getvalue())  # a failed write keeps the previous file
