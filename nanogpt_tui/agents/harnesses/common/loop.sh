# The resume loop the real-CLI harnesses share (sourced by claude/run.sh and codex/run.sh, copied next to them as
# loop.sh by copy_harness). The harness defines, before calling `resume_loop`:
#   CLI            the executable's name (claude, codex)
#   session_file   where the relay keeps the latest session / thread id
#   cli_command    a function of (kind, session id, prompt file) that fills the array `cmd` and sets `cmd_stdin`
# The loop runs the CLI until the session deadline: the first prompt, then resumes of the same session; a resume
# that fails quickly starts a fresh session the next time. A CLI that keeps exiting within
# BENCHMARK_MIN_INVOCATION_S (default 60) is retried after a doubling back-off (BENCHMARK_RESUME_BACKOFF_S,
# default 30, at most BENCHMARK_RESUME_BACKOFF_MAX_S, default 600); after BENCHMARK_MAX_QUICK_FAILURES (default 4)
# in a row the harness gives up with the CLI's own last words on stderr, so the session turns `failed` with them.
#
# Never add `set -x` here: the environment holds API keys.

PY="${BENCHMARK_PYTHON:-python3}"
note() { "$PY" -m nanogpt_tui.agents.control event status --text "$1" || true; }
fail() {
  "$PY" -m nanogpt_tui.agents.control event error --text "$CLI harness: $1" >/dev/null 2>&1 || true
  echo "$CLI harness: $1" >&2
  exit "${2:-1}"
}

refuse_root() {
  if [ "$(id -u)" -eq 0 ]; then
    fail "refusing to run $CLI as root; nanogpt-tui starts session containers as a non-root user (the host user, or 'agent' when the host user is root)." 2
  fi
}

# The last lines the CLI wrote on stderr, keys masked, as one line.
cli_last_words() {
  "$PY" -m nanogpt_tui.agents.control last-words --file "$1" 2>/dev/null || true
}

# A stop (the runner's SIGINT/SIGTERM at the deadline or a kill) ends the loop once the CLI has returned: a CLI that
# handles SIGINT itself exits with a status of its own (Codex: 1), after which bash would otherwise go on.
stopping=0
trap 'stopping=1' INT TERM

resume_loop() {
  local state="${BENCHMARK_LOG_DIR:-$BENCHMARK_WORKSPACE/logs}/harness"
  mkdir -p "$state" || fail "cannot create $state."
  local prompt_file="$state/${CLI}_prompt.md" err_file="$state/${CLI}_stderr.txt"
  local backoff="${BENCHMARK_RESUME_BACKOFF_S:-30}" backoff_max="${BENCHMARK_RESUME_BACKOFF_MAX_S:-600}"
  local quick_limit="${BENCHMARK_MAX_QUICK_FAILURES:-4}" min_s="${BENCHMARK_MIN_INVOCATION_S:-60}"
  local delay=0 quick=0 n=0 left session kind started status elapsed words wait_s
  while :; do
    left=$("$PY" -m nanogpt_tui.agents.control seconds-left) || fail "cannot read the session deadline; stopping." 2
    if [ "$left" -le 0 ]; then
      note "deadline reached after $n invocation(s); the $CLI harness stops."
      return 0
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
    cli_command "$kind" "$session" "$prompt_file"
    if [ "$kind" = resume ]; then
      note "invocation $n: resuming $session (${left}s left)"
    else
      note "invocation $n: first prompt (${left}s left)"
    fi
    started=$(date +%s)
    "${cmd[@]}" < "$cmd_stdin" 2> >(tee "$err_file" >&2) \
      | "$PY" -m nanogpt_tui.agents.control relay --session-file "$session_file"
    status=${PIPESTATUS[0]}
    wait  # the stderr tee has written everything
    if [ "$stopping" -eq 1 ]; then
      note "$CLI stopped by a signal (status $status); the $CLI harness stops."
      exit 130
    fi
    elapsed=$(( $(date +%s) - started ))
    if [ "$status" -eq 0 ] && [ "$elapsed" -ge "$min_s" ]; then
      delay=0
      quick=0
      continue
    fi
    if [ "$status" -eq 0 ]; then
      note "$CLI finished its turn after ${elapsed}s"
    else
      note "$CLI exited with status $status after ${elapsed}s"
    fi
    if [ "$elapsed" -ge "$min_s" ]; then
      delay=0
      quick=0
      continue
    fi
    if [ "$status" -ne 0 ]; then
      quick=$((quick + 1))
      if [ "$kind" = resume ] && [ "$(head -n 1 "$session_file" 2>/dev/null)" = "$session" ]; then
        note "$session could not be resumed; the next invocation starts a new session with the first prompt."
        rm -f "$session_file"
      fi
      if [ "$quick" -ge "$quick_limit" ]; then
        words=$(cli_last_words "$err_file")
        fail "$CLI exited within ${min_s}s $quick times in a row (status $status)${words:+: $words}" 3
      fi
    fi
    delay=$(( delay == 0 ? backoff : delay * 2 ))
    if [ "$delay" -gt "$backoff_max" ]; then delay=$backoff_max; fi
    left=$("$PY" -m nanogpt_tui.agents.control seconds-left) || fail "cannot read the session deadline; stopping." 2
    wait_s=$(( delay < left ? delay : left ))
    if [ "$wait_s" -gt 0 ]; then
      note "waiting ${wait_s}s before invoking $CLI again"
      sleep "$wait_s"
    fi
  done
}
