"""`sclbench table --format html`: one self-contained page, checked in a real headless browser.

The browser is Debian's chromium (`apt-get install -y chromium`); without it the browser tests skip
and say so (CI installs it). Console messages reach stderr through --enable-logging; the page has no
script, so any console line (an error, a resource that failed to load) fails the test.
"""

import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from sclbench.cli import main
from sclbench.results import ResultRecord

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no chromium on PATH (apt-get install -y chromium)")


def load_in_browser(page) -> tuple[str, list[str]]:
    """(DOM after load, console lines) of a local page in headless chromium, all network refused."""
    cmd = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--enable-logging=stderr",
        "--v=0",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=3000",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line or "Failed to load" in line]
    return proc.stdout, console


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.parts.append(data)


def _records(root, synthetic_hits=7, drift=False):
    preds = [{"id": f"image/{i}", "rank": i % 12, "scores": {"tr_r1": float(i % 12 == 0)}} for i in range(20)]
    preds += [{"id": f"text/{i}", "rank": i % 7, "scores": {"ir_r1": float(i % 7 == 0)}} for i in range(100)]
    tr = {f"tr_r{k}": 100.0 * sum(p["rank"] < k for p in preds[:20]) / 20 for k in (1, 5, 10)}
    ir = {f"ir_r{k}": 100.0 * sum(p["rank"] < k for p in preds[20:]) / 100 for k in (1, 5, 10)}
    protocol = {"mode": "two-stage", "k": 128, "fusion": "itm", "num_images": 20, "num_texts": 100}
    ResultRecord(
        "f30k", "test", {**tr, **ir}, "recall-gt_last", protocol=protocol, checkpoint={"name": "scl-f30k"}
    ).save(root, predictions=preds)
    nl = [{"id": f"s{i}", "scores": {"accuracy": float(i < synthetic_hits * 10)}} for i in range(100)]
    ResultRecord(
        "nlvr2",
        "test1",
        {"accuracy": float(synthetic_hits * 10) + (3.0 if drift else 0.0)},
        "nlvr2-official",
        protocol={"passes": "pair"},
        checkpoint={"name": "my-synth-run"},
        extra={"synthetic_data": {"synthetic": True}},
    ).save(root, predictions=nl)
    return {**tr, **ir}


def _render(tmp_path, drift=False):
    numbers = _records(tmp_path / "results")
    _records(tmp_path / "baseline", drift=drift)
    page = tmp_path / "board.html"
    args = [
        "table",
        str(tmp_path / "results"),
        "--format",
        "html",
        "--out",
        str(page),
        "--baseline",
        str(tmp_path / "baseline"),
    ]
    assert main(args) == 0
    return page, numbers


def test_page_is_self_contained(tmp_path):
    page, _ = _render(tmp_path)
    html = page.read_text()
    assert "<script" not in html
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", html), "a network asset"
    assert "<svg" in html and "<style>" in html


@needs_browser
def test_page_loads_without_console_errors_and_shows_every_number(tmp_path):
    page, numbers = _render(tmp_path)
    dom, console = load_in_browser(page)
    assert console == [], console
    parser = _Text()
    parser.feed(dom)
    text = " ".join(parser.parts)
    for metric, value in numbers.items():
        assert f"{value:.2f}" in text, f"f30k {metric} = {value:.2f} not on the page"
    assert "70.00" in text  # the NLVR2 record
    assert "synthetic" in text and "PASS" in text
    assert any(tag == "polyline" for tag, _ in parser.tags), "no recall@K curve drawn"
    # the synthetic NLVR2 row has neither the paper's 84.27 nor a delta; the real f30k row has both
    board = dom.split('id="numbers"')[1].split("</table>")[0]
    nlvr2_row = next(r for r in board.split("<tr>") if "my-synth-run" in r)
    f30k_tr1 = next(r for r in board.split("<tr>") if "scl-f30k" in r and ">tr_r1<" in r)
    assert "95.90" in f30k_tr1 and "neg" in f30k_tr1
    assert "84.27" not in nlvr2_row and "pos" not in nlvr2_row and "neg" not in nlvr2_row


@needs_browser
def test_drift_shows_on_the_page(tmp_path):
    page, _ = _render(tmp_path, drift=True)
    dom, console = load_in_browser(page)
    assert console == []
    assert "DRIFT" in dom and "drift" in dom.split("drift-table")[1]


@needs_browser
def test_the_browser_check_can_fail(tmp_path):
    """The harness really sees console errors and failed network loads (so a pass means something)."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><img src='https://example.com/x.png'><script>nosuchfunction()</script></body></html>")
    _, console = load_in_browser(bad)
    assert any("nosuchfunction" in line for line in console), console
