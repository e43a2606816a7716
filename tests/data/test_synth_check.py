"""`sclbench data synth` output passes `sclbench data check`; generation is deterministic."""

import filecmp

import pytest

from sclbench.cli import main
from sclbench.data.check import check_layout
from sclbench.data.synthetic import generate


def _same_tree(a, b) -> bool:
    cmp = filecmp.dircmp(a, b)
    files = [p.relative_to(a) for p in a.rglob("*") if p.is_file()]
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    return not (cmp.left_only or cmp.right_only or mismatch or errors)


@pytest.mark.parametrize("task", ["f30k", "coco", "vqa", "nlvr2", "msrvtt", "lsmdc", "pretrain"])
def test_synth_passes_check(synth_root, task, capsys):
    assert main(["data", "check", task, "--root", str(synth_root / task)]) == 0
    assert "OK" in capsys.readouterr().out


def test_check_reports_missing(synth_root, tmp_path, capsys):
    report = check_layout("vqa", tmp_path)
    assert not report.ok and any("train questions not found" in p for p in report.problems)
    assert main(["data", "check", "msrvtt", "--root", str(tmp_path)]) == 1
    assert "INCOMPLETE" in capsys.readouterr().out
    assert main(["data", "check", "nonsense", "--root", str(tmp_path)]) == 2


def test_check_counts_missing_videos(synth_root, tmp_path):
    import shutil

    root = tmp_path / "msrvtt"
    shutil.copytree(synth_root / "msrvtt", root)
    gone = sorted((root / "videos/all").glob("*.mp4"))[:3]
    for p in gone:
        p.unlink()
    report = check_layout("msrvtt", root)
    assert not report.ok and sum(report.missing.values()) == 3
    assert str(gone[0]) in report.render()


def test_cli_synth_deterministic(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert main(["data", "synth", str(a), "--seed", "3", "--scale", "0.1"]) == 0
    generate(b, seed=3, scale=0.1, workers=2)  # parts written by two processes: the same bytes
    generate(c, seed=4, scale=0.1, tokenizer=False)
    assert _same_tree(a, b)
    assert not filecmp.cmp(
        a / "f30k/karpathy/dataset_flickr30k.json", c / "f30k/karpathy/dataset_flickr30k.json", shallow=False
    )
