#!/usr/bin/env bash
# The fast stand-in record: one process, no GPU, no data (see train_gpt.py).
set -euo pipefail
cd "$(dirname "$0")"
python3 train_gpt.py
