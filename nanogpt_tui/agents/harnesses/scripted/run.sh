#!/usr/bin/env bash
# The scripted agent's harness: an offline researcher on a plan (no API, no key). The session runner starts
# this in the workspace; the agent reads the contract's BENCHMARK_* variables, follows the plan
# ($BENCHMARK_SCRIPTED_PLAN: a path, or the name of a plan next to this script such as demo.toml; else plan.toml next
# to this script), and stops at the deadline on its own.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec python3 -m nanogpt_tui.agents.scripted --harness "$here"
