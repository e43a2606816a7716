"""Result records with provenance, tables against the paper's numbers, and the drift check."""

from sclbench.results.check import CheckReport, CheckRow, check, paired_bootstrap
from sclbench.results.paper import PaperNumber, canonical_split, paper_numbers
from sclbench.results.record import ResultRecord, collect, environment_info, fingerprint_files, load
from sclbench.results.renderers import render
from sclbench.results.table import TableRow, build_table

__all__ = [
    "CheckReport",
    "CheckRow",
    "PaperNumber",
    "ResultRecord",
    "TableRow",
    "build_table",
    "canonical_split",
    "check",
    "collect",
    "environment_info",
    "fingerprint_files",
    "load",
    "paired_bootstrap",
    "paper_numbers",
    "render",
]
