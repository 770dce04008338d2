"""The session model: metadata, status history and GPU-hour budget, stored as `session.json` (versioned, atomic)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nanogpt_tui.contract.layout import SESSION_FILE
from nanogpt_tui.errors import UserError
from nanogpt_tui.fsutil import atomic_write_json

SESSION_SCHEMA_VERSION = 1

PENDING = "pending"  # waiting for GPUs (the reason says which)
RUNNING = "running"
EXITED = "exited"  # the agent finished on its own
KILLED = "killed"  # stopped by a person
OUT_OF_BUDGET = "out-of-budget"  # stopped at the deadline
FAILED = "failed"  # could not start, or the agent/container failed
UNREACHABLE = "unreachable"  # its Docker host stopped answering; it recovers when the host returns
STATUSES = (PENDING, RUNNING, EXITED, KILLED, OUT_OF_BUDGET, FAILED, UNREACHABLE)
ACTIVE = (PENDING, RUNNING, UNREACHABLE)
FINAL = (EXITED, KILLED, OUT_OF_BUDGET, FAILED)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def parse_iso(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Transition:
    at: str
    status: str
    reason: str


@dataclass
class Extension:
    at: str
    gpu_hours: float
    reason: str = ""


@dataclass
class Budget:
    """GPU-hours: used = GPUs x wall-clock hours while running; deadline = start + budget / GPUs."""

    gpu_hours: float  # the original budget plus every extension
    gpus: int
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @property
    def deadline(self) -> dt.datetime | None:
        if self.started_at is None:
            return None
        return self.started_at + dt.timedelta(hours=self.gpu_hours / self.gpus)

    def used_gpu_hours(self, now: dt.datetime | None = None) -> float:
        if self.started_at is None:
            return 0.0
        end = self.finished_at or now or utc_now()
        return max(0.0, (end - self.started_at).total_seconds()) / 3600 * self.gpus

    def remaining_gpu_hours(self, now: dt.datetime | None = None) -> float:
        return max(0.0, self.gpu_hours - self.used_gpu_hours(now))

    def seconds_left(self, now: dt.datetime | None = None) -> float | None:
        if self.deadline is None:
            return None
        return (self.deadline - (now or utc_now())).total_seconds()

    @property
    def burn_rate(self) -> float:
        """GPU-hours spent per wall-clock hour while running."""
        return float(self.gpus)


@dataclass
class Session:
    """One agent session: what runs, where, for how long, and how it went."""

    id: str
    agent: str
    strategy: str
    strategy_hash: str
    anchor: str
    target: str | None
    backend: str  # "local" or "docker"
    host: str  # "" until a Docker session is placed on a host of the pool
    image: str | None
    gpus: int  # GPUs the budget counts (and the session asked for)
    budget_gpu_hours: float  # the original budget
    created_at: str
    gpu_ids: list[int] = field(default_factory=list)  # pinned physical GPUs (empty where none are pinned)
    extensions: list[Extension] = field(default_factory=list)
    started_at: str | None = None
    deadline: str | None = None
    finished_at: str | None = None
    status: str = PENDING
    status_reason: str = "created"
    transitions: list[Transition] = field(default_factory=list)
    container_id: str | None = None
    pid: int | None = None
    pid_start_ticks: int | None = None  # guards against PID reuse for the local backend
    exit_code: int | None = None
    agent_model: str | None = None
    agent_effort: str | None = None
    data_dir: str | None = None
    host_forced: bool = False  # the user named the host (--host); otherwise the pool places it by free GPUs
    config: dict[str, Any] = field(default_factory=dict)  # the config snapshot the session was launched with
    schema_version: int = SESSION_SCHEMA_VERSION

    # --- budget ---------------------------------------------------------------------------------------------

    @property
    def total_gpu_hours(self) -> float:
        return self.budget_gpu_hours + sum(e.gpu_hours for e in self.extensions)

    def budget(self) -> Budget:
        return Budget(gpu_hours=self.total_gpu_hours, gpus=max(1, self.gpus), started_at=parse_iso(self.started_at),
                      finished_at=parse_iso(self.finished_at))

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    # --- status ---------------------------------------------------------------------------------------------

    def transition(self, status: str, reason: str, at: dt.datetime | None = None) -> None:
        """Record a status change with its time and reason (repeats of the same status and reason are kept once)."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        when = at or utc_now()
        if status == self.status and reason == self.status_reason and self.transitions:
            return
        self.status, self.status_reason = status, reason
        self.transitions.append(Transition(at=iso(when), status=status, reason=reason))
        if status in FINAL and self.finished_at is None:
            self.finished_at = iso(when)

    # --- serialisation --------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Session":
        if not isinstance(data, dict):
            raise ValueError("session.json must hold a JSON object")
        version = data.get("schema_version")
        if version != SESSION_SCHEMA_VERSION:
            raise ValueError(f"schema_version is {version!r}; this version of nanogpt-tui reads "
                             f"{SESSION_SCHEMA_VERSION}")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["extensions"] = [Extension(**e) for e in known.get("extensions") or []]
        known["transitions"] = [Transition(**t) for t in known.get("transitions") or []]
        if known.get("status") not in STATUSES:
            raise ValueError(f"unknown status {known.get('status')!r}")
        return cls(**known)


def save_session(session_dir: Path, session: Session) -> None:
    atomic_write_json(Path(session_dir) / SESSION_FILE, session.to_dict())


def load_session(session_dir: Path) -> Session:
    path = Path(session_dir) / SESSION_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{session_dir} holds no session.json; it is not a session folder.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path} is not readable JSON ({err}); the session's other files are intact, restore "
                        "session.json from a backup or remove the folder.") from None
    try:
        return Session.from_dict(data)
    except (TypeError, ValueError) as err:
        raise UserError(f"{path} does not follow the session schema ({err}); check the file.") from None
