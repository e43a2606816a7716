#!/usr/bin/env bash
# A user's install, checked: build the wheel, install it (not editable, no extras) into a fresh venv,
# and run a tiny end-to-end flow from an empty folder outside the checkout.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 SCLBENCH_NO_PROGRESS=1 SCLBENCH_CACHE="$work/cache"

python3 -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$repo"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
# The CPU-usable torch pair of these machines first, so that the wheel's range does not pull another.
"$work/venv/bin/python" -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
"$work/venv/bin/python" -m pip install --quiet "$work"/dist/sclbench-*.whl

mkdir "$work/empty" && cd "$work/empty"
sb="$work/venv/bin/sclbench"
"$work/venv/bin/python" - <<'PY'
import sclbench, sys
assert "site-packages" in sclbench.__file__, sclbench.__file__  # the installed wheel, not the checkout
print("sclbench from", sclbench.__file__)
PY
"$sb" tasks > tasks.txt && grep -q nlvr2 tasks.txt
"$sb" ckpt list --json > ckpts.json && grep -q scl-pretrain ckpts.json
"$sb" data synth data
tiny=(--preset tiny --tokenizer data/tokenizer)
"$sb" finetune f30k --data-root data/f30k "${tiny[@]}" --max-steps 2 --out runs/f30k \
    train.transform=eval train.global_batch_size=4 train.per_device_batch_size=4 train.neg_texts=1
"$sb" eval f30k --ckpt runs/f30k/final --data-root data/f30k --preset tiny --results results
"$sb" table results
# A misspelled override is a usage error naming the nearest key (exit 2).
set +e
"$sb" eval f30k --ckpt runs/f30k/final --data-root data/f30k train.lrr=1e-5 2> typo.txt
rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q "did you mean train.lr" typo.txt
# The quick demo from the wheel; $SCLBENCH_DEMO_OUT keeps its output for tests/test_demo.py (drift guard).
SCLBENCH_DEMO_THREADS=1 "$sb" demo --quick --out "${SCLBENCH_DEMO_OUT:-demo_out}"
echo "wheel smoke: all steps passed"
