"""VQA v2: answer classification over the soft-score vocabulary, official accuracy at evaluation.

Splits (card `splits`): train = train2014 + the trainable part of val2014; val = a seeded minival
of val2014 (recorded in the result); test = test-dev2015 (EvalAI submission, no local metric).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from sclbench.data.datasets import VQADataset
from sclbench.data.formats import vqa as fmt
from sclbench.errors import ConfigError
from sclbench.metrics import vqa_accuracy, vqa_evaluate, vqa_scores, vqa_soft_score
from sclbench.model import SCLConfig, SCLModel
from sclbench.tasks.base import Evaluation, Task, register
from sclbench.tasks.encode_once import encode_images_once, source_key


@register("vqa")
class VQATask(Task):
    model_task = "vqa"
    default_main_metric = "accuracy"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._vocab: fmt.AnswerVocab | None = None
        self._minival: tuple[list, list, dict] | None = None

    # ---- vocabulary and splits -----------------------------------------------------------------
    @property
    def vocab(self) -> fmt.AnswerVocab:
        if self._vocab is None:
            saved = self.root / self.card.get("data.vocab_file", "answer_vocab.json")
            if saved.is_file():
                self._vocab = fmt.AnswerVocab.load(saved)
            else:  # the official writer: normalised answers of the train then val annotation files seen
                # >= min_count times, in first-seen order (so official / METER heads map class for class)
                self._vocab = fmt.AnswerVocab.from_annotations(self.root, int(self.card.get("data.vocab_min_count", 9)))
        return self._vocab

    def model_overrides(self) -> dict:
        return {**super().model_overrides(), "num_answers": len(self.vocab)}

    def _val_parts(self) -> tuple[list, list, dict]:
        if self._minival is None:
            n = int(self.card.get("data.minival_images", 1000))
            self._minival = fmt.split_minival(self.records("val"), n, seed=int(self.card.get("data.minival_seed", 0)))
        return self._minival

    def read_records(self, split: str) -> list:
        if split == "trainable_val":
            return self._val_parts()[0]
        if split == "minival":
            return self._val_parts()[1]
        if self.card.get("data.format", "files") == "arrow":  # the ViLT/METER tables
            return fmt.read_family_arrow("vqa", self.root, split)
        return fmt.read_vqa(self.root, split, skip=self.skip)

    def split_records(self, role_or_split: str) -> list:
        names = self.card.get(f"splits.{role_or_split}", role_or_split)
        names = names if isinstance(names, list) else [names]
        return [r for name in names for r in self.records(name)]

    # ---- data, loss, evaluation ----------------------------------------------------------------
    def build_dataset(self, split: str, train: bool) -> VQADataset:
        return VQADataset(self.split_records(split), self.vocab, self.visuals(train), self.tokenizer, self.max_len,
                          drop_unanswerable=train, seed=self.seed, skip_corrupt=self.skip is not None)

    def loss(self, model: SCLModel, batch: dict, ctx: Any = None) -> tuple[torch.Tensor, dict[str, float]]:
        self.observe(batch)
        out = model(batch["text_ids"], batch["text_masks"], batch["images"])
        logits = model.vqa_classifier(out.cls_feats)
        # BCE averaged over batch x classes, times the number of classes = per-question sum (official).
        loss = F.binary_cross_entropy_with_logits(logits, batch["vqa_targets"]) * logits.shape[1]
        return loss, {"vqa_loss": loss.item(), "vqa_soft_score_proxy": vqa_soft_score(logits.detach(), batch["vqa_targets"])}

    def evaluate(self, model: SCLModel, split: str, batch_size: int = 32, num_workers: int = 0,
                 **options: Any) -> Evaluation:
        dataset = self.build_dataset(split, train=False)
        answers = self.vocab.answers

        def step(m: SCLModel, batch: dict) -> list[dict]:
            # Each distinct image of the batch through the ViT once (VQA v2: ~5 questions per image).
            keys = [source_key(dataset.records[i].image) for i in batch["index"].tolist()]
            vision = encode_images_once(m, batch["images"], keys)
            logits = m.vqa_classifier(m(batch["text_ids"], batch["text_masks"], vision).cls_feats)
            best = logits.argmax(1)
            proxy = batch["vqa_targets"].gather(1, best[:, None]).squeeze(1)
            # One host read per list (not one per question).
            return [{"id": q, "question_id": q, "answer": answers[a], "soft_score": s}
                    for q, a, s in zip(batch["question_ids"].tolist(), best.tolist(), proxy.float().tolist())]

        precision = self.eval_precision(model, options)
        preds, wall = self.run_eval(model, dataset, batch_size, num_workers, step, precision)
        records = dataset.records
        labelled = [r for r in records if r.answers]
        metrics: dict[str, float] = {}
        if labelled:
            questions = [{"question_id": r.question_id, "answers": r.answers, "answer_type": r.answer_type,
                          "question_type": r.question_type} for r in labelled]
            answered = {p["question_id"]: p["answer"] for p in preds}
            result = vqa_evaluate(answered, questions, extra="ignore")
            metrics = {k: float(v) for k, v in result.items() if k.startswith("accuracy")}
            per_question = vqa_scores(answered, questions, extra="ignore")
            for p in preds:  # per-sample scores let `sclbench check` bootstrap a confidence interval
                if p["question_id"] in per_question:
                    p["scores"] = {"accuracy": per_question[p["question_id"]]}
            metrics["soft_score_proxy"] = 100.0 * sum(p["soft_score"] for p in preds) / max(len(preds), 1)
            chance_level = self.chance_accuracy(labelled) if len(labelled) <= 50_000 else None
        split_desc = self.card.get(f"splits.{split}", split)
        protocol = {"split_files": split_desc, "answer_vocab_size": len(answers), **precision.protocol()}
        if labelled and chance_level is not None:
            protocol["chance_accuracy"] = chance_level
        if split in ("val",) or "minival" in str(split_desc):
            protocol["minival"] = {k: v for k, v in self._val_parts()[2].items() if k != "image_ids"}
            protocol["minival"]["num_image_ids"] = len(self._val_parts()[2]["image_ids"])
        return Evaluation(self.name, split, metrics, "vqaEval-official" if metrics else "none (submit to EvalAI)",
                          preds, protocol, num_samples=len(preds), wall_time_s=wall,
                          skipped=self.skip.as_dict() if self.skip else {})

    def chance_accuracy(self, records: list) -> float:
        """Official accuracy (%) of answering each question with a uniformly random vocabulary answer.

        Only answers some annotator gave can score, so each question needs <= 10 scorer calls.
        """
        vocab = set(self.vocab.answers)
        total = 0.0
        for r in records:
            total += sum(vqa_accuracy(a, r.answers) for a in set(r.answers) if a in vocab) / len(vocab)
        return 100.0 * total / max(len(records), 1)

    def submission(self, evaluation: Evaluation, out_dir: Path) -> Path:
        """EvalAI format: one {"question_id", "answer"} per question, no duplicates."""
        seen: dict[int, str] = {}
        for p in evaluation.predictions:
            seen.setdefault(p["question_id"], p["answer"])
        if len(seen) != len(evaluation.predictions):
            raise ConfigError("duplicate question ids in VQA predictions: refusing to write a submission")
        # Named by the published split (test-dev / test), not the role: EvalAI phases differ per split.
        published = self.card.get(f"splits.{evaluation.split}", evaluation.split)
        path = Path(out_dir) / f"vqa_submission_{published}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([{"question_id": q, "answer": a} for q, a in seen.items()]))
        return path
