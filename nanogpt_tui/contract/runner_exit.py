"""The runner's exit record, `workspace/logs/runner_exit.json`: how the session runner ended, written by the runner
as its last act so that a host that was away (a restarted control room, a lost connection) still learns why. Its
reasons and exit statuses are named here; the runner writes them and the host matches them."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from nanogpt_tui.contract.layout import RUNNER_EXIT_FILE
from nanogpt_tui.fsutil import atomic_write_json

SCHEMA_VERSION = 1

# The runner's exit status (also the container's / process tree's).
EXIT_AGENT_DONE, EXIT_FAILED, EXIT_DEADLINE, EXIT_STOPPED = 0, 1, 3, 130


class ExitReason(StrEnum):
    """Why the runner ended (the record's `reason`)."""

    AGENT_EXITED = "agent-exited"  # the agent finished on its own with status 0
    AGENT_FAILED = "agent-failed"  # the agent ended with a non-zero status before the deadline
    DEADLINE = "deadline"  # the deadline passed (the watchdog stopped the agent, or it saw the deadline itself)
    STOPPED = "stopped"  # a signal asked the runner to stop (kill)
    NO_DEADLINE = "no-deadline"  # the deadline file was missing or broken at start
    NO_AGENT = "no-agent"  # runner/agent/run.sh is missing
    INSTALL_FAILED = "install-failed"  # runner/agent/install.sh failed


@dataclass(frozen=True)
class RunnerExit:
    """One runner exit record. `reason` is an ExitReason's value, or other text from a newer or foreign runner."""

    reason: str
    exit_code: int | None
    agent_exit_code: int | None = None
    at: str | None = None  # ISO UTC


def runner_exit_path(log_dir: Path) -> Path:
    return Path(log_dir) / RUNNER_EXIT_FILE


def write_runner_exit(log_dir: Path, reason: ExitReason, exit_code: int, agent_exit_code: int | None = None) -> None:
    atomic_write_json(runner_exit_path(log_dir), {
        "schema_version": SCHEMA_VERSION, "reason": str(reason), "exit_code": exit_code,
        "agent_exit_code": agent_exit_code,
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    })


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_runner_exit(log_dir: Path) -> RunnerExit | None:
    """The record in `log_dir`, or None when there is none (the runner has not ended, or was killed before it
    could write one) or it cannot be read."""
    try:
        obj = json.loads(runner_exit_path(log_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(obj, dict):
        return None
    reason, at = obj.get("reason"), obj.get("at")
    return RunnerExit(reason=reason if isinstance(reason, str) else "", exit_code=_int_or_none(obj.get("exit_code")),
                      agent_exit_code=_int_or_none(obj.get("agent_exit_code")),
                      at=at if isinstance(at, str) else None)
