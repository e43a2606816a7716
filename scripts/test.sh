#!/usr/bin/env bash
# The project's test command (README.md "Run the tests"): offline, deterministic, one thread per
# process in the multi-process tests (they set it themselves).
set -euo pipefail
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 SCLBENCH_NO_PROGRESS=1
python3 -m pytest -q "$@"
