#!/usr/bin/env bash
# The scripted agent's harness: an offline researcher on a plan (no API, no key). The session runner starts
# this in the workspace; the agent reads the contract's BENCHMARK_* variables, follows the plan
# ($BENCHMARK_SCRIPTED_PLAN, else plan.toml next to this script), and stops at the deadline on its own.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec python3 -m nanogpt_tui.agents.scripted --plan "${BENCHMARK_SCRIPTED_PLAN:-$here/plan.toml}"
