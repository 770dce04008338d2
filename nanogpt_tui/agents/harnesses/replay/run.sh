#!/usr/bin/env bash
# The replay agent: re-emits a recorded Claude Code or Codex stream with its original timing, so the
# control room can be shown and tested with realistic traffic and no API key.
#   BENCHMARK_REPLAY_FILE   the recorded stream (default: sample_claude.jsonl next to this script)
#   BENCHMARK_REPLAY_SPEED  speed-up factor (default 1; 10 plays ten times faster)
#   BENCHMARK_REPLAY_LOOP   1 to start again at the end, until the deadline
# Lines go to $BENCHMARK_EVENTS_PATH and stdout, as an agent CLI's would; it stops at the deadline.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "${BENCHMARK_WORKSPACE:-.}" || exit 1
file="${BENCHMARK_REPLAY_FILE:-$here/sample_claude.jsonl}"
replay_args=("$file" --speed "${BENCHMARK_REPLAY_SPEED:-1}")
if [ "${BENCHMARK_REPLAY_LOOP:-0}" = "1" ]; then
  replay_args+=(--loop)
fi
exec "${BENCHMARK_PYTHON:-python3}" -m nanogpt_tui.agents.replay "${replay_args[@]}"
