"""The backend protocol: what the session manager may ask of any place sessions run (local processes, a Docker
host, the pool of Docker hosts, Slurm), and the plain values it passes. Headless; imports no backend library and
nothing from `sessions` (the manager speaks to backends only through this module)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from nanogpt_tui.contract import layout

# Labels on every session container, so that a restarted control room finds its sessions again.
SESSION_LABEL = "nanogpt-tui.session"
IMAGE_LABEL = "nanogpt-tui.image"
VERSION_LABEL = "nanogpt-tui.version"

# Beside container.log: how far the Docker log stream has been copied, so a re-attach resumes without duplicates.
LOG_OFFSET_FILE = "logs.offset.json"

# What a session runs: the in-session watchdog (python3 is the session's interpreter; the local backend uses its own).
RUNNER_COMMAND = ("python3", "-m", "nanogpt_tui.sessions.runner")

# BackendState.status values.
RUNNING, CREATED, QUEUED, EXITED, MISSING, UNREACHABLE = "running", "created", "queued", "exited", "missing", \
    "unreachable"


@dataclass(frozen=True)
class MountPoints:
    """Where the runner sees the session's workspace, runner, control and validator folders."""

    workspace: str
    runner: str
    control: str
    validator: str
    container: bool  # inside a container (it runs as a non-root user there), or a process of this machine


CONTAINER_MOUNTS = MountPoints(layout.CONTAINER_WORKSPACE, layout.CONTAINER_RUNNER, layout.CONTAINER_CONTROL,
                               layout.CONTAINER_VALIDATOR, container=True)


def host_mounts(session_dir: Path) -> MountPoints:
    """The session's own folders, for a runner that is a process of this machine."""
    d = Path(session_dir)
    return MountPoints(str(d / layout.WORKSPACE), str(d / layout.RUNNER), str(d / layout.CONTROL),
                       str(d / layout.VALIDATOR), container=False)


@dataclass
class EgressSpec:
    """A sandboxed Docker session's way out: the model gateway's routes and the real keys it alone holds."""

    state_dir: Path  # on the Docker host: the gateway's config, its address book and its records (out/)
    routes: dict[str, dict[str, str]]
    keys: dict[str, str]  # never written anywhere: sent to the gateway's stdin
    prefix: str = "nanogpt-tui"
    allow: tuple[str, ...] = ()  # `[sandbox] allow`: "host:port" the gateway's CONNECT proxy tunnels to


@dataclass
class LaunchSpec:
    """Everything needed to start one session's container or process tree."""

    session_id: str
    image: str | None
    command: list[str]
    env: dict[str, str]  # includes API keys from the host environment: never write this anywhere
    workspace_dir: Path
    runner_dir: Path
    control_dir: Path
    log_path: Path  # container.log
    data_volume: str | None = None  # Docker: a named volume mounted at /workspace/data (the backend sets it)
    data_dir: Path | None = None  # local: the folder linked in as workspace/data (the backend sets it)
    gpu_ids: list[int] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    shm_size: str = "16g"
    name: str | None = None
    # Docker: the shared shards are mounted read-only, so no session can change the data other sessions train on.
    data_read_only: bool = True
    # Docker: "uid:gid" to run as (e.g. the host user's, so workspace files stay theirs); None keeps the image's user.
    user: str | None = None
    # The validator's folder (verdicts, frozen submissions): mounted read-only, written only by the validator.
    validator_dir: Path | None = None
    # Docker limits: memory (e.g. "64g", None for none), a pids limit, and a read-only root filesystem (the
    # workspace and tmpfs /tmp are then the only writable places).
    memory: str | None = None
    pids_limit: int = 8192
    read_only_root: bool = True
    # Docker: the session's internal network and model gateway; None for a session run with `--sandbox off`.
    egress: EgressSpec | None = None
    gpus: int = 0  # GPUs the session asked for (a scheduler requests them; Docker pins gpu_ids)
    host: str = ""  # where it was placed (a Docker host of the pool, a Slurm partition)
    time_limit_s: float | None = None  # wall-clock the session may take (the budget), for a scheduler's limit


@dataclass(frozen=True)
class SessionRef:
    """What a backend is told about one of its sessions. `handle` is the backend's own (a container id, `pid:ticks`,
    a Slurm job id): the manager stores it and passes it back, never reads it."""

    session_id: str
    session_dir: Path
    host: str = ""
    handle: str | None = None
    gpu_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Target:
    """Where a new session is headed, as recorded at creation."""

    host: str  # "" when the backend places it at start
    image: str | None
    host_forced: bool = False  # the user named the host: placement may not choose another


@dataclass(frozen=True)
class PlaceRequest:
    session_id: str
    gpus: int
    host: str | None  # the host the user named, None to let the backend choose
    image: str | None
    anchor: str
    allow_env_mismatch: bool = False  # start even where the image's stack differs from the anchor's
    synthetic_data: bool = False  # the anchor trains on `data synth`'s shards: a backend may make them when missing


@dataclass(frozen=True)
class Holding:
    """GPUs a live session holds on a host (an unreachable one still holds them)."""

    session_id: str
    host: str
    gpu_ids: tuple[int, ...]


@dataclass(frozen=True)
class Placement:
    """Where a session goes, or why it waits."""

    host: str | None  # None: nothing fits now (see reason)
    gpu_ids: list[int]
    reason: str
    blocking: bool = False  # waiting alone will not help: the user must act (create an image or a volume)
    impossible: bool = False  # it can never fit (more GPUs than any host has)
    # The one place it may run (named, or the only one there is) does not answer: why. A launch that must not wait
    # fails with it.
    unreachable: str = ""
    env_check: dict | None = None  # the image's stack against the anchor's, where the backend checks it
    data_dir: str | None = None  # the shards linked in as workspace/data, where the backend links a folder


@dataclass
class BackendState:
    """What the backend knows of a session's container, process or job."""

    status: str  # RUNNING, CREATED, QUEUED (a scheduler holds it), EXITED, MISSING, UNREACHABLE
    exit_code: int | None = None
    detail: str = ""  # e.g. Slurm's "PENDING (Resources)", or why it is unreachable
    facts: dict[str, str] = field(default_factory=dict)  # shown with the session: e.g. job id, partition, node
    started_at: dt.datetime | None = None  # when a scheduler started running it (its budget starts then)
    # An ended one: when it ended, as the backend recorded it (the true end even when the runner could not write
    # its exit record, or the host looked much later), and what outside the session ended it, in a few words
    # ("out of memory (limit 96 MiB)"), where the backend knows.
    ended_at: dt.datetime | None = None
    killed_by: str = ""
    gpu_hours: float | None = None  # what the scheduler's accounting counts (Slurm's sacct), None where none is kept


@dataclass(frozen=True)
class ContainerInfo:
    """A session container found on a Docker host by its labels."""

    container_id: str
    name: str
    session_id: str
    image: str
    status: str  # Docker's own word: created, running, paused, restarting, exited, dead
    exit_code: int | None
    labels: dict[str, str]
    created: str  # ISO time, as Docker reports it


class LogFollower(Protocol):
    """A thread copying a session's output into its container.log."""

    @property
    def running(self) -> bool: ...

    # Why the copy stopped before the session ended (one sentence: a full disk, its host away); None otherwise.
    error: Exception | None

    def join(self, timeout: float | None = None) -> None: ...

    def close(self) -> None: ...


class Backend(Protocol):
    """Everything the session manager asks of a backend; it never asks which one it holds."""

    kind: str  # the `backend` value of the sessions it runs ("local", "docker", "slurm")
    default_gpus: int | None  # GPUs a session gets when none are asked for (None: benchmark.gpus_per_session)
    sandboxed: bool  # whether its sessions run in the sandbox (a container on an internal network)

    def mounts(self, session_dir: Path) -> MountPoints:
        """Where the runner will see the session's folders."""

    def admit(self, host: str | None, image: str | None) -> Target:
        """Check a new session's host and image (a UserError names what is wrong); where it is headed."""

    def survey(self) -> None:
        """Learn what placement needs (may be slow: the manager calls it outside the placement lock)."""

    def place(self, request: PlaceRequest, held: Sequence[Holding]) -> Placement:
        """Where the session starts now, given the GPUs live sessions hold; includes the pre-start checks."""

    def preflight(self, host: str, image: str | None) -> list[str]:
        """What `host` lacks for a session to start there, one sentence each with the fix."""

    def start(self, ref: SessionRef, spec: LaunchSpec) -> str:
        """Start the session; return its handle."""

    def find(self, ref: SessionRef) -> str | None:
        """The handle of the session by its id, when the one recorded is lost (a restart between start and save)."""

    def state(self, ref: SessionRef) -> BackendState: ...

    def stop(self, ref: SessionRef, grace_s: float) -> None:
        """SIGINT (the runner stops the agent), `grace_s`, then kill."""

    def follow_logs(self, ref: SessionRef, log_path: Path) -> LogFollower | None:
        """Start copying the output into `log_path` (None when the session writes it itself)."""

    def extend(self, ref: SessionRef, deadline: dt.datetime) -> str | None:
        """The deadline file has moved to `deadline`; move what else limits the session. A sentence when something
        could not be moved (the session then ends at the earlier limit)."""

    def release(self, ref: SessionRef, egress_prefix: str | None) -> None:
        """Once the session has ended and its output is copied: drop what it held (a container and its stored
        config, its internal network); what the session folder keeps stays."""

    def hand_over(self, ref: SessionRef, launch: Callable[[], LaunchSpec]) -> None:
        """A started session that waits for what must pass through no scheduler and no file (its API keys): hand
        it over now; `launch()` rebuilds the session's LaunchSpec, secrets included. Called on every look at a
        running session; returns at once when nothing waits (a UserError says why a hand-over failed)."""

    def pause(self, ref: SessionRef) -> list[int]:
        """Freeze the session while the validator retimes on its GPUs; the pids (or nothing) frozen."""

    def resume(self, ref: SessionRef) -> None: ...

    def retime_isolated(self, ref: SessionRef, **kwargs) -> dict:
        """Run the validator's retiming worker apart from the agent (see sessions.validation)."""

    def close(self) -> None:
        """Drop connections and followers; the sessions keep running."""


# The validator's retiming worker (nanogpt_tui.validator.worker), as each backend runs it apart from the agent.
WORKER_MODULE = "nanogpt_tui.validator.worker"
WORKER_EXIT_REFUSED = 4


def worker_argv(python: str, *, candidate: str, out: str, data: str | None, runs: int, val_loss_target: float,
                p_value_threshold: float, timeout_s: float, agent_pids: list[int],
                control: str | None = None) -> list[str]:
    """The worker's command line; `out` receives result.json and logs/; `control`, the session's control folder as
    the worker sees it, bounds the retiming by the session's deadline."""
    argv = [python, "-m", WORKER_MODULE, "--candidate", candidate, "--result", f"{out}/result.json",
            "--logs", f"{out}/logs", "--runs", str(runs), "--val-loss-target", repr(val_loss_target),
            "--p-value-threshold", repr(p_value_threshold), "--timeout", repr(timeout_s),
            "--agent-pids", ",".join(map(str, agent_pids))]
    if data:
        argv += ["--data", data]
    if control:
        argv += ["--control", control]
    return argv


def read_worker_result(out_dir: Path, exit_code: int, output_tail: str) -> dict:
    """The worker's result.json; a run that wrote none becomes one failed run saying why."""
    import json

    try:
        data = json.loads((Path(out_dir) / "result.json").read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return data
    except (OSError, ValueError):
        pass
    return {"runs": [], "requested": 0, "stopped_early": False,
            "stop_reason": f"the validator's retiming worker exited {exit_code} without a result: "
                           f"{output_tail.strip()[-300:]}"}


def forward_worker_line(line: str, on_line) -> None:
    """A line of the worker's output: its JSON progress lines become progress, anything else passes as is."""
    import json

    text = line.rstrip("\n")
    if not text:
        return
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("text"), str):
        on_line(data["text"])
    else:
        on_line(text[:500])
