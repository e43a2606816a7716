"""The demo's leaderboard and ablation table: every number with its 95% interval, its p-value
against chance and its blind baseline; the ablation compares two pre-trainings sample by sample."""

from __future__ import annotations

from typing import Any

from sclbench.app.demo_cards import demo_tasks
from sclbench.metrics.chance import chance_level
from sclbench.results import ResultRecord
from sclbench.results.stats import format_p, number_stats


# ---- the leaderboard: every number with its interval and its p-value against chance ----------------
def chance(record: ResultRecord, metric: str) -> float | None:
    """The expected value of `metric` for a scorer that ranks/answers uniformly at random."""
    return chance_level(record.task, metric, record.protocol)


def blind(record: ResultRecord, metric: str) -> tuple[float | None, str, float | None]:
    """(value, what it is, one-sided p of the record beating it) of the number's blind baseline: what
    the answer scores from one modality alone.

    VQA: the question-only baseline the task recorded (the most frequent training answer per question),
    paired with the model question by question. NLVR2: the best any statement-only answer reaches on
    these samples (50 by design: each statement is true of one of its pairs and false of the other).
    Retrieval: a query without the other modality ranks its candidates at chance.
    """
    from sclbench.metrics.blind import paired_p_value, sentence_only_accuracy

    if record.task == "vqa" and metric == "accuracy":
        value = record.protocol.get("question_only_accuracy")
        if value is None:
            return None, "question-only", None
        pairs = [
            (p["scores"]["accuracy"], p["scores"]["question_only"])
            for p in _predictions(record)
            if isinstance(p.get("scores"), dict) and {"accuracy", "question_only"} <= set(p["scores"])
        ]
        p_value = paired_p_value([a for a, _ in pairs], [b for _, b in pairs]) if pairs else None
        return float(value), "question-only", p_value
    if record.task == "nlvr2" and metric == "accuracy":
        scored = [p for p in _predictions(record) if "identifier" in p and "accuracy" in (p.get("scores") or {})]
        # the label is the prediction when it scored 1, its opposite when it scored 0
        labels = [bool(p["prediction"]) == (p["scores"]["accuracy"] == 1) for p in scored]
        if not scored:
            return 50.0, "statement-only (by design)", None
        return sentence_only_accuracy([p["identifier"] for p in scored], labels), "statement-only (best)", None
    return chance(record, metric), "one modality: chance", None


def _predictions(record: ResultRecord) -> list[dict[str, Any]]:
    try:
        return record.read_predictions() or []
    except Exception:  # a record whose predictions file is gone still renders, without the pairing
        return []


def leaderboard(records: list[ResultRecord]) -> list[dict[str, Any]]:
    """One row per (task, shown metric): each variant's value, its 95% interval and p vs chance, and
    the blind baseline (`blind`) with each variant's paired p against it where there is one."""
    rows = []
    by_key = {(r.task, r.checkpoint_name): r for r in records}
    variants = sorted({r.checkpoint_name for r in records})
    for task, spec in demo_tasks().items():
        for metric in spec.shown:
            row: dict[str, Any] = {"task": task, "metric": metric}
            ref = None
            for v in variants:
                rec = by_key.get((task, v))
                row[v] = rec.metrics.get(metric) if rec else None
                if rec is not None and metric in rec.metrics:
                    st = number_stats(rec, metric)
                    row[f"{v} ci"], row[f"{v} p"] = st.ci, st.p_value
                    row[f"{v} p blind"] = blind(rec, metric)[2]
                ref = ref or rec
            if ref is None:
                continue
            row["split"] = ref.split
            row["chance"] = chance(ref, metric)
            row["blind"], row["blind kind"], _ = blind(ref, metric)
            rows.append(row)
    return rows


def ablation_comparison(
    records: list[ResultRecord],
    with_: str = "demo-scl",
    without: str = "demo-no-completion",
    resamples: int = 2000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Per shown metric: (with MGSC/MLTC) - (without), its paired 95% bootstrap interval over the test
    samples (the same samples on both sides, matched by id) and a plain verdict."""
    from sclbench.results.check import paired_bootstrap

    by_key = {(r.task, r.checkpoint_name): r for r in records}
    rows = []
    for task, spec in demo_tasks().items():
        a, b = by_key.get((task, with_)), by_key.get((task, without))
        if a is None or b is None:
            continue
        preds_a, preds_b = a.read_predictions() or [], b.read_predictions() or []
        for metric in spec.shown:
            if metric not in a.metrics or metric not in b.metrics:
                continue
            row: dict[str, Any] = {
                "task": task,
                "metric": metric,
                "with": a.metrics[metric],
                "without": b.metrics[metric],
                "delta": a.metrics[metric] - b.metrics[metric],
            }
            va, vb = _by_id(preds_a, metric), _by_id(preds_b, metric)
            shared = sorted(set(va) & set(vb))
            ci = paired_bootstrap([va[i] for i in shared], [vb[i] for i in shared], resamples, seed) if shared else None
            row["ci"], row["n"] = ci, len(shared)
            diffs = [va[i] - vb[i] for i in shared]
            row["queries_needed"] = queries_needed(diffs, EFFECT_POINTS) if shared else None
            if ci is None:
                row["verdict"] = "cannot tell (no per-sample scores)"
            elif ci[0] > 0 or ci[1] < 0:
                row["verdict"] = f"completion {'helps' if ci[0] > 0 else 'hurts'} (significant)"
            else:
                row["verdict"] = "no significant difference"
            rows.append(row)
    return rows


# The size of effect the ablation should be able to see: a few R@1 points, the order of the gains the
# SCL paper attributes to its completion objectives on retrieval.
EFFECT_POINTS = 2.0


def queries_needed(
    diffs: list[float], effect_points: float = EFFECT_POINTS, z_alpha: float = 1.96, z_power: float = 0.84
) -> int | None:
    """Paired test samples needed to detect a mean difference of `effect_points` (two-sided 5%, 80%
    power), from the spread of the per-sample differences measured here: n = ((z_a + z_b) sd / effect)^2.
    For 0/1 hits the variance is about the fraction of discordant samples. None if nothing differed."""
    import math

    n = len(diffs)
    if n < 2:
        return None
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    if var == 0:
        return None
    return math.ceil(((z_alpha + z_power) * math.sqrt(var) / (effect_points / 100.0)) ** 2)


def _by_id(predictions: list[dict[str, Any]], metric: str) -> dict[str, float]:
    """Per-sample scores of `metric` keyed by sample id (so two runs pair sample by sample)."""
    from sclbench.results.stats import per_sample

    out = {}
    for p in predictions:
        value = per_sample([p], metric)
        if value:
            out[str(p.get("id"))] = value[0]
    return out


def print_ablation(records: list[ResultRecord]) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = ablation_comparison(records)
    if not rows:
        return
    table = Table(title="ablation: pre-training with MGSC/MLTC minus without (same data, steps, seed)")
    need = f"n for {EFFECT_POINTS:g} pts"
    for col in ("task", "metric", "with", "without", "Δ", "95% paired CI", "n", need, "verdict"):
        table.add_column(col, justify="right" if col in ("with", "without", "Δ", "n", need) else "left")
    for r in rows:
        ci = "-" if r["ci"] is None else f"\\[{r['ci'][0]:+.1f}, {r['ci'][1]:+.1f}]"
        needed = "-" if r.get("queries_needed") is None else f"{r['queries_needed']:,}"
        table.add_row(
            r["task"],
            r["metric"],
            f"{r['with']:.1f}",
            f"{r['without']:.1f}",
            f"{r['delta']:+.1f}",
            ci,
            str(r["n"]),
            needed,
            r["verdict"],
        )
    table.caption = (
        f"n for {EFFECT_POINTS:g} pts: paired test samples that would detect a {EFFECT_POINTS:g}-point "
        "difference (5%, 80% power) given the per-sample spread measured here"
    )
    Console().print(table)


def print_leaderboard(records: list[ResultRecord]) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = leaderboard(records)
    variants = sorted({r.checkpoint_name for r in records})
    table = Table(
        title="sclbench demo: tiny SCL model on the synthetic mini-benchmark (test splits)",
        caption=(
            "\\[a, b]: 95% bootstrap interval; p: one-sided vs chance (bold: p < 0.01); blind: the score from "
            "one modality alone (VQA: the most frequent training answer per question, with the model's one-sided "
            "p against it, paired over questions; NLVR2: the best statement-only score, 50 by design; "
            "retrieval: chance)"
        ),
    )
    for col in ("task", "split", "metric", *variants, "chance", "blind"):
        table.add_column(col, justify="left" if col in ("task", "split", "metric") else "right")
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731

    def cell(row: dict[str, Any], v: str) -> str:
        text, ci, p = fmt(row[v]), row.get(f"{v} ci"), row.get(f"{v} p")
        if ci is not None:
            text += f" [{ci[0]:.1f}, {ci[1]:.1f}]"
        if p is not None:
            shown = format_p(p)
            shown = f"p{shown}" if shown.startswith("<") else f"p={shown}"
            text += f" {shown}" if p >= 0.01 else f" [bold]{shown}[/]"
        return text

    def blind_cell(row: dict[str, Any]) -> str:
        if row.get("blind kind") == "one modality: chance":
            return "= chance"
        text = f"{fmt(row.get('blind'))} {row.get('blind kind', '')}"
        for v in variants:
            p = row.get(f"{v} p blind")
            if p is not None:
                shown = format_p(p)
                shown = f"p{shown}" if shown.startswith("<") else f"p={shown}"
                text += f" {shown}" if p >= 0.01 else f" [bold]{shown}[/]"
        return text

    for row in rows:
        table.add_row(
            row["task"],
            row["split"],
            row["metric"],
            *(cell(row, v) for v in variants),
            fmt(row["chance"]),
            blind_cell(row),
        )
    Console().print(table)
