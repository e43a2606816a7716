"""The leaderboard as the papers print it (`sclbench table`, layout `paper`): one row per checkpoint, one
column per task's main metric, each model's published numbers as a row of their own beside its
reproduced rows; split, zero-shot and synthetic rules; the text formats (markdown, rich, csv, json)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math

import pytest

from sclbench.cli import main
from sclbench.errors import ConfigError, DataError
from sclbench.results import ResultRecord, build_table, collect, render
from sclbench.results.leaderboard import ALL_RECALLS, board_metrics, build_leaderboard
from sclbench.results.paper import PaperNumber, card_paper_numbers, model_family, registered_name, same_weights

RETRIEVAL = {"tr_r1": 80.0, "tr_r5": 95.0, "tr_r10": 98.0, "ir_r1": 60.0, "ir_r5": 85.0, "ir_r10": 90.0, "r_mean": 84.7}
VIDEO = {"t2v_r1": 40.0, "t2v_r5": 70.0, "t2v_medr": 2.0, "v2t_r1": 41.0, "v2t_r5": 71.0, "v2t_medr": 2.0}
PAPER = [
    PaperNumber("vqa", "test-dev", "accuracy", 78.72, "scl paper", True, model="scl"),
    PaperNumber("nlvr2", "test-P", "accuracy", 84.27, "scl paper", True, model="scl"),
    PaperNumber("f30k", "test", "tr_r1", 95.9, "scl paper", False, model="scl"),
    PaperNumber("f30k", "test", "ir_r1", 84.56, "scl paper", False, model="scl"),
    PaperNumber("f30k", "test", "tr_r1", 94.3, "meter paper", False, model="meter"),
    PaperNumber("vqa", "test-dev", "accuracy", 77.68, "meter paper", False, model="meter"),
    PaperNumber("vqa", "test-dev", "accuracy", 71.26, "vilt paper", False, model="vilt"),
    PaperNumber("f30k", "test", "tr_r1", 88.0, "clip paper", False, zero_shot=True, model="clip"),
    PaperNumber("msrvtt", "test", "t2v_r1", 43.2, "scl paper", False, model="scl"),
]


def rec(task, split, metrics, name, model=None, zero_shot=False, synthetic=False, created="2026-01-01T00:00:00+00:00"):
    checkpoint = {"name": name, **({"model": model} if model else {})}
    return ResultRecord(
        task,
        split,
        dict(metrics),
        "scorer",
        protocol={"zero_shot": True} if zero_shot else {},
        checkpoint=checkpoint,
        extra={"synthetic_data": {"synthetic": True}} if synthetic else {},
        created_at=created,
    )


def board_of(records, paper=PAPER, **kw):
    return build_leaderboard(build_table(records, paper=paper), **kw)


def row(board, label):
    return next(r for r in board.rows if r.label == label)


def values(board, label):
    return {c.key(): cell.value for c, cell in row(board, label).cells.items()}


class TestColumns:
    def test_several_checkpoints_by_several_tasks(self):
        board = board_of(
            [
                rec("vqa", "test-dev", {"accuracy": 78.0, "accuracy_yes_no": 90.0}, "scl-vqa"),
                rec("nlvr2", "test1", {"accuracy": 83.0, "consistency": 60.0}, "scl-nlvr2"),
                rec("f30k", "test", RETRIEVAL, "scl-f30k"),
                rec("msrvtt", "test", VIDEO, "scl-msrvtt"),
                rec("f30k", "test", RETRIEVAL, "scl-all"),
                rec("vqa", "test-dev", {"accuracy": 77.0}, "scl-all"),
            ]
        )
        # paper order of the tasks; per task the conventional pair plus the card's metrics.main
        assert [c.key() for c in board.columns] == [
            "vqa/test-dev/accuracy",
            "nlvr2/test1/accuracy",
            "f30k/test/tr_r1",
            "f30k/test/ir_r1",
            "f30k/test/r_mean",
            "msrvtt/test/t2v_r1",
            "msrvtt/test/v2t_r1",
        ]
        assert [r.label for r in board.rows if not r.published] == [
            "scl-all",
            "scl-f30k",
            "scl-msrvtt",
            "scl-nlvr2",
            "scl-vqa",
        ]
        assert values(board, "scl-all") == {"vqa/test-dev/accuracy": 77.0, **{
            f"f30k/test/{m}": RETRIEVAL[m] for m in ("tr_r1", "ir_r1", "r_mean")}}  # fmt: skip
        assert values(board, "scl-vqa") == {"vqa/test-dev/accuracy": 78.0}  # missing cells stay missing

    def test_different_splits_are_different_columns_aliases_are_one(self):
        board = board_of(
            [
                rec("vqa", "test-dev", {"accuracy": 78.0}, "a"),
                rec("vqa", "minival", {"accuracy": 80.0}, "a"),
                rec("nlvr2", "test-P", {"accuracy": 84.0}, "b"),
                rec("nlvr2", "test1", {"accuracy": 83.0}, "c"),
            ]
        )
        keys = [c.key() for c in board.columns]
        assert keys == ["vqa/test-dev/accuracy", "vqa/minival/accuracy", "nlvr2/test1/accuracy"]
        assert values(board, "b") == {"nlvr2/test1/accuracy": 84.0}
        # the published test-P number lands in the test1 column, matched by canonical split
        assert values(board, "scl (paper)")["nlvr2/test1/accuracy"] == 84.27

    def test_two_spellings_of_one_split_keep_the_newest_record(self):
        board = board_of(
            [
                rec("nlvr2", "test-P", {"accuracy": 84.0}, "a", created="2026-01-02T00:00:00+00:00"),
                rec("nlvr2", "test1", {"accuracy": 83.0}, "a", created="2026-01-01T00:00:00+00:00"),
            ]
        )
        assert values(board, "a") == {"nlvr2/test1/accuracy": 84.0}

    @pytest.mark.parametrize("recalls", [(1,), ALL_RECALLS])
    def test_retrieval_recalls(self, recalls):
        cols = board_metrics("f30k", RETRIEVAL, recalls)
        assert cols == [f"tr_r{k}" for k in recalls] + [f"ir_r{k}" for k in recalls] + ["r_mean"]
        assert board_metrics("msrvtt", VIDEO, recalls) == [f"t2v_r{k}" for k in recalls if k != 10] + [
            f"v2t_r{k}" for k in recalls if k != 10
        ]  # only what the records hold

    def test_other_tasks(self, tmp_path, monkeypatch):
        assert board_metrics("nlvr2", {"accuracy": 1, "consistency": 2}) == ["accuracy"]
        assert board_metrics("vqa", {"accuracy": 1, "accuracy_other": 2}) == ["accuracy"]
        assert board_metrics("no-such-task", {"b": 1, "a": 2}) == ["a", "b"]  # unknown: every number
        assert board_metrics("../../etc/passwd", {"b": 1}) == ["b"]  # never a path
        # a user's card names its main metric
        (tmp_path / "mine.yaml").write_text("family: vqa\nmetrics:\n  main: f1\n")
        monkeypatch.setenv("SCLBENCH_TASKS_DIR", str(tmp_path))
        assert board_metrics("mine", {"f1": 1, "precision": 2}) == ["f1"]

    def test_zero_shot_is_a_column_group_of_its_own(self):
        board = board_of(
            [
                rec("f30k", "test", {"tr_r1": 90.0, "ir_r1": 80.0}, "scl-f30k"),
                rec("f30k", "test", {"tr_r1": 70.0, "ir_r1": 50.0}, "scl-pretrain", zero_shot=True),
                rec("f30k", "test", {"tr_r1": 81.0, "ir_r1": 61.0}, "openai/clip", model="clip", zero_shot=True),
            ]
        )
        assert [board.group_title(g) for g, _ in board.groups()] == ["f30k test", "f30k test zero-shot"]
        assert values(board, "scl-pretrain") == {"f30k/test/zero-shot/tr_r1": 70.0, "f30k/test/zero-shot/ir_r1": 50.0}
        # published zero-shot numbers meet zero-shot columns only, fine-tuned ones the fine-tuned columns
        assert values(board, "clip (paper)") == {"f30k/test/zero-shot/tr_r1": 88.0}
        assert values(board, "scl (paper)") == {"f30k/test/tr_r1": 95.9, "f30k/test/ir_r1": 84.56}


class TestPublishedRows:
    def test_published_row_sits_directly_above_its_models_rows(self):
        board = board_of(
            [
                rec("vqa", "test-dev", {"accuracy": 70.0}, "dandelin/vilt-vqa", model="vilt"),
                rec("vqa", "test-dev", {"accuracy": 78.0}, "scl-vqa"),
                rec("vqa", "test-dev", {"accuracy": 78.5}, "runs/vqa/best"),
            ]
        )
        labels = [r.label for r in board.rows]
        # scl first (the paper reproduced here), then the other families; a published model with no
        # record of its own (meter) still gets its row
        assert labels == ["scl (paper)", "runs/vqa/best", "scl-vqa", "meter (paper)", "vilt (paper)",
                          "dandelin/vilt-vqa"]  # fmt: skip
        assert [r.kind for r in board.rows].count("published") == 3
        assert values(board, "vilt (paper)") == {"vqa/test-dev/accuracy": 71.26}

    def test_deltas_against_the_models_own_published_number(self):
        board = board_of(
            [
                rec("vqa", "test-dev", {"accuracy": 70.0}, "vilt-run", model="vilt"),
                rec("vqa", "test-dev", {"accuracy": 78.0}, "scl-vqa"),
            ]
        )
        cell = lambda label: next(iter(row(board, label).cells.values()))  # noqa: E731
        assert cell("vilt-run").delta == pytest.approx(70.0 - 71.26)
        assert cell("scl-vqa").delta == pytest.approx(78.0 - 78.72)

    def test_a_registered_meter_checkpoint_is_set_beside_meters_numbers(self):
        assert model_family({"name": "meter-f30k"}) == "meter"
        assert model_family({"name": "meter-pretrain"}) == "meter"  # an alias of a meter entry
        assert model_family({"name": "my-run"}) == "scl" and model_family({"name": "x", "model": "blip"}) == "blip"
        (r,) = build_table([rec("f30k", "test", {"tr_r1": 90.0, "ir_r1": 80.0}, "meter-f30k")], paper=PAPER)
        assert r.model == "meter" and r.paper["tr_r1"].value == 94.3 and "ir_r1" not in r.paper

    def test_a_block_naming_its_weights_is_compared_with_those_weights_only(self):
        registry = {
            "clip-b": {"family": "clip", "repo": "openai/clip-vit-base-patch32"},
            "clip-l": {"family": "clip", "repo": "openai/clip-vit-large-patch14-336"},
            "clip-large": {"alias": "clip-l"},
            "scl-a": {"repo": "jiyatai/SCL"},
            "scl-b": {"repo": "jiyatai/SCL"},
        }
        assert registered_name("openai/clip-vit-large-patch14-336", registry) == "clip-l"
        assert registered_name("clip-large", registry) == "clip-l"
        assert registered_name("jiyatai/SCL", registry) is None  # two entries share the repo: unknown
        paper = card_paper_numbers("f30k", {"clip": {"source": "s", "checkpoint": "clip-large", "zero_shot": True,
                                                     "test": {"tr_r1": 88.0}}})  # fmt: skip
        assert paper[0].checkpoint == "clip-large" and paper[0].zero_shot and len(paper) == 1
        cases = [("clip-l", True), ("openai/clip-vit-large-patch14-336", True), ("clip-large", True)]
        cases += [("clip-b", False), ("openai/clip-vit-base-patch32", False), ("runs/mine", True)]
        for name, compared in cases:
            assert same_weights(paper[0], {"name": name, "model": "clip"}, registry) is compared, name
        assert same_weights(PAPER[0], {"name": "anything"}, registry)  # a block naming no weights
        # in the table: the B/32 record is not set against the L/14 number (but both rows are shown)
        (r,) = build_table([rec("f30k", "test", {"tr_r1": 50.0}, "clip-vit-b32", model="clip", zero_shot=True)],
                           paper=[dataclasses.replace(paper[0], checkpoint="clip-vit-l14-336")])  # fmt: skip
        assert r.paper == {}
        board = build_leaderboard([r], paper=[dataclasses.replace(paper[0], checkpoint="clip-vit-l14-336")])
        assert [b.label for b in board.rows] == ["clip (paper)", "clip-vit-b32"]

    def test_a_user_model_without_published_numbers_has_no_published_row(self):
        board = board_of([rec("vqa", "test-dev", {"accuracy": 60.0}, "mine", model="my_pkg.models:build")])
        # families after scl in name order: the user's own among them, with no published row
        assert [r.label for r in board.rows] == ["scl (paper)", "meter (paper)", "mine", "vilt (paper)"]
        assert row(board, "mine").model == "my_pkg.models:build" and row(board, "mine").cells

    def test_published_numbers_only_in_columns_with_a_record(self):
        board = board_of([rec("nlvr2", "dev", {"accuracy": 80.0}, "scl-nlvr2")])
        # the paper has no dev number here, VQA and F30K are not columns: no published row at all
        assert [r.label for r in board.rows] == ["scl-nlvr2"]

    def test_synthetic_records_never_beside_paper_numbers(self):
        board = board_of(
            [
                rec("vqa", "test-dev", {"accuracy": 30.0}, "demo-scl", synthetic=True),
                rec("f30k", "test", {"tr_r1": 90.0, "ir_r1": 80.0}, "scl-f30k"),
                rec("f30k", "test", {"tr_r1": 20.0, "ir_r1": 10.0}, "my-synth", synthetic=True),
            ]
        )
        # the VQA column holds only synthetic numbers: no published number there
        assert not any(c.task == "vqa" for r in board.rows if r.published for c in r.cells)
        # synthetic rows come last, never between a published row and its model's rows
        assert [r.label for r in board.rows] == ["scl (paper)", "scl-f30k", "meter (paper)", "demo-scl", "my-synth"]
        assert all(row(board, n).synthetic and not any(c.delta for c in row(board, n).cells.values())
                   for n in ("demo-scl", "my-synth"))  # fmt: skip

    def test_only_synthetic_records_gives_no_published_rows(self):
        board = board_of([rec("vqa", "test-dev", {"accuracy": 30.0}, "demo-scl", synthetic=True)])
        assert [r.kind for r in board.rows] == ["synthetic"]

    def test_plain_row_lists_show_the_numbers_they_were_matched_with(self):
        rows = build_table([rec("vqa", "test-dev", {"accuracy": 78.0}, "scl-vqa")], paper=PAPER)
        board = build_leaderboard(list(rows))  # a plain list: no memory of every published model
        assert [r.label for r in board.rows] == ["scl (paper)", "scl-vqa"]
        board = build_leaderboard(list(rows), paper=PAPER[:1])
        assert values(board, "scl (paper)") == {"vqa/test-dev/accuracy": 78.72}


class TestNumbers:
    def test_nan_is_shown_and_a_non_number_refused(self, tmp_path):
        board = board_of([rec("vqa", "test-dev", {"accuracy": math.nan}, "broken")])
        assert math.isnan(values(board, "broken")["vqa/test-dev/accuracy"])
        rows = build_table([rec("vqa", "test-dev", {"accuracy": math.nan}, "broken")], paper=PAPER)
        assert "| broken | scl | NaN |" in render(rows, "markdown", layout="paper")
        assert json.loads(render(rows, "json"))["rows"][1]["cells"]["vqa/test-dev/accuracy"]["value"] == "NaN"
        with pytest.raises(DataError, match="accuracy"):
            build_table([rec("vqa", "test-dev", {"accuracy": "78"}, "text")])

    def test_intervals_come_from_the_predictions(self, tmp_path):
        preds = [{"id": i, "scores": {"accuracy": float(i < 70)}} for i in range(100)]
        rec("nlvr2", "test1", {"accuracy": 70.0}, "scl-nlvr2").save(tmp_path, predictions=preds)
        board = build_leaderboard(build_table(collect(tmp_path), paper=PAPER, with_stats=True))
        cell = next(iter(row(board, "scl-nlvr2").cells.values()))
        assert cell.ci[0] < 70.0 < cell.ci[1] and cell.p_value < 0.01
        assert cell.delta == pytest.approx(70.0 - 84.27)


class TestTextFormats:
    RECORDS = [
        rec("vqa", "test-dev", {"accuracy": 78.0}, "scl-vqa"),
        rec("f30k", "test", RETRIEVAL, "scl-f30k"),
        rec("nlvr2", "test1", {"accuracy": 55.0}, "demo-scl", synthetic=True),
    ]

    def rows(self):
        return build_table(self.RECORDS, paper=PAPER)

    def test_markdown_leaderboard_then_the_runs(self):
        md = render(self.rows(), "markdown")
        board, runs = md.split("## Leaderboard")[1].split("\n## ", 1)
        lines = [line for line in board.splitlines() if line.startswith("| ")]
        assert lines[0].startswith(
            "| checkpoint | model | vqa test-dev accuracy | nlvr2 test1 accuracy | f30k test tr_r1"
        )
        assert [line.split(" | ")[0][2:] for line in lines[1:]] == [
            "scl (paper)", "scl-f30k", "scl-vqa", "meter (paper)", "vilt (paper)", "demo-scl (synthetic)"]  # fmt: skip
        assert "| scl (paper) | scl | 78.72 |  | 95.90 | 84.56 |" in board
        assert runs.startswith("f30k") and "| test-dev | scl-vqa | scorer |  | 78.00 | 78.72 | -0.72 |" in runs
        assert "## Leaderboard" not in render(self.rows(), "markdown", layout="runs")
        assert "## f30k" not in render(self.rows(), "markdown", layout="paper")

    def test_markdown_cells_stay_on_their_row(self):
        rows = build_table([rec("vqa", "test-dev", {"accuracy": 78.0}, "two\nlines | and a bar")], paper=PAPER)
        md = render(rows, "markdown", layout="paper")
        assert "| two lines \\| and a bar | scl | 78.00 |" in md

    def test_rich(self):
        text = render(self.rows(), "rich", width=250)
        assert text.index("leaderboard") < text.index("scl (paper)") < text.index("scl-f30k")
        assert "published: meter (paper): meter paper (unverified)" in text

    def test_csv_runs_by_default_and_wide_on_request(self):
        long = list(csv.DictReader(io.StringIO(render(self.rows(), "csv"))))
        assert {r["checkpoint"] for r in long} == {"scl-vqa", "scl-f30k", "demo-scl"}  # records only
        wide = list(csv.DictReader(io.StringIO(render(self.rows(), "csv", layout="paper"))))
        assert [(r["checkpoint"], r["kind"]) for r in wide][:2] == [
            ("scl (paper)", "published"),
            ("scl-f30k", "reproduced"),
        ]
        assert wide[1]["f30k/test/tr_r1"] == "80.0" and wide[1]["vqa/test-dev/accuracy"] == ""
        assert wide[0]["f30k/test/tr_r1"] == "95.9"
        with pytest.raises(ConfigError, match="--layout both"):
            render(self.rows(), "csv", layout="both")
        with pytest.raises(ConfigError, match="--layout"):
            render(self.rows(), "markdown", layout="wide")

    def test_json(self):
        data = json.loads(render(self.rows(), "json"))
        assert [c["key"] for c in data["columns"]][:2] == ["vqa/test-dev/accuracy", "nlvr2/test1/accuracy"]
        by_label = {r["label"]: r for r in data["rows"]}
        assert by_label["scl-vqa"]["cells"]["vqa/test-dev/accuracy"]["record"] == "vqa/vqa_test-dev_scl-vqa.json"
        assert by_label["scl-vqa"]["cells"]["vqa/test-dev/accuracy"]["delta"] == pytest.approx(-0.72)
        assert by_label["scl (paper)"]["kind"] == "published" and by_label["demo-scl"]["kind"] == "synthetic"
        assert {r["checkpoint"] for r in data["runs"]} == {"scl-vqa", "scl-f30k", "demo-scl"}
        linked = json.loads(render(self.rows(), "json", browse="site"))
        assert linked["rows"][2]["cells"]["vqa/test-dev/accuracy"]["link"] == "site/vqa/vqa_test-dev_scl-vqa.html"


class TestCommandLine:
    def test_options(self, tmp_path, capsys):
        for r in TestTextFormats.RECORDS:
            r.save(tmp_path / "results")
        res = str(tmp_path / "results")
        assert main(["table", res, "--format", "markdown", "--layout", "paper", "--all-recalls"]) == 0
        out = capsys.readouterr().out
        assert "f30k test tr_r5" in out and "f30k test ir_r10" in out and "## f30k" not in out
        assert main(["table", res, "--format", "csv", "--layout", "paper"]) == 0
        assert capsys.readouterr().out.startswith("checkpoint,model,kind,")
        assert main(["table", res, "--layout", "paper", "--no-intervals"]) == 0  # rich on the terminal
        assert "scl (paper)" in capsys.readouterr().out
        assert main(["table", res, "--format", "json", "--browse", "https://example.org/site/"]) == 0
        assert "https://example.org/site/vqa/vqa_test-dev_scl-vqa.html" in capsys.readouterr().out
        for bad in (
            ["--layout", "wide"],
            ["--format", "csv", "--layout", "both"],
            ["--format", "markdown", "--browse", "site"],
            ["--format", "html", "--browse", ""],
            ["--format", "html", "--browse", "a\nb"],
            ["--format", "html", "--layout", "paper", "--baseline", res],
        ):
            assert main(["table", res, *bad]) == 2, bad
            err = capsys.readouterr().err
            assert err.count("error:") == 1 and "Traceback" not in err, err
