"""The leaderboard as one self-contained HTML page (`sclbench table --format html`).

Inline CSS and inline SVG only: no script, no font, no image from the network, so the page opens
the same offline, in a CI artefact or attached to an e-mail. Sections: the leaderboard as the papers
print it (one row per checkpoint, one column per task's main metric, the published numbers as rows of
their own, each number's 95% interval beneath it and its p-value mark against chance, each reproduced
number linking to its page of the `sclbench browse` site when `browse` is given), every number of
every record (reproduced, interval, chance, p, the paper's number and the delta), the recall@K curves
of the retrieval records, the drift status against a baseline (when given), and the footnotes
(protocols, paper sources).
"""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sclbench.results.leaderboard import BoardRow, Cell, Leaderboard, format_ci, format_value, interval_note
from sclbench.results.record import ResultRecord
from sclbench.results.stats import format_p, per_sample
from sclbench.results.table import (
    SYNTHETIC_NOTE,
    TableRow,
    paper_sources,
    protocol_cell,
    protocol_notes,
    run_label,
)

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:96em;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right;vertical-align:top}
th{background:#f4f4f4}td.l,th.l{text-align:left}
.ci{color:#666;font-size:.85em}.pos{color:#1a7f37}.neg{color:#c62828}
.syn{background:#fff4d6;color:#7a5200;border-radius:3px;padding:0 .3em;font-size:.8em}
.ok{color:#1a7f37}.bad{color:#c62828;font-weight:bold}.new{color:#0b62a3}
.sig{color:#1a7f37}.nsig{color:#c62828}
figure{display:inline-block;margin:0 1em 1em 0}figcaption{font-size:.85em;text-align:center}
.note{color:#555;font-size:.85em}
.scroll{overflow-x:auto}table.board td,table.board thead th{white-space:nowrap}
table.board td.proto{white-space:normal;min-width:10em}table.board th[scope=row]{text-align:left;font-weight:normal}
table.board tr.published{background:#f7f7fb;font-style:italic}table.board tbody.synthetic{border-top:3px double #bbb}
table.board a{color:inherit;text-decoration:underline dotted}.mark{color:#555;font-size:.75em}
table.board .ci,table.board .d{display:block;line-height:1.1}.d{font-size:.8em}
"""
# p-value marks against chance, as papers print them (legend on the page).
P_MARKS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
_DIRECTIONS = ("tr", "ir", "t2v", "v2t")


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def p_mark(p: float | None) -> str:
    return next((mark for limit, mark in P_MARKS if p is not None and p < limit), "")


def browse_link(browse: str, record: ResultRecord) -> str:
    """The record's page in a `sclbench browse` site: `<browse>/<task>/<task>_<split>_<ckpt>.html`
    (the record's relative path with .json -> .html); `browse` is a URL or a path relative to the page."""
    page = record.relative_path.with_suffix(".html").as_posix()
    return browse.rstrip("/") + "/" + quote(page)


def _board_cell(cell: Cell | None, browse: str | None) -> str:
    if cell is None:
        return "<td></td>"
    number = escape(format_value(cell.value))
    record = cell.source.record if cell.source is not None else None
    if browse and record is not None:
        number = f"<a href='{escape(browse_link(browse, record), quote=True)}'>{number}</a>"
    parts = [number]
    mark = p_mark(cell.p_value)
    if cell.p_value is not None:
        title = f"p = {format_p(cell.p_value)} against chance (one-sided)"
        parts.append(f"<sup class='mark' title='{escape(title, quote=True)}'>{mark or 'ns'}</sup>")
    if cell.ci is not None:
        parts.append(
            f"<span class='ci' title='{escape(interval_note(cell.stats), quote=True)}'>{format_ci(cell.ci)}</span>"
        )
    if cell.delta is not None:
        cls = "pos" if cell.delta >= 0 else "neg"
        parts.append(f"<span class='d {cls}' title='reproduced - published'>Δ {cell.delta:+.2f}</span>")
    if cell.paper is not None:
        source = cell.paper.source + ("" if cell.paper.verified else " (unverified)")
        return f"<td title='{escape(source, quote=True)}'>{''.join(parts)}</td>"
    return f"<td>{''.join(parts)}</td>"


def _board_row(row: BoardRow, board: Leaderboard, browse: str | None) -> str:
    label = escape(row.label) + (" <span class='syn'>synthetic</span>" if row.synthetic else "")
    cells = "".join(_board_cell(row.cells.get(c), browse) for c in board.columns)
    return (
        f"<tr class='{row.kind}'><th scope='row'>{label}</th><td class='l'>{escape(row.model)}</td>{cells}"
        f"<td class='l proto'>{escape(row.protocol)}</td></tr>"
    )


def board_table(board: Leaderboard, browse: str | None = None) -> str:
    """The paper-style table: two header rows (task and split, then metric), published rows in italics
    above their model's reproduced rows, rows made on synthetic data in a tbody of their own."""
    groups = board.groups()
    out = ["<table id='paper-board' class='board'><thead><tr>"]
    out.append("<th class='l' rowspan='2'>checkpoint</th><th class='l' rowspan='2'>model</th>")
    out += [f"<th colspan='{len(cols)}'>{escape(board.group_title(g))}</th>" for g, cols in groups]
    out.append("<th class='l' rowspan='2'>protocol</th></tr><tr>")
    out += [f"<th>{escape(c.metric)}</th>" for _, cols in groups for c in cols]
    out.append("</tr></thead>")
    real = [r for r in board.rows if not r.synthetic]
    synthetic = [r for r in board.rows if r.synthetic]
    for part, cls in ((real, "real"), (synthetic, "synthetic")):
        if part:
            out.append(f"<tbody class='{cls}'>" + "".join(_board_row(r, board, browse) for r in part) + "</tbody>")
    out.append("</table>")
    return "".join(out)


def _board_section(board: Leaderboard, browse: str | None) -> str:
    legend = (
        "Each number: the reproduced value; beneath it its 95% bootstrap interval and, where a published "
        "number of the same model exists, Δ = reproduced - published. Marks: p against chance (one-sided) "
        "&lt; 0.05 *, &lt; 0.01 **, &lt; 0.001 ***, ns otherwise. Rows in italics: published numbers."
    )
    if browse:
        legend += " A reproduced number links to its samples in the browse site."
    if not board.columns:
        return "<h2 id='board'>Leaderboard</h2><p class='note'>No record has a number to show.</p>"
    table = board_table(board, browse)  # scrolls sideways on its own when the tasks outgrow the page
    return f"<h2 id='board'>Leaderboard</h2><div class='scroll'>{table}</div><p class='note'>{legend}</p>"


def _numbers_table(rows: list[TableRow], notes: dict[str, int]) -> str:
    head = [
        "task",
        "split",
        "checkpoint",
        "scorer",
        "protocol",
        "metric",
        "reproduced",
        "95% interval",
        "chance",
        "p vs chance",
        "paper",
        "Δ",
    ]
    out = ["<table id='numbers'><thead><tr>"]
    out += [f"<th class='{'l' if i < 6 else ''}'>{escape(h)}</th>" for i, h in enumerate(head)]
    out.append("</tr></thead><tbody>")
    for r in rows:
        for metric, value in r.metrics.items():
            st = r.stats.get(metric)
            ci = f"<span class='ci'>[{st.ci[0]:.1f}, {st.ci[1]:.1f}]</span>" if st and st.ci else ""
            p = st.p_value if st else None
            p_cell = "" if p is None else f"<span class='{'sig' if p < 0.01 else 'nsig'}'>{escape(format_p(p))}</span>"
            paper = r.paper.get(metric)
            delta = r.delta(metric)
            delta_cell = (
                "" if delta is None else f"<span class='{'pos' if delta >= 0 else 'neg'}'>{_num(delta, True)}</span>"
            )
            label = escape(r.checkpoint) + (" <span class='syn'>synthetic</span>" if r.synthetic else "")
            cells = [
                escape(r.task),
                escape(r.split),
                label,
                escape(r.scorer),
                escape(protocol_cell(r, notes)),
                escape(metric),
            ]
            out.append("<tr>" + "".join(f"<td class='l'>{c}</td>" for c in cells))
            out.append(
                f"<td>{_num(value)}</td><td>{ci}</td><td>{_num(st.chance if st else None)}</td><td>{p_cell}</td>"
                f"<td>{'' if paper is None else _num(paper.value)}</td><td>{delta_cell}</td></tr>"
            )
    out.append("</tbody></table>")
    return "".join(out)


def recall_curves(row: TableRow) -> dict[str, list[tuple[int, float]]]:
    """Recall@K points per direction: every K from the per-sample ranks when saved, else the record's K."""
    rec = row.record
    metrics = rec.metrics if rec is not None else row.metrics
    try:
        predictions = rec.read_predictions() if rec is not None else None
    except Exception:  # missing predictions: fall back to the record's own K values
        predictions = None
    curves: dict[str, list[tuple[int, float]]] = {}
    for prefix in _DIRECTIONS:
        ks = sorted(
            int(m.split("_r")[1]) for m in metrics if m.startswith(prefix + "_r") and m.split("_r")[1].isdigit()
        )
        if not ks:
            continue
        hits = per_sample(predictions, f"{prefix}_r1") if predictions else None
        ranked = [p["rank"] for p in predictions or [] if isinstance(p.get("rank"), int)]
        if hits and ranked and max(ks) > 1:
            full = [
                (k, 100.0 * sum(per_sample(predictions, f"{prefix}_r{k}") or [0]) / len(hits))
                for k in range(1, max(ks) + 1)
            ]
            # Use the dense curve only when it passes through the record's own numbers.
            if all(abs(dict(full)[k] - float(metrics[f"{prefix}_r{k}"])) < 1e-6 for k in ks):
                curves[prefix] = full
                continue
        curves[prefix] = [(k, float(metrics[f"{prefix}_r{k}"])) for k in ks]
    return curves


def _svg(curves: dict[str, list[tuple[int, float]]], title: str) -> str:
    """A small line chart, recall (0-100 %) against K, as inline SVG."""
    w, h, left, bottom, top, right = 320, 220, 40, 30, 20, 10
    kmax = max(k for pts in curves.values() for k, _ in pts)
    x = lambda k: left + (k - 1) / max(kmax - 1, 1) * (w - left - right)  # noqa: E731
    y = lambda v: top + (100.0 - v) / 100.0 * (h - top - bottom)  # noqa: E731
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' role='img' "
        f"aria-label='{escape(title)}' font-size='10'>",
        f"<rect x='{left}' y='{top}' width='{w - left - right}' height='{h - top - bottom}' "
        "fill='none' stroke='#ccc'/>",
    ]
    for v in (0, 25, 50, 75, 100):
        parts.append(f"<text x='{left - 4}' y='{y(v) + 3:.1f}' text-anchor='end'>{v}</text>")
    for k in sorted({1, kmax, *(k for pts in curves.values() for k, _ in pts if len(pts) <= 4)}):
        parts.append(f"<text x='{x(k):.1f}' y='{h - bottom + 12}' text-anchor='middle'>{k}</text>")
    parts.append(f"<text x='{(w + left) / 2}' y='{h - 4}' text-anchor='middle'>K</text>")
    for i, (name, pts) in enumerate(curves.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        path = " ".join(f"{x(k):.1f},{y(v):.1f}" for k, v in pts)
        parts.append(f"<polyline points='{path}' fill='none' stroke='{colour}' stroke-width='1.5'/>")
        parts += [f"<circle cx='{x(k):.1f}' cy='{y(v):.1f}' r='1.8' fill='{colour}'/>" for k, v in pts]
        parts.append(f"<text x='{left + 8}' y='{top + 12 + 12 * i}' fill='{colour}'>{escape(name)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _curves_section(rows: list[TableRow]) -> str:
    figures = []
    for r in rows:
        curves = recall_curves(r)
        if curves:
            title = f"{r.task} / {r.split} / {run_label(r)}"
            figures.append(f"<figure>{_svg(curves, title)}<figcaption>{escape(title)}</figcaption></figure>")
    if not figures:
        return ""
    return "<h2 id='curves'>Recall@K</h2>" + "".join(figures)


def _drift_section(results_dir: Path | None, baseline: Path | None) -> str:
    if baseline is None or results_dir is None:
        return (
            "<h2 id='drift'>Drift</h2><p class='note'>No baseline given "
            "(<code>sclbench table --format html --baseline FOLDER</code>).</p>"
        )
    from sclbench.results.check import DEFAULT_TOLERANCE, check

    report = check(results_dir, baseline, DEFAULT_TOLERANCE)
    cls = {"ok": "ok", "new": "new"}
    out = [
        f"<h2 id='drift'>Drift against {escape(str(baseline))}</h2>",
        f"<p class='{'ok' if report.passed else 'bad'}'>{escape(report.summary())}</p>",
        "<table id='drift-table'><thead><tr>",
    ]
    out += [f"<th class='l'>{h}</th>" for h in ("record", "metric")]
    out += [f"<th>{h}</th>" for h in ("baseline", "now", "Δ", "tolerance", "status", "95% CI of Δ")]
    out.append("</tr></thead><tbody>")
    for r in report.rows:
        ci = "" if r.ci is None else f"[{r.ci[0]:+.2f}, {r.ci[1]:+.2f}]"
        status = escape(r.status + (f" ({r.note})" if r.note else ""))
        out.append(
            f"<tr><td class='l'>{escape(r.record)}</td><td class='l'>{escape(r.metric)}</td>"
            f"<td>{_num(r.baseline)}</td><td>{_num(r.now)}</td><td>{_num(r.delta, True)}</td>"
            f"<td>{_num(r.tolerance)}</td><td class='{cls.get(r.status, 'bad')}'>{status}</td><td>{ci}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def render_html(
    rows: list[TableRow],
    results_dir: str | Path | None = None,
    baseline: str | Path | None = None,
    title: str = "sclbench leaderboard",
    board: Leaderboard | None = None,
    layout: str = "both",
    browse: str | None = None,
    **_: Any,
) -> str:
    """The whole page as one string.

    board: the paper-style leaderboard (leaderboard.build_leaderboard), shown first; layout `paper`
    shows it alone, `runs` leaves it out. browse: where the `sclbench browse` site is (URL or path
    relative to this page): each reproduced number links to its record's page there.
    """
    notes = protocol_notes(rows)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        f"<h1>{escape(title)}</h1>",
        f"<p class='note'>Generated by <code>sclbench table --format html</code> on {stamp} from "
        f"{len(rows)} result records; do not edit by hand. Intervals: 95% percentile bootstrap over the "
        "split's samples, resampling whole images, videos or sentences where the record names the unit its "
        "samples share (hover an interval); p: one-sided test against a uniformly random scorer (exact "
        "binomial for 0/1 scores, bootstrap for graded ones); green when p &lt; 0.01.</p>",
    ]
    if any(r.synthetic for r in rows):
        body.append(f"<p class='note'><span class='syn'>synthetic</span> {escape(SYNTHETIC_NOTE)}.</p>")
    if board is not None:
        body.append(_board_section(board, browse))
    if layout != "paper":
        body += [
            "<h2 id='every-number'>Every number</h2>",
            _numbers_table(rows, notes),
            _curves_section(rows),
            _drift_section(Path(results_dir) if results_dir else None, Path(baseline) if baseline else None),
        ]
    if notes:
        body.append(
            "<h2 id='protocols'>Protocols</h2><ol>"
            + "".join(f"<li value='{i}'><code>{escape(text)}</code></li>" for text, i in notes.items())
            + "</ol>"
        )
    sources = paper_sources(rows) if layout != "paper" else []
    sources += board.published_sources() if board is not None else []
    if sources:
        body.append(
            "<h2 id='sources'>Paper numbers</h2><ul>"
            + "".join(f"<li>{escape(s)}</li>" for s in dict.fromkeys(sources))
            + "</ul>"
        )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
