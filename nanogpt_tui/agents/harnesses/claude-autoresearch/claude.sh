#!/usr/bin/env bash
# Claude Code harness for NanoGPT-Bench: print mode with streaming JSON, resumed until the session deadline.
#
# The session mounts this folder at /runner/agent and runs `bash /runner/agent/run.sh` in
# $BENCHMARK_WORKSPACE. Prompts come from the strategy folder (/runner/strategy) through
# `python3 -m nanogpt_tui.agents.strategy prompt first|resume`; every line Claude prints goes to
# $BENCHMARK_EVENTS_PATH and to stdout (the container log) through `nanogpt_tui.agents.control relay`,
# which also keeps the latest session id for --resume.
#
# Flags (https://code.claude.com/docs/en/cli-reference and https://code.claude.com/docs/en/headless):
#   -p                                    non-interactive print mode; the prompt is read from stdin
#   --output-format stream-json --verbose one JSON object per line (print mode needs --verbose for it)
#   --disallowedTools WebFetch WebSearch  no web access: the benchmark allows only the model API
#   --dangerously-skip-permissions        nobody is there to approve tool use; the container is the sandbox
#   --model / --effort                    from BENCHMARK_AGENT_MODEL / BENCHMARK_AGENT_EFFORT when set
#                                         (effort also as CLAUDE_CODE_EFFORT_LEVEL, for CLIs without --effort)
#   --resume <session id>                 every invocation after the first
#   --include-partial-messages            only with BENCHMARK_CLAUDE_PARTIAL=1 (token deltas: large logs)
# Tunables: BENCHMARK_RESUME_BACKOFF_S (first wait after a quick failure, default 30, doubling up to
# 600), BENCHMARK_PYTHON (default python3).
#
# Never add `set -x` here: the environment holds API keys.
set -uo pipefail

PY="${BENCHMARK_PYTHON:-python3}"
note() { "$PY" -m nanogpt_tui.agents.control event status --text "$1" || true; }
fail() {
  "$PY" -m nanogpt_tui.agents.control event error --text "claude harness: $1" >/dev/null 2>&1 || true
  echo "claude harness: $1" >&2
  exit "${2:-1}"
}

cd "${BENCHMARK_WORKSPACE:?BENCHMARK_WORKSPACE is not set}" || exit 1
command -v claude >/dev/null 2>&1 \
  || fail "the claude CLI is not on PATH; build the session image with it or run /runner/agent/install.sh."
if [ -z "${ANTHROPIC_API_KEY:-}" ]; then
  note "ANTHROPIC_API_KEY is not set; Claude Code will only work if it has another login."
fi

state="${BENCHMARK_LOG_DIR:-$BENCHMARK_WORKSPACE/logs}/harness"
mkdir -p "$state" || fail "cannot create $state."
session_file="$state/claude_session_id"
prompt_file="$state/claude_prompt.md"

args=(-p --output-format stream-json --verbose --disallowedTools WebFetch WebSearch --dangerously-skip-permissions)
if [ -n "${BENCHMARK_AGENT_MODEL:-}" ]; then
  args+=(--model "$BENCHMARK_AGENT_MODEL")
fi
if [ -n "${BENCHMARK_AGENT_EFFORT:-}" ]; then
  export CLAUDE_CODE_EFFORT_LEVEL="$BENCHMARK_AGENT_EFFORT"
  if claude --help 2>/dev/null | grep -q -- '--effort'; then
    args+=(--effort "$BENCHMARK_AGENT_EFFORT")
  fi
fi
if [ "${BENCHMARK_CLAUDE_PARTIAL:-0}" = "1" ]; then
  args+=(--include-partial-messages)
fi

backoff="${BENCHMARK_RESUME_BACKOFF_S:-30}"
delay=0
resume_failures=0
n=0
while :; do
  left=$("$PY" -m nanogpt_tui.agents.control seconds-left) || fail "cannot read the session deadline; stopping." 2
  if [ "$left" -le 0 ]; then
    note "deadline reached after $n invocation(s); the claude harness stops."
    break
  fi
  session=""
  if [ -s "$session_file" ]; then
    session=$(head -n 1 "$session_file")
  fi
  kind=first
  if [ -n "$session" ]; then
    kind=resume
  fi
  "$PY" -m nanogpt_tui.agents.strategy prompt "$kind" > "$prompt_file" \
    || fail "cannot compose the $kind prompt from the strategy (see the message above)." 2
  n=$((n + 1))
  cmd=(claude "${args[@]}")
  if [ "$kind" = resume ]; then
    cmd+=(--resume "$session")
    note "invocation $n: resuming session $session (${left}s left)"
  else
    note "invocation $n: first prompt (${left}s left)"
  fi
  started=$(date +%s)
  "${cmd[@]}" < "$prompt_file" | "$PY" -m nanogpt_tui.agents.control relay --session-file "$session_file"
  status=${PIPESTATUS[0]}
  elapsed=$(( $(date +%s) - started ))
  if [ "$status" -eq 0 ]; then
    delay=0
    resume_failures=0
    continue
  fi
  note "claude exited with status $status after ${elapsed}s"
  if [ "$elapsed" -lt "${BENCHMARK_MIN_INVOCATION_S:-60}" ]; then
    if [ "$kind" = resume ] && [ "$(head -n 1 "$session_file" 2>/dev/null)" = "$session" ]; then
      resume_failures=$((resume_failures + 1))
      if [ "$resume_failures" -ge 3 ]; then
        note "session $session could not be resumed 3 times; starting a new session with the first prompt."
        rm -f "$session_file"
        resume_failures=0
      fi
    fi
    delay=$(( delay == 0 ? backoff : delay * 2 ))
    if [ "$delay" -gt 600 ]; then delay=600; fi
    left=$("$PY" -m nanogpt_tui.agents.control seconds-left) || fail "cannot read the session deadline; stopping." 2
    wait_s=$(( delay < left ? delay : left ))
    if [ "$wait_s" -gt 0 ]; then
      note "waiting ${wait_s}s before trying again"
      sleep "$wait_s"
    fi
  fi
done
