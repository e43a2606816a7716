#!/usr/bin/env bash
# GPU benchmark of the real commands (issue 22): `sclbench finetune vqa` for a fixed number of steps and
# `sclbench eval f30k` two-stage at the full F30K test size (1,000 images x 5,000 captions) on generated
# data, each eager and with --compile; base preset, random weights, bf16. Prints MFU, pairs/s and the
# ratio to the physical limits; writes benchmarks/results/gpu.json (see benchmarks/gpu_commands.py).
#   bash benchmarks/gpu.sh [--image-size N]           # one CUDA GPU; sized for under 5 minutes on one H100
#   GPU_BENCH_DRYRUN=1 bash benchmarks/gpu.sh         # the same logic on CPU, tiny preset and data
#   GPU_BENCH_BUDGET_S=290 SCLBENCH_PEAK_TFLOPS=756 bash benchmarks/gpu.sh   # budget; other peak (H100 PCIe)
# The optimistic probe of the model alone (data on the GPU, no loader) stays: python -m benchmarks.gpu
set -euo pipefail
cd "$(dirname "$0")/.."
export SCLBENCH_NO_PROGRESS=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY="${PYTHON:-python3}"
if [ "${GPU_BENCH_DRYRUN:-0}" != "1" ]; then
    if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
        echo "benchmarks/gpu.sh: ERROR: no CUDA GPU here (torch.cuda.is_available() is False); nothing was" \
             "measured. GPU_BENCH_DRYRUN=1 bash benchmarks/gpu.sh checks the script's logic on CPU." >&2
        exit 2
    fi
fi
mkdir -p benchmarks/results
exec timeout "${SCLBENCH_GPU_TIMEOUT:-600}" "$PY" -m benchmarks.gpu_commands "$@"
