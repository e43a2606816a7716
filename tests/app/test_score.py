"""`sclbench score`: eval -> prediction file -> score gives eval's metrics and per-sample scores, for every
task card; files made for another split, damaged files and unsupported uses are one `error:` line (exit 2),
no traceback, nothing written, the input untouched."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sclbench.cards import available_cards, load_card
from sclbench.cli import main
from tests.app.conftest import card_overrides

SCORED = [c for c in available_cards() if load_card(c).family != "pretrain"]
ROLE = {"vqa": "val"}  # VQA's test split (test-dev) has no public answers; the others score their test split


def _run(argv, capsys) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


def _record(results: Path, task: str) -> tuple[dict, dict]:
    """(record, {sample id: prediction}) of the one record of `task` under `results`."""
    (path,) = sorted((results / task).glob("*.json"))
    record = json.loads(path.read_text())
    preds = [json.loads(line) for line in (path.parent / record["predictions_file"]).read_text().splitlines()]
    return record, {json.dumps(p["id"]): p for p in preds}


@pytest.fixture(scope="module")
def varied_vqa_checkpoint(tiny_checkpoint, tmp_path_factory):
    """The tiny VQA checkpoint with a louder, seeded classifier, so its answers differ between questions
    (the fresh head answers every question alike: an accuracy of 0 would prove little)."""
    from sclbench.model import SCLModel

    folder = tmp_path_factory.mktemp("vqa_varied") / "ckpt"
    shutil.copytree(tiny_checkpoint("vqa"), folder)
    model = SCLModel.from_pretrained(folder)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        last = model.vqa_classifier[-1]
        last.weight.copy_(torch.randn(last.weight.shape, generator=generator) * 3)
    model.save_pretrained(folder)
    return folder


def _evaluate(task, synth_root, ckpt, tmp_path, capsys) -> tuple[Path, str]:
    """Run `eval --submission`; return the prediction file it wrote (the one the round trip scores)."""
    role = ROLE.get(task, "test")
    sub = tmp_path / "submission"
    argv = ["eval", task, "--ckpt", ckpt, "--data-root", synth_root / task, "--split", role]
    argv += ["--results", tmp_path / "eval", "--submission", sub, *card_overrides(task)]
    rc, out = _run(argv, capsys)
    assert rc == 0, out
    (path,) = sub.iterdir()  # EvalAI json, NLVR2 csv or the retrieval score file
    suffix = {"vqa": ".json", "nlvr2": ".csv"}.get(load_card(task).family, ".npz")
    assert path.suffix == suffix, path
    return path, role


def _assert_same_numbers(eval_dir: Path, score_dir: Path, task: str) -> tuple[dict, dict]:
    evaluated, eval_preds = _record(eval_dir, task)
    scored, score_preds = _record(score_dir, task)
    assert evaluated["metrics"], evaluated
    assert scored["metrics"] == evaluated["metrics"]  # exactly: the same scorer on the same predictions
    assert scored["split"] == evaluated["split"] and scored["scorer"] == evaluated["scorer"]
    assert set(score_preds) == set(eval_preds)
    for sid, p in eval_preds.items():  # the per-sample scores behind intervals and paired tests, too
        assert score_preds[sid]["scores"] == p["scores"], sid
        if "rank" in p:
            assert score_preds[sid]["rank"] == p["rank"], sid
    return evaluated, scored


@pytest.mark.parametrize("task", SCORED)
def test_eval_then_score_gives_the_same_metrics(
    task, synth_root, tiny_checkpoint, varied_vqa_checkpoint, tmp_path, capsys
):
    ckpt = varied_vqa_checkpoint if task == "vqa" else tiny_checkpoint(task)
    path, role = _evaluate(task, synth_root, ckpt, tmp_path, capsys)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    argv = ["score", task, *card_overrides(task), "--predictions", path, "--data-root", synth_root / task]
    rc, out = _run([*argv, "--split", role, "--results", tmp_path / "score", "--name", "mine"], capsys)
    assert rc == 0, out
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    evaluated, scored = _assert_same_numbers(tmp_path / "eval", tmp_path / "score", task)
    source = scored["protocol"]["scored_from"]
    assert source["file"] == path.name and source["sha256"] == "sha256:" + before
    assert scored["checkpoint"]["model"] == "predictions-file" and scored["checkpoint"]["name"] == "mine"
    assert scored["extra"].get("synthetic_data")  # tables never set it against the paper's numbers
    if task == "vqa":
        assert 0 < evaluated["metrics"]["accuracy"] < 100  # the varied head answers some questions right


def test_scored_records_work_with_table_and_check(synth_root, tiny_checkpoint, tmp_path, capsys):
    path, role = _evaluate("nlvr2", synth_root, tiny_checkpoint("nlvr2"), tmp_path, capsys)
    evaluated, _ = _record(tmp_path / "eval", "nlvr2")
    name = evaluated["checkpoint"]["name"]  # the eval's row: check pairs records by task, split and name
    argv = ["score", "nlvr2", "--predictions", path, "--data-root", synth_root / "nlvr2", "--split", role]
    assert _run([*argv, "--results", tmp_path / "score", "--name", name], capsys)[0] == 0
    scored, _ = _record(tmp_path / "score", "nlvr2")
    differ = sorted(k for k in set(scored["protocol"]) | set(evaluated["protocol"])
                    if scored["protocol"].get(k) != evaluated["protocol"].get(k))  # fmt: skip
    expect = [x for key in differ for x in ("--expect-protocol", key)]
    rc, out = _run(["check", tmp_path / "score", "--baseline", tmp_path / "eval", "--tolerance", "0", *expect], capsys)
    assert rc == 0, out
    rc, out = _run(["table", tmp_path / "score", "--format", "csv"], capsys)
    assert rc == 0 and name in out, out


# ---- retrieval: row order, ranked lists, truncation ------------------------------------------------------
@pytest.fixture(scope="module")
def f30k_scores(synth_root, tiny_checkpoint, tmp_path_factory):
    """A real F30K test evaluation: its record folder and the score file it wrote (`--submission`)."""
    from sclbench.app import jobs

    results, sub = tmp_path_factory.mktemp("f30k_eval"), tmp_path_factory.mktemp("f30k_sub")
    jobs.evaluate("f30k", str(tiny_checkpoint("f30k")), "test", str(synth_root / "f30k"), results, ties="index",
                  submission_dir=sub)  # fmt: skip
    with np.load(sub / "f30k_scores_test.npz", allow_pickle=False) as arrays:
        i2t, t2i, ids = arrays["i2t"], arrays["t2i"], arrays["media_ids"].tolist()
    return {"i2t": i2t, "t2i": t2i, "ids": ids, "results": results, "n_texts": i2t.shape[1]}


def _score_f30k(path, synth_root, out, capsys, *extra) -> tuple[int, str]:
    argv = ["score", "f30k", "--predictions", path, "--data-root", synth_root / "f30k", "--results", out]
    return _run([*argv, "--ties", "index", *extra], capsys)


def _lists(scores: dict, length: int | None = None) -> dict:
    """Ranked lists from the matrices, best first, ties in index order (the `index` rule)."""
    ids, i2t, t2i = scores["ids"], scores["i2t"], scores["t2i"]
    by_media = {ids[i]: np.argsort(-i2t[i], kind="stable")[:length].tolist() for i in range(len(ids))}
    by_text = {str(t): [ids[i] for i in np.argsort(-t2i[:, t], kind="stable")[:length]] for t in range(t2i.shape[1])}
    return {"i2t": by_media, "t2i": by_text}


def test_score_file_rows_may_come_in_any_order(f30k_scores, synth_root, tmp_path, capsys):
    order = np.random.default_rng(0).permutation(len(f30k_scores["ids"]))
    path = tmp_path / "shuffled.npz"
    ids = np.array(f30k_scores["ids"])[order]
    np.savez(path, i2t=f30k_scores["i2t"][order], t2i=f30k_scores["t2i"][order], media_ids=ids)
    assert _score_f30k(path, synth_root, tmp_path / "score", capsys)[0] == 0
    _assert_same_numbers(f30k_scores["results"], tmp_path / "score", "f30k")


def test_full_ranked_lists_give_the_matrix_metrics(f30k_scores, synth_root, tmp_path, capsys):
    path = tmp_path / "lists.json"
    path.write_text(json.dumps(_lists(f30k_scores)))
    rc, out = _score_f30k(path, synth_root, tmp_path / "score", capsys)
    assert rc == 0 and "note:" not in out, out
    _assert_same_numbers(f30k_scores["results"], tmp_path / "score", "f30k")
    scored, preds = _record(tmp_path / "score", "f30k")
    assert scored["protocol"]["scored_from"]["omitted_metrics"] == []
    assert all(len(p["top"]) == 10 and p["top"][0][1] is None for p in preds.values())


def test_truncated_lists_report_only_the_exact_recalls(f30k_scores, synth_root, tmp_path, capsys):
    path = tmp_path / "top5.json"
    path.write_text(json.dumps(_lists(f30k_scores, length=5)))
    rc, out = _score_f30k(path, synth_root, tmp_path / "score", capsys)
    assert rc == 0 and "note:" in out and "tr_r10" in out, out
    evaluated, eval_preds = _record(f30k_scores["results"], "f30k")
    scored, preds = _record(tmp_path / "score", "f30k")
    # R@1 and R@5 are exact from top-5 lists (equal to the full evaluation's); R@10 and the means are not
    assert scored["metrics"] == {k: evaluated["metrics"][k] for k in ("tr_r1", "tr_r5", "ir_r1", "ir_r5")}
    assert set(scored["protocol"]["scored_from"]["omitted_metrics"]) == {"tr_r10", "ir_r10", "r_mean", "rsum"}
    for sid, p in preds.items():
        full = eval_preds[sid]
        assert p["scores"] == {k: v for k, v in full["scores"].items() if not k.endswith("_r10")}
        assert p["rank"] == full["rank"] if full["rank"] < 5 else (p["rank"] is None and p["rank_at_least"] == 5)


# ---- refusals: one line, exit 2, nothing written, the file untouched --------------------------------------
def _nlvr2_rows(synth_root, split="dev") -> list[str]:
    lines = (synth_root / "nlvr2" / "data" / f"{split}.json").read_text().splitlines()
    return [json.loads(line)["identifier"] for line in lines if line.strip()]


def _refused(argv, capsys, tmp_path, *says) -> str:
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    rc, out = _run([*argv, "--results", tmp_path / "results"], capsys)
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert rc == 2 and len(errors) == 1 and "Traceback" not in out and "bug" not in out, out
    for text in says:
        assert text in errors[0], errors[0]
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.json"))
    assert all(p.read_bytes() == data for p, data in files.items())
    return errors[0]


def _nlvr2_argv(path, synth_root, *extra):
    return ["score", "nlvr2", "--predictions", path, "--data-root", synth_root / "nlvr2", "--split", "val", *extra]


def test_nlvr2_files_for_another_split_or_with_gaps_are_refused(synth_root, tmp_path, capsys):
    dev, test1 = _nlvr2_rows(synth_root, "dev"), _nlvr2_rows(synth_root, "test1")
    path = tmp_path / "p.csv"
    path.write_text("".join(f"{i},True\n" for i in test1))
    _refused(_nlvr2_argv(path, synth_root), capsys, tmp_path, str(path), "not in the nlvr2 dev split", test1[0])
    path.write_text("".join(f"{i},True\n" for i in dev[1:]))
    _refused(_nlvr2_argv(path, synth_root), capsys, tmp_path, "no prediction for 1 of", dev[0], "--allow-missing")
    path.write_text("".join(f"{i},True\n" for i in dev + test1[:1]))
    _refused(_nlvr2_argv(path, synth_root), capsys, tmp_path, test1[0])


def test_allow_missing_scores_the_gaps_as_wrong(synth_root, tmp_path, capsys):
    from sclbench.metrics import nlvr2_metrics

    dev = _nlvr2_rows(synth_root, "dev")
    labels = {json.loads(x)["identifier"]: json.loads(x)["label"]
              for x in (synth_root / "nlvr2" / "data" / "dev.json").read_text().splitlines() if x.strip()}  # fmt: skip
    path = tmp_path / "p.csv"
    path.write_text("".join(f"{i},{labels[i]}\n" for i in dev[2:]))  # right where given, two left out
    rc, out = _run([*_nlvr2_argv(path, synth_root, "--allow-missing"), "--results", tmp_path / "r"], capsys)
    assert rc == 0 and "2 statements had no prediction" in out, out
    scored, preds = _record(tmp_path / "r", "nlvr2")
    wrong = {i: labels[i] != "True" if i in dev[:2] else labels[i] == "True" for i in dev}
    assert scored["metrics"] == nlvr2_metrics(wrong, labels)
    assert scored["protocol"]["scored_from"]["missing"] == 2
    assert [p["scores"]["accuracy"] for p in preds.values()].count(0.0) == 2


def test_vqa_refusals(synth_root, tmp_path, capsys):
    from sclbench.tasks import get_task

    task = get_task("vqa", card_overrides("vqa"), data_root=str(synth_root / "vqa"))
    minival = [r.question_id for r in task.split_records("val")]
    trainable = [r.question_id for r in task.split_records("trainable_val")]
    base = ["score", "vqa", *card_overrides("vqa"), "--data-root", synth_root / "vqa"]
    path = tmp_path / "answers.json"
    path.write_text(json.dumps([{"question_id": q, "answer": "yes"} for q in minival + trainable[:2]]))
    _refused([*base, "--predictions", path, "--split", "val"], capsys, tmp_path, "not in the vqa minival", "2 question")
    path.write_text(json.dumps([{"question_id": q, "answer": "yes"} for q in minival[1:]]))
    _refused(
        [*base, "--predictions", path, "--split", "val"], capsys, tmp_path, "no prediction for 1 of", str(minival[0])
    )
    rc, out = _run(
        [*base, "--predictions", path, "--split", "val", "--allow-missing", "--results", tmp_path / "r"], capsys
    )
    assert rc == 0 and "1 questions had no answer" in out, out
    _refused([*base, "--predictions", path, "--split", "test"], capsys, tmp_path, "no public answers", "EvalAI")


def test_wrong_suffix_family_and_options_are_refused(synth_root, tmp_path, capsys):
    csv_file = tmp_path / "p.csv"
    csv_file.write_text("dev-0-0-0,True\n")
    f30k = ["score", "f30k", "--data-root", synth_root / "f30k"]
    _refused([*f30k, "--predictions", csv_file], capsys, tmp_path, "scores-npz (.npz), ranked-lists-json (.json)")
    _refused(["score", "pretrain", "--predictions", csv_file, "--data-root", synth_root / "pretrain"], capsys,
             tmp_path, "nothing to score")  # fmt: skip
    npz = tmp_path / "s.npz"
    np.savez(npz, i2t=np.zeros((1, 1), np.float32), t2i=np.zeros((1, 1), np.float32), media_ids=np.array(["x"]))
    _refused([*f30k, "--predictions", npz, "--allow-missing"], capsys, tmp_path, "--allow-missing")
    _refused([*f30k, "--predictions", npz, "--ties", "random"], capsys, tmp_path, "--ties")
    _refused([*f30k, "--predictions", npz, "--split", "train"], capsys, tmp_path, "--split")
    _refused([*f30k, "--predictions", npz], capsys, tmp_path, "shape (1, 1), expected")


def test_retrieval_files_for_another_split_are_refused(f30k_scores, synth_root, tmp_path, capsys):
    from sclbench.tasks import get_task

    val = [r.image_id for r in get_task("f30k", data_root=str(synth_root / "f30k")).split_records("val")]
    arrays = {"i2t": f30k_scores["i2t"], "t2i": f30k_scores["t2i"]}
    path = tmp_path / "s.npz"
    mixed = val + f30k_scores["ids"][len(val) :]  # the val images in place of the first test images
    np.savez(path, **arrays, media_ids=np.array(mixed))
    argv = ["score", "f30k", "--predictions", path, "--data-root", synth_root / "f30k"]
    _refused(argv, capsys, tmp_path, "media_ids are not in the f30k test split", repr(sorted(val)[0]))
    lists = _lists(f30k_scores)
    lists["t2i"][str(f30k_scores["n_texts"])] = lists["t2i"]["0"]  # one caption index past the split's
    path = tmp_path / "lists.json"
    path.write_text(json.dumps(lists))
    _refused(["score", "f30k", "--predictions", path, "--data-root", synth_root / "f30k"], capsys, tmp_path,
             "t2i caption indices are not in")  # fmt: skip
    lists = _lists(f30k_scores)
    lists["i2t"][f30k_scores["ids"][0]] = [0, 10**6]
    path.write_text(json.dumps(lists))
    _refused(["score", "f30k", "--predictions", path, "--data-root", synth_root / "f30k"], capsys, tmp_path,
             "outside 0..")  # fmt: skip


# ---- damaged files through the command line (classes drawn by hypothesis) -------------------------------
FUZZ = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _damage(data, good: bytes) -> bytes:
    """One class of damage: cut, bytes changed, bytes inserted, a byte-order mark, or emptied."""
    how = data.draw(st.sampled_from(["cut", "flip", "insert", "bom", "empty"]))
    if how == "empty":
        return b""
    if how == "bom":
        return b"\xef\xbb\xbf" + good
    at = data.draw(st.integers(0, len(good) - 1))
    if how == "cut":
        return good[:at]
    if how == "flip":
        return good[:at] + bytes([data.draw(st.integers(0, 255))]) + good[at + 1 :]
    return good[:at] + data.draw(st.binary(min_size=1, max_size=4)) + good[at:]


def _read_or_refused(argv, path: Path, capsys, results: Path) -> None:
    before = path.read_bytes()
    rc, out = _run([*argv, "--results", results], capsys)
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert "Traceback" not in out and "bug in sclbench" not in out, out
    assert (rc == 0 and not errors) or (rc == 2 and len(errors) == 1), out
    assert path.read_bytes() == before
    if rc == 2:  # a refused file leaves no record behind
        assert not results.exists() or not any(results.rglob("*.json"))
    shutil.rmtree(results, ignore_errors=True)


@pytest.mark.slow  # many CLI runs; the readers' own property tests are in the fast lane
@FUZZ
@given(data=st.data())
def test_damaged_nlvr2_and_vqa_files_are_read_or_refused(synth_root, tmp_path, capsys, data):
    dev = _nlvr2_rows(synth_root, "dev")
    csv_file = tmp_path / "p.csv"
    csv_file.write_bytes(
        _damage(data, "".join(f"{i},{'True' if n % 3 else 'false'}\n" for n, i in enumerate(dev)).encode())
    )
    _read_or_refused(_nlvr2_argv(csv_file, synth_root), csv_file, capsys, tmp_path / "r")
    from sclbench.tasks import get_task

    task = get_task("vqa", card_overrides("vqa"), data_root=str(synth_root / "vqa"))
    entries = [{"question_id": r.question_id, "answer": "yes"} for r in task.split_records("val")]
    json_file = tmp_path / "a.json"
    json_file.write_bytes(_damage(data, json.dumps(entries).encode()))
    argv = ["score", "vqa", *card_overrides("vqa"), "--predictions", json_file, "--data-root", synth_root / "vqa"]
    _read_or_refused([*argv, "--split", "val"], json_file, capsys, tmp_path / "r")


@pytest.mark.slow  # many CLI runs; the readers' own property tests are in the fast lane
@FUZZ
@given(data=st.data())
def test_damaged_score_files_are_read_or_refused(f30k_scores, synth_root, tmp_path, capsys, data):
    good = tmp_path / "good.npz"
    ids = np.array(f30k_scores["ids"])
    np.savez(good, i2t=f30k_scores["i2t"], t2i=f30k_scores["t2i"], media_ids=ids)
    path = tmp_path / "s.npz"
    path.write_bytes(_damage(data, good.read_bytes()))
    argv = ["score", "f30k", "--predictions", path, "--data-root", synth_root / "f30k"]
    _read_or_refused(argv, path, capsys, tmp_path / "r")
    lists = tmp_path / "l.json"
    lists.write_bytes(_damage(data, json.dumps(_lists(f30k_scores, length=3)).encode()))
    _read_or_refused(["score", "f30k", "--predictions", lists, "--data-root", synth_root / "f30k"], lists, capsys,
                     tmp_path / "r")  # fmt: skip
