#!/usr/bin/env bash
# Codex CLI harness for NanoGPT-Bench: `codex exec --json`, its thread resumed until the session deadline.
#
# The session mounts this folder at /runner/agent and runs `bash /runner/agent/run.sh` in $BENCHMARK_WORKSPACE.
# Prompts come from the strategy folder (/runner/strategy) through `python3 -m nanogpt_tui.agents.strategy prompt
# first|resume` and are passed as written, after `--` (so a prompt starting with `-` stays a prompt); stdin is
# /dev/null (Codex otherwise waits to read more input from it). Every line Codex prints goes to
# $BENCHMARK_EVENTS_PATH and to stdout through `nanogpt_tui.agents.control relay`, which keeps the thread id of
# `thread.started` for `codex exec resume`. The loop itself is loop.sh.
#
# Command (codex 0.17x; `codex exec --help`):
#   codex exec --json [flags] -- PROMPT                    first invocation
#   codex exec --json [flags] resume THREAD_ID -- PROMPT   every later one (flags go before `resume`)
# Flags:
#   --skip-git-repo-check                        only avoids a refusal outside a git repository
#   --dangerously-bypass-approvals-and-sandbox   nobody is there to approve, and Codex's own Linux sandbox needs
#                                                user namespaces that Docker's default seccomp profile blocks: the
#                                                container is the sandbox
#   -c web_search="disabled"                     no web search tool (it is offered otherwise)
#   -c check_for_update_on_startup=false         no update check; -c analytics.enabled=false: no analytics
#   --disable shell_snapshot                     no ~/.codex/shell_snapshots/*.sh: they export the whole
#                                                environment, API keys included, into the workspace's home
#   -c background_terminal_max_timeout=MS        how long one poll of a running command may wait: the longest
#                                                `submit` (BENCHMARK_TOOL_TIMEOUT_S); Codex never kills a command
#                                                that outlives its first 30 s, it keeps it as a session to poll
#   --model / -c model_reasoning_effort          from BENCHMARK_AGENT_MODEL / BENCHMARK_AGENT_EFFORT when set
# Provider (Codex ignores OPENAI_BASE_URL alone): with BENCHMARK_AGENT_BASE_URL, a `model_providers.benchmark`
# entry (base_url, env_key = the variable holding the key, wire_api = "responses", supports_websockets = false:
# gateways speak HTTP server-sent events; with WebSockets on, Codex tries 7 upgrades over ~6 s before falling
# back). Keys: OPENAI_API_KEY (passed on as CODEX_API_KEY, which the built-in provider of `codex exec` reads), or
# Azure OpenAI with AZURE_OPENAI_API_KEY + AZURE_OPENAI_ENDPOINT (+ OPENAI_API_VERSION as the `api-version`
# query). BENCHMARK_CODEX_PROVIDER=azure|openai forces the choice when both are set. Keys are never on a command
# line: env_key names the variable.
#
# Never add `set -x` here: the environment holds API keys.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CLI=codex
# shellcheck source=../common/loop.sh
source "$here/loop.sh"

cd "${BENCHMARK_WORKSPACE:?BENCHMARK_WORKSPACE is not set}" || exit 1
refuse_root
command -v codex >/dev/null 2>&1 \
  || fail "the codex CLI is not on PATH; build the session image with the pinned CLIs (nanogpt-tui image build-test, or image/Dockerfile)." 3

tool_ms=$(( ${BENCHMARK_TOOL_TIMEOUT_S:-43200} * 1000 ))
args=(exec --json --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox -c 'web_search="disabled"'
      -c check_for_update_on_startup=false -c analytics.enabled=false --disable shell_snapshot
      -c "background_terminal_max_timeout=$tool_ms")
if [ -n "${BENCHMARK_AGENT_MODEL:-}" ]; then
  args+=(--model "$BENCHMARK_AGENT_MODEL")
fi
if [ -n "${BENCHMARK_AGENT_EFFORT:-}" ]; then
  args+=(-c "model_reasoning_effort=\"$BENCHMARK_AGENT_EFFORT\"")
fi

provider="${BENCHMARK_CODEX_PROVIDER:-}"
if [ -z "$provider" ]; then
  if [ -n "${OPENAI_API_KEY:-}" ] || [ -n "${CODEX_API_KEY:-}" ]; then
    provider=openai
  elif [ -n "${AZURE_OPENAI_API_KEY:-}" ] && [ -n "${AZURE_OPENAI_ENDPOINT:-}" ]; then
    provider=azure
  fi
fi
case "$provider" in
  openai)
    [ -n "${OPENAI_API_KEY:-}${CODEX_API_KEY:-}" ] || fail "BENCHMARK_CODEX_PROVIDER is openai but OPENAI_API_KEY is not set." 2
    if [ -z "${CODEX_API_KEY:-}" ]; then
      export CODEX_API_KEY="$OPENAI_API_KEY"
    fi
    if [ -n "${BENCHMARK_AGENT_BASE_URL:-}" ]; then
      args+=(-c 'model_provider="benchmark"'
             -c 'model_providers.benchmark.name="NanoGPT-Bench endpoint"'
             -c "model_providers.benchmark.base_url=\"${BENCHMARK_AGENT_BASE_URL%/}\""
             -c 'model_providers.benchmark.env_key="CODEX_API_KEY"'
             -c 'model_providers.benchmark.wire_api="responses"'
             -c 'model_providers.benchmark.supports_websockets=false')
      if [ -n "${BENCHMARK_CODEX_STREAM_IDLE_TIMEOUT_MS:-}" ]; then
        args+=(-c "model_providers.benchmark.stream_idle_timeout_ms=${BENCHMARK_CODEX_STREAM_IDLE_TIMEOUT_MS//[^0-9]/}")
      fi
    fi
    ;;
  azure)
    if [ -z "${AZURE_OPENAI_API_KEY:-}" ] || [ -z "${AZURE_OPENAI_ENDPOINT:-}" ]; then
      fail "Azure OpenAI needs both AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT." 2
    fi
    base="${BENCHMARK_AGENT_BASE_URL:-$AZURE_OPENAI_ENDPOINT}"
    base="${base%/}"
    case "$base" in
      */openai|*/openai/v1) ;;
      *) base="$base/openai" ;;
    esac
    args+=(-c 'model_provider="azure"'
           -c 'model_providers.azure.name="Azure OpenAI"'
           -c "model_providers.azure.base_url=\"$base\""
           -c 'model_providers.azure.env_key="AZURE_OPENAI_API_KEY"'
           -c 'model_providers.azure.wire_api="responses"'
           -c 'model_providers.azure.supports_websockets=false')
    if [ -n "${OPENAI_API_VERSION:-}" ]; then
      args+=(-c "model_providers.azure.query_params={api-version=\"$OPENAI_API_VERSION\"}")
    fi
    ;;
  "")
    note "neither OPENAI_API_KEY nor AZURE_OPENAI_API_KEY with AZURE_OPENAI_ENDPOINT is set; Codex will fail."
    ;;
  *)
    fail "BENCHMARK_CODEX_PROVIDER must be openai or azure, not $provider." 2
    ;;
esac

session_file="${BENCHMARK_LOG_DIR:-$BENCHMARK_WORKSPACE/logs}/harness/codex_thread_id"
cli_command() {  # kind, thread id, prompt file
  local prompt
  prompt=$(cat "$3")
  if [ "$1" = resume ]; then
    cmd=(codex "${args[@]}" resume "$2" -- "$prompt")
  else
    cmd=(codex "${args[@]}" -- "$prompt")
  fi
  cmd_stdin=/dev/null
}
resume_loop
