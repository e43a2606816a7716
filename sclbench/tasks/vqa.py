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

from sclbench.common.io import atomic_write
from sclbench.data.datasets import VQADataset
from sclbench.data.formats import vqa as fmt
from sclbench.errors import ConfigError, DataError, SCLBenchError
from sclbench.metrics import vqa_accuracy, vqa_evaluate, vqa_scores
from sclbench.metrics.blind import BlindBaseline, question_only_baseline
from sclbench.model import SCLModel
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
        return VQADataset(
            self.split_records(split),
            self.vocab,
            self.visuals(train),
            self.tokenizer,
            self.max_len,
            drop_unanswerable=train,
            seed=self.seed,
            skip_corrupt=self.skip is not None,
        )

    def loss(self, model: SCLModel, batch: dict, ctx: Any = None) -> tuple[torch.Tensor, dict[str, float]]:
        self.observe(batch)
        out = model(batch["text_ids"], batch["text_masks"], batch["images"])
        logits = model.vqa_classifier(out.cls_feats)
        # BCE averaged over batch x classes, times the number of classes = per-question sum (official).
        loss = F.binary_cross_entropy_with_logits(logits, batch["vqa_targets"]) * logits.shape[1]
        # The training proxy of `vqa_soft_score` (percent), kept on the device: the trainer reads logs per
        # log interval, not per step.
        proxy = batch["vqa_targets"].gather(1, logits.detach().argmax(1, keepdim=True)).float().mean() * 100.0
        return loss, {"vqa_loss": loss.detach(), "vqa_soft_score_proxy": proxy}

    def evaluate(
        self, model: SCLModel, split: str, batch_size: int = 32, num_workers: int | None = None, **options: Any
    ) -> Evaluation:
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
            return [
                {"id": q, "question_id": q, "answer": answers[a], "soft_score": s}
                for q, a, s in zip(batch["question_ids"].tolist(), best.tolist(), proxy.float().tolist())
            ]

        precision = self.eval_precision(model, options)
        preds, wall = self.run_eval(model, dataset, batch_size, num_workers, step, precision)
        records = dataset.records
        labelled = [r for r in records if r.answers]
        metrics: dict[str, float] = {}
        blind = None
        if labelled:
            questions = [
                {
                    "question_id": r.question_id,
                    "answers": r.answers,
                    "answer_type": r.answer_type,
                    "question_type": r.question_type,
                }
                for r in labelled
            ]
            answered = {p["question_id"]: p["answer"] for p in preds}
            result = vqa_evaluate(answered, questions, extra="ignore")
            metrics = {k: float(v) for k, v in result.items() if k.startswith("accuracy")}
            per_question = vqa_scores(answered, questions, extra="ignore")
            for p in preds:  # per-sample scores let `sclbench check` bootstrap a confidence interval
                if p["question_id"] in per_question:
                    p["scores"] = {"accuracy": per_question[p["question_id"]]}
            metrics["soft_score_proxy"] = 100.0 * sum(p["soft_score"] for p in preds) / max(len(preds), 1)
            chance_level = self.chance_accuracy(labelled) if len(labelled) <= 50_000 else None
            blind = self.question_only(labelled) if len(labelled) <= 50_000 else None
            for p in preds if blind else []:  # paired with the model's score, question by question
                if p["question_id"] in blind.scores:
                    p.setdefault("scores", {})["question_only"] = blind.scores[p["question_id"]]
        split_desc = self.card.get(f"splits.{split}", split)
        protocol = {"split_files": split_desc, "answer_vocab_size": len(answers), **precision.protocol()}
        if labelled and chance_level is not None:
            protocol["chance_accuracy"] = chance_level
        if blind is not None:
            protocol["question_only_accuracy"] = blind.accuracy
        if split in ("val",) or "minival" in str(split_desc):
            protocol["minival"] = {k: v for k, v in self._val_parts()[2].items() if k != "image_ids"}
            protocol["minival"]["num_image_ids"] = len(self._val_parts()[2]["image_ids"])
        return Evaluation(
            self.name,
            split,
            metrics,
            "vqaEval-official" if metrics else "none (submit to EvalAI)",
            preds,
            protocol,
            num_samples=len(preds),
            wall_time_s=wall,
            skipped=self.skip.as_dict() if self.skip else {},
        )

    def question_only(self, records: list) -> BlindBaseline | None:
        """The question-only baseline (sclbench.metrics.blind) fitted on the train split and scored on
        `records`; None when the train split cannot be read (an evaluation without training files)."""
        try:
            return question_only_baseline(self.split_records("train"), records)
        except (SCLBenchError, OSError):  # MetricInputError included: no training answers
            return None

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
        """EvalAI format: one {"question_id", "answer"} per test2015 question, no duplicates.

        EvalAI's VQA v2 challenge scores both phases (test-dev, test-standard) on a file answering EVERY
        test2015 question (a test-dev-only file is rejected: Cadene/murel.bootstrap.pytorch#9); the
        official code predicts all of test2015. A test-dev run fills the other test2015 questions with
        the empty answer "", as LLaVA's scripts/convert_vqav2_for_submission.py and OpenFlamingo's
        fill_vqa_testdev_results.py do; only the test-dev questions count in that phase.
        """
        seen: dict[int, str] = {}
        for p in evaluation.predictions:
            seen.setdefault(p["question_id"], p["answer"])
        if len(seen) != len(evaluation.predictions):
            raise ConfigError("duplicate question ids in VQA predictions: refusing to write a submission")
        # Named by the published split (test-dev / test), not the role: EvalAI phases differ per split.
        published = self.card.get(f"splits.{evaluation.split}", evaluation.split)
        entries = [{"question_id": q, "answer": a} for q, a in seen.items()]
        if published in ("test-dev", "test"):
            entries = self._every_test2015_question(seen, str(published))
        path = Path(out_dir) / f"vqa_submission_{published}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(entries))
        return path

    def _every_test2015_question(self, answered: dict[int, str], published: str) -> list[dict[str, Any]]:
        """The answers in test2015 question order, "" where a question has no prediction."""
        qpath = fmt.question_file(self.root, "test")
        try:
            doc = json.loads(qpath.read_text())
            ids = [int(q["question_id"]) for q in doc["questions"]]
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise DataError(
                f"{qpath}: cannot read the test2015 question ids ({type(err).__name__}: {err}); "
                "EvalAI needs an answer for each of them, re-download the questions zip"
            ) from None
        stray = set(answered) - set(ids)
        if stray:
            raise DataError(
                f"{len(stray)} predicted {published} question ids are not in {qpath} (e.g. "
                f"{min(stray)}): the questions files do not belong together; re-download them"
            )
        filled = sum(q not in answered for q in ids)
        print(
            f"vqa: submission answers {len(ids) - filled} {published} questions and fills {filled} other "
            f'test2015 questions with "" (EvalAI expects every test2015 question)'
        )
        return [{"question_id": q, "answer": answered.get(q, "")} for q in ids]
