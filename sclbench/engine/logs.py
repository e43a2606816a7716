"""Where training metrics go (rank 0 only): JSON lines, TensorBoard when installed, a rich progress bar.

`log.jsonl` holds one object per line: train records `{"kind": "train", "step", "epoch", "lr", "loss",
<objective logs>, "samples_per_s"}` and eval records `{"kind": "eval", "step", "epoch", <metrics>}`.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from sclbench.common.io import atomic_write

LOG_NAME = "log.jsonl"


def progress_enabled() -> bool:
    """A live bar only on a terminal, and not when SCLBENCH_NO_PROGRESS=1 (CI, log files)."""
    return sys.stdout.isatty() and os.environ.get("SCLBENCH_NO_PROGRESS", "") not in ("1", "true", "yes")


def _clean(value: Any) -> Any:
    # JSON has no NaN/inf: write them as null rather than produce an unreadable line.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def truncate_log(path: Path, max_step: int) -> None:
    """Drop records past `max_step` (written by a killed run after its last checkpoint) so that a
    resumed run's log has each step once."""
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and _step_of(line) is not None and _step_of(line) <= max_step
    ]
    atomic_write(path, "".join(line + "\n" for line in kept))  # a kill here keeps the old log whole


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None  # a line torn by a kill


class MetricLogger:
    """Writes records on the main process; a no-op elsewhere."""

    def __init__(
        self, out_dir: str | Path, enabled: bool, total_steps: int, start_step: int = 0, tensorboard: bool = True
    ):
        self.enabled = enabled
        self.path = Path(out_dir) / LOG_NAME
        self._file = self._tb = self._progress = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        truncate_log(self.path, start_step)
        self._file = open(self.path, "a", buffering=1)  # line-buffered: a kill loses at most one line
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(out_dir) / "tensorboard"))
            except ImportError:  # tensorboard is optional
                self._tb = None
        if progress_enabled():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
            )
            self._task = self._progress.add_task("train", total=total_steps, completed=start_step, info="")
            self._progress.start()

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {k: _clean(v) for k, v in record.items()}
        self._file.write(json.dumps(record) + "\n")
        if self._tb is not None:
            prefix = record.get("kind", "train")
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                    self._tb.add_scalar(f"{prefix}/{key}", value, record["step"])
        if self._progress is not None and record.get("kind") == "train":
            info = (
                f"loss {record.get('loss', float('nan')):.4f}  lr {record.get('lr', 0):.2e}  "
                f"{record.get('samples_per_s', 0):.1f} samples/s"
            )
            self._progress.update(self._task, info=info)

    def advance(self, step: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=step)

    def print(self, message: str) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.console.print(message)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._tb is not None:
            self._tb.close()
        if self._file is not None:
            self._file.close()
        self._file = self._tb = self._progress = None
