"""The results jobs: `sclbench table`, `check`, `baseline` and `plot`.

Thin on purpose: the CLI calls these, and they call the results floor. `render_table` looks the
renderer up when it runs (`renderers.render`), so that a test replacing it sees every path use it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sclbench.common.io import atomic_write
from sclbench.errors import DataError
from sclbench.results import baseline, build_table, collect, plots, renderers
from sclbench.results.check import CheckReport
from sclbench.results.check import check as run_check
from sclbench.results.table import TableRow

FORMATS = renderers.FORMATS
check_layout = renderers.check_layout


def table_rows(results_dir: str | Path, intervals: bool = True) -> list[TableRow]:
    """Every record under `results_dir` as table rows beside the paper's numbers."""
    records = collect(results_dir)
    if not records:
        raise DataError(f"no result records under {results_dir} (run `sclbench eval` first)")
    return build_table(records, with_stats=intervals)


def render_table(rows: list[TableRow], fmt: str, **html_options: Any) -> str:
    return renderers.render(rows, fmt, **html_options)  # type: ignore[arg-type]


def write_table(out: str | Path, rows: list[TableRow], fmt: str, **html_options: Any) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(out, render_table(rows, fmt, **html_options))


def print_rich(rows: list[TableRow], **options: Any) -> None:
    """The rich tables on the terminal (colours where it has them), then the footnotes.
    options: renderers.rich_renderables' (layout, paper, recalls)."""
    from rich.console import Console

    console = Console()
    for item in renderers.rich_renderables(rows, **options):
        console.print(item, markup=False) if isinstance(item, str) else console.print(item)


def check(
    results: Path,
    against: Path,
    tolerance: float,
    per_metric: dict[str, float],
    resamples: int,
    seed: int,
    expected_protocol: list[str] | None = None,
    json_out: Path | None = None,
) -> CheckReport:
    """Compare `results` with the baseline `against`; the report is printed (and written as JSON)."""
    for path, what in ((results, "results"), (against, "baseline")):
        if not path.exists():
            raise DataError(f"{what} path {path} does not exist")
    report = run_check(results, against, tolerance, per_metric, resamples, seed, expected_protocol=expected_protocol)
    report.print()
    if json_out is not None:
        atomic_write(json_out, json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def replace_baseline(results: str | Path, to: str | Path) -> int:
    """Replace a drift baseline with fresh records; the number of records copied."""
    return baseline.replace_baseline(results, to)


def plot(source: Path, out: Path) -> Path:
    """Training curves of a run folder (log.jsonl), or recall@K curves of a folder of result records."""
    if (source / "log.jsonl").is_file():
        return plots.plot_training(source, out / f"{source.name}_training.png")
    return plots.plot_recall(collect(source), out / "recall_at_k.png")
