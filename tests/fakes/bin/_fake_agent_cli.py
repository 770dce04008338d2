"""Shared body of the stand-in `claude` and `codex` executables used by tests/integration/test_harnesses.py.

Test code, not product code. Each call appends what it was given to $FAKE_CLI_LOG (argv, stdin, and for
each key-like variable only whether it is set, never its value), then prints a recorded stream
($FAKE_STREAM) with the session/thread id filled in, the way the real CLI would.

    FAKE_EXPIRE_AFTER=N     after the Nth call, move the deadline in $BENCHMARK_CONTROL_DIR into the past
    FAKE_EXIT_CODES=a,b,..  exit status of call 1, 2, ... (default 0); a failing call prints nothing
    FAKE_CLAUDE_NO_EFFORT=1 `claude --help` does not mention --effort (an older CLI)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

KEY_VARS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "CODEX_API_KEY", "AZURE_OPENAI_API_KEY")
ENV_SHOWN = ("AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION", "BASH_DEFAULT_TIMEOUT_MS", "BASH_MAX_TIMEOUT_MS",
             "DISABLE_AUTOUPDATER", "ANTHROPIC_BASE_URL")

CLAUDE_HELP = """Usage: claude [options] [command] [prompt]

Options:
  -p, --print                       Print response and exit (useful for pipes).
  --output-format <format>          Output format (only works with --print): "text", "json", or "stream-json"
  --verbose                         Override verbose mode setting from config
  --include-partial-messages        Include partial message chunks as they arrive
  --disallowedTools <tools...>      Comma or space-separated list of tool names to deny
  --dangerously-skip-permissions    Bypass all permission checks
  --model <model>                   Model for the current session
{effort}  -r, --resume [value]              Resume a conversation by session ID
"""


def main(cli: str) -> int:
    argv = sys.argv[1:]
    if cli == "claude" and argv[:1] == ["--help"]:
        effort = "" if os.environ.get("FAKE_CLAUDE_NO_EFFORT") else \
            "  --effort <level>                  Effort level for the current session (low, medium, high, max)\n"
        sys.stdout.write(CLAUDE_HELP.format(effort=effort))
        return 0
    log = Path(os.environ["FAKE_CLI_LOG"])
    calls = len(log.read_text().splitlines()) if log.exists() else 0
    n = calls + 1
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    record = {"cli": cli, "n": n, "argv": argv, "stdin": stdin, "cwd": os.getcwd(),
              "keys_set": {k: bool(os.environ.get(k)) for k in KEY_VARS},
              "env": {k: os.environ.get(k) for k in ENV_SHOWN}}
    with log.open("a") as handle:
        handle.write(json.dumps(record) + "\n")

    codes = [int(c) for c in os.environ.get("FAKE_EXIT_CODES", "").split(",") if c.strip()]
    code = codes[n - 1] if n <= len(codes) else 0
    if code == 0:
        if cli == "claude":
            ident = f"sess-{n}"  # print mode may start a new session id on every resume
        else:
            ident = argv[argv.index("resume") + 1] if "resume" in argv else "thread-1"
        template = Path(os.environ["FAKE_STREAM"]).read_text()
        for line in template.splitlines():
            sys.stdout.write(line.replace("__SESSION_ID__", ident).replace("__THREAD_ID__", ident) + "\n")
            sys.stdout.flush()
            time.sleep(0.01)
    expire = os.environ.get("FAKE_EXPIRE_AFTER")
    if expire and n >= int(expire):
        control = Path(os.environ["BENCHMARK_CONTROL_DIR"])
        (control / "deadline.json").write_text(json.dumps({"deadline": "2000-01-01T00:00:00Z",
                                                           "deadline_epoch": time.time() - 1}))
    return code
