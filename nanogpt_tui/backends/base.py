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
