"""The session model: metadata, status history and GPU-hour budget, stored as `session.json` (versioned, atomic)."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nanogpt_tui.contract.layout import SESSION_FILE
from nanogpt_tui.errors import UserError
from nanogpt_tui.fields import MAX_GPU_HOURS, MAX_GPUS, BadField, Fields, parse_timestamp, whole
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
    """A timestamp of a session file (strict ISO 8601 with a timezone; `BadField` otherwise), None for none."""
    if not text:
        return None
    return parse_timestamp(text)


# What a session id, a backend name and a GPU id may be (ids name folders and containers).
SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
BACKEND_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")
MAX_GPU_ID = 1023
MAX_SESSION_FILE_BYTES = 16 * 1024 * 1024  # session.json is a few KB; far more is not ours


@dataclass
class Transition:
    at: str
    status: str
    reason: str

    @classmethod
    def read(cls, f: Fields) -> "Transition":
        return cls(at=f.timestamp("at"), status=f.text("status", choices=STATUSES), reason=f.text("reason"))


@dataclass
class Extension:
    at: str
    gpu_hours: float
    reason: str = ""

    @classmethod
    def read(cls, f: Fields) -> "Extension":
        return cls(at=f.timestamp("at"), gpu_hours=f.number("gpu_hours", positive=True, maximum=MAX_GPU_HOURS),
                   reason=f.text("reason", ""))


@dataclass
class Budget:
    """GPU-hours: used = GPUs x wall-clock hours while running; deadline = start + budget / GPUs."""

    gpu_hours: float  # the original budget plus every extension
    gpus: int
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    # What the scheduler's own accounting counts (Slurm's sacct: elapsed x allocated GPUs), None where none is kept.
    accounted_gpu_hours: float | None = None

    @property
    def deadline(self) -> dt.datetime | None:
        if self.started_at is None:
            return None
        return self.started_at + dt.timedelta(hours=self.gpu_hours / self.gpus)

    def used_gpu_hours(self, now: dt.datetime | None = None) -> float:
        """GPUs x wall-clock, or the scheduler's count where it keeps one and that is more (it allocated more
        GPUs than were asked for; never less: its count may have been read a little before the end)."""
        own = 0.0
        if self.started_at is not None:
            end = self.finished_at or now or utc_now()
            own = max(0.0, (end - self.started_at).total_seconds()) / 3600 * self.gpus
        return own if self.accounted_gpu_hours is None else max(own, self.accounted_gpu_hours)

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
    backend: str  # the kind of backend that runs it (nanogpt_tui.backends.BACKEND_KINDS)
    host: str  # where it runs: a Docker host of the pool, "local", a Slurm partition; "" until placed
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
    handle: str | None = None  # the backend's own (container id, pid:ticks, Slurm job id); None until started
    facts: dict[str, str] = field(default_factory=dict)  # what the backend last said of it (job id, queue state)
    data_dir: str | None = None  # the shards folder linked in as workspace/data (local process trees)
    exit_code: int | None = None
    agent_model: str | None = None
    agent_effort: str | None = None
    host_forced: bool = False  # the user named the host (--host); otherwise the pool places it by free GPUs
    # "on": the backend's sandbox holds the agent; "off": it runs without one (the local backend always, a real
    # agent there only with the explicit `--sandbox off`); shown as "not sandboxed" on the card and in reports.
    sandbox: str = "on"
    allow_env_mismatch: bool = False  # --allow-env-mismatch: start even where the image's stack is not the anchor's
    env_check: dict[str, Any] | None = None  # the image's stack against the anchor's, as checked at start
    budget_usd: float | None = None  # dollars (agent and judge, at the config's prices) after which it is stopped
    accounted_gpu_hours: float | None = None  # the scheduler's accounting (Slurm's sacct), last read
    config: dict[str, Any] = field(default_factory=dict)  # the config snapshot the session was launched with
    schema_version: int = SESSION_SCHEMA_VERSION

    # --- budget ---------------------------------------------------------------------------------------------

    @property
    def total_gpu_hours(self) -> float:
        return self.budget_gpu_hours + sum(e.gpu_hours for e in self.extensions)

    def budget(self) -> Budget:
        return Budget(gpu_hours=self.total_gpu_hours, gpus=max(1, self.gpus), started_at=parse_iso(self.started_at),
                      finished_at=parse_iso(self.finished_at), accounted_gpu_hours=self.accounted_gpu_hours)

    @property
    def sandboxed(self) -> bool:
        """Whether the session runs in its backend's sandbox: the one test of `sandbox` (never compare it to "on")."""
        return self.sandbox != "off"

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
    def from_dict(cls, data: Any, folder_name: str | None = None) -> "Session":
        """A session from its JSON object, every field checked (type, range, finiteness, strict timestamps);
        `BadField` names the first bad one. Unknown fields are ignored (a newer version may add some)."""
        f = Fields(data)
        version = f.integer("schema_version")
        if version != SESSION_SCHEMA_VERSION:
            raise BadField("schema_version", f"is {version}; this version of nanogpt-tui reads "
                                             f"{SESSION_SCHEMA_VERSION}")
        session_id = f.text("id", pattern=SESSION_ID)
        if folder_name is not None and session_id != folder_name:
            raise BadField("id", f"is {session_id!r} but the folder is named {folder_name!r}")
        session = cls(
            id=session_id, agent=f.text("agent", non_empty=True), strategy=f.text("strategy", non_empty=True),
            strategy_hash=f.text("strategy_hash"), anchor=f.text("anchor", non_empty=True),
            target=f.text("target", None, optional=True), backend=f.text("backend", pattern=BACKEND_NAME),
            host=f.text("host", ""), image=f.text("image", None, optional=True),
            gpus=f.integer("gpus", minimum=1, maximum=MAX_GPUS),
            budget_gpu_hours=f.number("budget_gpu_hours", positive=True, maximum=MAX_GPU_HOURS),
            created_at=f.timestamp("created_at"),
            gpu_ids=f.values("gpu_ids", lambda v, name: whole(v, name, minimum=0, maximum=MAX_GPU_ID), []),
            extensions=f.items("extensions", Extension.read, []),
            started_at=f.timestamp("started_at", None, optional=True),
            deadline=f.timestamp("deadline", None, optional=True),
            finished_at=f.timestamp("finished_at", None, optional=True),
            status=f.text("status", choices=STATUSES), status_reason=f.text("status_reason", ""),
            transitions=f.items("transitions", Transition.read, []),
            handle=_handle(f),
            facts=_facts(f),
            exit_code=f.integer("exit_code", None, optional=True, minimum=-(2 ** 31), maximum=2 ** 31),
            agent_model=f.text("agent_model", None, optional=True),
            agent_effort=f.text("agent_effort", None, optional=True),
            data_dir=f.text("data_dir", None, optional=True), host_forced=f.boolean("host_forced", False),
            budget_usd=f.number("budget_usd", None, optional=True, positive=True),
            accounted_gpu_hours=f.number("accounted_gpu_hours", None, optional=True, minimum=0,
                                         maximum=MAX_GPU_HOURS * 1000),
            sandbox=f.text("sandbox", "on", choices=("on", "off")),
            config=f.mapping("config", {}), schema_version=version,
        )
        if len(set(session.gpu_ids)) != len(session.gpu_ids):
            raise BadField("gpu_ids", f"names a GPU twice ({session.gpu_ids})")
        if session.total_gpu_hours > MAX_GPU_HOURS:
            raise BadField("extensions", f"bring the budget to {session.total_gpu_hours:g} GPU-hours, above the "
                                         f"most allowed, {MAX_GPU_HOURS:g}")
        started, finished = parse_iso(session.started_at), parse_iso(session.finished_at)
        if started is not None and finished is not None and finished < started:
            raise BadField("finished_at", f"is {session.finished_at}, before started_at ({session.started_at})")
        return session


def _facts(f: Fields) -> dict[str, str]:
    facts = f.mapping("facts", {})
    for key, value in facts.items():
        if not isinstance(value, str):
            raise BadField(f"facts.{key}", f"is {value!r}, not text")
    return dict(facts)


def _handle(f: Fields) -> str | None:
    """The backend's handle; a file written before handles were the backends' own names a container id, or a pid
    and its start ticks (the local backend's `pid:ticks`)."""
    handle = f.text("handle", None, optional=True)
    if handle is not None:
        return handle
    container = f.text("container_id", None, optional=True)
    pid = f.integer("pid", None, optional=True, minimum=1, maximum=2 ** 31)
    ticks = f.integer("pid_start_ticks", None, optional=True, minimum=0, maximum=2 ** 63)
    return container or (f"{pid}:{ticks or 0}" if pid else None)


@dataclass(frozen=True)
class BrokenSession:
    """A session folder whose session.json cannot be read or does not hold a valid session: shown as broken, never
    a crash. `sentence` says which file, which field and what to do."""

    id: str  # the folder's name
    path: Path
    field: str | None  # the bad field (None when the file itself is unreadable or missing)
    sentence: str

    status = "broken"

    def __str__(self) -> str:
        return self.sentence

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "broken": self.sentence}


def read_session(session_dir: Path) -> Session | BrokenSession:
    """The session in `session_dir`, or a `BrokenSession` saying why not (never another exception for bad data)."""
    session_dir = Path(session_dir)
    path = session_dir / SESSION_FILE

    def broken(field: str | None, what: str, fix: str) -> BrokenSession:
        return BrokenSession(session_dir.name, session_dir, field, f"{path} {what}; {fix}")

    fix = ("the session's other files are intact: restore session.json from a backup, or remove the folder "
           f"(`rm -r {session_dir}`)")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_SESSION_FILE_BYTES + 1)
    except FileNotFoundError:
        return broken(None, "does not exist, so this folder is not a session", fix)
    except IsADirectoryError:
        return broken(None, "is a folder, not a file", fix)
    except OSError as err:
        return broken(None, f"cannot be read ({err.strerror})", "check its permissions and the disk")
    if len(raw) > MAX_SESSION_FILE_BYTES:
        return broken(None, f"is larger than {MAX_SESSION_FILE_BYTES // 2 ** 20} MB, far more than a session "
                            "file holds", fix)
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        return broken(None, "is not UTF-8 text", fix)
    except (ValueError, RecursionError) as err:  # JSONDecodeError, NaN, an integer of over 4300 digits
        return broken(None, f"is not readable JSON ({err})", fix)
    try:
        return Session.from_dict(data, folder_name=session_dir.name)
    except BadField as err:
        return broken(err.field, f"has a bad field: {err}", f"fix that field (or restore the file from a backup); "
                                                           f"`nanogpt-tui sessions show {session_dir.name}` reads it "
                                                           "again")


def _reject_constant(name: str) -> Any:
    # JSON has no NaN or Infinity; Python's json module accepts them unless told otherwise.
    raise BadField("(a value)", f"is {name}, which JSON does not allow")


def save_session(session_dir: Path, session: Session) -> None:
    atomic_write_json(Path(session_dir) / SESSION_FILE, session.to_dict())


def load_session(session_dir: Path) -> Session:
    """The session in `session_dir`; a `UserError` with the broken session's sentence otherwise."""
    result = read_session(session_dir)
    if isinstance(result, BrokenSession):
        raise UserError(result.sentence)
    return result
