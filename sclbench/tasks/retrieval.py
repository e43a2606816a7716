"""Image-text retrieval (Flickr30K, COCO Karpathy splits) — and the base of video retrieval.

Training (official `irtr`): each caption with K random captions of other images through the
cross-encoder's `rank_output`, cross-entropy on the positive; plus a contrastive term weighted by
`con_weight`. The official contrastive term assumed one image per GPU and keys no `infer` returned
(scl-official.md §8.6); here it is the in-batch symmetric ITC over the gathered batch.
Evaluation: see `retrieval_scoring` (exhaustive or two-stage, recorded in the result). A checkpoint
without retrieval fine-tuning is scored zero-shot through its ITM "match" logit, as officially.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from sclbench.data.datasets import CaptionDataset, caption_index, drop_undecodable
from sclbench.data.formats import karpathy
from sclbench.data.formats.arrow import read_family_arrow
from sclbench.metrics import retrieval_ranks, retrieval_recall
from sclbench.model import SCLModel
from sclbench.objectives.itc import itc_loss
from sclbench.tasks.base import Evaluation, Task, register
from sclbench.tasks.retrieval_scoring import RetrievalOptions, encode_features, retrieval_scores


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
    def media(self, record: Any) -> Any:
        return record.image

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
            "readout_only",
            "feature_memory",
        )
        merged = {k: defaults[k] for k in keys if k in defaults}
        merged.update({k: v for k, v in options.items() if k in keys and v is not None})
        return RetrievalOptions(**merged)

    def evaluate(
        self, model: SCLModel, split: str, batch_size: int = 32, num_workers: int | None = None, **options: Any
    ) -> Evaluation:
        opts = self.retrieval_options({"encode_batch_size": batch_size, "num_workers": num_workers, **options})
        records = self.split_records(split)
        if self.skip is not None:  # the gallery is encoded whole: undecodable media are left out (counted) first
            records = drop_undecodable(records, self.visuals(train=False), self.skip)
        texts, owner = caption_index(records)
        was_training = model.training
        model.eval()
        precision = self.eval_precision(model, options)
        feats = encode_features(
            model,
            texts,
            self.tokenizer,
            [self.media(r) for r in records],
            self.visuals(train=False),
            opts,
            self.cache_identity(split, options, model),
            precision,
        )
        scored = retrieval_scores(model, feats, opts, precision)
        model.train(was_training)
        metrics, preds = self.metrics(scored, owner, len(records), options.get("ties", "gt_last"))
        protocol = {
            "mode": opts.mode,
            "k": opts.k if opts.mode == "two-stage" else None,
            "fusion": opts.fusion,
            "zero_shot": bool(options.get("zero_shot", False)),
            "ties": options.get("ties", "gt_last"),
            "cross_encoder_passes": scored["cross_encoder_passes"],
            "exhaustive_passes": len(records) * len(texts),
            "num_images": len(records),
            "num_texts": len(texts),
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

    def cache_identity(self, split: str, options: dict[str, Any], model: SCLModel) -> dict[str, Any] | None:
        """What, besides token ids, media files and precision (the engine adds those), makes cached
        features valid: checkpoint digest, data fingerprint, tokenizer, text length, image size,
        transform and frames. None (no cache) without a checkpoint digest: weights still training."""
        sha = options.get("checkpoint_sha256")
        if not sha or not options.get("cache_dir"):
            return None
        from sclbench.results.record import fingerprint_files

        tok = self.tokenizer
        return {
            "checkpoint_sha256": sha,
            "task": self.name,
            "split": split,
            "data_fingerprint": fingerprint_files(self.annotation_files()),
            "tokenizer": [
                type(tok).__name__,
                getattr(tok, "name_or_path", None),
                len(tok) if tok is not None else None,
            ],
            "max_text_len": self.max_len,
            "image_size": model.config.image_size,
            "transform": self.card.get("eval.transform", "eval"),
            "num_frames": int(self.card.get("data.num_frames", 1)),
        }

    def metrics(self, scored: dict, owner: list[int], n_media: int, ties: str) -> tuple[dict, list[dict]]:
        metrics = retrieval_recall(scored["i2t"], scored["t2i"], txt2img=owner, ties=ties)
        ranks = retrieval_ranks(scored["i2t"], scored["t2i"], txt2img=owner, ties=ties)
        preds = [
            {
                "id": f"image/{i}",
                "rank": int(r),
                "scores": {"tr_r1": float(r < 1), "tr_r5": float(r < 5), "tr_r10": float(r < 10)},
            }
            for i, r in enumerate(ranks["tr"])
        ]
        preds += [
            {
                "id": f"text/{t}",
                "rank": int(r),
                "scores": {"ir_r1": float(r < 1), "ir_r5": float(r < 5), "ir_r10": float(r < 10)},
            }
            for t, r in enumerate(ranks["ir"])
        ]
        return metrics, preds
