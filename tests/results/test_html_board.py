"""`sclbench table --format html`: the leaderboard as the paper prints it, parsed back from the page.

One <tr> per checkpoint and per published row, one column per task's main metric, intervals beneath
the numbers, p-value marks, links into the browse site (`--browse`), everything escaped (checkpoint
and metric names fuzzed), the page well formed and self-contained.
"""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sclbench.cli import main
from sclbench.results import ResultRecord, build_table, collect, render
from sclbench.results.leaderboard import build_leaderboard
from sclbench.results.paper import PaperNumber
from sclbench.results.stats import NumberStats

try:  # the chromium harness of the page's older tests, when a browser is installed
    from test_html import load_in_browser, needs_browser
except ImportError:  # pragma: no cover - run from elsewhere: the browser test skips
    load_in_browser, needs_browser = None, pytest.mark.skip(reason="tests/results/test_html.py not importable")

VOID = {"meta", "br", "img", "input", "link", "hr", "col", "wbr", "source"}
PAPER = [
    PaperNumber("vqa", "test-dev", "accuracy", 78.72, "scl paper", True, model="scl"),
    PaperNumber("f30k", "test", "tr_r1", 95.9, "scl paper", False, model="scl"),
    PaperNumber("f30k", "test", "ir_r1", 84.56, "scl paper", False, model="scl"),
    PaperNumber("vqa", "test-dev", "accuracy", 71.26, "vilt paper <b>&</b>", False, model="vilt"),
    PaperNumber("f30k", "test", "tr_r1", 94.3, "meter paper", False, model="meter"),
]


class Page(HTMLParser):
    """The board table as nested lists, every link, and a check that the tags nest properly."""

    def __init__(self, html: str):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.links: list[str] = []
        self.in_board = False
        self.section = ""
        self.head: list[list[tuple[str, dict]]] = []  # header rows: (text, attrs) per cell
        self.body: list[dict] = []  # {"class", "tbody", "cells": [(tag, text, attrs, links)]}
        self.cell: list | None = None
        self.tbody = ""
        self.feed(html)
        self.close()
        if self.stack:
            self.errors.append(f"unclosed: {self.stack}")

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "a":
            self.links.append(attrs.get("href", ""))
        if tag == "table":
            self.in_board = attrs.get("id") == "paper-board"
        if not self.in_board:
            return
        if tag in ("thead", "tbody"):
            self.section, self.tbody = tag, attrs.get("class", "")
        elif tag == "tr":
            if self.section == "thead":
                self.head.append([])
            else:
                self.body.append({"class": attrs.get("class"), "tbody": self.tbody, "cells": []})
        elif tag in ("td", "th"):
            self.cell = [tag, "", attrs, []]
        elif tag == "a" and self.cell is not None:
            self.cell[3].append(attrs.get("href"))
        elif self.cell is not None and tag in ("span", "sup"):
            self.cell[1] += f"<{attrs.get('class', tag)}>"

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()
        if not self.in_board:
            return
        if tag in ("td", "th") and self.cell is not None:
            if self.section == "thead":
                self.head[-1].append((self.cell[1], self.cell[2]))
            else:
                self.body[-1]["cells"].append(tuple(self.cell))
            self.cell = None
        elif tag == "table":
            self.in_board = False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[1] += data

    def rows(self) -> dict[str, dict]:
        return {r["cells"][0][1]: r for r in self.body}


def rec(task, split, metrics, name, model=None, synthetic=False, zero_shot=False):
    return ResultRecord(
        task,
        split,
        dict(metrics),
        "scorer",
        protocol={"zero_shot": True} if zero_shot else {},
        checkpoint={"name": name, **({"model": model} if model else {})},
        extra={"synthetic_data": {"synthetic": True}} if synthetic else {},
    )


def records(tmp_path: Path) -> Path:
    """Three checkpoints (two families) x three tasks with missing cells, predictions for intervals,
    a zero-shot record and a synthetic one; meter is published-only."""
    root = tmp_path / "results"
    hits = [{"id": f"q{i}", "scores": {"accuracy": float(i % 4 != 0)}} for i in range(80)]
    rec("vqa", "test-dev", {"accuracy": 75.0}, "scl-vqa").save(root, predictions=hits)
    rec("vqa", "minival", {"accuracy": 75.0}, "scl-vqa").save(root, predictions=hits)
    rec("vqa", "test-dev", {"accuracy": 75.0}, "dandelin/vilt-b32-vqa", model="vilt").save(root, predictions=hits)
    ranks = [{"id": f"image/{i}", "rank": i % 3, "scores": {"tr_r1": float(i % 3 == 0)}} for i in range(30)]
    ranks += [{"id": f"text/{i}", "rank": i % 2, "scores": {"ir_r1": float(i % 2 == 0)}} for i in range(60)]
    f30k = {"tr_r1": 100 / 3, "tr_r5": 100.0, "ir_r1": 50.0, "ir_r5": 100.0, "r_mean": 70.0}
    protocol = {"num_images": 30, "num_texts": 60}
    ResultRecord("f30k", "test", f30k, "recall", protocol=protocol, checkpoint={"name": "scl-f30k"}).save(
        root, predictions=ranks
    )
    rec("f30k", "test", {"tr_r1": 50.0, "ir_r1": 40.0}, "scl-pretrain", zero_shot=True).save(root)
    rec("nlvr2", "test1", {"accuracy": 52.0}, "demo-scl", synthetic=True).save(root)
    return root


def page_of(root: Path, *args: str) -> Page:
    rows = build_table(collect(root), paper=PAPER, with_stats=True)
    options = dict(zip(args[::2], args[1::2]))
    return Page(render(rows, "html", **options))


class TestStructure:
    def test_one_row_per_checkpoint_and_published_row_one_column_per_metric(self, tmp_path):
        page = page_of(records(tmp_path))
        assert page.errors == []
        groups, metrics = page.head
        # checkpoint, model, the task groups (colspan = their metric count), protocol
        assert [(t, a.get("colspan")) for t, a in groups] == [
            ("checkpoint", None), ("model", None), ("vqa test-dev", "1"), ("vqa minival", "1"), ("nlvr2 test1", "1"),
            ("f30k test", "3"), ("f30k test zero-shot", "2"), ("protocol", None)]  # fmt: skip
        assert [t for t, _ in metrics] == ["accuracy"] * 3 + ["tr_r1", "ir_r1", "r_mean", "tr_r1", "ir_r1"]
        labels = [r["cells"][0][1] for r in page.body]
        assert labels == ["scl (paper)", "scl-f30k", "scl-pretrain", "scl-vqa", "meter (paper)", "vilt (paper)",
                          "dandelin/vilt-b32-vqa", "demo-scl <syn>synthetic"]  # fmt: skip
        assert [r["class"] for r in page.body].count("published") == 3
        assert all(len(r["cells"]) == 2 + len(metrics) + 1 for r in page.body)  # no cell missing or extra
        assert page.body[-1]["tbody"] == "synthetic" and page.body[-1]["class"] == "synthetic"

    def test_cells_hold_value_interval_mark_and_delta(self, tmp_path):
        rows = page_of(records(tmp_path)).rows()
        vqa = rows["scl-vqa"]["cells"][2][1]
        # 75.00, the interval beneath, the delta to SCL's published 78.72 (VQA has no chance level
        # without its answer prior: no p mark)
        assert re.fullmatch(r"75\.00<ci>\[\d+\.\d, \d+\.\d\]<d neg>Δ -3\.72", vqa), vqa
        assert rows["scl-vqa"]["cells"][3][1].startswith("75.00<ci>[")  # minival: no published number
        assert "Δ" not in rows["scl-vqa"]["cells"][3][1]
        # retrieval: p against chance (1 in 30 images, 2 of 60 captions) far below 0.001
        tr = rows["scl-f30k"]["cells"][5]
        assert re.fullmatch(r"33\.33<mark>\*\*\*<ci>\[\d+\.\d, \d+\.\d\]<d neg>Δ -62\.57", tr[1]), tr
        assert rows["scl-f30k"]["cells"][7][1] == "70.00"  # r_mean: no per-sample scores, no interval
        assert rows["scl (paper)"]["cells"][2][1] == "78.72" and rows["scl (paper)"]["cells"][3][1] == ""
        assert rows["meter (paper)"]["cells"][5][1] == "94.30"  # published-only model
        assert [c[1] for c in rows["meter (paper)"]["cells"][2:-1]] == ["", "", "", "94.30", "", "", "", ""]
        nlvr2 = [c[1] for r in rows.values() for c in r["cells"][4:5] if c[1]]
        assert nlvr2 == ["52.00"]  # the synthetic NLVR2 column holds no published number
        assert rows["scl-pretrain"]["cells"][-1][1] == "zero-shot"

    def test_published_cells_name_their_source_escaped(self, tmp_path):
        html = render(build_table([rec("vqa", "test-dev", {"accuracy": 70.0}, "v", model="vilt")], paper=PAPER), "html")
        page = Page(html)
        cell = page.rows()["vilt (paper)"]["cells"][2]
        assert cell[2]["title"] == "vilt paper <b>&</b> (unverified)" and "<b>&</b>" not in html

    def test_links_into_the_browse_site(self, tmp_path):
        root = records(tmp_path)
        page = page_of(root, "browse", "../site")
        rows = page.rows()
        assert rows["scl-vqa"]["cells"][2][3] == ["../site/vqa/vqa_test-dev_scl-vqa.html"]
        assert rows["scl-vqa"]["cells"][3][3] == ["../site/vqa/vqa_minival_scl-vqa.html"]
        assert rows["dandelin/vilt-b32-vqa"]["cells"][2][3] == ["../site/vqa/vqa_test-dev_dandelin-vilt-b32-vqa.html"]
        # every link is a record's relative path with .json -> .html; published cells link nowhere
        expected = {"../site/" + p.relative_to(root).with_suffix(".html").as_posix() for p in root.rglob("*.json")}
        board_links = [h for r in page.body for c in r["cells"] for h in c[3]]
        assert set(board_links) <= expected and len(board_links) == 9
        assert not any(c[3] for r in page.body if r["class"] == "published" for c in r["cells"])
        assert Page(render(build_table([], paper=PAPER), "html")).links == []
        assert page_of(root).links == []  # no --browse, no link

    def test_a_url_site_and_odd_characters_in_it(self, tmp_path):
        root = records(tmp_path)
        page = page_of(root, "browse", "https://example.org/runs 1/'x'/")
        assert "https://example.org/runs 1/'x'/vqa/vqa_test-dev_scl-vqa.html" in page.links

    def test_clustered_intervals_say_what_they_resampled(self, tmp_path):
        @dataclasses.dataclass(frozen=True)
        class Clustered(NumberStats):  # the fields stats.py gains for clustered intervals
            unit: str | None = None
            clusters: int | None = None

        rows = build_table([rec("vqa", "test-dev", {"accuracy": 75.0}, "scl-vqa")], paper=PAPER)
        rows[0].stats["accuracy"] = Clustered("accuracy", 75.0, 80, (70.0, 80.0), 0.1, 1e-9, "image", 20)
        cell = Page(render(rows, "html")).rows()["scl-vqa"]["cells"][2]
        assert "<ci>[70.0, 80.0]" in cell[1]
        html = render(rows, "html")
        assert "resampling whole images (20 clusters)" in html

    def test_intervals_from_clustered_predictions(self, tmp_path):
        """With stats.py's own clustered bootstrap: questions sharing 20 images are resampled by image."""
        preds = [
            {"id": f"q{i}", "unit": f"image/{i // 4}", "scores": {"accuracy": float(i % 8 < 5)}} for i in range(80)
        ]
        record = rec("vqa", "test-dev", {"accuracy": 62.5}, "scl-vqa")
        record.protocol["cluster_unit"] = "image"
        record.save(tmp_path, predictions=preds)
        html = render(build_table(collect(tmp_path), paper=PAPER, with_stats=True), "html")
        assert "95% bootstrap interval over 80 samples, resampling whole images (20 clusters)" in html
        assert "<ci>[" in Page(html).rows()["scl-vqa"]["cells"][2][1]

    def test_the_page_is_self_contained_and_sections_follow_the_layout(self, tmp_path):
        root = records(tmp_path)
        both = render(build_table(collect(root)), "html")
        assert "<script" not in both and not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", both)
        assert both.index("id='paper-board'") < both.index("id='numbers'")
        rows = build_table([rec("vqa", "test-dev", {"accuracy": 75.0}, "scl-vqa")], paper=PAPER)
        paper_only = render(rows, "html", layout="paper")
        runs_only = render(rows, "html", layout="runs")
        assert "paper-board" in paper_only and "id='numbers'" not in paper_only
        assert "paper-board" not in runs_only and "id='numbers'" in runs_only

    def test_cli_writes_the_page(self, tmp_path):
        root = records(tmp_path)
        out = tmp_path / "board.html"
        assert main(["table", str(root), "--format", "html", "--browse", "site", "--all-recalls", "-o", str(out)]) == 0
        page = Page(out.read_text())
        assert page.errors == [] and [t for t, _ in page.head[1]][3:7] == ["tr_r1", "tr_r5", "ir_r1", "ir_r5"]
        assert "site/f30k/f30k_test_scl-f30k.html" in page.links


# Names as users write them: unicode, markup, quotes, entities, whitespace; never empty (= "unnamed").
# Markup's own characters and tag-like runs drawn often, the rest of unicode too.
_CHARS = st.one_of(st.sampled_from(list("<>&\"'/=;# !-abtdr")), st.characters(blacklist_categories=("Cs", "Cc")))
_TEXT = st.one_of(
    st.text(_CHARS, min_size=1, max_size=30), st.sampled_from(["<b>x</b>", "</td></tr>", "&amp;", "<!--"])
)
NAMES = _TEXT.filter(str.strip)
METRICS = _TEXT


class TestEscaping:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(names=st.lists(NAMES, min_size=1, max_size=4, unique=True), model=NAMES)
    def test_checkpoint_names_round_trip(self, names, model):
        recs = [rec("vqa", "test-dev", {"accuracy": 50.0 + i}, n, model=model) for i, n in enumerate(names)]
        html = render(build_table(recs, paper=PAPER), "html", browse="site")
        page = Page(html)
        assert page.errors == []
        reproduced = [r for r in page.body if r["class"] == "reproduced"]
        assert sorted(r["cells"][0][1] for r in reproduced) == sorted(names)
        assert all(r["cells"][1][1] == model for r in reproduced)
        assert all(r["cells"][2][1].startswith(f"{50.0 + names.index(r['cells'][0][1]):.2f}") for r in reproduced)
        assert len(page.links) == len(names) and all(link.startswith("site/vqa/") for link in page.links)

    @settings(max_examples=30, deadline=None)
    @given(metrics=st.lists(METRICS, min_size=1, max_size=4, unique=True), task=NAMES)
    def test_metric_and_task_names_round_trip(self, metrics, task):
        record = rec(task, "test", {m: float(i) for i, m in enumerate(metrics)}, "run")
        page = Page(render(build_table([record], paper=[]), "html"))
        assert page.errors == []
        board = build_leaderboard(build_table([record], paper=[]))
        assert [t for t, _ in page.head[1]] == [c.metric for c in board.columns]
        assert set(board.columns) and {c.metric for c in board.columns} <= set(metrics)
        assert page.head[0][2][0] == f"{task} test"


def test_every_link_opens_a_page_of_the_browse_site(tmp_path):
    """The contract with `sclbench browse`: the leaderboard's links land on the pages it writes."""
    pytest.importorskip("sclbench.results.browse")
    root = records(tmp_path)
    assert main(["browse", str(root), "-o", str(tmp_path / "site"), "--no-media"]) == 0
    board = tmp_path / "board.html"
    assert main(["table", str(root), "--format", "html", "--browse", "site", "-o", str(board), "--no-intervals"]) == 0
    links = [h for r in Page(board.read_text()).body for c in r["cells"] for h in c[3]]
    assert len(links) == 9 and all((tmp_path / link).is_file() for link in links), links


@needs_browser
def test_the_board_loads_in_a_browser_without_console_errors(tmp_path):
    root = records(tmp_path)
    out = tmp_path / "board.html"
    assert main(["table", str(root), "--format", "html", "--browse", "site", "-o", str(out)]) == 0
    dom, console = load_in_browser(out)
    assert console == [], console
    # the cards' published models (scl, meter, and others as the cards gain them); four reproduced rows
    assert dom.count('<tr class="published">') >= 2 and dom.count('<tr class="reproduced">') == 4
