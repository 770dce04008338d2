#!/usr/bin/env bash
# The smoke record: one process (one GPU on a GPU box, the CPU otherwise). Data first:
#   nanogpt-tui data synth --out data/fineweb10B
set -euo pipefail
cd "$(dirname "$0")"
torchrun --standalone --nproc_per_node=1 train_gpt.py
