"""`sclbench score`: score predictions made elsewhere with the official scorers and the task's protocol.

The split is read by the task's own readers (`sclbench.tasks.get_task`, card + overrides, so the VQA
minival is the one `eval` carves), the file by the strict readers of `sclbench.data.formats.predictions`,
and the numbers come from the same metric functions `eval` uses (VQA: `vqa_evaluate` / `vqa_scores`;
NLVR2: `nlvr2_metrics`; retrieval: the task's own `metrics`, i.e. `retrieval_ranks` / `video_retrieval_ranks`
under the `--ties` rule). The result is a normal ResultRecord with per-sample predictions, so `table`,
`check`, `compare` and `browse` read it like any other; it says it was scored from a file:
``protocol["scored_from"] = {"file", "sha256", "format", ...}`` and ``checkpoint["model"] = "predictions-file"``.

What a file must hold (formats in `sclbench.data.formats.predictions`):
* VQA (val = the minival, test-dev has no public answers): an answer for every question of the split and
  for no other question. `allow_missing` scores an unanswered question as the empty answer "" (worth 0,
  as on EvalAI, which needs every question), and the record counts them; answers for questions outside
  the split are always refused (a file made for another split, or the whole of val2014).
* NLVR2: a prediction for every statement of the split and no other; `allow_missing` counts a missing
  statement as wrong (the official script stops instead).
* Retrieval, score matrix: [n_media, n_texts] in the split's record and caption order; rows are matched
  by `media_ids` (a permutation of the split's ids is put back in record order).
* Retrieval, ranked lists: every query of both directions. A list that stops before the query's ground
  truth gives only a lower bound on its rank, so R@K is reported only for K no longer than every such
  list, MedR / MeanR only when every ground truth is listed, r_mean / rsum only when all their R@K are;
  the others are left out of the record (named in ``scored_from["omitted_metrics"]``) and said so.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sclbench.common.io import check_output_dir
from sclbench.data.formats import predictions as files
from sclbench.data.formats.predictions import preview_ids
from sclbench.errors import ConfigError, DataError
from sclbench.metrics import TIE_RULES, nlvr2_metrics, vqa_evaluate, vqa_scores
from sclbench.results import ResultRecord, environment_info, fingerprint_files
from sclbench.tasks.base import Task, get_task

# Task family -> {file suffix: format name}.
FORMATS: dict[str, dict[str, str]] = {
    "vqa": {".json": "evalai-json"},
    "nlvr2": {".csv": "nlvr2-csv"},
    "image_retrieval": {".npz": "scores-npz", ".json": "ranked-lists-json"},
    "video_retrieval": {".npz": "scores-npz", ".json": "ranked-lists-json"},
}
MODEL = "predictions-file"  # checkpoint["model"] of a record scored from a file


@dataclass
class Scored:
    """What a family's scorer returns (the record adds the file, the split and the environment)."""

    metrics: dict[str, float]
    scorer: str
    predictions: list[dict[str, Any]]
    protocol: dict[str, Any] = field(default_factory=dict)
    breakdown: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def file_format(family: str, path: Path, task: str) -> str:
    """The format of `path` for a task family, from its suffix; a ConfigError lists the accepted ones."""
    if family not in FORMATS:
        raise ConfigError(f"task {task!r} (family {family}) has no evaluation protocol: there is nothing to score")
    accepted = FORMATS[family]
    suffix = path.suffix.lower()
    if suffix not in accepted:
        wanted = ", ".join(f"{name} ({ext})" for ext, name in accepted.items())
        raise ConfigError(f"--predictions {path}: {task} scores {wanted}; the file's suffix {path.suffix!r} is none")
    return accepted[suffix]


def score(
    task_name: str,
    predictions_file: str | Path,
    split: str = "test",
    data_root: str | None = None,
    results_dir: str | Path = "results",
    overrides: list[str] | None = None,
    name: str | None = None,
    ties: str = "gt_last",
    allow_missing: bool = False,
) -> tuple[ResultRecord, Path, list[str]]:
    """Score `predictions_file` on the card's `split` role (val / test) and write the record.

    Returns (record, its path, notes for the user: metrics left out, questions filled, ...)."""
    if split not in ("val", "test"):
        raise ConfigError(f"--split {split!r}: use val or test (the roles `eval` evaluates)")
    if ties not in TIE_RULES:
        raise ConfigError(f"--ties {ties!r}: use one of {', '.join(TIE_RULES)}")
    check_output_dir(results_dir, "--results")
    path = Path(predictions_file)
    if not path.is_file():
        raise DataError(f"--predictions {path}: no such file")
    task = get_task(task_name, overrides, data_root=data_root)
    family = task.card.family
    fmt = file_format(family, path, task.name)
    if allow_missing and family not in ("vqa", "nlvr2"):
        raise ConfigError("--allow-missing applies to VQA and NLVR2 files; a retrieval file scores every query")
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    started = time.perf_counter()
    if family == "vqa":
        scored = _score_vqa(task, split, path, allow_missing)
    elif family == "nlvr2":
        scored = _score_nlvr2(task, split, path, allow_missing)
    else:
        from sclbench.app.score_retrieval import score_retrieval

        metrics, preds, protocol, notes = score_retrieval(task, split, path, fmt, ties)
        scored = Scored(metrics, f"recall-{ties}", preds, protocol, notes=notes)
    wall = time.perf_counter() - started
    published = task.card.get(f"splits.{split}", split)
    published = "+".join(published) if isinstance(published, list) else str(published)
    source = {"file": _shown(path.name), "sha256": digest, "format": fmt, **scored.protocol.pop("scored_from", {})}
    record = ResultRecord(
        task=task.name,
        split=published,
        metrics=scored.metrics,
        scorer=scored.scorer,
        protocol={"role": split, **scored.protocol, "scored_from": source, "limit": None, "skipped": None},
        config={"card": task.card.data, "overrides": list(overrides or []), "predictions_file": _shown(path)},
        checkpoint={"name": name or _shown(path.stem), "model": MODEL, "path": _shown(path), "sha256": digest},
        data_fingerprint=fingerprint_files(task.annotation_files()),
        world_size=1,
        wall_time_s=round(wall, 3),
        throughput=round(len(scored.predictions) / wall, 3) if wall else None,
        extra=_synthetic_extra(task),
        breakdown=scored.breakdown,
        **environment_info(),
    )
    out = record.save(results_dir, predictions=scored.predictions)
    return record, out, scored.notes


def _shown(path: str | Path) -> str:
    """A path as record text: a file name holding bytes that are not UTF-8 (Python keeps them as lone
    surrogates, which no JSON writer can encode) shows them as escapes."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


def _synthetic_extra(task: Task) -> dict[str, Any]:
    """Records made on the generated benchmark say so (tables never set them against paper numbers)."""
    from sclbench.data.synthetic import synthetic_marker

    marker = synthetic_marker(task.root)
    return {"synthetic_data": marker} if marker is not None else {}


def _check_ids(path: Path, given: set, wanted: list, what: str, where: str, allow_missing: bool) -> list:
    """Refuse ids outside the split; refuse missing ones unless allowed. Returns the missing ids."""
    wanted_set = set(wanted)
    unknown = [i for i in given if i not in wanted_set]
    if unknown:
        raise DataError(
            f"{path}: {len(unknown)} {what} are not in {where} ({preview_ids(unknown)}): the file was made for "
            "another split (or holds more than this one); keep exactly the split's entries"
        )
    missing = [i for i in wanted if i not in given]
    if missing and not allow_missing:
        raise DataError(
            f"{path}: no prediction for {len(missing)} of {len(wanted)} {what} of {where} ({preview_ids(missing)}); "
            "the official scorer needs every one (pass --allow-missing to score them as wrong)"
        )
    return missing


# ---- VQA ----------------------------------------------------------------------------------------------
def _score_vqa(task: Any, role: str, path: Path, allow_missing: bool) -> Scored:
    from sclbench.data.formats.vqa import split_minival
    from sclbench.tasks.vqa import vqa_prediction

    published = task.card.get(f"splits.{role}", role)
    where = f"the vqa {published} split"
    labelled = [r for r in task.split_records(role) if r.answers]
    if not labelled:
        raise DataError(
            f"{where} has no public answers (test-dev is scored by EvalAI only): submit {path} to EvalAI, "
            "or score a val file here"
        )
    answered = files.read_evalai_answers(path)
    missing = _check_ids(path, set(answered), [r.question_id for r in labelled], "question ids", where, allow_missing)
    # A question without an answer is scored as the empty answer, as EvalAI scores the filled ones.
    filled = {r.question_id: answered.get(r.question_id, "") for r in labelled}
    questions = [
        {"question_id": r.question_id, "answers": r.answers, "answer_type": r.answer_type,
         "question_type": r.question_type}
        for r in labelled
    ]  # fmt: skip
    result = vqa_evaluate(filled, questions)
    per_question = vqa_scores(filled, questions)
    metrics = {k: float(v) for k, v in result.items() if k.startswith("accuracy")}
    vocab, preds, missing_set = task.vocab, [], set(missing)
    blind = task.question_only(labelled) if len(labelled) <= 50_000 else None
    for r in labelled:
        answer = filled[r.question_id]
        # The training proxy as eval computes it: the float32 soft target of the answer's class (0 outside
        # the vocabulary), so the two agree to the last bit.
        pred = vqa_prediction(r, r.question_id, answer, float(np.float32(vocab.scores(r).get(answer, 0.0))))
        pred["scores"] = {"accuracy": per_question[r.question_id]}
        if blind is not None and r.question_id in blind.scores:  # paired with the file's score, as in eval
            pred["scores"]["question_only"] = blind.scores[r.question_id]
        if r.question_id in missing_set:
            pred["missing"] = True
        preds.append(pred)
    metrics["soft_score_proxy"] = 100.0 * sum(p["soft_score"] for p in preds) / len(preds)
    protocol: dict[str, Any] = {"split_files": published, "answer_vocab_size": len(vocab.answers)}
    protocol["cluster_unit"] = "image"
    if len(labelled) <= 50_000:
        protocol["chance_accuracy"] = task.chance_accuracy(labelled)
    if blind is not None:
        protocol["question_only_accuracy"] = blind.accuracy
    if role == "val" or "minival" in str(published):
        n, seed = int(task.card.get("data.minival_images", 1000)), int(task.card.get("data.minival_seed", 0))
        manifest = split_minival(task.records("val"), n, seed=seed)[2]
        protocol["minival"] = {"seed": manifest["seed"], "num_images": manifest["num_images"]}
        protocol["minival"]["num_image_ids"] = len(manifest["image_ids"])
    protocol["scored_from"] = {"missing": len(missing)}
    notes = [f"{len(missing)} questions had no answer: scored as the empty answer (0)"] if missing else []
    breakdown = {k: dict(result[k]) for k in ("per_answer_type", "per_question_type")}
    return Scored(metrics, "vqaEval-official", preds, protocol, breakdown, notes)


# ---- NLVR2 --------------------------------------------------------------------------------------------
def _score_nlvr2(task: Any, role: str, path: Path, allow_missing: bool) -> Scored:
    from sclbench.tasks.nlvr2 import nlvr2_prediction

    published = task.card.get(f"splits.{role}", role)
    where = f"the nlvr2 {published} split"
    records = [r for r in task.role_records(role) if r.label is not None]
    if not records:
        raise DataError(f"{where} has no labels: there is nothing to score the file against")
    given = files.read_nlvr2_csv(path)
    missing = _check_ids(path, set(given), [r.identifier for r in records], "identifiers", where, allow_missing)
    # A missing statement counts as wrong: its prediction is the opposite of its label.
    predictions = {r.identifier: given.get(r.identifier, not r.label) for r in records}
    metrics = nlvr2_metrics(predictions, {r.identifier: r.label for r in records})
    preds = []
    for r in records:
        # The eval's per-sample fields; a file gives the decision only, no probability.
        pred = {**nlvr2_prediction(r, 1.0 if predictions[r.identifier] else 0.0), "prob_true": None}
        pred["scores"] = {"accuracy": float(predictions[r.identifier] == r.label)}
        if r.identifier not in given:
            pred.update(prediction=None, missing=True)
        preds.append(pred)
    protocol = {"split_file": published, "cluster_unit": "sentence", "scored_from": {"missing": len(missing)}}
    notes = [f"{len(missing)} statements had no prediction: counted as wrong"] if missing else []
    return Scored(metrics, "nlvr2-official", preds, protocol, notes=notes)
