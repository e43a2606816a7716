"""VQA test-dev submission (issue 26, item 3): the file EvalAI's test-dev phase takes answers every
test2015 question; the test-dev ones are predicted, the others filled with "" (LLaVA's
scripts/convert_vqav2_for_submission.py, OpenFlamingo's fill_vqa_testdev_results.py)."""

import json
import random

import pytest

from sclbench.errors import DataError
from sclbench.tasks.base import Evaluation, get_task


def write_questions(root, n_test, every, seed):
    """test2015 questions (shuffled ids) and a test-dev subset, in the published layout."""
    rng = random.Random(seed)
    ids = rng.sample(range(1, 10 * n_test), n_test)
    test = [{"question_id": q, "image_id": q // 10, "question": f"q{q}?"} for q in ids]
    dev = test[::every]
    for name, qs in (("test2015", test), ("test-dev2015", dev)):
        (root / f"v2_OpenEnded_mscoco_{name}_questions.json").write_text(json.dumps({"questions": qs}))
    return [q["question_id"] for q in test], [q["question_id"] for q in dev]


def submit(root, out, predictions, overrides=()):
    task = get_task("vqa", list(overrides), data_root=root)
    ev = Evaluation("vqa", "test", {}, "none", predictions)
    return json.loads(task.submission(ev, out).read_text())


@pytest.mark.parametrize("n_test, every, seed", [(7, 2, 0), (40, 3, 1), (101, 1, 2), (25, 25, 3)])
def test_test_dev_file_holds_every_test2015_question(tmp_path, n_test, every, seed):
    all_ids, dev_ids = write_questions(tmp_path, n_test, every, seed)
    preds = [{"question_id": q, "answer": f"a{q}"} for q in reversed(dev_ids)]  # any prediction order
    entries = submit(tmp_path, tmp_path / "out", preds)
    assert [e["question_id"] for e in entries] == all_ids  # each test2015 question once, file order
    dev = set(dev_ids)
    assert all(e["answer"] == (f"a{e['question_id']}" if e["question_id"] in dev else "") for e in entries)
    assert (tmp_path / "out" / "vqa_submission_test-dev.json").is_file()


def test_test_standard_file_is_padded_where_images_were_skipped(tmp_path):
    all_ids, _ = write_questions(tmp_path, 9, 2, 4)
    preds = [{"question_id": q, "answer": "yes"} for q in all_ids[1:]]  # one question's image skipped
    entries = submit(tmp_path, tmp_path / "out", preds, ["splits.test=test"])
    assert [e["question_id"] for e in entries] == all_ids
    assert entries[0]["answer"] == "" and all(e["answer"] == "yes" for e in entries[1:])
    assert (tmp_path / "out" / "vqa_submission_test.json").is_file()


def test_a_prediction_outside_test2015_is_one_clear_error(tmp_path):
    all_ids, _ = write_questions(tmp_path, 5, 1, 5)
    stray = max(all_ids) + 1
    with pytest.raises(DataError, match=rf"not in .*test2015_questions.json \(e.g. {stray}\)"):
        submit(tmp_path, tmp_path / "out", [{"question_id": stray, "answer": "no"}])


@pytest.mark.parametrize("content", ["{not json", '{"questions": [{"id": 1}]}', '{"other": []}'])
def test_a_damaged_test2015_file_is_one_clear_error(tmp_path, content):
    write_questions(tmp_path, 5, 1, 6)
    (tmp_path / "v2_OpenEnded_mscoco_test2015_questions.json").write_text(content)
    with pytest.raises(DataError, match="test2015 question ids"):
        submit(tmp_path, tmp_path / "out", [])


def test_a_missing_test2015_file_names_it(tmp_path):
    write_questions(tmp_path, 5, 1, 7)
    (tmp_path / "v2_OpenEnded_mscoco_test2015_questions.json").unlink()
    with pytest.raises(DataError, match="test2015"):
        submit(tmp_path, tmp_path / "out", [])
