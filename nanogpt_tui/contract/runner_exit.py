"""The runner's exit record, `workspace/logs/runner_exit.json`: how the session runner ended, written by the runner
as its last act so that a host that was away (a restarted control room, a lost connection) still learns why. Its
reasons and exit statuses are named here; the runner writes them and the host matches them."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from nanogpt_tui.contract.layout import RUNNER_EXIT_FILE
from nanogpt_tui.fields import BadField, Fields
from nanogpt_tui.fsutil import atomic_write_json

SCHEMA_VERSION = 1

# The runner's exit status (also the container's / process tree's).
EXIT_AGENT_DONE, EXIT_FAILED, EXIT_DEADLINE, EXIT_STOPPED = 0, 1, 3, 130
# The runner ended but could not write its exit record (its disk full or read-only): its log's last line says how.
EXIT_NO_RECORD = 4
# The signals the runner takes as "stop" (ExitReason.STOPPED). A host that starts the runner itself starts it with
# them blocked; the runner unblocks them once its handlers are in place, so an early stop is never lost.
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


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


@dataclass(frozen=True)
class BrokenRunnerExit:
    """A runner exit record that is there but cannot be read or has a bad field: the host records the session as
    failed with this sentence, never guessing a reason. `written_at` is the file's modification time."""

    path: Path
    field: str | None
    sentence: str
    written_at: dt.datetime | None


MAX_FILE_BYTES = 64 * 1024  # the record is about 150 bytes
EXIT_CODE_RANGE = (-(2 ** 31), 2 ** 31)


def read_runner_exit(log_dir: Path) -> RunnerExit | BrokenRunnerExit | None:
    """The record in `log_dir`, every field checked; None when there is none (the runner has not ended, or was
    killed before it could write one); a `BrokenRunnerExit` naming the file and the field when it is bad."""
    path = runner_exit_path(log_dir)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
            written = dt.datetime.fromtimestamp(os.fstat(handle.fileno()).st_mtime, dt.timezone.utc)
    except FileNotFoundError:
        return None
    except OSError as err:
        return BrokenRunnerExit(path, None, f"{path} cannot be read ({err.strerror}); check its permissions.", None)

    def broken(field: str | None, what: str) -> BrokenRunnerExit:
        return BrokenRunnerExit(path, field, f"{path} {what}; the runner writes it as it ends, so the session's "
                                             "end is taken from when the file was written.", written)

    if len(raw) > MAX_FILE_BYTES:
        return broken(None, f"is larger than {MAX_FILE_BYTES // 1024} KB, far more than an exit record holds")
    try:
        obj = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        return broken(None, "is not UTF-8 text")
    except (ValueError, RecursionError) as err:
        return broken(None, f"is not JSON ({err})")
    try:
        f = Fields(obj)
        version = f.integer("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise BadField("schema_version", f"is {version}; this version reads {SCHEMA_VERSION}")
        return RunnerExit(reason=f.text("reason", non_empty=True),
                          exit_code=f.integer("exit_code", None, optional=True, minimum=EXIT_CODE_RANGE[0],
                                              maximum=EXIT_CODE_RANGE[1]),
                          agent_exit_code=f.integer("agent_exit_code", None, optional=True,
                                                    minimum=EXIT_CODE_RANGE[0], maximum=EXIT_CODE_RANGE[1]),
                          at=f.timestamp("at", None, optional=True))
    except BadField as err:
        return broken(err.field, f"has a bad field: {err}")


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")
