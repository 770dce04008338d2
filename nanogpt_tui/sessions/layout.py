"""Where everything of a session lives, on the host and inside its container, and the environment contract.

Host side, `sessions/<id>/`:
    session.json        the session's metadata and status history (versioned, written atomically)
    container.log       everything the container (or local process tree) printed
    events.jsonl        -> workspace/logs/events.jsonl: the agent's event stream (raw agent JSON lines, or
                        nanogpt-tui events from the scripted agent and `submit`)
    workspace/          mounted at /workspace: a git repo holding the anchor's code, with experiments/,
                        submissions/, verdicts/, logs/, home/
    runner/             mounted read-only at /runner: agent/ (harness), strategy/ (prompts), anchor/ (the
                        anchor's code, the reference `submit` compares with)
    control/            mounted read-only at /control: files the host writes and the container reads
                        (deadline.json)
    inspect.json        the container's redacted `docker inspect` (Docker backend)

Inside, paths come from the environment, so the same runner works in a container and as a local process tree.
"""

from __future__ import annotations

from pathlib import Path

SESSION_FILE = "session.json"
CONTAINER_LOG = "container.log"
EVENTS_FILE = "events.jsonl"
INSPECT_FILE = "inspect.json"
WORKSPACE = "workspace"
RUNNER = "runner"
CONTROL = "control"
DEADLINE_FILE = "deadline.json"  # in control/: {"deadline": ISO UTC, "deadline_epoch": float, "gpus": int, ...}
RUNNER_EXIT_FILE = "runner_exit.json"  # in workspace/logs/: how the runner ended, for a host that was away
WORKSPACE_DIRS = ("experiments", "submissions", "verdicts", "logs", "home")

# Container-side mount points.
CONTAINER_WORKSPACE = "/workspace"
CONTAINER_RUNNER = "/runner"
CONTAINER_CONTROL = "/control"
CONTAINER_DATA = "/workspace/data"

# The environment contract (NanoGPT-Bench's, plus where runner/ and control/ are).
ENV_WORKSPACE = "BENCHMARK_WORKSPACE"
ENV_RUN_ID = "BENCHMARK_RUN_ID"
ENV_AGENT = "BENCHMARK_AGENT"
ENV_SESSION_HOURS = "BENCHMARK_SESSION_HOURS"
ENV_SUBMISSION_DIR = "BENCHMARK_SUBMISSION_DIR"
ENV_EVENTS_PATH = "BENCHMARK_EVENTS_PATH"
ENV_LOG_DIR = "BENCHMARK_LOG_DIR"
ENV_TRACE_DIR = "BENCHMARK_TRACE_DIR"
ENV_RUNNER_DIR = "BENCHMARK_RUNNER_DIR"
ENV_CONTROL_DIR = "BENCHMARK_CONTROL_DIR"
ENV_ANCHOR = "BENCHMARK_ANCHOR"
ENV_ANCHOR_DIR = "BENCHMARK_ANCHOR_DIR"
ENV_TARGET = "BENCHMARK_TARGET"
ENV_STRATEGY = "BENCHMARK_STRATEGY"


def contract_env(*, workspace: str, runner: str, control: str, run_id: str, agent: str, strategy: str,
                 session_hours: float, anchor: str, target: str | None) -> dict[str, str]:
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
    return env


def session_dir(sessions_root: Path, session_id: str) -> Path:
    return Path(sessions_root) / session_id
