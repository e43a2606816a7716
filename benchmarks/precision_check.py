"""bf16 vs fp32 evaluation of the demo models, compared by `sclbench check` (paired bootstrap per metric).

Each of the six models fine-tuned by `sclbench demo` is evaluated on its test split twice through the
CLI, `sclbench eval ... --precision fp32` and `--precision bf16`, with the card overrides the demo
recorded (so the fp32 record reproduces the demo's: checked first, at tolerance 0). Then

    sclbench check BF16_RESULTS --baseline FP32_RESULTS --json ...

compares the two folders record by record; its JSON and table are kept, with a summary of how many
test samples bf16 scored differently (the per-sample `scores` of the predictions files).

    python -m benchmarks.precision_check --demo-out /tmp/demo0 [--work DIR] [--out benchmarks/results]

The demo folder is only read: its data and models are copied under --work first.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import machine_info
from sclbench.app.demo import demo_tasks
from sclbench.results import ResultRecord, collect
from sclbench.results.check import DEFAULT_TOLERANCE

HERE = Path(__file__).resolve().parent
CHECKPOINT = "demo-scl"
PRECISIONS = ("fp32", "bf16")

# The bf16 rule (benchmarks/README.md, docs/fidelity.md): a bf16 record may differ from its fp32 one by
# the fp32 tolerance plus the 95% band of the net change that independent per-sample flips at rate
# FLIP_RATE give on N samples: 1.96 * 100 * sqrt(FLIP_RATE / N) points. FLIP_RATE is the one-sided 95%
# upper bound of the rate measured here on the demo models (3 of 460 test samples: 1.7%), rounded up.
FLIP_RATE = 0.02
SAMPLE_PREFIXES = ("tr_", "ir_", "t2v_", "v2t_")


def bf16_tolerance(n: int, fp32_tolerance: float = DEFAULT_TOLERANCE, flip_rate: float = FLIP_RATE) -> float:
    """Allowed |bf16 - fp32| in points for a metric averaged over n samples."""
    return fp32_tolerance + 196.0 * math.sqrt(flip_rate / n)


def binomial_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of a rate with k events in n trials (bisection)."""
    if k >= n:
        return 1.0

    def cdf(p: float) -> float:
        return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))

    lo, hi = k / n, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) > 1 - confidence else (lo, mid)
    return hi


def _env() -> dict[str, str]:
    # One thread, as the demo evaluates (float reductions, and so the last digits, depend on it).
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "SCLBENCH_NO_PROGRESS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def sclbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sclbench", *args],
        cwd=HERE.parent,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=1800,
    )


def demo_records(demo_out: Path, tasks: list[str]) -> dict[str, ResultRecord]:
    """The demo's record of each task for the SCL-pretrained model (`demo-scl`)."""
    found = {r.task: r for r in collect(demo_out / "results") if r.checkpoint_name == CHECKPOINT}
    missing = [t for t in tasks if t not in found]
    if missing:
        raise SystemExit(
            f"{demo_out / 'results'} has no {CHECKPOINT} record for {', '.join(missing)}: "
            "run `sclbench demo --quick --out DIR` to the end first"
        )
    return {t: found[t] for t in tasks}


def model_dir(demo_out: Path, task: str, rec: ResultRecord) -> Path:
    """The weights the demo evaluated: the record's path, else the run's best/ (or final/) as the demo picks."""
    recorded = Path(str(rec.checkpoint.get("path") or ""))
    if recorded.is_dir():
        return recorded
    run = demo_out / "runs" / "scl" / task
    return run / "best" if (run / "best" / "config.json").is_file() else run / "final"


def copy_inputs(demo_out: Path, records: dict[str, ResultRecord], work: Path) -> dict[str, Path]:
    """Data, the demo's records and each evaluated model under `work` (the demo folder stays untouched)."""
    if not (work / "data").is_dir():
        shutil.copytree(demo_out / "data", work / "data")
    models = {}
    for task, rec in records.items():
        models[task] = work / "models" / task
        if not models[task].is_dir():
            shutil.copytree(model_dir(demo_out, task, rec), models[task])
        dst = work / "demo-records" / task
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copy2(rec.source, dst / rec.source.name)
        shutil.copy2(rec.source.parent / rec.predictions_file, dst / rec.predictions_file)
    return models


def evaluate(task: str, rec: ResultRecord, model: Path, data: Path, results: Path, precision: str) -> None:
    overrides = list((rec.config or {}).get("overrides") or [])
    proc = sclbench(
        "eval",
        task,
        *overrides,
        "--ckpt",
        str(model),
        "--split",
        "test",
        "--data-root",
        str(data / task),
        "--results",
        str(results),
        "--name",
        CHECKPOINT,
        "--preset",
        "tiny",
        "--precision",
        precision,
    )
    if proc.returncode:
        raise SystemExit(f"sclbench eval {task} --precision {precision} failed:\n{proc.stderr[-3000:]}")


def run_check(results: Path, baseline: Path, json_path: Path, *options: str) -> dict:
    """`sclbench check RESULTS --baseline BASELINE --json ...`: its exit code, table and report."""
    proc = sclbench("check", str(results), "--baseline", str(baseline), "--json", str(json_path), *options)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"sclbench check failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return {
        "command": ["sclbench", "check", str(results), "--baseline", str(baseline), *options],
        "exit_code": proc.returncode,
        "table": proc.stdout,
        "report": json.loads(json_path.read_text()),
    }


def summary_rows(report: dict, records: dict[str, ResultRecord]) -> list[dict]:
    """Metric rows of the check, with the samples behind each metric, what one flipped sample is worth,
    and the bf16 rule's verdict. Metrics without per-sample scores take N from their direction's R@1
    (R@10 of the same queries); sums/means of recalls get the sum/mean of their parts' tolerances;
    ranks (medr, meanr) are not in points and get no verdict."""
    metric_rows = [r for r in report["rows"] if not r["metric"].startswith("(") and r["status"] != "new"]
    n_of = {(r["record"], r["metric"]): r.get("paired") for r in metric_rows}
    rows = []
    for row in metric_rows:
        task, metric = row["record"].split("/")[0], row["metric"]
        n = row.get("paired") or next(
            (n_of.get((row["record"], p + "r1")) for p in SAMPLE_PREFIXES if metric.startswith(p)), None
        )
        if n is None and metric.startswith("accuracy"):  # VQA per-type accuracies: the whole set (stricter)
            n = n_of.get((row["record"], "accuracy"))
        tol = bf16_tolerance(n) if n else None
        if metric in ("rsum", "r_mean"):
            parts = [
                bf16_tolerance(n_of[(row["record"], p + "r1")])
                for p in ("tr_", "ir_")
                for _ in range(3)
                if n_of.get((row["record"], p + "r1"))
            ]
            tol = (sum(parts) if metric == "rsum" else sum(parts) / len(parts)) if len(parts) == 6 else None
        if metric.endswith(("medr", "meanr")):  # ranks, not points
            n = tol = None
        rows.append(
            {
                "task": task,
                "split": records[task].split,
                "metric": metric,
                "fp32": row["baseline"],
                "bf16": row["now"],
                "delta": row["delta"],
                "ci": row["ci"],
                "n": n,
                "paired": row.get("paired"),
                "changed_samples": row.get("changed_samples"),
                "one_sample_points": round(100 / n, 2) if n else None,
                "bf16_tolerance": None if tol is None else round(tol, 2),
                "within_bf16_tolerance": None if tol is None else abs(row["delta"]) <= tol + 1e-9,
                "status": row["status"],
            }
        )
    return rows


def flip_rate(changes: dict[str, dict]) -> dict[str, Any]:
    """Test samples whose per-sample outcome (R@1/R@5 hit, accuracy) bf16 changed, over all tasks."""
    k = sum(c["outcome_changed"] for c in changes.values())
    n = sum(c["samples"] for c in changes.values())
    return {
        "changed": k,
        "samples": n,
        "rate": round(k / n, 5),
        "upper_95": round(binomial_upper(k, n), 5),
        "rule_flip_rate": FLIP_RATE,
    }


def prediction_changes(base: ResultRecord, now: ResultRecord) -> dict[str, Any]:
    """Per test sample, what bf16 changed in the predictions themselves (finer than the metrics):
    how many ranks / answers / labels differ, and the largest change of each float field."""
    a = {json.dumps(p["id"]): p for p in base.read_predictions() or []}
    b = {json.dumps(p["id"]): p for p in now.read_predictions() or []}
    shared = sorted(a.keys() & b.keys())
    changed: dict[str, int] = {}
    max_diff: dict[str, float] = {}
    outcome = sum(1 for sid in shared if a[sid].get("scores") != b[sid].get("scores"))
    for sid in shared:
        for name, value in a[sid].items():
            if name in ("id", "scores", "question_id", "identifier") or name not in b[sid]:
                continue
            other = b[sid][name]
            if isinstance(value, float) and isinstance(other, float):
                max_diff[name] = max(max_diff.get(name, 0.0), abs(value - other))
            else:
                changed[name] = changed.get(name, 0) + int(value != other)
    return {
        "samples": len(shared),
        "outcome_changed": outcome,
        "changed": changed,
        "max_abs_diff": {k: float(f"{v:.3g}") for k, v in max_diff.items()},
    }


def protocol_notes(report: dict) -> list[str]:
    return sorted({f"{r['status']}: {r['note']}" for r in report["rows"] if r["metric"] == "(protocol)"})


def markdown(rep: dict) -> str:
    b, repro = rep["bf16_vs_fp32"], rep["fp32_reproduces_demo"]
    out = [
        f"# bf16 vs fp32 on the demo models ({rep['machine']['date']})",
        "",
        f"Machine: {rep['machine']['cpu']}, torch {rep['machine']['torch']}, 1 thread, load average "
        f"{rep['machine']['load_avg_1m']} at start. Demo output: `{rep['demo_out']}`.",
        "",
        f"fp32 reproduces the demo's records (`sclbench check` at `--tolerance 0`): "
        f"{'yes' if repro['exit_code'] == 0 else 'NO'} ({repro['report'] and _summary(repro['report'])}).",
        "",
        "| task | split | metric | fp32 | bf16 | Δ (points) | 95% paired CI | samples changed / paired | "
        "one sample = | bf16 tolerance | within |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for r in rep["rows"]:
        ci = "–" if r["ci"] is None else f"[{r['ci'][0]:+.2f}, {r['ci'][1]:+.2f}]"
        changed = "–" if r["paired"] is None else f"{r['changed_samples']} / {r['paired']}"
        one = "–" if r["one_sample_points"] is None else f"{r['one_sample_points']:g}"
        tol = "–" if r["bf16_tolerance"] is None else f"{r['bf16_tolerance']:.2f}"
        within = {None: "–", True: "yes", False: "**no**"}[r["within_bf16_tolerance"]]
        out.append(
            f"| {r['task']} | {r['split']} | {r['metric']} | {r['fp32']:.2f} | {r['bf16']:.2f} | "
            f"{r['delta']:+.2f} | {ci} | {changed} | {one} | {tol} | {within} |"
        )
    f = rep["flip_rate"]
    out += [
        "",
        f"Samples whose outcome bf16 changed: {f['changed']} of {f['samples']} ({100 * f['rate']:.2f}%, "
        f"one-sided 95% upper bound {100 * f['upper_95']:.2f}%); the rule uses {100 * f['rule_flip_rate']:g}%: "
        f"bf16 tolerance = {DEFAULT_TOLERANCE} + 1.96 x 100 x sqrt({f['rule_flip_rate']:g} / N) points.",
    ]
    out += [
        "",
        f"`{' '.join(b['command'])}` exit {b['exit_code']}: {_summary(b['report'])}; protocol: "
        + "; ".join(sorted(set(rep["protocol_notes"]))),
        "",
        "Predictions bf16 changed, per task (ranks / answers / labels that differ; largest change of "
        "each float field), and each evaluation's wall time in its record (s, 1 thread):",
        "",
        "| task | test samples | outcome changed | changed | largest float change | fp32 s | bf16 s |",
        "|---|---:|---:|---|---|---:|---:|",
    ]
    walls = {(w["task"], w["precision"]): w["wall_time_s"] for w in rep["evaluations"]}
    for t in rep["tasks"]:
        c = rep["prediction_changes"][t]
        changed = ", ".join(f"{k} {v}" for k, v in c["changed"].items()) or "–"
        floats = ", ".join(f"{k} {v:g}" for k, v in c["max_abs_diff"].items()) or "–"
        out.append(
            f"| {t} | {c['samples']} | {c['outcome_changed']} | {changed} | {floats} "
            f"| {walls[(t, 'fp32')]} | {walls[(t, 'bf16')]} |"
        )
    out += ["", "`sclbench check` output:", "", "```", b["table"].rstrip(), "```", ""]
    return "\n".join(out)


def _summary(report: dict) -> str:
    compared = [r for r in report["rows"] if r["status"] != "new"]
    failed = [r for r in compared if r["status"] in ("drift", "missing", "changed")]
    return f"{len(compared) - len(failed)} of {len(compared)} checks ok" + (
        f", failed: {', '.join(sorted({r['record'] + ' ' + r['metric'] for r in failed}))}" if failed else ""
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-out", type=Path, required=True, help="the --out folder of `sclbench demo`")
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="copies, result folders and check reports (default: DEMO_OUT-precision beside it)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where precision_check.{json,md} go")
    demo = list(demo_tasks())  # the cards with a demo: section, in leaderboard order
    parser.add_argument("--tasks", nargs="*", choices=demo, default=demo)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the result folders of a previous run under --work (re-check and re-report only)",
    )
    args = parser.parse_args(argv)
    demo_out = args.demo_out.resolve()
    work = (args.work or demo_out.with_name(demo_out.name + "-precision")).resolve()
    records = demo_records(demo_out, args.tasks)
    rep: dict[str, Any] = {
        "benchmark": "bf16 vs fp32 evaluation of the demo models",
        "machine": machine_info(),
        "demo_out": str(demo_out),
        "work": str(work),
        "tasks": args.tasks,
        "evaluations": [],
    }
    models = copy_inputs(demo_out, records, work)
    folders = {p: work / f"results-{p}" for p in PRECISIONS}
    for task in args.tasks:
        for precision in PRECISIONS:
            done = {r.task for r in collect(folders[precision])} if folders[precision].is_dir() else set()
            if args.reuse and task in done:
                continue
            if task in done:  # a rerun measures afresh (no .history of old runs)
                shutil.rmtree(folders[precision] / task)
            print(f"precision_check: {task} {precision}", file=sys.stderr, flush=True)
            evaluate(task, records[task], models[task], work / "data", folders[precision], precision)
    rep["fp32_reproduces_demo"] = run_check(
        folders["fp32"], work / "demo-records", work / "check-fp32-vs-demo.json", "--tolerance", "0"
    )
    rep["bf16_vs_fp32"] = run_check(
        folders["bf16"], folders["fp32"], work / "check-bf16-vs-fp32.json", "--bootstrap", "2000"
    )
    rep["protocol_notes"] = protocol_notes(rep["bf16_vs_fp32"]["report"])
    rep["rows"] = summary_rows(rep["bf16_vs_fp32"]["report"], records)
    by_task = {p: {r.task: r for r in collect(folders[p])} for p in PRECISIONS}
    rep["evaluations"] = [
        {"task": t, "precision": p, "wall_time_s": by_task[p][t].wall_time_s} for t in args.tasks for p in PRECISIONS
    ]
    rep["prediction_changes"] = {t: prediction_changes(by_task["fp32"][t], by_task["bf16"][t]) for t in args.tasks}
    rep["flip_rate"] = flip_rate(rep["prediction_changes"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "precision_check.json").write_text(json.dumps(rep, indent=2) + "\n")
    (args.out / "precision_check.md").write_text(markdown(rep))
    print(markdown(rep))
    return rep


if __name__ == "__main__":
    main()
