"""The browse site: an index of records and one page of sample cards per record, opened from disk.

Layout (the contract the html leaderboard links into): ``SITE/index.html``,
``SITE/<task>/<task>_<split>_<checkpoint>.html`` (the record's own relative path, .json -> .html),
``SITE/thumbs/`` and ``SITE/assets/`` (one stylesheet, one script, shipped in the package). A page
embeds its cards as a JSON block that the script reads; nothing is fetched and nothing leaves the disk,
so the site works from file:// with no server and no network, and a Content-Security-Policy says so to
the browser as well.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sclbench.common.io import atomic_write
from sclbench.errors import DataError
from sclbench.results.browse.cards import CardMaker, family_of, sort_key
from sclbench.results.browse.flips import Flips, count_flips, pair_records, sample_id
from sclbench.results.browse.media import SplitView
from sclbench.results.browse.thumbs import Thumbnailer
from sclbench.results.record import ResultRecord

ASSETS = ("browse.css", "browse.js")
CSP = "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'"
MAX_INDEX_METRICS = 8
# (record A, record B, family, A's predictions, B's predictions) -> the flipped samples
FlipCounter = Callable[[ResultRecord, ResultRecord, str, list, list], Flips]


@dataclass
class PageSummary:
    record: ResultRecord
    page: Path  # relative to the site
    samples: int
    shown: int
    other: ResultRecord | None = None
    flips: Flips | None = None


@dataclass
class SiteSummary:
    out: Path
    pages: list[PageSummary] = field(default_factory=list)
    thumbnails_made: int = 0
    thumbnails_reused: int = 0


def page_path(record: ResultRecord) -> Path:
    """Where a record's page lives in the site (the shared layout contract)."""
    return record.relative_path.with_suffix(".html")


def build_site(
    records: list[ResultRecord],
    out: str | Path,
    view_for: Callable[[ResultRecord], SplitView] | None = None,
    compare: list[ResultRecord] | None = None,
    max_samples: int = 2000,
    frames: int = 4,
    labels: tuple[str, str] = ("A", "B"),
    flips_for: FlipCounter | None = None,
) -> SiteSummary:
    """Write the site for `records` (and their partners in `compare`) under `out`; returns what it wrote.

    view_for: the split's texts, labels and media for a record (None: cards from the predictions alone).
    max_samples: cards per page (failures and flips first); 0 = every sample.
    flips_for: the flipped samples of a pair of records (default: `count_flips` on the card scores).
    """
    out = Path(out)
    thumbs = Thumbnailer(out, frames=frames) if view_for is not None else None
    partners = pair_records(records, compare) if compare is not None else [None] * len(records)
    summary = SiteSummary(out)
    _check_unique_pages(records)
    for record, other in zip(records, partners):
        view = view_for(record) if view_for is not None else SplitView()
        page = _write_page(out, record, other, view, thumbs, max_samples, labels, compare is not None, flips_for)
        summary.pages.append(page)
    _write_assets(out)
    atomic_write(out / "index.html", render_index(summary, labels, compare is not None))
    if thumbs is not None:
        summary.thumbnails_made, summary.thumbnails_reused = thumbs.made, thumbs.reused
    return summary


def _check_unique_pages(records: list[ResultRecord]) -> None:
    """Two records of one task, split and checkpoint name (from two folders) would share one page."""
    seen: dict[Path, ResultRecord] = {}
    for record in records:
        path = page_path(record)
        if path in seen:
            raise DataError(
                f"records {seen[path].source} and {record.source} are both {record.task} {record.split} "
                f"{record.checkpoint_name} and would share the page {path}: browse their folders one at a time"
            )
        seen[path] = record


def _write_page(
    out: Path,
    record: ResultRecord,
    other: ResultRecord | None,
    view: SplitView,
    thumbs: Thumbnailer | None,
    max_samples: int,
    labels: tuple[str, str],
    comparing: bool,
    flips_for: FlipCounter | None,
) -> PageSummary:
    predictions = record.read_predictions() or []
    card_family = str((record.config.get("card") or {}).get("family") or "")
    family = family_of(view.family, card_family, predictions)
    video = (
        any(item.video for item in view.media.values())
        or "video" in card_family
        or any(sample_id(p).startswith("video/") for p in predictions)
    )
    other_predictions = (other.read_predictions() or []) if other is not None else None
    other_by_id = {sample_id(p): p for p in other_predictions} if other_predictions is not None else {}
    flips = None
    if other is not None and other_predictions is not None:
        count = flips_for or (lambda a, b, fam, pa, pb: count_flips(fam, pa, pb))
        flips = count(record, other, family, predictions, other_predictions)
    a_higher = set(flips.a_right_b_wrong) if flips else set()
    b_higher = set(flips.b_right_a_wrong) if flips else set()
    flipped = a_higher | b_higher
    order = sorted(
        range(len(predictions)),
        key=lambda i: sort_key(family, predictions[i], "x" if sample_id(predictions[i]) in flipped else "", i),
    )
    kept = order[:max_samples] if max_samples else order
    relative = page_path(record)
    prefix = "../" * (len(relative.parts) - 1)
    maker = CardMaker(family, view, thumbs, prefix, video=video)
    compared = other_predictions is not None
    cards = [maker.card(predictions[i], other_by_id.get(sample_id(predictions[i])) if compared else None) for i in kept]
    for card in cards if compared else []:  # the flip lists decide (they may come from `sclbench compare`)
        card["flip"] = "ab" if card["id"] in a_higher else "ba" if card["id"] in b_higher else ""
    data = {
        "task": record.task,
        "split": record.split,
        "checkpoint": record.checkpoint_name,
        "family": family,
        "total": len(predictions),
        "labels": list(labels) if compared else None,
        "compare": _compare_data(other, flips, labels) if comparing else None,
        "samples": cards,
    }
    notes = list(view.notes)
    if not predictions:
        notes.append("this record has no per-sample predictions (evaluated by an older sclbench, or without them)")
    if len(kept) < len(predictions):
        notes.append(f"{len(kept)} of {len(predictions)} samples on this page (failures first; --max-samples)")
    if other is not None and record.data_fingerprint != other.data_fingerprint:
        notes.append(
            f"{labels[0]} and {labels[1]} were evaluated on different data (data fingerprint): "
            "one sample id may name different samples in the two runs"
        )
    if comparing and other is None:
        notes.append(f"{labels[1]} has no record of {record.task} {record.split}: nothing to compare")
    page_html = render_page(record, data, notes, prefix, other, labels, flips)
    atomic_write(out / relative, page_html)
    return PageSummary(record, relative, len(predictions), len(kept), other, flips)


def _compare_data(other: ResultRecord | None, flips: Flips | None, labels: tuple[str, str]) -> dict | None:
    if other is None or flips is None:
        return None
    return {
        "checkpoint": other.checkpoint_name,
        "aRightBWrong": flips.a_right_b_wrong,
        "bRightAWrong": flips.b_right_a_wrong,
        "common": flips.common,
    }


def _json_block(data: Any) -> str:
    # Inside <script>, "</" would end the block early; \u003c keeps the JSON identical once parsed.
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _metric_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return html.escape(str(value))
    return f"{value:.2f}" if math.isfinite(value) else str(value)


def main_metrics(record: ResultRecord) -> dict[str, Any]:
    """The metrics a reader looks at first: the card's report list when the record holds it, else all."""
    report = ((record.config.get("card") or {}).get("metrics") or {}).get("report")
    names = [m for m in report if m in record.metrics] if isinstance(report, list) else []
    names = names or list(record.metrics)
    return {name: record.metrics[name] for name in names[:MAX_INDEX_METRICS]}


def _head(title: str, prefix: str) -> str:
    return (
        "<!doctype html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        f"<title>{html.escape(title)}</title>\n"
        f"<link rel='stylesheet' href='{prefix}assets/browse.css'>\n</head>\n"
    )


def render_page(
    record: ResultRecord,
    data: dict[str, Any],
    notes: list[str],
    prefix: str,
    other: ResultRecord | None,
    labels: tuple[str, str],
    flips: Flips | None = None,
) -> str:
    title = f"{record.task} {record.split} · {record.checkpoint_name}"
    metrics = " · ".join(f"{html.escape(k)} {_metric_text(v)}" for k, v in main_metrics(record).items())
    versus = ""
    if other is not None:
        other_metrics = " · ".join(f"{html.escape(k)} {_metric_text(v)}" for k, v in main_metrics(other).items())
        versus = (
            f"<p class='meta'><b>{html.escape(labels[0])}</b> {html.escape(record.checkpoint_name)}: {metrics}</p>"
            f"<p class='meta'><b>{html.escape(labels[1])}</b> {html.escape(other.checkpoint_name)}: "
            f"{other_metrics}</p>"
        )
    note_html = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes)
    if flips is not None and flips.summary:
        lines = "".join(f"<li>{html.escape(line)}</li>" for line in flips.summary)
        note_html = f"<ul class='stats'>{lines}</ul>\n" + note_html
    return (
        _head(f"{title} - sclbench browse", prefix)
        + "<body>\n<header>\n"
        + f"<nav><a href='{prefix}index.html'>all records</a></nav>\n"
        + f"<h1>{html.escape(title)}</h1>\n"
        + (versus or f"<p class='meta'>{metrics}</p>")
        + f"\n{note_html}\n"
        + "<div id='controls' role='search'></div>\n<p id='count' aria-live='polite'></p>\n"
        + "<p id='broken' class='note' hidden></p>\n</header>\n"
        + "<main id='cards'></main>\n"
        + "<noscript><p class='note'>The cards are drawn by the page's script; allow scripts for file:// pages."
        + "</p></noscript>\n"
        + f"<script type='application/json' id='browse-data'>{_json_block(data)}</script>\n"
        + f"<script src='{prefix}assets/browse.js'></script>\n</body>\n</html>\n"
    )


def render_index(summary: SiteSummary, labels: tuple[str, str], comparing: bool) -> str:
    rows = []
    for page in summary.pages:
        record = page.record
        metrics = ", ".join(f"{html.escape(k)} {_metric_text(v)}" for k, v in main_metrics(record).items())
        model = html.escape(str(record.checkpoint.get("model", "scl")))
        link = html.escape(page.page.as_posix())
        cells = [
            f"<td><a href='{link}'>{html.escape(record.task)}</a></td>",
            f"<td>{html.escape(record.split)}</td>",
            f"<td>{html.escape(record.checkpoint_name)} <small>({model})</small></td>",
            f"<td class='metrics'>{metrics}</td>",
            f"<td class='num'>{page.shown} / {page.samples}</td>",
        ]
        if comparing:
            if page.other is None or page.flips is None:
                cells.append("<td colspan='3'>no partner record</td>")
            else:
                cells.append(f"<td>{html.escape(page.other.checkpoint_name)}</td>")
                cells.append(f"<td class='num'><a href='{link}#flip=ab'>{len(page.flips.a_right_b_wrong)}</a></td>")
                cells.append(f"<td class='num'><a href='{link}#flip=ba'>{len(page.flips.b_right_a_wrong)}</a></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    a, b = (html.escape(x) for x in labels)
    compare_head = f"<th>{b}</th><th>{a} right, {b} wrong</th><th>{b} right, {a} wrong</th>" if comparing else ""
    return (
        _head("sclbench browse", "")
        + "<body>\n<header><h1>sclbench browse</h1>\n"
        + f"<p class='meta'>{len(summary.pages)} record(s); each page shows its samples, failures first.</p>"
        + "</header>\n<main>\n<table class='index'>\n<thead><tr><th>task</th><th>split</th><th>checkpoint</th>"
        + f"<th>metrics</th><th>cards</th>{compare_head}</tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody>\n</table>\n</main>\n</body>\n</html>\n"
    )


def _write_assets(out: Path) -> None:
    static = resources.files("sclbench.results.browse").joinpath("static")
    for name in ASSETS:
        atomic_write(out / "assets" / name, static.joinpath(name).read_bytes())
