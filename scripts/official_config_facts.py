"""Extract the numeric settings of the official SCL config (IIGROUP/SCL scl/config.py at cd0d819) as facts:
one `line<TAB>name<TAB>value` row per `'name': literal` line whose value is a number, a bool or None.

The table in tests/test_cards_official.py cites those lines; the test reads the extracted file, so it
runs in any clean clone without the official repository. Regenerate after fetching the repository:

    python scripts/official_config_facts.py /path/to/SCL.git > tests/data/official/config_values.tsv
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys

COMMIT = "cd0d819"


def facts(git_dir: str) -> list[tuple[int, str, object]]:
    text = subprocess.run(
        ["git", "--git-dir", git_dir, "show", f"{COMMIT}:scl/config.py"], capture_output=True, text=True, check=True
    ).stdout
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        name, sep, raw = line.strip().partition(":")
        if not sep or not (name.startswith("'") or name.startswith('"')):
            continue
        try:
            value = ast.literal_eval(raw.split("#")[0].strip().rstrip(","))
        except (ValueError, SyntaxError):
            continue
        if value is None or isinstance(value, (bool, int, float)):
            rows.append((number, name.strip("'\""), value))
    return rows


if __name__ == "__main__":
    for number, name, value in facts(sys.argv[1]):
        print(f"{number}\t{name}\t{json.dumps(value)}")
