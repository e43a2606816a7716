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

from sclbench.adapters.interface import EvalModel, NLVR2Batch, NLVR2Model, Preprocess
from sclbench.common.io import atomic_write
from sclbench.data.datasets import BatchText, NLVR2Dataset
from sclbench.data.formats import nlvr2 as fmt
from sclbench.errors import ConfigError
from sclbench.metrics import MetricInputError, nlvr2_metrics
from sclbench.metrics.nlvr2 import sentence_key
from sclbench.model import SCLModel
from sclbench.tasks.base import Evaluation, Task, register
from sclbench.tasks.encode_once import source_key


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

    def build_eval_dataset(self, split: str, preprocess: Preprocess) -> NLVR2Dataset:
        """The split as an evaluated model wants it: its image transform; statements stay strings for its
        tokenizer (`BatchText`, per batch)."""
        return NLVR2Dataset(
            self.role_records(split),
            self.eval_visuals(preprocess),
            None,
            seed=self.seed,
            skip_corrupt=self.skip is not None,
        )

    def evaluate(
        self,
        model: EvalModel | SCLModel,
        split: str,
        batch_size: int = 32,
        num_workers: int | None = None,
        **options: Any,
    ) -> Evaluation:
        """Accuracy and consistency of any `NLVR2Model` (an SCLModel is wrapped: `Task.eval_model`)."""
        model = self.eval_model(model, options, "nlvr2")
        preprocess = model.preprocess()
        dataset = self.build_eval_dataset(split, preprocess)

        def step(m: NLVR2Model, batch: dict) -> list[dict]:
            records = [dataset.records[i] for i in batch["index"].tolist()]
            statement = NLVR2Batch(
                pixels_0=batch["images_0"],
                pixels_1=batch["images_1"],
                text=batch["text"],
                statements=list(batch["texts"]),
                image_keys_0=[source_key(r.image_0) for r in records],
                image_keys_1=[source_key(r.image_1) for r in records],
            )
            prob = m.nlvr2_prob_true(statement)
            if not isinstance(prob, torch.Tensor) or tuple(prob.shape) != (len(records),):
                got = tuple(prob.shape) if isinstance(prob, torch.Tensor) else type(prob).__name__
                raise ConfigError(
                    f"model {m.name!r}: nlvr2_prob_true returned {got}; expected a tensor of shape [{len(records)}]"
                )
            probs = prob.float().tolist()  # one host read per batch
            outside = [p for p in probs if not 0.0 <= p <= 1.0]  # NaN included
            if outside:
                raise ConfigError(
                    f"model {m.name!r}: nlvr2_prob_true returned {outside[0]}, not a probability in [0, 1] "
                    "(logits? apply a sigmoid or softmax)"
                )
            return [nlvr2_prediction(r, p) for r, p in zip(records, probs)]

        precision = self.eval_precision(model, options)
        collate = BatchText(preprocess.text, self.collate)
        preds, wall = self.run_eval(model, dataset, batch_size, num_workers, step, precision, collate)
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
            {
                "split_file": self.card.get(f"splits.{split}", split),
                "passes": "pair",
                "cluster_unit": "sentence",  # a sentence is stated of several image pairs: resampled whole
                **precision.protocol(),
            },
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


def image_name(source: Any, record: Any, side: int) -> str:
    """An NLVR2 image's id: its file name stem (`dev-850-3-img0`); for an arrow cell, the name the
    published files give that image (the identifier's pair id + `-img0` / `-img1`)."""
    path = getattr(source, "path", None)
    return Path(path).stem if path is not None else f"{record.pair_id}-img{side}"


def nlvr2_prediction(record: Any, prob_true: float) -> dict[str, Any]:
    """One statement's prediction, with its sentence, label, image ids and cluster unit (its sentence:
    NLVR2 states each sentence of several image pairs)."""
    try:
        unit = sentence_key(record.identifier)
    except MetricInputError:  # an identifier not of the published form: its own unit
        unit = record.identifier
    return {
        "id": record.identifier,
        "identifier": record.identifier,
        "prediction": prob_true > 0.5,
        "prob_true": prob_true,
        "sentence": record.sentence,
        "label": record.label,
        "images": [image_name(record.image_0, record, 0), image_name(record.image_1, record, 1)],
        "unit": f"sentence/{unit}",
    }
