"""Image-text retrieval (Flickr30K, COCO Karpathy splits) — and the base of video retrieval.

Training (official `irtr`): each caption with K random captions of other images through the
cross-encoder's `rank_output`, cross-entropy on the positive; plus a contrastive term weighted by
`con_weight`. The official contrastive term assumed one image per GPU and keys no `infer` returned
(scl-official.md §8.6); here it is the in-batch symmetric ITC over the gathered batch.
Evaluation: see `retrieval_scoring` (exhaustive or two-stage, recorded in the result). A checkpoint
without retrieval fine-tuning is scored zero-shot through its ITM "match" logit, as officially.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from sclbench.adapters.interface import RetrievalModel
from sclbench.data.datasets import CaptionDataset, Visuals, caption_index, drop_undecodable
from sclbench.data.formats import karpathy
from sclbench.data.formats.arrow import read_family_arrow
from sclbench.metrics import retrieval_ranks, retrieval_recall
from sclbench.model import SCLModel
from sclbench.objectives.itc import itc_loss
from sclbench.tasks.base import Evaluation, Task, register
from sclbench.tasks.retrieval_predictions import query_predictions
from sclbench.tasks.retrieval_scoring import RetrievalOptions, as_retrieval_model, encode_features, retrieval_scores
from sclbench.tasks.retrieval_submission import write_score_file


@register("image_retrieval")
class RetrievalTask(Task):
    default_main_metric = "r_mean"

    @property
    def model_task(self) -> str:  # type: ignore[override]
        return self.card.get("model_task", self.name)

    def read_records(self, split: str) -> list:
        dataset = self.card.get("data.dataset", self.name)
        restval = bool(self.card.get("data.train_with_restval", True))
        dedup = bool(self.card.get("data.dedup_captions", True))  # the official remove_duplicate
        if self.card.get("data.format", "files") == "arrow":  # the ViLT/METER tables
            return read_family_arrow(
                "image_retrieval",
                self.root,
                split,
                dataset=dataset,
                coco_train_with_restval=restval,
                dedup_captions=dedup,
            )
        return karpathy.read_karpathy(
            self.root, dataset, split, skip=self.skip, coco_train_with_restval=restval, dedup_captions=dedup
        )

    def split_records(self, role: str) -> list:
        names = self.card.get(f"splits.{role}", role)
        names = names if isinstance(names, list) else [names]
        return [r for name in names for r in self.records(name)]

    def build_dataset(self, split: str, train: bool) -> CaptionDataset:
        return CaptionDataset(
            self.split_records(split),
            self.visuals(train),
            self.tokenizer,
            self.max_len,
            per_caption=True,
            neg_texts=int(self.card.get("train.neg_texts", 15)) if train else 0,
            seed=self.seed,
            skip_corrupt=self.skip is not None,
        )

    def loss(self, model: SCLModel, batch: dict, ctx: Any = None) -> tuple[torch.Tensor, dict[str, float]]:
        self.observe(batch)
        ids, masks = batch["text_ids"], batch["text_masks"]
        b, k, length = batch["neg_text_ids"].shape
        vision = model.encode_vision(batch["images"])
        text = model.encode_text(ids, masks)
        neg_masks = batch["neg_text_masks"].reshape(b * k, length)
        neg_text = model.encode_text(batch["neg_text_ids"].reshape(b * k, length), neg_masks)
        # [B, 1+K] candidates per image: the positive first, then its K negatives.
        all_text = torch.cat([text[:, None], neg_text.reshape(b, k, length, -1)], 1).flatten(0, 1)
        all_masks = torch.cat([masks[:, None], neg_masks.reshape(b, k, length)], 1).flatten(0, 1)
        fused = model.fuse(all_text, all_masks, vision.repeat(k + 1))
        scores = model.rank_output(fused.cls_feats).reshape(b, k + 1)
        target = torch.zeros(b, dtype=torch.long, device=scores.device)
        rank_loss = F.cross_entropy(scores, target)
        # Device tensors: the trainer reads its logs once per log interval (no sync per step).
        logs = {"irtr_loss": rank_loss.detach(), "irtr_acc": (scores.detach().argmax(1) == 0).float().mean()}
        loss = rank_loss
        weight = float(self.card.get("train.con_weight", 0.5))
        if weight > 0 and hasattr(model, "vision_proj"):
            con, con_logs = itc_loss(model, text, vision, weight, str(self.card.get("train.gather_grad", "official")))
            loss, logs = loss + con, {**logs, **con_logs}
        return loss, logs

    # ---- evaluation ----------------------------------------------------------------------------
    media_kind = "image"  # the id prefix and cluster unit of a media query

    def media(self, record: Any) -> Any:
        return record.image

    def media_id(self, record: Any) -> str:
        return str(record.image_id)

    def retrieval_options(self, options: dict[str, Any]) -> RetrievalOptions:
        defaults = self.card.section("eval")
        keys = (
            "mode",
            "k",
            "fusion",
            "pair_batch_size",
            "encode_batch_size",
            "num_workers",
            "cache_dir",
            "chunk_pairs",
            "shared_fusion",
            "feature_memory",
        )
        merged = {k: defaults[k] for k in keys if k in defaults}
        merged.update({k: v for k, v in options.items() if k in keys and v is not None})
        return RetrievalOptions(**merged)

    def retrieval_model(self, model: Any, options: dict[str, Any]) -> RetrievalModel:
        """The model as a `RetrievalModel`: an SCL checkpoint's `SCLModel` is wrapped with this task's
        tokenizer and eval transform (its identity: the checkpoint digest the caller passed)."""
        return as_retrieval_model(
            model,
            self.tokenizer,
            transform=str(self.card.get("eval.transform", "eval")),
            checkpoint_sha256=options.get("checkpoint_sha256"),
        )

    def media_visuals(self, model: RetrievalModel) -> Visuals:
        """Media as the model wants them (`Task.eval_visuals`: its transform, its frames per clip or the
        card's data.num_frames)."""
        return self.eval_visuals(model.preprocess())

    def evaluate(
        self, model: Any, split: str, batch_size: int = 32, num_workers: int | None = None, **options: Any
    ) -> Evaluation:
        opts = self.retrieval_options({"encode_batch_size": batch_size, "num_workers": num_workers, **options})
        model = self.retrieval_model(model, options)
        visuals = self.media_visuals(model)
        records = self.split_records(split)
        if self.skip is not None:  # the gallery is encoded whole: undecodable media are left out (counted) first
            records = drop_undecodable(records, visuals, self.skip)
        texts, owner = caption_index(records)
        was_training = model.training
        model.eval()
        precision = self.eval_precision(model, options)
        feats = encode_features(
            model,
            texts,
            None,
            [self.media(r) for r in records],
            visuals,
            opts,
            self.cache_identity(split, options, model),
            precision,
        )
        scored = retrieval_scores(model, feats, opts, precision)
        model.train(was_training)
        ties = options.get("ties", "gt_last")
        metrics, preds = self.metrics(scored, owner, records, texts, ties)
        two_stage = scored["mode"] == "two-stage"
        protocol = {
            "mode": scored["mode"],
            "k": opts.k if two_stage else None,
            # A model without a cross-encoder ranks by the first-stage similarity alone.
            "fusion": opts.fusion if model.has_pair_scorer else "itc",
            "zero_shot": bool(options.get("zero_shot", False)),
            "ties": ties,
            "cross_encoder_passes": scored["cross_encoder_passes"],
            "exhaustive_passes": len(records) * len(texts) if model.has_pair_scorer else 0,
            "num_images": len(records),
            "num_texts": len(texts),
            "cluster_unit": self.media_kind,
            **precision.protocol(),
            # What a rerun reused from --cache-dir (the only protocol entry a resumed run changes).
            "resumed": {"features": feats.reused, **scored["score_cache"], "computed_passes": scored["computed_passes"]}
            if feats.key
            else None,
        }
        # Timing is not protocol (it differs run to run): the record's throughput is pairs/s.
        return Evaluation(
            self.name,
            split,
            metrics,
            f"recall-{protocol['ties']}",
            preds,
            protocol,
            num_samples=scored["computed_passes"],
            wall_time_s=scored["scoring_time_s"],
            skipped=self.skip.as_dict() if self.skip else {},
            arrays={
                "i2t": scored["i2t"],
                "t2i": scored["t2i"].t(),
                "media_ids": [self.media_id(r) for r in records],
            },
        )

    def requested_protocol(self, options: dict[str, Any], device_type: str) -> dict[str, Any]:
        opts = self.retrieval_options(options)
        return {
            "mode": opts.mode,
            "k": opts.k if opts.mode == "two-stage" else None,
            "fusion": opts.fusion,
            "zero_shot": bool(options.get("zero_shot", False)),
            "ties": options.get("ties", "gt_last"),
            **super().requested_protocol(options, device_type),
        }

    def cache_identity(self, split: str, options: dict[str, Any], model: RetrievalModel) -> dict[str, Any] | None:
        """What, besides the preprocessed texts, media files and precision (the engine adds those),
        makes cached features valid: the model's identity (checkpoint digest, hub id, revision) and
        preprocessing, the data fingerprint and the frames. None (no cache) without a cache folder or
        for a model without an identity (e.g. weights still training)."""
        identity = model.identity()
        if not identity or not options.get("cache_dir"):
            return None
        from sclbench.results.record import fingerprint_files

        cls = type(model)
        return {
            "model": identity,
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "preprocess": model.preprocess().describe,
            "task": self.name,
            "split": split,
            "data_fingerprint": fingerprint_files(self.annotation_files()),
            "num_frames": self.media_visuals(model).num_frames,
        }

    def metrics(
        self, scored: dict, owner: list[int], records: list, texts: list[str], ties: str
    ) -> tuple[dict, list[dict]]:
        metrics = retrieval_recall(scored["i2t"], scored["t2i"], txt2img=owner, ties=ties)
        ranks = retrieval_ranks(scored["i2t"], scored["t2i"], txt2img=owner, ties=ties)
        media_preds, text_preds = query_predictions(
            scored,
            {"media": ranks["tr"], "text": ranks["ir"]},
            owner,
            [self.media_id(r) for r in records],
            texts,
            self.media_kind,
            ("tr", "ir"),
            ties,
        )
        return metrics, media_preds + text_preds

    def submission(self, evaluation: Evaluation, out_dir: Path) -> Path | None:
        """The retrieval score file (`retrieval_submission`): what `sclbench score` reads back."""
        return write_score_file(self.name, self.published_split(evaluation.split), evaluation.arrays, out_dir)

    def published_split(self, role: str) -> str:
        published = self.card.get(f"splits.{role}", role)
        return "+".join(published) if isinstance(published, list) else str(published)
