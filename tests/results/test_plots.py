"""`sclbench plot` draws PNGs from a run log and from retrieval records."""

import json

import pytest

from sclbench.cli import main
from sclbench.results import ResultRecord

pytest.importorskip("matplotlib")


def test_plot_training_and_recall(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"kind": "train", "step": s, "loss": 3.0 / s, "itm_loss": 1.0 / s} for s in (1, 2, 3)]
    rows.append({"kind": "eval", "step": 3, "tr_r1": 40.0, "ir_r1": 30.0})
    (run / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert main(["plot", str(run), "--out", str(tmp_path / "plots")]) == 0
    png = tmp_path / "plots" / "run_training.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    metrics = {f"{d}_r{k}": float(k * 5) for d in ("tr", "ir") for k in (1, 5, 10)}
    ResultRecord("f30k", "test", metrics, "recall-gt_last", checkpoint={"name": "x"}).save(tmp_path / "results")
    assert main(["plot", str(tmp_path / "results"), "--out", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / "recall_at_k.png").stat().st_size > 1000
    # a folder with neither a log nor retrieval records: one clear error line, exit 2
    (tmp_path / "empty").mkdir()
    assert main(["plot", str(tmp_path / "empty")]) == 2
