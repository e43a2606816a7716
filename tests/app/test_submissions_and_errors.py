"""Official submission files (VQA EvalAI JSON, NLVR2 CSV) and the CLI's answers to bad inputs."""

import csv
import json

from sclbench.cli import main


def test_vqa_test_dev_writes_the_evalai_submission(synth_root, tiny_checkpoint, tmp_path, capsys):
    sub = tmp_path / "submission"
    rc = main(
        [
            "eval",
            "vqa",
            "--ckpt",
            str(tiny_checkpoint("vqa")),
            "--data-root",
            str(synth_root / "vqa"),
            "--split",
            "test",
            "--results",
            str(tmp_path / "results"),
            "--submission",
            str(sub),
            "data.minival_images=4",
        ]
    )
    assert rc == 0
    entries = json.loads((sub / "vqa_submission_test-dev.json").read_text())
    questions = json.loads((synth_root / "vqa" / "v2_OpenEnded_mscoco_test-dev2015_questions.json").read_text())
    dev = {q["question_id"] for q in questions["questions"]}
    test2015 = json.loads((synth_root / "vqa" / "v2_OpenEnded_mscoco_test2015_questions.json").read_text())
    ids = [e["question_id"] for e in entries]  # EvalAI's test-dev phase wants every test2015 question, once
    assert ids == [q["question_id"] for q in test2015["questions"]] and dev < set(ids)
    vocab = set(json.loads((synth_root / "vqa" / "answer_vocab.json").read_text())["answers"])
    assert all(set(e) == {"question_id", "answer"} for e in entries)
    assert all(e["answer"] in vocab if e["question_id"] in dev else e["answer"] == "" for e in entries)
    # test-dev has no public answers: the record says so instead of inventing a metric
    record = json.loads(next((tmp_path / "results" / "vqa").glob("*.json")).read_text())
    assert record["split"] == "test-dev" and record["metrics"] == {} and "EvalAI" in record["scorer"]


def test_nlvr2_writes_the_official_csv(synth_root, tiny_checkpoint, tmp_path):
    sub = tmp_path / "submission"
    rc = main(
        [
            "eval",
            "nlvr2",
            "--ckpt",
            str(tiny_checkpoint("nlvr2")),
            "--data-root",
            str(synth_root / "nlvr2"),
            "--split",
            "test",
            "--results",
            str(tmp_path / "results"),
            "--submission",
            str(sub),
        ]
    )
    assert rc == 0
    rows = list(csv.reader((sub / "nlvr2_predictions_test1.csv").open()))
    lines = (synth_root / "nlvr2" / "data" / "test1.json").read_text().splitlines()
    identifiers = [json.loads(line)["identifier"] for line in lines]
    assert [r[0] for r in rows] == identifiers  # one row per statement, in file order
    assert all(len(r) == 2 and r[1] in ("True", "False") for r in rows)


def test_missing_data_root_is_one_clear_line(tiny_checkpoint, tmp_path, capsys):
    missing = tmp_path / "no-such-folder"
    for argv in (
        ["eval", "nlvr2", "--ckpt", str(tiny_checkpoint("nlvr2")), "--split", "val"],
        ["finetune", "vqa", "--preset", "tiny", "--out", str(tmp_path / "run"), "--max-steps", "1"],
    ):
        assert main(argv + ["--data-root", str(missing)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(missing) in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing was started


def test_unknown_task_card_exits_2(synth_root, capsys):
    assert main(["eval", "no-such-task", "--data-root", str(synth_root / "nlvr2")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no-such-task" in err and "nlvr2" in err  # lists the known cards


def test_bad_split_and_bad_retrieval_mode_exit_2(synth_root, tiny_checkpoint, capsys):
    ckpt = str(tiny_checkpoint("f30k"))
    assert main(["eval", "f30k", "--ckpt", ckpt, "--data-root", str(synth_root / "f30k"), "--split", "train"]) == 2
    assert "--split" in capsys.readouterr().err
    assert main(["eval", "f30k", "--ckpt", ckpt, "--data-root", str(synth_root / "f30k"), "--mode", "fast"]) == 2
    assert "mode" in capsys.readouterr().err
