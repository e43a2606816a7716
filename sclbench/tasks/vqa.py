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

from sclbench.adapters.interface import EvalModel, Preprocess, VQABatch, VQAModel
from sclbench.common.io import atomic_write
from sclbench.data.datasets import BatchText, VQADataset
from sclbench.data.formats import vqa as fmt
from sclbench.data.formats.vqa_normalize import normalize_answer
from sclbench.errors import ConfigError, DataError, SCLBenchError
from sclbench.metrics import vqa_accuracy, vqa_evaluate, vqa_scores
from sclbench.metrics.blind import BlindBaseline, question_only_baseline
from sclbench.model import SCLModel
from sclbench.tasks.base import Evaluation, Task, register
from sclbench.tasks.encode_once import source_key


@register("vqa")
class VQATask(Task):
    model_task = "vqa"
    default_main_metric = "accuracy"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._vocab: fmt.AnswerVocab | None = None
        self._minival: tuple[list, list, dict] | None = None
        self._baselines: dict[str, tuple[float | None, BlindBaseline | None]] = {}

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

    def build_eval_dataset(self, split: str, preprocess: Preprocess) -> VQADataset:
        """The split as an evaluated model wants it: its image transform; questions stay strings for its
        tokenizer (`BatchText`, per batch)."""
        return VQADataset(
            self.split_records(split),
            self.vocab,
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
        """Official VQA accuracy of any `VQAModel` (an SCLModel is wrapped: `Task.eval_model`)."""
        model = self.eval_model(model, options, "vqa")
        preprocess = model.preprocess()
        dataset = self.build_eval_dataset(split, preprocess)
        answers = self.vocab.answers
        index_of = {a: i for i, a in enumerate(answers)}

        def step(m: VQAModel, batch: dict) -> list[dict]:
            records = [dataset.records[i] for i in batch["index"].tolist()]
            question = VQABatch(
                pixels=batch["images"],
                text=batch["text"],
                questions=list(batch["texts"]),
                image_keys=[source_key(r.image) for r in records],
                vocabulary=answers,
            )
            chosen, soft = vqa_answers(m.answer_vqa(question), batch["vqa_targets"], answers, index_of, m.name)
            # One host read per list (not one per question).
            return [
                vqa_prediction(r, q, a, s) for r, q, a, s in zip(records, batch["question_ids"].tolist(), chosen, soft)
            ]

        precision = self.eval_precision(model, options)
        collate = BatchText(preprocess.text, self.collate)
        preds, wall = self.run_eval(model, dataset, batch_size, num_workers, step, precision, collate)
        records = dataset.records
        labelled = [r for r in records if r.answers]
        metrics: dict[str, float] = {}
        breakdown: dict[str, Any] = {}
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
            breakdown = {k: dict(result[k]) for k in ("per_answer_type", "per_question_type")}
            per_question = vqa_scores(answered, questions, extra="ignore")
            for p in preds:  # per-sample scores let `sclbench check` bootstrap a confidence interval
                if p["question_id"] in per_question:
                    p["scores"] = {"accuracy": per_question[p["question_id"]]}
            metrics["soft_score_proxy"] = 100.0 * sum(p["soft_score"] for p in preds) / max(len(preds), 1)
            chance_level, blind = self.split_baselines(split, labelled)
            for p in preds if blind else []:  # paired with the model's score, question by question
                if p["question_id"] in blind.scores:
                    p.setdefault("scores", {})["question_only"] = blind.scores[p["question_id"]]
        split_desc = self.card.get(f"splits.{split}", split)
        protocol = {
            "split_files": split_desc,
            "answer_vocab_size": len(answers),
            "cluster_unit": "image",  # questions about one image share it: intervals resample images
            **precision.protocol(),
        }
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
            breakdown=breakdown,
        )

    def split_baselines(self, split: str, labelled: list) -> tuple[float | None, BlindBaseline | None]:
        """(chance accuracy, question-only baseline) of a split's labelled questions. Both are properties of
        the data, not of the model, so they are computed once per split: in-training validation evaluates
        the same split at every interval, and the question-only prior is fitted on the whole train split."""
        if split not in self._baselines:
            small = len(labelled) <= 50_000
            self._baselines[split] = (
                self.chance_accuracy(labelled) if small else None,
                self.question_only(labelled) if small else None,
            )
        return self._baselines[split]

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


def vqa_answers(
    out: Any, targets: torch.Tensor, answers: list[str], index_of: dict[str, int], model_name: str
) -> tuple[list[str], list[float]]:
    """A `VQAModel.answer_vqa` output as (answer strings, soft-score proxy per question). Scores over the
    vocabulary [B, V] answer with their argmax; strings are answers themselves (the official scorer
    normalises them), and score the proxy only when they are vocabulary answers once normalised."""
    b = targets.shape[0]
    if isinstance(out, torch.Tensor):
        if out.dim() != 2 or tuple(out.shape) != (b, len(answers)):
            raise ConfigError(
                f"model {model_name!r}: answer_vqa returned a tensor of shape {tuple(out.shape)}; expected "
                f"[{b}, {len(answers)}] (batch x the card's answer vocabulary) or {b} answer strings"
            )
        best = out.argmax(1)
        proxy = targets.gather(1, best[:, None]).squeeze(1)
        return [answers[a] for a in best.tolist()], proxy.float().tolist()
    if not isinstance(out, (list, tuple)) or len(out) != b or not all(isinstance(a, str) for a in out):
        raise ConfigError(
            f"model {model_name!r}: answer_vqa returned {type(out).__name__}"
            f"{f' of {len(out)} items' if isinstance(out, (list, tuple)) else ''}; expected {b} answer strings or "
            f"a [{b}, {len(answers)}] score tensor"
        )
    # The vocabulary holds normalised answers (the official vocabulary writer's normaliser).
    hits = [index_of.get(a, index_of.get(normalize_answer(a))) for a in out]
    rows = targets.float().cpu()
    return list(out), [float(rows[i, j]) if j is not None else 0.0 for i, j in enumerate(hits)]


def vqa_prediction(record: Any, question_id: int, answer: str, soft_score: float) -> dict[str, Any]:
    """One question's prediction: the answer with what a reader needs to see it (the question, its
    image, types, the annotators' answers when labelled) and its cluster unit (its image)."""
    out = {
        "id": question_id,
        "question_id": question_id,
        "answer": answer,
        "soft_score": soft_score,
        "image_id": record.image_id,
        "question": record.question,
        "answer_type": record.answer_type,
        "question_type": record.question_type,
        "unit": f"image/{record.image_id}",
    }
    if record.answers:
        out["answers"] = list(record.answers)
    return out
