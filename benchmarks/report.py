"""Markdown for a suite report, and the generated block of benchmarks/README.md."""

from __future__ import annotations

from pathlib import Path

BEGIN = "<!-- benchmarks/run.py: generated block, do not edit by hand -->"
END = "<!-- end of generated block -->"


def _fmt(x, digits: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def _retrieval(r: dict) -> list[str]:
    m = r["main"]
    out = [
        f"### Retrieval evaluation ({r['model']}, {m['n_images']:,} images x {m['n_texts']:,} texts, "
        f"k = {m['k']}, pair batch {m['pair_batch_size']})",
        "",
        "| mode | cross-encoder passes | encode s | scoring s | wall s | pairs/s | R@1 t/i |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in m["rows"]:
        rec = row.get("recall")
        r1 = f"{rec['tr_r1']:.1f} / {rec['ir_r1']:.1f}" if rec else "–"
        mode = row["mode"] + (" ¹" if row.get("extrapolated") else "")
        out.append(
            f"| {mode} | {_fmt(row['cross_encoder_passes'])} | {_fmt(row['encode_s'])} | "
            f"{_fmt(row['scoring_s'])} | {_fmt(row['wall_s'])} | {_fmt(row['pairs_per_s'], 0)} | {r1} |"
        )
    out += [
        "",
        f"Exhaustive / two-stage: **{m['passes_ratio']}x** passes, **{m['wall_ratio']}x** wall time "
        f"(**{m['wall_ratio_cached']}x** with cached features); cached run's scores identical to the "
        f"fresh run's: {m['cached_scores_identical']}.",
    ]
    first = m["rows"][0]
    if first.get("extrapolated"):
        out.append(
            f"¹ Exhaustive scored its first {first['measured_pairs']:,} pairs "
            f"({first['measured_scoring_s']} s) and was extrapolated linearly in pairs (each chunk of "
            "pairs costs the same); its encoding time is measured."
        )
    a = r["agreement"]
    out += [
        "",
        f"Agreement ({a['n_images']} x {a['n_texts']}): k = {a['covering_k']['k']} (covers every "
        f"candidate) gives bit-identical score matrices: {a['covering_k']['scores_identical']}, identical "
        f"R@K: {a['covering_k']['recall_identical']}; k = {a['small_k']['k']}: R@K identical "
        f"{a['small_k']['recall_identical']} (max difference {a['small_k']['max_recall_diff']} points).",
    ]
    s = r["scaling"]
    out += [
        "",
        f"#### Scaling of evaluation cost (k = {s['k']})",
        "",
        "| images x texts | exhaustive passes | two-stage passes | exhaustive s | two-stage s |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in s["rows"]:
        e, t = row["exhaustive"], row["two-stage"]
        out.append(
            f"| {row['n_images']:,} x {row['n_texts']:,} | {_fmt(e['passes'])} | {_fmt(t['passes'])} | "
            f"{_fmt(e.get('scoring_s'))} | {_fmt(t.get('scoring_s'))} |"
        )
    g = s["growth_exponent"]
    out += [
        "",
        f"Growth exponent (log-log slope vs number of images; 2 = quadratic, 1 = linear): passes "
        f"exhaustive {g['exhaustive_passes']}, two-stage {g['two_stage_passes']}; measured time exhaustive "
        f"{g['exhaustive_time']}, two-stage {g['two_stage_time']}. Rows without times are pass counts "
        "from candidate generation only.",
    ]
    if "base_fusion" in r:
        b = r["base_fusion"]
        hours = ", ".join(f"{k} {v} h" for k, v in b["projected_hours"].items())
        out += [
            "",
            f"Base-size fusion (co-attention + rank head, {b['image_size']} px = {b['image_tokens']} image "
            f"tokens, CPU, 1 thread): **{b['pairs_per_s']} pairs/s** over {b['pairs']} pairs; at the pass "
            f"counts above an F30K-size evaluation would take: {hours}.",
        ]
    return out


def _train(t: dict) -> list[str]:
    out = [
        "### Training step (VQA fine-tuning step: forward, loss, backward, AdamW; 1 thread)",
        "",
        "| config | variant | batch | px | samples/s | vs SDPA | peak RSS MB | step peak over start MB | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    speed = t["throughput_vs_sdpa"]
    for r in t["rows"]:
        px = r.get("image_size") or 32
        if "skipped" in r:
            out.append(f"| {r['preset']} | {r['variant']} | {r['batch']} | {px} | – | – | – | – | {r['skipped']} |")
            continue
        note = []
        if "max_abs_diff_vs_sdpa" in r:
            note.append(f"max abs diff to SDPA output {r['max_abs_diff_vs_sdpa']:.1e}")
        if "compile_s" in r:
            note.append(f"compile {r['compile_s']} s")
        out.append(
            f"| {r['preset']} | {r['variant']} | {r['batch']} | {px} | {_fmt(r['samples_per_s'])} | "
            f"{_fmt(speed.get(r['preset'], {}).get(r['variant']))} | {_fmt(r['peak_rss_mb'])} | "
            f"{_fmt(r['peak_over_start_mb'])} | {'; '.join(note)} |"
        )
    out += [
        "",
        "`eager` swaps every SDPA call (ViT, co-attention, RoBERTa) for softmax(QK^T/sqrt(d) + mask)V "
        "written out, as `nn.MultiheadAttention` computes it; same weights (checked: same output).",
    ]
    return out


def _dataloader(d: dict) -> list[str]:
    if "skipped" in d:
        return ["### Dataloader", "", d["skipped"]]
    out = [
        "### Dataloader (`benchmarks/dataloader.py`, training transforms)",
        "",
        "| kind | px | workers | per second |",
        "|---|---:|---:|---:|",
    ]
    out += [f"| {r['kind']} | {r['size']} | {r['workers']} | {r['per_second']} |" for r in d["rows"]]
    return out


def render(rep: dict, json_name: str) -> str:
    m = rep["machine"]
    lines = [
        f"## Latest figures ({rep['mode']} run, {m['date']})",
        "",
        f"Machine: {m['cpu']}, {m['cpu_count']} CPUs (load average {m['load_avg_1m']} at start: shared), "
        f"GPU: {m['cuda'] or 'none'}; Python {m['python']}, torch {m['torch']}, transformers "
        f"{m['transformers']}; commit {m.get('git_commit')}; torch threads {rep['torch_threads']}. "
        f"Full numbers: `results/{json_name}`. Total run time {rep['total_wall_s']} s.",
        "",
    ]
    if "targets" in rep:
        lines += ["### Issue 7 targets", "", "| target | measured here | met |", "|---|---|---|"]
        for t in rep["targets"]:
            met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
            lines.append(f"| {t['target']} | {t['measured']} | {met} |")
        lines.append("")
    if "retrieval" in rep:
        lines += _retrieval(rep["retrieval"]) + [""]
    if "train" in rep:
        lines += _train(rep["train"]) + [""]
    if "dataloader" in rep:
        lines += _dataloader(rep["dataloader"])
        fastest = {
            r["preset"]: r
            for r in rep.get("train", {}).get("rows", [])
            if "samples_per_s" in r
            and r["samples_per_s"]
            >= max(x.get("samples_per_s", 0) for x in rep["train"]["rows"] if x["preset"] == r["preset"])
        }
        rows = rep["dataloader"].get("rows", [])
        loader = max((r["per_second"] for r in rows if r["kind"] == "images"), default=None)
        if fastest and loader:
            use = "; ".join(
                f"{p} {r['samples_per_s']} samples/s ({r['variant']}, {r.get('image_size') or 32} px)"
                for p, r in fastest.items()
            )
            lines += [
                "",
                f"Model consumption on this CPU (fastest training variant): {use}; the loader's best "
                f"is {loader} images/s at 288 px.",
            ]
        lines.append("")
    return "\n".join(lines)


def update_readme(path: Path, markdown: str) -> None:
    """Replace the generated block (or append it): the hand-written parts of the README stay."""
    text = path.read_text() if path.is_file() else "# Benchmarks\n"
    block = f"{BEGIN}\n{markdown.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
