"""The deadline file, `control/deadline.json`: the host writes it (at start, and again on every `extend`), the session
reads it (the runner's watchdog, the harnesses, the agents). One type, one writer, one reader, one error.

`read_deadline` is strict: a missing or broken file raises `DeadlineError`, which names the file and the field.
`read_deadline_or_none` is the tolerant mode for agents, which re-read the file while it may be mid-rewrite or briefly
absent and keep the last deadline they saw.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanogpt_tui.contract.layout import DEADLINE_FILE
from nanogpt_tui.errors import UserError
from nanogpt_tui.fields import FIRST_YEAR, LAST_YEAR, MAX_GPU_HOURS, MAX_GPUS, BadField, Fields, parse_timestamp
from nanogpt_tui.fsutil import atomic_write_json

SCHEMA_VERSION = 1
DEFAULT_GRACE_S = 30.0  # between SIGINT and SIGKILL when the deadline passes
MAX_GRACE_S = 3600.0
MAX_FILE_BYTES = 64 * 1024  # the file is a few hundred bytes


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
    """A Deadline from the file's decoded JSON, every field checked; raises DeadlineError naming the one that is
    wrong. The moment comes from `deadline_epoch` (a finite Unix time) or else the strict ISO `deadline`."""
    try:
        f = Fields(obj)
        version = f.integer("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise BadField("schema_version", f"is {version}; this version reads {SCHEMA_VERSION}")
        epoch = f.number("deadline_epoch", None, optional=True)
        if epoch is not None:
            moment = _from_epoch(epoch)
        elif obj.get("deadline") is None:
            raise BadField("deadline", "is missing (and so is deadline_epoch)")
        else:
            moment = parse_timestamp(f.timestamp("deadline"), "deadline")
        return Deadline(moment, float(f.number("grace_s", DEFAULT_GRACE_S, minimum=0, maximum=MAX_GRACE_S)),
                        f.integer("gpus", None, optional=True, minimum=1, maximum=MAX_GPUS),
                        f.number("budget_gpu_hours", None, optional=True, positive=True, maximum=MAX_GPU_HOURS))
    except BadField as err:
        field = None if err.field == "(top level)" else err.field
        raise DeadlineError(path, err.problem if field else "is not a JSON object", field) from None


def _from_epoch(epoch: float) -> dt.datetime:
    try:
        moment = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise BadField("deadline_epoch", f"is {epoch!r}, not a usable Unix time") from None
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise BadField("deadline_epoch", f"is {epoch!r}, outside the years {FIRST_YEAR} to {LAST_YEAR}")
    return moment


def read_deadline(control_dir: Path) -> Deadline:
    """The deadline in `control_dir`; raises DeadlineError when the file is missing or broken."""
    path = deadline_path(control_dir)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise DeadlineError(path, "does not exist, so the session deadline is unknown") from None
    except OSError as err:
        raise DeadlineError(path, f"cannot be read ({err.strerror or err})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise DeadlineError(path, f"is larger than {MAX_FILE_BYTES // 1024} KB, far more than a deadline holds")
    try:
        obj = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise DeadlineError(path, "is not UTF-8 text") from None
    except (ValueError, RecursionError) as err:
        raise DeadlineError(path, f"is not JSON ({err})") from None
    return parse_deadline(obj, path)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_deadline_or_none(control_dir: Path | None) -> Deadline | None:
    """The tolerant mode for agents: the deadline, or None when there is no readable one (no folder, no file yet,
    a broken file); the caller keeps the last deadline it saw."""
    if control_dir is None:
        return None
    try:
        return read_deadline(control_dir)
    except DeadlineError:
        return None
