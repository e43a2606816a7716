"""`sclbench browse` sites in a real headless Chromium, driven through the DevTools protocol (browse_cdp.py).

Each page must load from disk with no console message, no uncaught exception and no request other than
file:// (network, data: and blob: included), every thumbnail must decode (naturalWidth > 0), the filters
must change the visible count, the keys must move the focus, and a comparison of two runs must list
exactly the samples that flipped. The demo tests build the site from the committed `results/demo/`
records over the synthetic data regenerated as the demo made it (seed and scale from the records).
Without chromium the tests skip and say so (CI installs it: `apt-get install -y chromium`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from browse_cdp import BROWSER, Browser, problems, requested_urls
from PIL import Image

from sclbench.cli import main
from sclbench.results import ResultRecord, collect
from sclbench.results.browse import MediaItem, SplitView, build_site, page_path
from sclbench.results.browse.cards import family_of, outcome, sample_score

needs_browser = pytest.mark.skipif(BROWSER is None, reason="no chromium on PATH (apt-get install -y chromium)")
pytestmark = needs_browser

DEMO = Path(__file__).resolve().parents[2] / "results" / "demo"

# Waits for every <img> to finish, then reports what a reader would see.
PAGE_STATE = """(async () => {
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  const count = document.getElementById("count");
  return {
    images: imgs.length,
    undecoded: imgs.filter(i => !(i.naturalWidth > 0)).map(i => i.getAttribute("src")),
    shown: count ? Number(count.dataset.shown) : null,
    cards: document.querySelectorAll("article.card").length,
    brokenNote: document.getElementById("broken") ? !document.getElementById("broken").hidden : false,
    cardsWithPicture: Array.from(document.querySelectorAll("article.card")).filter(
      c => c.querySelector(".media img")).length,
  };
})()"""


def _choose(name: str, value: str) -> str:
    return f"""(() => {{
      const box = document.querySelector('select[name="{name}"]');
      box.value = {json.dumps(value)};
      box.dispatchEvent(new Event("change"));
      return Number(document.getElementById("count").dataset.shown);
    }})()"""


VISIBLE_IDS = "Array.from(document.querySelectorAll('article.card')).map(c => c.dataset.id)"


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


def _visit(browser: Browser, page: Path, fragment: str = ""):
    tab = browser.open(page.resolve().as_uri() + fragment)
    state = tab.evaluate(PAGE_STATE)
    return tab, state


def _assert_clean(tab, state, first_load: bool = True) -> None:
    events = tab.events()
    assert problems(events) == [], problems(events)
    urls = requested_urls(events)
    assert urls or not first_load  # the page itself at least
    assert all(u.startswith("file://") for u in urls), [u for u in urls if not u.startswith("file://")]
    assert state["undecoded"] == [] and not state["brokenNote"], state


# ---- a small constructed site: every control, quickly ----------------------------------------------------
def _small_site(tmp_path: Path) -> Path:
    preds = []
    for q in range(30):
        score = [1.0, 0.0, 0.6][q % 3]
        preds.append({"id": q, "question_id": q, "answer": "2", "scores": {"accuracy": score}})
    ResultRecord("vqa", "val", {"accuracy": 53.3}, "vqaEval-official", checkpoint={"name": "a"}).save(
        tmp_path / "a", predictions=preds
    )
    view = SplitView(family="vqa")
    for q in range(30):
        view.questions[str(q)] = {
            "question": f"How many things {q}?",
            "answers": ["2"] * 6 + ["3"] * 4,
            "answer_type": "number" if q % 2 else "yes/no",
            "question_type": "how many",
            "image_id": str(q % 5),
        }
    colours = [(200, 20, 20), (20, 200, 20), (20, 20, 200), (200, 200, 20), (20, 200, 200)]
    for i, colour in enumerate(colours):
        view.media[str(i)] = MediaItem(str(i), f"t:{i}", lambda n, c=colour: [Image.new("RGB", (300, 200), c)])
    summary = build_site(collect(tmp_path / "a"), tmp_path / "site", view_for=lambda r: view)
    return tmp_path / "site" / summary.pages[0].page


def test_filters_search_keys_and_fragment(tmp_path, browser):
    page = _small_site(tmp_path)
    tab, state = _visit(browser, page)
    _assert_clean(tab, state)
    assert state["shown"] == state["cards"] == 30 and state["images"] == 30 and state["cardsWithPicture"] == 30
    assert tab.evaluate(_choose("outcome", "wrong")) == 10
    assert tab.evaluate(_choose("facet:answer type", "number")) == 5  # both filters at once
    assert tab.evaluate("location.hash") == "#outcome=wrong&answer%20type=number"
    assert tab.evaluate(_choose("outcome", "")) == 15
    assert tab.evaluate(_choose("facet:answer type", "")) == 30
    # search by id
    tab.evaluate(
        "(() => { const s = document.getElementById('search'); s.value = '2'; s.dispatchEvent(new Event('input')); })()"
    )
    assert sorted(tab.evaluate(VISIBLE_IDS)) == sorted(str(q) for q in range(30) if "2" in str(q))
    tab.evaluate(
        "(() => { const s = document.getElementById('search'); s.value = '';"
        " s.dispatchEvent(new Event('input')); s.blur(); })()"
    )
    # keyboard: j / ArrowDown forward, k / ArrowUp back, on the cards in their order (failures first)
    order = tab.evaluate(VISIBLE_IDS)
    tab.key("j", "KeyJ", 74)
    assert tab.evaluate("document.activeElement.dataset.id") == order[0]
    tab.key("j", "KeyJ", 74)
    tab.key("ArrowDown", "ArrowDown", 40)
    assert tab.evaluate("document.activeElement.dataset.id") == order[2]
    tab.key("k", "KeyK", 75)
    assert tab.evaluate("document.activeElement.dataset.id") == order[1]
    _assert_clean(tab, tab.evaluate(PAGE_STATE), first_load=False)
    tab.close()
    # a linked view: the fragment sets the filters when the page opens
    tab, state = _visit(browser, page, "#outcome=partial")
    assert state["shown"] == 10 and tab.evaluate('document.querySelector("select[name=outcome]").value') == "partial"
    tab.close()


def test_the_harness_sees_network_requests_and_errors(tmp_path, browser):
    """A page that reaches out or throws is caught (so a clean pass means something)."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<html><body><img src='https://example.com/x.png'><img src='thumbs/missing.jpg'>"
        "<script>console.log('hello'); nosuchfunction()</script></body></html>"
    )
    tab, state = _visit(browser, bad)
    events = tab.events()
    assert any("nosuchfunction" in p for p in problems(events)) and any("console.log" in p for p in problems(events))
    assert any(u.startswith("https://") for u in requested_urls(events))
    assert len(state["undecoded"]) == 2
    tab.close()


# ---- the demo's results --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    """The synthetic data the demo's records were evaluated on, regenerated with their seed and scale."""
    from sclbench.data.synthetic import generate

    records = collect(DEMO)
    marker = records[0].extra["synthetic_data"]
    tasks = sorted({r.task for r in records})
    return generate(tmp_path_factory.mktemp("demo_data"), seed=marker["seed"], scale=marker["scale"], parts=tasks)


def _perturbed_copy(out: Path, every: int = 4) -> dict[str, tuple[set[str], set[str]]]:
    """A second run: the demo's records with every `every`-th sample's outcome turned over. Returns, per
    record page, the ids expected as (A right B wrong, B right A wrong)."""
    expected = {}
    for record in collect(DEMO):
        relative = page_path(record).as_posix()  # A's page, where the comparison shows
        preds = record.read_predictions()
        family = family_of("", str(record.config.get("card", {}).get("family", "")), preds)
        ab, ba = set(), set()
        for i, p in enumerate(preds):
            if i % every:
                continue
            key, score = sample_score(family, p)
            right = outcome(score) == "right"
            p["scores"] = {k: (0.0 if right else 1.0) for k in p["scores"]}
            (ab if right else ba).add(str(p["id"]))
        record.checkpoint = {**record.checkpoint, "name": "demo-perturbed"}
        record.save(out, predictions=preds)
        expected[relative] = (ab, ba)
    return expected


@pytest.mark.slow
def test_demo_site_loads_clean_with_every_thumbnail(tmp_path, browser, demo_data):
    site = tmp_path / "site"
    assert main(["browse", str(DEMO), "-o", str(site), "--data-root", str(demo_data)]) == 0
    records = collect(DEMO)
    pages = [site / page_path(r) for r in records]
    assert all(p.is_file() for p in pages)
    thumbs = list((site / "thumbs").iterdir())
    assert thumbs and all(max(Image.open(t).size) <= 160 for t in thumbs)
    tab, state = _visit(browser, site / "index.html")
    _assert_clean(tab, state)
    links = tab.evaluate("Array.from(document.querySelectorAll('a')).map(a => a.href)")
    assert sorted(links) == sorted(p.resolve().as_uri() for p in pages)
    tab.close()
    images = 0
    for record, page in zip(records, pages):
        tab, state = _visit(browser, page)
        _assert_clean(tab, state)
        preds = record.read_predictions()
        assert state["shown"] == state["cards"] == len(preds)
        images += state["images"]
        if "differ from those this record was evaluated on" not in page.read_text():
            assert state["cardsWithPicture"] > 0, f"{page.name}: no card shows a picture"
        family = family_of("", record.config["card"]["family"], preds)
        wrong = sum(outcome(sample_score(family, p)[1]) == "wrong" for p in preds)
        assert 0 < wrong < len(preds)
        assert tab.evaluate(_choose("outcome", "wrong")) == wrong
        tab.close()
    assert images >= len(thumbs)  # every thumbnail was shown (and decoded) somewhere
    # a rerun into the same site decodes nothing again
    assert main(["browse", str(DEMO), "-o", str(site), "--data-root", str(demo_data)]) == 0
    assert sorted(t.name for t in (site / "thumbs").iterdir()) == sorted(t.name for t in thumbs)


@pytest.mark.slow
def test_demo_compare_lists_the_flipped_samples(tmp_path, browser, demo_data):
    expected = _perturbed_copy(tmp_path / "b")
    site = tmp_path / "site"
    args = ["browse", str(DEMO), "--compare", str(tmp_path / "b"), "-o", str(site), "--data-root", str(demo_data)]
    assert main(args) == 0
    tab, state = _visit(browser, site / "index.html")
    _assert_clean(tab, state)
    tab.close()
    for relative, (ab, ba) in expected.items():
        tab, state = _visit(browser, site / relative)
        _assert_clean(tab, state)
        assert ab and ba, relative
        assert tab.evaluate(_choose("flip", "ab")) == len(ab)
        assert set(tab.evaluate(VISIBLE_IDS)) == ab
        assert tab.evaluate(_choose("flip", "ba")) == len(ba)
        assert set(tab.evaluate(VISIBLE_IDS)) == ba
        tab.close()
        # the same list from a link (the index links each count to its filtered page)
        tab, state = _visit(browser, site / relative, "#flip=ab")
        assert state["shown"] == len(ab)
        tab.close()
