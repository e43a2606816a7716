#!/usr/bin/env bash
# GPU benchmark (issues 7 and 13): base VQA fine-tuning step in bf16 (TFLOP/s, MFU) and an F30K-size
# two-stage evaluation under bf16 autocast (the path of `sclbench eval --precision bf16`: shared fusion
# parts, chunked scoring; its time and the shared-vs-per-pair probe rates); prints a JSON summary and
# writes benchmarks/results/gpu.json.
#   bash benchmarks/gpu.sh [--batch-size N] [--no-eager] ...   (options of benchmarks/gpu.py)
#   SCLBENCH_PEAK_TFLOPS=756 bash benchmarks/gpu.sh           # other peak (e.g. H100 PCIe)
# Sized to finish in under 5 minutes on one H100 (the evaluation extrapolates instead of running past
# --eval-budget-s, 170 s); the timeout only stops a machine that is far slower or stuck.
set -euo pipefail
cd "$(dirname "$0")/.."
export SCLBENCH_NO_PROGRESS=1 PYTHONUNBUFFERED=1
if ! python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "benchmarks/gpu.sh: no CUDA GPU here; for a CPU check run: python -m benchmarks.gpu --cpu-smoke" >&2
    exit 2
fi
mkdir -p benchmarks/results
exec timeout "${SCLBENCH_GPU_TIMEOUT:-420}" python -m benchmarks.gpu --out benchmarks/results/gpu.json "$@"
