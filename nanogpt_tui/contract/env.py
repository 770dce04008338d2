"""The environment names a session sees: NanoGPT-Bench's `BENCHMARK_*` contract, ours beside it, and each agent
harness's tunables. The only place any `BENCHMARK_*` name is spelled in Python (the bash harnesses spell theirs, and a
unit test checks each one is declared here)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from nanogpt_tui.contract.layout import EVENTS_FILE

# NanoGPT-Bench's contract (keep compatible).
ENV_WORKSPACE = "BENCHMARK_WORKSPACE"
ENV_RUN_ID = "BENCHMARK_RUN_ID"
ENV_AGENT = "BENCHMARK_AGENT"
ENV_SESSION_HOURS = "BENCHMARK_SESSION_HOURS"
ENV_SUBMISSION_DIR = "BENCHMARK_SUBMISSION_DIR"
ENV_EVENTS_PATH = "BENCHMARK_EVENTS_PATH"
ENV_LOG_DIR = "BENCHMARK_LOG_DIR"
ENV_TRACE_DIR = "BENCHMARK_TRACE_DIR"

# Ours: where runner/ and control/ are, what the session compares against.
ENV_RUNNER_DIR = "BENCHMARK_RUNNER_DIR"
ENV_CONTROL_DIR = "BENCHMARK_CONTROL_DIR"
ENV_ANCHOR = "BENCHMARK_ANCHOR"
ENV_ANCHOR_DIR = "BENCHMARK_ANCHOR_DIR"
ENV_TARGET = "BENCHMARK_TARGET"
ENV_STRATEGY = "BENCHMARK_STRATEGY"
ENV_GPUS = "BENCHMARK_GPUS"  # a prompt placeholder's fallback when deadline.json does not say
ENV_SUBMIT_COMMAND = "BENCHMARK_SUBMIT_COMMAND"  # how the prompt tells the agent to validate
ENV_VALIDATOR_DIR = "BENCHMARK_VALIDATOR_DIR"  # set: `submit` asks the validator apart from the agent

# Agent settings from the config ([agents.NAME] model / effort), passed to every harness.
ENV_AGENT_MODEL = "BENCHMARK_AGENT_MODEL"
ENV_AGENT_EFFORT = "BENCHMARK_AGENT_EFFORT"
ENV_AGENT_BASE_URL = "BENCHMARK_AGENT_BASE_URL"  # the agent's API endpoint in effect (agents/credentials.py)
ENV_TOOL_TIMEOUT_S = "BENCHMARK_TOOL_TIMEOUT_S"  # the longest a `submit` can take: the CLIs' tool time-outs exceed it

# Harness tunables (read by agents/harnesses/*/run.sh and the Python agents).
ENV_PYTHON = "BENCHMARK_PYTHON"
ENV_RESUME_BACKOFF_S = "BENCHMARK_RESUME_BACKOFF_S"
ENV_MIN_INVOCATION_S = "BENCHMARK_MIN_INVOCATION_S"
ENV_RESUME_BACKOFF_MAX_S = "BENCHMARK_RESUME_BACKOFF_MAX_S"
ENV_MAX_QUICK_FAILURES = "BENCHMARK_MAX_QUICK_FAILURES"
ENV_CODEX_STREAM_IDLE_TIMEOUT_MS = "BENCHMARK_CODEX_STREAM_IDLE_TIMEOUT_MS"
ENV_CLAUDE_PARTIAL = "BENCHMARK_CLAUDE_PARTIAL"
ENV_CODEX_PROVIDER = "BENCHMARK_CODEX_PROVIDER"
ENV_REPLAY_FILE = "BENCHMARK_REPLAY_FILE"
ENV_REPLAY_SPEED = "BENCHMARK_REPLAY_SPEED"
ENV_REPLAY_LOOP = "BENCHMARK_REPLAY_LOOP"
ENV_SCRIPTED_PLAN = "BENCHMARK_SCRIPTED_PLAN"
ENV_SCRIPTED_RUNS = "BENCHMARK_SCRIPTED_RUNS"

# Every name above, for checks (a harness must use only declared names).
ALL_NAMES = frozenset(value for key, value in dict(globals()).items() if key.startswith("ENV_"))


def contract_env(*, workspace: str, runner: str, control: str, run_id: str, agent: str, strategy: str,
                 session_hours: float, anchor: str, target: str | None, validator: str | None = None
                 ) -> dict[str, str]:
    """The variables every agent harness may rely on, for the given mount points."""
    env = {
        ENV_WORKSPACE: workspace,
        ENV_RUN_ID: run_id,
        ENV_AGENT: agent,
        ENV_STRATEGY: strategy,
        ENV_SESSION_HOURS: f"{session_hours:g}",
        ENV_SUBMISSION_DIR: f"{workspace}/submissions",
        ENV_EVENTS_PATH: f"{workspace}/logs/{EVENTS_FILE}",
        ENV_LOG_DIR: f"{workspace}/logs",
        ENV_TRACE_DIR: f"{workspace}/logs/traces",
        ENV_RUNNER_DIR: runner,
        ENV_CONTROL_DIR: control,
        ENV_ANCHOR: anchor,
        ENV_ANCHOR_DIR: f"{runner}/anchor",
        "HOME": f"{workspace}/home",
    }
    if target:
        env[ENV_TARGET] = target
    if validator:
        env[ENV_VALIDATOR_DIR] = validator
    return env


# Which variables hold secrets, for every boundary a value may cross (a Slurm job's stored environment, a container's
# stored config, candidate code, the screen): a name with one of these words, the words split at `_` (so
# ANTHROPIC_API_KEY, GH_TOKEN, AWS_SECRET_ACCESS_KEY, DB_PASSWORD and GOOGLE_APPLICATION_CREDENTIALS, a key file's
# path, are secrets, while TOKENIZERS_PARALLELISM or KEYTAB_DIR are not). A name that looks like one but is not
# costs nothing: a Slurm job gets it by the hand-over, a redacted copy keeps its name.
SECRET_WORDS = frozenset({"KEY", "APIKEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "CREDENTIALS"})


def is_secret_name(name: str) -> bool:
    """Whether the variable `name` holds a secret (an API key, a token, a password, a credentials file)."""
    return not SECRET_WORDS.isdisjoint(re.split(r"[^A-Z0-9]+", name.upper()))


def without_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of `environ` without the variables that hold secrets."""
    return {k: v for k, v in environ.items() if not is_secret_name(k)}
