"""`sclbench browse` without a browser: cards, flips, thumbnails, page layout and the command's errors.

The pages themselves are checked in headless Chromium by test_browse_site.py.
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from sclbench.cli import main
from sclbench.data.records import ImageSource
from sclbench.errors import DataError
from sclbench.metrics.vqa import vqa_accuracy
from sclbench.results import ResultRecord, collect
from sclbench.results.browse import MediaItem, SplitView, build_site, page_path
from sclbench.results.browse.cards import CardMaker, family_of, flip_of, outcome, vqa_answer_table
from sclbench.results.browse.flips import count_flips, pair_records
from sclbench.results.browse.thumbs import MAX_SIDE, Thumbnailer


def _png(mode: str, size=(400, 240)) -> bytes:
    """An encoded picture of a Pillow mode (16-bit grey, palette, alpha, CMYK, ...)."""
    if mode == "I;16":
        img = Image.fromarray((np.arange(size[0] * size[1]) % 65535).astype(np.uint16).reshape(size[1], size[0]))
    else:
        img = Image.new("RGB", size, (200, 30, 60)).convert(mode)
    out = io.BytesIO()
    img.save(out, "TIFF" if mode in ("CMYK", "F", "I") else "PNG")
    return out.getvalue()


def _item(media_id: str, mode: str = "RGB") -> MediaItem:
    source = ImageSource(data=_png(mode))
    return MediaItem(media_id, f"test:{media_id}:{mode}", lambda n, s=source: [s.open()])


def _page_data(path) -> dict:
    text = path.read_text()
    block = re.search(r"<script type='application/json' id='browse-data'>(.*?)</script>", text, re.S)
    assert block, "no data block"
    return json.loads(block.group(1))


# ---- outcomes and flips --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("score", "expected"), [(1.0, "right"), (0.0, "wrong"), (0.3, "partial"), (0.9, "partial"), (None, "unscored")]
)
def test_outcome_classes(score, expected):
    assert outcome(score) == expected


def test_flips_follow_the_compare_rule():
    assert flip_of(1.0, 0.0) == "ab" and flip_of(0.0, 1.0) == "ba"
    assert flip_of(1.0, 0.6) == "ab" and flip_of(0.3, 0.6) == "ba"  # VQA's graded score: higher wins
    assert flip_of(1.0, 1.0) == flip_of(0.3, 0.3) == flip_of(None, 1.0) == ""


def test_count_flips_matches_by_id_in_both_directions():
    a = [{"id": f"text/{i}", "scores": {"ir_r1": float(i % 2)}} for i in range(10)]
    b = [{"id": f"text/{i}", "scores": {"ir_r1": float(i < 5)}} for i in range(1, 12)]
    flips = count_flips("retrieval", a, b)
    assert flips.a_right_b_wrong == ["text/5", "text/7", "text/9"]
    assert flips.b_right_a_wrong == ["text/2", "text/4"]
    assert (flips.common, flips.only_a, flips.only_b) == (9, 1, 2)


def test_family_from_the_card_or_the_predictions():
    assert family_of("", "video_retrieval", []) == "retrieval"
    assert family_of("", "", [{"question_id": 1}]) == "vqa"
    assert family_of("", "", [{"identifier": "dev-1-0-0"}]) == "nlvr2"
    assert family_of("", "", [{"id": "image/0"}]) == "retrieval"
    assert family_of("", "", [{"id": "x"}]) == "generic"


# ---- cards ---------------------------------------------------------------------------------------------
def test_vqa_answer_table_uses_the_official_score():
    answers = ["2"] * 2 + ["3"] * 7 + ["three"]
    table = vqa_answer_table("three", answers)
    assert [(r["answer"], r["count"]) for r in table] == [("3", 7), ("2", 2), ("three", 1)]
    for row in table:
        assert row["credit"] == round(vqa_accuracy(row["answer"], answers), 3)
    assert [r["picked"] for r in table] == [True, False, True]  # "three" normalises to "3"


def test_vqa_card_takes_missing_fields_from_the_split(tmp_path):
    view = SplitView(family="vqa", media={"7": _item("7")})
    view.questions["5"] = {
        "question": "How many?",
        "answers": ["2"] * 10,
        "answer_type": "number",
        "question_type": "how many",
        "image_id": "7",
    }
    maker = CardMaker("vqa", view, Thumbnailer(tmp_path), "../")
    card = maker.card({"id": 5, "question_id": 5, "answer": "2", "scores": {"accuracy": 1.0}}, None)
    assert card["text"] == "How many?" and card["outcome"] == "right"
    assert card["facets"] == {"answer type": "number", "question type": "how many"}
    assert card["media"][0]["src"].startswith("../thumbs/") and card["answers"][0]["count"] == 10
    # a prediction written by a newer task carries its own fields, which win
    newer = {"id": 5, "question_id": 5, "answer": "2", "question": "Own text?", "scores": {"accuracy": 1.0}}
    assert maker.card(newer, None)["text"] == "Own text?"


def test_a_card_without_media_names_the_id(tmp_path):
    maker = CardMaker("nlvr2", SplitView(), Thumbnailer(tmp_path), "")
    card = maker.card(
        {"id": "dev-1-0-0", "identifier": "dev-1-0-0", "prediction": True, "images": ["dev-1-img0", "dev-1-img1"]},
        None,
    )
    assert [m["label"] for m in card["media"]] == ["left dev-1-img0", "right dev-1-img1"]
    assert all("src" not in m for m in card["media"]) and card["outcome"] == "unscored"


def test_retrieval_top5_marks_the_true_item_both_directions(tmp_path):
    view = SplitView(family="retrieval", media={f"img{i}": _item(f"img{i}") for i in range(3)})
    view.gallery = ["img0", "img1", "img2"]
    view.captions = [("a red thing", 0), ("another red thing", 0), ("a blue thing", 1), ("green", 2)]
    maker = CardMaker("retrieval", view, Thumbnailer(tmp_path), "")
    text_query = {
        "id": "text/2",
        "rank": 1,
        "scores": {"ir_r1": 0.0, "ir_r5": 1.0},
        "top": [["image/0", 3.0], ["image/1", 2.0], ["image/2", 1.0]],
    }
    card = maker.card(text_query, None)
    assert card["text"] == "a blue thing" and card["facets"]["direction"] == "text → image"
    assert [c["true"] for c in card["top"]] == [False, True, False]
    assert all(c["media"][0]["src"].startswith("thumbs/") for c in card["top"])
    image_query = {"id": "image/0", "rank": 0, "scores": {"tr_r1": 1.0}, "top": [["text/1", 2.0], ["text/3", 1.0]]}
    card = maker.card(image_query, None)
    assert [(c["text"], c["true"]) for c in card["top"]] == [("another red thing", True), ("green", False)]
    assert card["media"][0]["label"] == "image img0" and card["outcome"] == "right"
    # an old prediction without `top`: the card says so, and shows the true picture of a text query
    card = maker.card({"id": "text/3", "rank": 4, "scores": {"ir_r1": 0.0}}, None)
    assert "topMissing" in card and card["media"][0]["label"] == "true image img2"


# ---- thumbnails ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "LA", "L", "1", "I;16", "CMYK", "F"])
def test_thumbnails_of_every_pillow_mode_are_small_jpegs(tmp_path, mode):
    thumbs = Thumbnailer(tmp_path)
    paths, error = thumbs.get(_item("x", mode))
    assert error == "" and len(paths) == 1
    with Image.open(tmp_path / paths[0]) as img:
        assert img.format == "JPEG" and img.mode == "RGB" and max(img.size) <= MAX_SIDE


def test_thumbnails_are_made_once_and_reused(tmp_path):
    calls = []

    def load(n):
        calls.append(n)
        return [Image.new("RGB", (320, 200), (9, 9, 9)) for _ in range(n)]

    clip = MediaItem("v1", "task:video:v1", load, video=True)
    first = Thumbnailer(tmp_path, frames=3)
    paths, _ = first.get(clip)
    assert len(paths) == 3 and first.made == 3 and calls == [3]
    assert first.get(clip)[0] == paths and calls == [3]  # the same run asks once
    again = Thumbnailer(tmp_path, frames=3)  # a rerun finds the files by name
    assert again.get(clip)[0] == paths and again.made == 0 and again.reused == 3 and calls == [3]


def test_a_corrupt_picture_is_named_not_fatal(tmp_path):
    bad = ImageSource(data=b"not a picture")
    item = MediaItem("broken", "t:broken", lambda n: [bad.open()])
    paths, error = Thumbnailer(tmp_path).get(item)
    assert paths == [] and "corrupt image" in error


# ---- the site ------------------------------------------------------------------------------------------
def _vqa_record(root, name="run-a", flip=()):
    preds = []
    for q in range(12):
        score = 1.0 if q % 3 else 0.0
        if q in flip:
            score = 1.0 - score
        preds.append({"id": q, "question_id": q, "answer": "yes", "scores": {"accuracy": score}})
    accuracy = 100.0 * sum(p["scores"]["accuracy"] for p in preds) / len(preds)
    record = ResultRecord("vqa", "val", {"accuracy": accuracy}, "vqaEval-official", checkpoint={"name": name})
    record.save(root, predictions=preds)
    return record


def test_site_layout_failures_first_and_json_escaping(tmp_path):
    _vqa_record(tmp_path / "results")
    hostile = SplitView(family="vqa")
    hostile.questions = {str(q): {"question": f"</script><script>alert({q})</script> & more"} for q in range(12)}
    records = collect(tmp_path / "results")
    summary = build_site(records, tmp_path / "site", view_for=lambda r: hostile)
    page = tmp_path / "site" / page_path(records[0])
    assert page_path(records[0]).as_posix() == "vqa/vqa_val_run-a.html" and page.is_file()
    assert (tmp_path / "site" / "index.html").is_file() and summary.pages[0].shown == 12
    for asset in ("browse.css", "browse.js"):
        assert (tmp_path / "site" / "assets" / asset).stat().st_size > 500
    html = page.read_text()
    assert html.count("</script>") == 2  # the data block's and the script's: the question did not close one
    data = _page_data(page)
    assert data["samples"][0]["text"].startswith("</script>")
    scores = [s["score"] for s in data["samples"]]
    assert scores == sorted(scores) and scores[0] == 0.0  # failures first
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", html)


def test_two_records_for_one_page_are_refused(tmp_path):
    _vqa_record(tmp_path / "results" / "run1")
    _vqa_record(tmp_path / "results" / "run2")
    with pytest.raises(DataError, match="would share the page vqa/vqa_val_run-a.html"):
        build_site(collect(tmp_path / "results"), tmp_path / "site")


def test_max_samples_keeps_the_failures(tmp_path):
    _vqa_record(tmp_path / "results")
    summary = build_site(collect(tmp_path / "results"), tmp_path / "site", max_samples=3)
    data = _page_data(tmp_path / "site" / summary.pages[0].page)
    assert len(data["samples"]) == 3 and data["total"] == 12
    assert {s["outcome"] for s in data["samples"]} == {"wrong"}


def test_compare_pairs_by_task_and_split_and_lists_flips(tmp_path):
    _vqa_record(tmp_path / "a")
    _vqa_record(tmp_path / "b", name="run-b", flip=(0, 1, 2))
    summary = build_site(collect(tmp_path / "a"), tmp_path / "site", compare=collect(tmp_path / "b"))
    page = summary.pages[0]
    assert page.other.checkpoint_name == "run-b"
    assert page.flips.a_right_b_wrong == ["1", "2"] and page.flips.b_right_a_wrong == ["0"]
    data = _page_data(tmp_path / "site" / page.page)
    assert [s["id"] for s in data["samples"][:3]] == ["0", "1", "2"]  # flips first
    assert data["compare"]["aRightBWrong"] == ["1", "2"]
    index = (tmp_path / "site" / "index.html").read_text()
    assert "vqa/vqa_val_run-a.html#flip=ab'>2<" in index


def test_browse_compare_lists_what_sclbench_compare_lists(tmp_path):
    from sclbench.app.browse import browse
    from sclbench.app.compare import compare_records

    _vqa_record(tmp_path / "a")
    _vqa_record(tmp_path / "b", name="run-b", flip=(0, 1, 2, 4))
    summary = browse(tmp_path / "a", tmp_path / "site", compare=tmp_path / "b", media=False)
    reference = compare_records(collect(tmp_path / "a")[0], collect(tmp_path / "b")[0], resamples=10)
    row = reference.metrics["accuracy"]
    page = summary.pages[0]
    assert page.flips.a_right_b_wrong == [str(i) for i in row.flipped_a_to_b] == ["1", "2", "4"]
    assert page.flips.b_right_a_wrong == [str(i) for i in row.flipped_b_to_a] == ["0"]
    html = (tmp_path / "site" / page.page).read_text()
    assert f"accuracy: B - A = {row.difference:+.2f} points" in html
    flips_on_cards = {s["id"]: s["flip"] for s in _page_data(tmp_path / "site" / page.page)["samples"]}
    assert {k for k, v in flips_on_cards.items() if v} == {"0", "1", "2", "4"}


def test_pairing_prefers_the_same_checkpoint_name(tmp_path):
    a = ResultRecord("f30k", "test", {"tr_r1": 1.0}, "s", checkpoint={"name": "x"})
    b = [ResultRecord("f30k", "test", {"tr_r1": 1.0}, "s", checkpoint={"name": n}) for n in ("y", "x")]
    other = ResultRecord("f30k", "val", {"tr_r1": 1.0}, "s", checkpoint={"name": "x"})
    assert pair_records([a], b)[0] is b[1]
    assert pair_records([a], [other]) == [None]


# ---- the command ---------------------------------------------------------------------------------------
def test_cli_no_media_and_the_missing_data_root(tmp_path, capsys):
    _vqa_record(tmp_path / "results")
    assert main(["browse", str(tmp_path / "results"), "-o", str(tmp_path / "site"), "--no-media"]) == 0
    assert "1 page(s)" in capsys.readouterr().out
    assert main(["browse", str(tmp_path / "results"), "-o", str(tmp_path / "site2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--data-root" in err[0]


@pytest.mark.parametrize(
    "args",
    [
        ["browse", "{tmp}/nothing", "-o", "{tmp}/site"],
        ["browse", "{tmp}/empty", "-o", "{tmp}/site"],
        ["browse", "{tmp}/results", "-o", "{tmp}/site", "--compare", "{tmp}/empty", "--no-media"],
        ["browse", "{tmp}/results", "-o", "{tmp}/site", "--max-samples", "-1"],
        ["browse", "{tmp}/results", "-o", "{tmp}/site", "--frames", "0"],
        ["browse", "{tmp}/results", "-o", "{tmp}/results/vqa/vqa_val_run-a.json"],
        ["browse", "{tmp}/results", "-o", "{tmp}/site", "--data-root", "{tmp}/nothing"],
        ["browse", "{tmp}/results", "-o", "{tmp}/site", "--data-root", "{tmp}/empty"],
    ],
)
def test_cli_bad_inputs_are_one_error_line(tmp_path, capsys, args):
    _vqa_record(tmp_path / "results")
    (tmp_path / "empty").mkdir()
    assert main([a.format(tmp=tmp_path) for a in args]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error:"), err


# ---- the task's own readers (app/browse.py) ------------------------------------------------------------
def test_data_root_is_a_folder_per_task_or_the_task_folder(tmp_path):
    from sclbench.app.browse import SplitViews

    record = ResultRecord("f30k", "test", {"tr_r1": 1.0}, "s", checkpoint={"name": "x"})
    (tmp_path / "data" / "f30k").mkdir(parents=True)
    assert SplitViews(tmp_path / "data").root_for(record) == tmp_path / "data" / "f30k"
    assert SplitViews(tmp_path / "data" / "f30k").root_for(record) == tmp_path / "data" / "f30k"
    with pytest.raises(DataError, match="--data-root DIR"):
        SplitViews(None).root_for(record)
    record.config = {"card": {"data": {"root": str(tmp_path / "data" / "f30k")}}}  # the record says where
    assert SplitViews(None).root_for(record) == tmp_path / "data" / "f30k"


@pytest.mark.parametrize("task", ["nlvr2", "f30k", "msrvtt"])
def test_cards_find_their_media_through_the_task_readers(tmp_path, synth_root, task):
    """Old-style predictions (ids only) of a real split: every card gets its pictures and texts."""
    from sclbench.app.browse import browse
    from sclbench.tasks import get_task

    split = {"nlvr2": "test1", "f30k": "test", "msrvtt": "test"}[task]
    records = get_task(task, data_root=synth_root / task).records(split)
    if task == "nlvr2":
        preds = [{"id": r.identifier, "identifier": r.identifier, "prediction": True} for r in records]
        for p, r in zip(preds, records):
            p["scores"] = {"accuracy": float(r.label is True)}
    else:
        kind = "video" if task == "msrvtt" else "image"
        preds = [{"id": f"{kind}/{i}", "rank": i % 3, "scores": {"r1": float(i % 3 == 0)}} for i in range(len(records))]
        preds += [{"id": f"text/{t}", "rank": 0, "scores": {"r1": 1.0}} for t in range(len(records))]
    metric = 100.0 * sum(next(iter(p["scores"].values())) for p in preds) / len(preds)
    ResultRecord(task, split, {"m": metric}, "s", checkpoint={"name": "x"}).save(tmp_path / "res", predictions=preds)
    summary = browse(tmp_path / "res", tmp_path / "site", data_root=synth_root, frames=3)
    data = _page_data(tmp_path / "site" / summary.pages[0].page)
    assert len(data["samples"]) == len(preds) and summary.thumbnails_made > 0
    for card in data["samples"]:
        pictures = [m for m in card["media"] if m.get("src")]
        if task == "nlvr2":
            assert len(pictures) == 2 and card["text"] and card["pair"]
        elif card["id"].startswith("text/"):
            assert card["text"] and pictures  # the caption and its true picture (no top list kept)
        else:
            assert len(pictures) == (3 if task == "msrvtt" else 1) and card["strip"] == (task == "msrvtt")
        for m in pictures:
            assert (tmp_path / "site" / m["src"].removeprefix("../")).is_file()
