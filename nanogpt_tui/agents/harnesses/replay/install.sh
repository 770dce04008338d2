#!/usr/bin/env bash
# The replay agent needs only Python 3 with nanogpt_tui importable; nothing to install.
set -euo pipefail
"${BENCHMARK_PYTHON:-python3}" -c 'import nanogpt_tui.agents.replay' \
  || { echo "install.sh: the replay agent needs nanogpt_tui importable by ${BENCHMARK_PYTHON:-python3}." >&2; exit 1; }
echo "replay agent ready"
