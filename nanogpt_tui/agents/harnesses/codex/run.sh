#!/usr/bin/env bash
# Codex CLI harness for NanoGPT-Bench: `codex exec --json`, its thread resumed until the session deadline.
#
# The session mounts this folder at /runner/agent and runs `bash /runner/agent/run.sh` in
# $BENCHMARK_WORKSPACE. Prompts come from the strategy folder (/runner/strategy) through
# `python3 -m nanogpt_tui.agents.strategy prompt first|resume`; every line Codex prints goes to
# $BENCHMARK_EVENTS_PATH and to stdout (the container log) through `nanogpt_tui.agents.control relay`,
# which also keeps the thread id of `thread.started` for `codex exec resume`.
#
# Command (https://developers.openai.com/codex/noninteractive; openai/codex docs/exec.md):
#   codex exec --json [flags] PROMPT                    first invocation
#   codex exec --json [flags] resume THREAD_ID PROMPT   every later one (flags go before `resume`)
# Flags:
#   --json                                       JSON Lines events on stdout
#   --skip-git-repo-check                        the workspace is a git repo; this only avoids a refusal if not
#   --dangerously-bypass-approvals-and-sandbox   nobody is there to approve; the container is the sandbox
#   -c web_search="disabled"                     no web search: with full access Codex would search live
#                                                (web_search = "live"|"cached"|"disabled", Codex web-search docs)
#   --model "$BENCHMARK_AGENT_MODEL"             when set (the deployment name for Azure)
#   -c model_reasoning_effort="$BENCHMARK_AGENT_EFFORT"   when set
# Keys: OPENAI_API_KEY (passed on as CODEX_API_KEY, which `codex exec` reads), or Azure OpenAI with
# AZURE_OPENAI_API_KEY + AZURE_OPENAI_ENDPOINT (+ OPENAI_API_VERSION): a model provider named "azure"
# is configured with -c overrides whose env_key names the variable, so the key itself is never on a
# command line. BENCHMARK_CODEX_PROVIDER=azure|openai forces the choice when both are set.
# Tunables: BENCHMARK_RESUME_BACKOFF_S (default 30, doubling up to 600), BENCHMARK_PYTHON (python3).
#
# Never add `set -x` here: the environment holds API keys.
set -uo pipefail

PY="${BENCHMARK_PYTHON:-python3}"
note() { "$PY" -m nanogpt_tui.agents.control event status --text "$1" || true; }
fail() {
  "$PY" -m nanogpt_tui.agents.control event error --text "codex harness: $1" >/dev/null 2>&1 || true
  echo "codex harness: $1" >&2
  exit "${2:-1}"
}

cd "${BENCHMARK_WORKSPACE:?BENCHMARK_WORKSPACE is not set}" || exit 1
command -v codex >/dev/null 2>&1 \
  || fail "the codex CLI is not on PATH; build the session image with it or run /runner/agent/install.sh."

state="${BENCHMARK_LOG_DIR:-$BENCHMARK_WORKSPACE/logs}/harness"
mkdir -p "$state" || fail "cannot create $state."
session_file="$state/codex_thread_id"
prompt_file="$state/codex_prompt.md"

args=(exec --json --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox -c 'web_search="disabled"')
if [ -n "${BENCHMARK_AGENT_MODEL:-}" ]; then
  args+=(--model "$BENCHMARK_AGENT_MODEL")
fi
if [ -n "${BENCHMARK_AGENT_EFFORT:-}" ]; then
  args+=(-c "model_reasoning_effort=\"$BENCHMARK_AGENT_EFFORT\"")
fi

provider="${BENCHMARK_CODEX_PROVIDER:-}"
if [ -z "$provider" ]; then
  if [ -n "${OPENAI_API_KEY:-}" ]; then
    provider=openai
  elif [ -n "${AZURE_OPENAI_API_KEY:-}" ] && [ -n "${AZURE_OPENAI_ENDPOINT:-}" ]; then
    provider=azure
  fi
fi
case "$provider" in
  openai)
    [ -n "${OPENAI_API_KEY:-}" ] || fail "BENCHMARK_CODEX_PROVIDER is openai but OPENAI_API_KEY is not set." 2
    if [ -z "${CODEX_API_KEY:-}" ]; then
      export CODEX_API_KEY="$OPENAI_API_KEY"
    fi
    ;;
  azure)
    if [ -z "${AZURE_OPENAI_API_KEY:-}" ] || [ -z "${AZURE_OPENAI_ENDPOINT:-}" ]; then
      fail "Azure OpenAI needs both AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT." 2
    fi
    base="${AZURE_OPENAI_ENDPOINT%/}"
    case "$base" in
      */openai|*/openai/v1) ;;
      *) base="$base/openai" ;;
    esac
    args+=(-c 'model_provider="azure"'
           -c 'model_providers.azure.name="Azure OpenAI"'
           -c "model_providers.azure.base_url=\"$base\""
           -c 'model_providers.azure.env_key="AZURE_OPENAI_API_KEY"'
           -c 'model_providers.azure.wire_api="responses"')
    if [ -n "${OPENAI_API_VERSION:-}" ]; then
      args+=(-c "model_providers.azure.query_params={api-version=\"$OPENAI_API_VERSION\"}")
    fi
    ;;
  "")
    note "neither OPENAI_API_KEY nor AZURE_OPENAI_API_KEY with AZURE_OPENAI_ENDPOINT is set; Codex will only work if it has another login."
    ;;
  *)
    fail "BENCHMARK_CODEX_PROVIDER must be openai or azure, not $provider." 2
    ;;
esac

backoff="${BENCHMARK_RESUME_BACKOFF_S:-30}"
delay=0
resume_failures=0
n=0
while :; do
  left=$("$PY" -m nanogpt_tui.agents.control seconds-left) || fail "cannot read the session deadline; stopping." 2
  if [ "$left" -le 0 ]; then
    note "deadline reached after $n invocation(s); the codex harness stops."
    break
  fi
  thread=""
  if [ -s "$session_file" ]; then
    thread=$(head -n 1 "$session_file")
  fi
  kind=first
  if [ -n "$thread" ]; then
    kind=resume
  fi
  "$PY" -m nanogpt_tui.agents.strategy prompt "$kind" > "$prompt_file" \
    || fail "cannot compose the $kind prompt from the strategy (see the message above)." 2
  prompt=$(cat "$prompt_file")
  # A leading '-' would read as an option; a leading space keeps the prompt a positional argument.
  case "$prompt" in -*) prompt=" $prompt" ;; esac
  n=$((n + 1))
  if [ "$kind" = resume ]; then
    cmd=(codex "${args[@]}" resume "$thread" "$prompt")
    note "invocation $n: resuming thread $thread (${left}s left)"
  else
    cmd=(codex "${args[@]}" "$prompt")
    note "invocation $n: first prompt (${left}s left)"
  fi
  started=$(date +%s)
  "${cmd[@]}" < /dev/null | "$PY" -m nanogpt_tui.agents.control relay --session-file "$session_file"
  status=${PIPESTATUS[0]}
  elapsed=$(( $(date +%s) - started ))
  if [ "$status" -eq 0 ]; then
    delay=0
    resume_failures=0
    continue
  fi
  note "codex exited with status $status after ${elapsed}s"
  if [ "$elapsed" -lt "${BENCHMARK_MIN_INVOCATION_S:-60}" ]; then
    if [ "$kind" = resume ] && [ "$(head -n 1 "$session_file" 2>/dev/null)" = "$thread" ]; then
      resume_failures=$((resume_failures + 1))
      if [ "$resume_failures" -ge 3 ]; then
        note "thread $thread could not be resumed 3 times; starting a new thread with the first prompt."
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
