"""What every backend (Docker, local processes) is given and answers: headless, imports no backend library."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# Labels on every session container, so that a restarted control room finds its sessions again.
SESSION_LABEL = "nanogpt-tui.session"
IMAGE_LABEL = "nanogpt-tui.image"
VERSION_LABEL = "nanogpt-tui.version"

# Beside container.log: how far the Docker log stream has been copied, so a re-attach resumes without duplicates.
LOG_OFFSET_FILE = "logs.offset.json"


@dataclass
class EgressSpec:
    """A sandboxed Docker session's way out: the model gateway's routes and the real keys it alone holds."""

    state_dir: Path  # on the Docker host: the gateway's config, its address book and its records (out/)
    routes: dict[str, dict[str, str]]
    keys: dict[str, str]  # never written anywhere: sent to the gateway's stdin
    prefix: str = "nanogpt-tui"


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
    data_volume: str | None = None  # Docker: a named volume mounted at /workspace/data
    data_dir: Path | None = None  # local: the folder linked in as workspace/data
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


@dataclass
class BackendState:
    """What the backend knows of a session's container or process."""

    status: str  # "running", "exited", "missing", "unreachable" (Docker also: "created")
    exit_code: int | None = None
    detail: str = ""


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


class Backend(Protocol):
    name: str

    def start(self, spec: LaunchSpec) -> str:
        """Start the session; return its handle (container id, or pid for local processes)."""

    def state(self, handle: str) -> BackendState: ...

    def stop(self, handle: str, grace_s: float) -> None:
        """SIGINT, a grace period, then SIGKILL."""


# The validator's retiming worker (nanogpt_tui.validator.worker), as each backend runs it apart from the agent.
WORKER_MODULE = "nanogpt_tui.validator.worker"
WORKER_EXIT_REFUSED = 4


def worker_argv(python: str, *, candidate: str, out: str, data: str | None, runs: int, val_loss_target: float,
                p_value_threshold: float, timeout_s: float, agent_pids: list[int]) -> list[str]:
    """The worker's command line; `out` receives result.json and logs/."""
    argv = [python, "-m", WORKER_MODULE, "--candidate", candidate, "--result", f"{out}/result.json",
            "--logs", f"{out}/logs", "--runs", str(runs), "--val-loss-target", repr(val_loss_target),
            "--p-value-threshold", repr(p_value_threshold), "--timeout", repr(timeout_s),
            "--agent-pids", ",".join(map(str, agent_pids))]
    if data:
        argv += ["--data", data]
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
