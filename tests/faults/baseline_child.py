"""Child processes for the baseline tests.

python baseline_child.py loop RESULTS_A RESULTS_B TO MARKER    # replace TO with A, B, A, ... until killed
python baseline_child.py die-at-rename N RESULTS TO            # no atomic exchange; exit at the N-th rename
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def loop(a: str, b: str, to: str, marker: str) -> None:
    from sclbench.results.baseline import replace_baseline

    n = 0
    while True:
        replace_baseline(a if n % 2 == 0 else b, to)
        if n == 0:
            Path(marker).write_text("first baseline complete")
        n += 1


def die_at_rename(n: int, results: str, to: str) -> None:
    """The fallback swap (two renames) killed between its steps: os._exit skips every cleanup, as SIGKILL."""
    from sclbench.results import baseline

    baseline._exchange = lambda a, b: False
    real_rename, calls = os.rename, [0]

    def rename(src, dst):
        calls[0] += 1
        if calls[0] == n:
            os._exit(9)
        real_rename(src, dst)

    baseline.os.rename = rename
    baseline.replace_baseline(results, to)


if __name__ == "__main__":
    if sys.argv[1] == "loop":
        loop(*sys.argv[2:6])
    elif sys.argv[1] == "die-at-rename":
        die_at_rename(int(sys.argv[2]), sys.argv[3], sys.argv[4])
