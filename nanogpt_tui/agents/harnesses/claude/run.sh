#!/usr/bin/env bash
# Claude Code harness for NanoGPT-Bench: print mode with streaming JSON, resumed until the session deadline.
#
# The session mounts this folder at /runner/agent and runs `bash /runner/agent/run.sh` in $BENCHMARK_WORKSPACE.
# Prompts come from the strategy folder (/runner/strategy) through `python3 -m nanogpt_tui.agents.strategy prompt
# first|resume` and reach Claude on stdin as written; every line Claude prints goes to $BENCHMARK_EVENTS_PATH and
# to stdout (the container log) through `nanogpt_tui.agents.control relay`, which keeps the latest session id for
# --resume. The loop itself (resume, fresh start after a failed resume, back-off, giving up) is loop.sh.
#
# Flags (claude 2.1.x; `claude --help`):
#   -p                                    non-interactive print mode; the prompt is read from stdin
#   --output-format stream-json --verbose one JSON object per line (print mode needs --verbose for it)
#   --disallowedTools WebFetch WebSearch  no web access: the benchmark allows only the model API
#   --dangerously-skip-permissions        nobody is there to approve tool use; the container is the sandbox
#                                         (Claude Code refuses it as root: this harness never runs as root)
#   --model / --effort                    from BENCHMARK_AGENT_MODEL / BENCHMARK_AGENT_EFFORT when set
#   --resume <session id>                 every invocation after the first
#   --include-partial-messages            only with BENCHMARK_CLAUDE_PARTIAL=1 (token deltas: large logs)
# Environment: ANTHROPIC_BASE_URL from BENCHMARK_AGENT_BASE_URL (the endpoint nanogpt-tui chose); the Bash tool's
# default and maximum time-out (BASH_DEFAULT_TIMEOUT_MS, BASH_MAX_TIMEOUT_MS) set to BENCHMARK_TOOL_TIMEOUT_S, the
# longest a `submit` can take, so a retiming is never killed by the tool; no auto-updater, telemetry, error
# reports or other non-essential traffic.
#
# Never add `set -x` here: the environment holds API keys.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CLI=claude
# shellcheck source=../common/loop.sh
source "$here/loop.sh"

cd "${BENCHMARK_WORKSPACE:?BENCHMARK_WORKSPACE is not set}" || exit 1
refuse_root
command -v claude >/dev/null 2>&1 \
  || fail "the claude CLI is not on PATH; build the session image with the pinned CLIs (nanogpt-tui image build-test, or image/Dockerfile)." 3
if [ -z "${ANTHROPIC_API_KEY:-}${ANTHROPIC_AUTH_TOKEN:-}${CLAUDE_CODE_OAUTH_TOKEN:-}${CLAUDE_CODE_USE_BEDROCK:-}${CLAUDE_CODE_USE_VERTEX:-}" ]; then
  note "no Anthropic credential is set (ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, CLAUDE_CODE_OAUTH_TOKEN, Bedrock or Vertex); Claude Code will fail."
fi

export DISABLE_AUTOUPDATER=1 DISABLE_TELEMETRY=1 DISABLE_ERROR_REPORTING=1 DISABLE_BUG_COMMAND=1 \
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1
if [ -n "${BENCHMARK_AGENT_BASE_URL:-}" ]; then
  export ANTHROPIC_BASE_URL="$BENCHMARK_AGENT_BASE_URL"
fi
tool_ms=$(( ${BENCHMARK_TOOL_TIMEOUT_S:-43200} * 1000 ))
export BASH_DEFAULT_TIMEOUT_MS="$tool_ms" BASH_MAX_TIMEOUT_MS="$tool_ms"

args=(-p --output-format stream-json --verbose --disallowedTools WebFetch WebSearch --dangerously-skip-permissions)
if [ -n "${BENCHMARK_AGENT_MODEL:-}" ]; then
  args+=(--model "$BENCHMARK_AGENT_MODEL")
fi
if [ -n "${BENCHMARK_AGENT_EFFORT:-}" ]; then
  args+=(--effort "$BENCHMARK_AGENT_EFFORT")
fi
if [ "${BENCHMARK_CLAUDE_PARTIAL:-0}" = "1" ]; then
  args+=(--include-partial-messages)
fi

session_file="${BENCHMARK_LOG_DIR:-$BENCHMARK_WORKSPACE/logs}/harness/claude_session_id"
cli_command() {  # kind, session id, prompt file
  cmd=(claude "${args[@]}")
  if [ "$1" = resume ]; then
    cmd+=(--resume "$2")
  fi
  cmd_stdin="$3"
}
resume_loop
