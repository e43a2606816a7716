"""Result records (round trip, layout, provenance helpers) and the generated tables."""

import json

import numpy as np
import pytest

from sclbench.cli import main
from sclbench.errors import DataError
from sclbench.results import (
    ResultRecord,
    build_table,
    canonical_split,
    collect,
    environment_info,
    fingerprint_files,
    load,
    paper_numbers,
    render,
)
from sclbench.results.record import HISTORY_KEEP


def vqa_record(value: float = 78.70, ckpt: str = "scl-mgsc-100k") -> ResultRecord:
    return ResultRecord(
        task="vqa",
        split="test-dev",
        metrics={"accuracy": value, "accuracy_yes_no": 93.1},
        scorer="vqaEval-official",
        checkpoint={"name": ckpt, "path": f"/ckpts/{ckpt}.ckpt", "sha256": "ab" * 32},
        config={"lr": np.float32(1e-4), "layers": (1, 2)},
        seed=0,
    )


def test_round_trip_and_predictable_path(tmp_path):
    rec = vqa_record(ckpt="runs/vqa/best model")
    path = rec.save(tmp_path, predictions=[{"id": 1, "answer": "yes", "scores": {"accuracy": np.float64(1.0)}}])
    assert path == tmp_path / "vqa" / "vqa_test-dev_runs-vqa-best-model.json"
    assert not [p for p in path.parent.iterdir() if ".tmp-" in p.name]  # atomic write left nothing behind
    back = load(path)
    assert back.source == path
    same = lambda r: {k: v for k, v in r.to_dict().items() if k != "config"}  # noqa: E731
    assert same(back) == same(rec)
    assert back.config == {"lr": pytest.approx(1e-4), "layers": [1, 2]}
    assert back.predictions_file == "vqa_test-dev_runs-vqa-best-model.predictions.jsonl"
    assert back.read_predictions() == [{"id": 1, "answer": "yes", "scores": {"accuracy": 1.0}}]


def test_a_replaced_record_is_kept_with_its_predictions_in_history(tmp_path):
    first = vqa_record(value=70.0)
    first.save(tmp_path, predictions=[{"id": 1, "run": "first"}])
    second = vqa_record(value=71.0)
    second.created_at = "2099-01-01T00:00:00+00:00"
    path = second.save(tmp_path, predictions=[{"id": 1, "run": "second"}])
    assert [r.metrics["accuracy"] for r in collect(tmp_path)] == [71.0]  # history is not collected
    assert load(path).read_predictions() == [{"id": 1, "run": "second"}]
    (kept,) = sorted((tmp_path / "vqa" / ".history").glob("*.json"))
    old = load(kept)
    assert old.metrics["accuracy"] == 70.0 and old.read_predictions() == [{"id": 1, "run": "first"}]
    for n in range(HISTORY_KEEP + 3):  # bounded: the newest HISTORY_KEEP per key
        rec = vqa_record(value=float(n))
        rec.created_at = f"2100-01-01T00:00:{n:02d}+00:00"
        rec.save(tmp_path, predictions=[{"id": n}])
    assert len(list((tmp_path / "vqa" / ".history").glob("*.json"))) == HISTORY_KEEP


def test_predictions_that_do_not_match_their_record_are_refused(tmp_path):
    path = vqa_record().save(tmp_path, predictions=[{"id": 1, "answer": "yes"}])
    (path.parent / load(path).predictions_file).write_text('{"id": 1, "answer": "no"}\n')
    with pytest.raises(DataError, match="does not match its record"):
        load(path).read_predictions()


def test_collect_skips_foreign_json_and_names_malformed_files(tmp_path):
    vqa_record().save(tmp_path)
    (tmp_path / "vqa" / "submission.json").write_text('[{"question_id": 1, "answer": "yes"}]')
    assert [r.task for r in collect(tmp_path)] == ["vqa"]
    bad = tmp_path / "nlvr2" / "broken.json"
    bad.parent.mkdir()
    bad.write_text("{not json")
    with pytest.raises(DataError, match="broken.json"):
        collect(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        collect(tmp_path / "nowhere")


def test_unknown_fields_are_kept(tmp_path):
    path = vqa_record().save(tmp_path)
    data = json.loads(path.read_text())
    data["added_later"] = 3
    path.write_text(json.dumps(data))
    assert load(path).extra["unknown_fields"] == {"added_later": 3}


def test_environment_info_outside_git(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    info = environment_info()
    assert info["git_commit"] is None
    assert info["versions"]["python"] and "torch" in info["versions"]
    assert isinstance(info["device"], str)


def test_fingerprint_is_location_independent_and_content_sensitive(tmp_path):
    for root in ("a", "b"):
        (tmp_path / root / "ann").mkdir(parents=True)
        (tmp_path / root / "ann" / "train.json").write_text("[1, 2]")
        (tmp_path / root / "ann" / "test.json").write_text("[3]")
    fa = fingerprint_files([tmp_path / "a" / "ann"])
    assert fa.startswith("sha256:") and fa == fingerprint_files([tmp_path / "b" / "ann"])
    (tmp_path / "b" / "ann" / "test.json").write_text("[4]")
    assert fa != fingerprint_files([tmp_path / "b" / "ann"])
    with pytest.raises(DataError):
        fingerprint_files([tmp_path / "missing.json"])


def test_paper_numbers_and_split_aliases():
    rows = {(p.task, p.split, p.metric): p.value for p in paper_numbers()}
    assert rows[("vqa", "test-dev", "accuracy")] == 78.72
    assert rows[("nlvr2", "test1", "accuracy")] == 84.27
    assert rows[("f30k", "test", "ir_r1")] == 84.56
    assert canonical_split("nlvr2", "test-P") == "test1"
    assert canonical_split("vqa", "test") == "test-std"


def test_table_markdown_has_paper_number_and_delta():
    rows = build_table([vqa_record(78.70), vqa_record(77.0, ckpt="other")])
    assert [r.checkpoint for r in rows] == ["other", "scl-mgsc-100k"]
    assert rows[1].delta("accuracy") == pytest.approx(-0.02)
    md = render(rows, "markdown")
    assert "| test-dev | scl-mgsc-100k | vqaEval-official |  | 78.70 | 78.72 | -0.02 |" in md
    assert "accuracy paper" in md and "wizwand" in md
    csv_text = render(rows, "csv")
    assert "vqa,test-dev,scl-mgsc-100k,vqaEval-official,,accuracy,78.7,78.72," in csv_text
    assert "78.72" in render(rows, "rich")


def test_zero_shot_rows_do_not_borrow_fine_tuned_paper_numbers():
    rec = ResultRecord("f30k", "test", {"tr_r1": 90.0, "ir_r1": 80.0}, "recall-gt_last", protocol={"zero_shot": True})
    (row,) = build_table([rec])
    assert row.paper == {} and row.protocol == "zero-shot"


def test_cli_table(tmp_path, capsys):
    vqa_record().save(tmp_path / "results")
    out = tmp_path / "table.md"
    assert main(["table", str(tmp_path / "results"), "--format", "markdown", "--out", str(out)]) == 0
    assert "78.72" in out.read_text()
    assert main(["table", str(tmp_path / "results"), "--format", "csv"]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert main(["table", str(tmp_path / "nowhere")]) == 2
    assert main(["table", str(tmp_path / "results"), "--format", "xml"]) == 2  # html is a format since the leaderboard
