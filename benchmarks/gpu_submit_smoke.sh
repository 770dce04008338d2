#!/usr/bin/env bash
# Validate the smoke record for real on a GPU machine: `submit --baseline` (the anchor retimed) or a
# submission (a copy of the anchor) with N runs and --judge none. Needs only python3 with torch, numpy, scipy.
# Usage: benchmarks/gpu_submit_smoke.sh baseline|submission RUNS OUT_DIR
set -euo pipefail
mode=$1 runs=$2 out=$3
repo=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH=$repo
work=${WORK:-/tmp/nanogpt-tui-gpu}
mkdir -p "$work/data" "$out"
[ -f "$work/data/fineweb10B/fineweb_val_000000.bin" ] || python3 -m nanogpt_tui data synth --out "$work/data/fineweb10B"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/gpu.txt" || true
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))' >> "$out/gpu.txt"
if [ "$mode" = baseline ]; then
    python3 -m nanogpt_tui submit --baseline "$repo/human_baselines/smoke" --runs "$runs" --data "$work/data" \
        --verdicts "$out/verdicts"
else
    rm -rf "$work/submissions/submission_1"; mkdir -p "$work/submissions"
    cp -r "$repo/human_baselines/smoke" "$work/submissions/submission_1"
    rm -rf "$work/submissions/submission_1/data" "$work/submissions/submission_1/logs"
    python3 -m nanogpt_tui submit "$work/submissions/submission_1" --runs "$runs" --judge none \
        --anchor "$repo/human_baselines/smoke" --data "$work/data" --verdicts "$out/verdicts"
fi
