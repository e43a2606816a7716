"""The loss balance of a run: each term's effective weight and where its negatives come from.

A contrastive term computed on features gathered from all processes gets, under the official
`AllGather_multi` backward, 1/world of its card weight once DDP averages the gradients (losses.py).
The official runs used 8 processes, so their gathered terms weighed card weight / 8 against MLM, ITM
and the retrieval rank loss. `train.gather_grad: official` (the default) rescales the gathered terms by
world / 8, which keeps those weights at any world size; the negatives per step cannot be kept: a
gathered term sees the micro-batches of `world` processes, not of 8.

`loss_balance(card, world)` states both for a run; fine-tuning and pre-training records carry it
(`config.recipe.loss_balance`) and the reproduction guide prints it for 8 processes and for one.
"""

from __future__ import annotations

from typing import Any

from sclbench.errors import ConfigError

MODES = ("official", "local_slice", "exact")  # card values of train.gather_grad (losses.py)
OFFICIAL_WORLD_SIZE = 8  # the official runs: 8 processes (scl/config.py num_gpus), one node


def check_gather_grad(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"train.gather_grad: {mode!r} is not a gather mode; use one of {', '.join(MODES)}")
    return mode


def term_scale(mode: str, world: int) -> float:
    """The factor on a gathered term's loss on `world` processes: world / 8 under "official", else 1.
    (No torch here: the reproduction guide renders from this module.)"""
    return int(world) / OFFICIAL_WORLD_SIZE if check_gather_grad(mode) == "official" else 1.0


# Per-process micro-batch of the official configs (scl/config.py): per_gpu_batchsize 16 for images,
# video_per_gpu_batchsize 6 for pre-training clips, 1 for video fine-tuning.
OFFICIAL_BATCH = {"pretrain_image": 16, "pretrain_video": 6, "image_retrieval": 16, "video_retrieval": 1}


def effective_weight(weight: float, gathered: bool, mode: str, world: int) -> float:
    """A term's weight in the averaged gradient, relative to a local term of weight 1."""
    if not gathered or mode == "exact":
        return float(weight)
    return float(weight) * term_scale(mode, world) / world  # local slice: 1/world, then rescaled


def _term(
    weight: float,
    gathered: dict[str, bool],
    mode: str,
    world: int,
    batch: int,
    official_batch: int,
    unit: str = "samples",
) -> dict[str, Any]:
    """gathered: mode -> whether the term gathers its negatives from every process in that mode."""
    here, there = gathered["exact" if mode == "exact" else "official"], gathered["official"]
    return {
        "card_weight": float(weight),
        "weight": round(effective_weight(weight, here, mode, world), 6),
        "official_weight": round(effective_weight(weight, there, "official", OFFICIAL_WORLD_SIZE), 6),
        "negatives_from": batch * world if here else batch,
        "official_negatives_from": official_batch * OFFICIAL_WORLD_SIZE if there else official_batch,
        "unit": unit,
    }


def _pretrain_terms(card: Any, mode: str, world: int, video: bool) -> dict[str, dict[str, Any]]:
    on = set(card.get("video_objectives" if video else "objectives") or [])
    batch = int(card.get("train.video_chunk_size" if video else "train.chunk_size", 16))
    official = OFFICIAL_BATCH["pretrain_video" if video else "pretrain_image"]
    both, local_officially = {"official": True, "exact": True}, {"official": False, "exact": True}
    g, loc = float(card.get("completion.global_weight", 1.0)), float(card.get("completion.local_weight", 0.2))
    terms: dict[str, dict[str, Any]] = {}
    for name in ("mlm", "itm"):  # local, and no in-batch negatives (ITM draws its negative from the corpus)
        if name in on:
            terms[name] = {
                **_term(1.0, {"official": False, "exact": False}, mode, world, batch, official),
                "negatives_from": None,
                "official_negatives_from": None,
            }
    if "itc" in on:
        terms["itc"] = _term(float(card.get("con_weight", 0.5)), both, mode, world, batch, official)
    if "mgsc" in on:
        terms["mgsc_image"] = _term(g, both, mode, world, batch, official)
        # HEAD keeps the image-batch text CLS pair local; v1 (video) gathers it
        terms["mgsc_text"] = _term(g, both if video else local_officially, mode, world, batch, official)
    if "mltc" in on and "mgsc" in on:
        tokens = "masked tokens of the samples"
        terms["mltc_text"] = _term(loc, both, mode, world, batch, official, tokens)
        terms["mltc_image"] = _term(loc, local_officially, mode, world, batch, official, tokens)
    return terms


def _retrieval_terms(card: Any, mode: str, world: int) -> dict[str, dict[str, Any]]:
    batch = int(card.get("train.per_device_batch_size", 16))
    official = OFFICIAL_BATCH[card.family]
    negs = int(card.get("train.neg_texts", 15))
    rank = _term(1.0, {"official": False, "exact": False}, mode, world, 1, 1, "captions")
    rank["negatives_from"] = rank["official_negatives_from"] = negs + 1  # per sample: positive + negatives
    return {
        "rank": rank,
        "itc": _term(
            float(card.get("train.con_weight", 0.5)), {"official": True, "exact": True}, mode, world, batch, official
        ),
    }


def loss_balance(card: Any, world: int) -> dict[str, Any]:
    """Per-term weights and negative pools of a run of `card` on `world` processes ({} when the card's
    loss has no gathered term: VQA, NLVR2)."""
    mode = check_gather_grad(str(card.get("train.gather_grad", "official")))
    world = max(int(world), 1)
    if card.family == "pretrain":
        groups = {
            "image": _pretrain_terms(card, mode, world, video=False),
            "video": _pretrain_terms(card, mode, world, video=True),
        }
    elif card.family in ("image_retrieval", "video_retrieval"):
        groups = {"batch": _retrieval_terms(card, mode, world)}
    else:
        return {}
    same = all(t["weight"] == t["official_weight"] for terms in groups.values() for t in terms.values())
    return {
        "gather_grad": mode,
        "world_size": world,
        "official_world_size": OFFICIAL_WORLD_SIZE,
        "gathered_term_scale": term_scale(mode, world),
        "terms": groups,
        "official_weights": same,
        "note": "weights: each term's weight in the averaged gradient against a local term of weight 1; "
        "negatives_from: the samples (or their masked tokens) a term draws negatives from per "
        "step, which only 8 processes reproduce",
    }


def describe(balance: dict[str, Any]) -> str:
    """One line per kind of batch: `term weight (official w), negatives from N (official M)`."""
    parts = []
    for kind, terms in balance.get("terms", {}).items():
        cells = [
            f"{name} {t['weight']:g} (official {t['official_weight']:g})"
            + (
                ""
                if t["negatives_from"] is None
                else f", negatives from {t['negatives_from']} (official {t['official_negatives_from']}) {t['unit']}"
            )
            for name, t in terms.items()
        ]
        parts.append(f"{kind}: " + "; ".join(cells))
    return " | ".join(parts)
