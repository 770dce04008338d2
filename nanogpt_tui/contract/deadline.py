"""The deadline file, `control/deadline.json`: the host writes it (at start, and again on every `extend`), the session
reads it (the runner's watchdog, the harnesses, the agents). One type, one writer, one reader, one error.

`read_deadline` is strict: a missing or broken file raises `DeadlineError`, which names the file and the field.
`read_deadline_or_none` is the tolerant mode for agents, which re-read the file while it may be mid-rewrite or briefly
absent and keep the last deadline they saw.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanogpt_tui.contract.layout import DEADLINE_FILE
from nanogpt_tui.errors import UserError
from nanogpt_tui.fsutil import atomic_write_json

SCHEMA_VERSION = 1
DEFAULT_GRACE_S = 30.0  # between SIGINT and SIGKILL when the deadline passes


class DeadlineError(UserError):
    """The deadline file is missing or unreadable; `field` names the offending field (None: the whole file)."""

    def __init__(self, path: Path, problem: str, field: str | None = None) -> None:
        self.path, self.problem, self.field = Path(path), problem, field
        where = f"{self.path}" if field is None else f"{self.path} field {field!r}"
        super().__init__(f"{where} {problem}; the host writes it when the session starts and on every extend "
                         f"(check {DEADLINE_FILE} in the session's control folder).")


@dataclass(frozen=True)
class Deadline:
    """When the session must stop, and what the host knew when it wrote that."""

    deadline: dt.datetime  # timezone-aware, UTC
    grace_s: float = DEFAULT_GRACE_S
    gpus: int | None = None
    budget_gpu_hours: float | None = None

    @property
    def epoch(self) -> float:
        return self.deadline.timestamp()

    @property
    def iso(self) -> str:
        return _iso(self.deadline, "milliseconds")

    def seconds_left(self, now: dt.datetime | float | None = None) -> float:
        """Seconds until the deadline (negative once passed); `now` as a datetime or a Unix time."""
        if now is None:
            now = dt.datetime.now(dt.timezone.utc)
        if isinstance(now, dt.datetime):
            return (self.deadline - now).total_seconds()
        return self.epoch - float(now)


def _iso(moment: dt.datetime, timespec: str) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec=timespec).replace("+00:00", "Z")


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def deadline_path(control_dir: Path) -> Path:
    return Path(control_dir) / DEADLINE_FILE


def write_deadline(control_dir: Path, deadline: dt.datetime, *, gpus: int, budget_gpu_hours: float,
                   grace_s: float = DEFAULT_GRACE_S) -> None:
    """Write (atomically) the deadline a session must stop at."""
    atomic_write_json(deadline_path(control_dir), {
        "schema_version": SCHEMA_VERSION,
        "deadline": _iso(deadline, "milliseconds"),
        "deadline_epoch": deadline.timestamp(),
        "gpus": gpus,
        "budget_gpu_hours": budget_gpu_hours,
        "grace_s": grace_s,
        "updated_at": _iso(dt.datetime.now(dt.timezone.utc), "seconds"),
    })
    # Readable by the agent's user in the container (not the host user when that is root); it only reads it.
    deadline_path(control_dir).chmod(0o644)


def parse_deadline(obj: Any, path: Path) -> Deadline:
    """A Deadline from the file's decoded JSON; raises DeadlineError naming the field that is wrong.

    The moment comes from `deadline_epoch` (a finite number) or else the timezone-aware ISO `deadline`."""
    if not isinstance(obj, dict):
        raise DeadlineError(path, "is not a JSON object")
    epoch = _number(obj.get("deadline_epoch"))
    if epoch is not None:
        try:
            moment = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise DeadlineError(path, f"{epoch!r} is not a usable Unix time", "deadline_epoch") from None
    else:
        text = obj.get("deadline")
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if isinstance(text, str) else None
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise DeadlineError(path, "is not a timezone-aware ISO time (and deadline_epoch is not a finite "
                                "number)", "deadline")
        moment = moment.astimezone(dt.timezone.utc)
    grace = obj.get("grace_s", DEFAULT_GRACE_S)
    if _number(grace) is None or grace < 0:
        raise DeadlineError(path, f"must be a non-negative number of seconds, not {grace!r}", "grace_s")
    gpus = obj.get("gpus")
    budget = obj.get("budget_gpu_hours")
    return Deadline(moment, float(grace), gpus if isinstance(gpus, int) and not isinstance(gpus, bool) else None,
                    _number(budget))


def read_deadline(control_dir: Path) -> Deadline:
    """The deadline in `control_dir`; raises DeadlineError when the file is missing or broken."""
    path = deadline_path(control_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DeadlineError(path, "does not exist, so the session deadline is unknown") from None
    except OSError as err:
        raise DeadlineError(path, f"cannot be read ({err.strerror or err})") from None
    try:
        obj = json.loads(text)
    except ValueError as err:
        raise DeadlineError(path, f"is not JSON ({err})") from None
    return parse_deadline(obj, path)


def read_deadline_or_none(control_dir: Path | None) -> Deadline | None:
    """The tolerant mode for agents: the deadline, or None when there is no readable one (no folder, no file yet,
    a broken file); the caller keeps the last deadline it saw."""
    if control_dir is None:
        return None
    try:
        return read_deadline(control_dir)
    except DeadlineError:
        return None
