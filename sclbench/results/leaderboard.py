"""The leaderboard as the papers print it: one row per checkpoint, one column group per task with that
task's main metrics, and each model's published numbers as a row of their own beside its reproduced rows.

Built from table.py's per-record rows (so intervals, synthetic labels and paper matching are decided
once, there). The rules that keep it honest:
- a column is (task, canonical split, zero-shot, metric): numbers of different splits never share a
  column (VQA test-dev and minival are two), spellings of the same split do (`test-P` = `test1`);
  zero-shot numbers have columns of their own, apart from fine-tuned ones;
- a published number fills a column only where a record made on real data sits (a column of synthetic
  records never holds a paper number), matched by canonical split; a published model with no record
  of its own still gets its row there;
- rows made on synthetic data come last, labelled, and never between a published row and its model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sclbench.results.paper import PaperNumber, canonical_split
from sclbench.results.stats import NumberStats
from sclbench.results.table import TableRow, protocol_cell, protocol_notes

# Paper order of the task families; tasks not listed follow, alphabetically.
TASK_ORDER = ("vqa", "nlvr2", "f30k", "coco", "msrvtt", "lsmdc")
# Retrieval directions shown as pairs: text retrieval then image retrieval, as the papers print them.
_DIRECTION_PAIRS = (("tr", "ir"), ("t2v", "v2t"))
DEFAULT_RECALLS: tuple[int, ...] = (1,)
ALL_RECALLS: tuple[int, ...] = (1, 5, 10)


@dataclass(frozen=True, order=True)
class Column:
    task: str
    split: str  # canonical split name
    zero_shot: bool
    metric: str

    @property
    def group(self) -> tuple[str, str, bool]:
        return (self.task, self.split, self.zero_shot)

    def key(self) -> str:
        """A stable text id, e.g. `f30k/test/tr_r1` or `f30k/test/zero-shot/tr_r1`."""
        return "/".join([self.task, self.split, *(["zero-shot"] if self.zero_shot else []), self.metric])


@dataclass
class Cell:
    value: float
    stats: NumberStats | None = None
    source: TableRow | None = None  # the record's row (reproduced cells)
    paper: PaperNumber | None = None  # the published number (published cells)
    delta: float | None = None  # reproduced - own model's published number, in points

    @property
    def ci(self) -> tuple[float, float] | None:
        return self.stats.ci if self.stats is not None else None

    @property
    def p_value(self) -> float | None:
        return self.stats.p_value if self.stats is not None else None


@dataclass
class BoardRow:
    label: str  # the checkpoint name, or "<model> (paper)"
    model: str  # model family: "scl", "meter", "vilt", ... or "pkg.module:factory"
    published: bool = False
    synthetic: bool = False
    checkpoint: str | None = None  # None for published rows
    cells: dict[Column, Cell] = field(default_factory=dict)
    protocol: str = ""  # reproduced rows: the records' protocol labels (or footnote marks)

    @property
    def kind(self) -> str:
        return "published" if self.published else "synthetic" if self.synthetic else "reproduced"


@dataclass
class Leaderboard:
    columns: list[Column]
    rows: list[BoardRow]
    notes: dict[str, int] = field(default_factory=dict)  # protocol footnotes, shared with the per-record tables

    def groups(self) -> list[tuple[tuple[str, str, bool], list[Column]]]:
        """Column groups in display order: ((task, split, zero_shot), its columns)."""
        out: dict[tuple[str, str, bool], list[Column]] = {}
        for c in self.columns:
            out.setdefault(c.group, []).append(c)
        return list(out.items())

    def group_title(self, group: tuple[str, str, bool]) -> str:
        """`f30k test`, `f30k test zero-shot`; a one-split task still names its split (a reader must know)."""
        task, split, zero_shot = group
        return " ".join([task, split, *(["zero-shot"] if zero_shot else [])])

    def published_sources(self) -> list[str]:
        """One line per published model and source: which numbers in the board came from where."""
        seen: dict[str, list[str]] = {}
        for row in self.rows:
            for column, cell in row.cells.items():
                if cell.paper is not None:
                    p = cell.paper
                    weights = f" (weights: {p.checkpoint})" if p.checkpoint else ""
                    text = f"{row.label}{weights}: {p.source}" + ("" if p.verified else " (unverified)")
                    seen.setdefault(text, []).append(column.key())
        return [f"{src} [{', '.join(where)}]" for src, where in seen.items()]


def board_metrics(task: str, present: Iterable[str], recalls: Sequence[int] = DEFAULT_RECALLS) -> list[str]:
    """The columns of one task: the conventional pair (VQA/NLVR2 accuracy; retrieval R@K in both
    directions, K in `recalls`) plus the card's `metrics.main`; an unknown task shows every number."""
    have = set(present)
    wanted: list[str] = []
    for a, b in _DIRECTION_PAIRS:
        if f"{a}_r1" in have or f"{b}_r1" in have:
            wanted += [f"{d}_r{k}" for d in (a, b) for k in recalls]
    if "accuracy" in have:
        wanted.append("accuracy")
    main = card_main_metric(task)
    if main:
        wanted.append(main)
    if not wanted:
        wanted = sorted(have)
    return [m for m in dict.fromkeys(wanted) if m in have]


def card_main_metric(task: str) -> str | None:
    """`metrics.main` of the task's card, when a card of that name is installed (never a path)."""
    from sclbench.cards import find_card, load_card
    from sclbench.errors import SCLBenchError

    if not task or "/" in task or "\\" in task or task.startswith("."):
        return None
    try:
        path = find_card(task)
        main = load_card(path).get("metrics.main") if path is not None else None
    except (SCLBenchError, OSError):
        return None
    return main if isinstance(main, str) else None


def _group_order(group: tuple[str, str, bool]) -> tuple:
    task, split, zero_shot = group
    rank = TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER)
    # test splits (what papers report) before validation ones
    return (rank, task, zero_shot, not split.startswith("test"), split)


def _record_value(row: TableRow, metric: str) -> float | None:
    if metric in row.metrics:
        return row.metrics[metric]
    value = row.record.metrics.get(metric) if row.record is not None else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _published_of(rows: Sequence[TableRow], paper: Iterable[PaperNumber] | None) -> list[PaperNumber]:
    if paper is not None:
        return list(paper)
    if getattr(rows, "published", None) is not None:
        return list(rows.published)  # type: ignore[attr-defined]
    seen = {(p.model, p.task, p.split, p.zero_shot, p.metric): p for r in rows for p in r.paper.values()}
    return list(seen.values())


def build_leaderboard(
    rows: Sequence[TableRow], paper: Iterable[PaperNumber] | None = None, recalls: Sequence[int] = DEFAULT_RECALLS
) -> Leaderboard:
    """The paper-style board of the per-record rows.

    paper: the published numbers to show as rows (default: those build_table matched the rows against,
    i.e. every model's number from the cards; a plain list of rows: the numbers set beside them).
    """
    published = _published_of(rows, paper)
    groups: dict[tuple[str, str, bool], list[TableRow]] = {}
    for r in rows:
        groups.setdefault((r.task, canonical_split(r.task, r.split), r.zero_shot), []).append(r)
    columns: list[Column] = []
    for group in sorted(groups, key=_group_order):
        present: list[str] = []
        for r in groups[group]:
            present += [m for m in (r.record.metrics if r.record is not None else r.metrics) if m not in present]
        columns += [Column(*group, m) for m in board_metrics(group[0], present, recalls)]
    by_group: dict[tuple[str, str, bool], list[Column]] = {}
    for c in columns:
        by_group.setdefault(c.group, []).append(c)

    notes = protocol_notes(list(rows))
    reproduced: dict[tuple[str, str, bool], BoardRow] = {}
    newest: dict[tuple[tuple[str, str, bool], Column], str] = {}
    protocols: dict[tuple[str, str, bool], dict[str, str]] = {}
    for r in rows:
        key = (r.model, r.checkpoint, r.synthetic)
        board_row = reproduced.setdefault(
            key, BoardRow(r.checkpoint, r.model, synthetic=r.synthetic, checkpoint=r.checkpoint)
        )
        group = (r.task, canonical_split(r.task, r.split), r.zero_shot)
        created = r.record.created_at if r.record is not None else ""
        for column in by_group.get(group, []):
            value = _record_value(r, column.metric)
            if value is None or newest.get((key, column), "") > created:
                continue  # two spellings of one split: the newest record holds the cell
            newest[(key, column)] = created
            own = r.paper.get(column.metric)
            delta = value - own.value if own is not None and math.isfinite(value) else None
            board_row.cells[column] = Cell(value, r.stats.get(column.metric), source=r, delta=delta)
        label = protocol_cell(r, notes)
        if label:
            protocols.setdefault(key, {})[r.task] = label

    # Published numbers meet real-data columns only, by (task, canonical split, zero-shot, metric).
    real_columns = {
        (c.task.lower(), c.split, c.zero_shot, c.metric): c
        for b in reproduced.values()
        if not b.synthetic
        for c in b.cells
    }
    paper_rows: dict[str, BoardRow] = {}
    for p in published:
        column = real_columns.get((p.task.lower(), canonical_split(p.task, p.split), p.zero_shot, p.metric))
        if column is not None:
            row = paper_rows.setdefault(p.model, BoardRow(f"{p.model} (paper)", p.model, published=True))
            row.cells[column] = Cell(p.value, paper=p)

    for key, board_row in reproduced.items():
        labels = protocols.get(key, {})
        if len(set(labels.values())) == 1:
            board_row.protocol = next(iter(labels.values()))
        else:
            board_row.protocol = "; ".join(f"{task}: {text}" for task, text in labels.items())

    ordered: list[BoardRow] = []
    family_rank = lambda m: (m != "scl", m)  # noqa: E731  (the paper reproduced here comes first)
    families = {b.model for b in reproduced.values() if not b.synthetic} | set(paper_rows)
    for family in sorted(families, key=family_rank):
        if family in paper_rows:
            ordered.append(paper_rows[family])
        ordered += sorted((b for b in reproduced.values() if b.model == family and not b.synthetic),
                          key=lambda b: b.label)  # fmt: skip
    ordered += sorted((b for b in reproduced.values() if b.synthetic), key=lambda b: (family_rank(b.model), b.label))
    return Leaderboard(columns, ordered, notes)


def format_value(value: float | None) -> str:
    if value is None:
        return ""
    if math.isnan(value):
        return "NaN"  # shown, never blank: a blank cell reads as "not evaluated"
    return f"{value:.2f}"


def format_ci(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f"[{ci[0]:.1f}, {ci[1]:.1f}]"


def interval_note(stats: NumberStats | None) -> str:
    """What an interval resampled: `clustered by image, 512 clusters` when stats.py says so."""
    if stats is None or stats.ci is None:
        return ""
    unit, clusters = getattr(stats, "unit", None), getattr(stats, "clusters", None)
    text = f"95% bootstrap interval over {stats.n} samples" if stats.n else "95% bootstrap interval"
    if unit:
        text += f", resampling whole {unit}s" + (f" ({clusters} clusters)" if clusters else "")
    return text
