"""Where everything of a session lives, on the host and inside its container.

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
    gpu.jsonl           GPU samples of the session's pinned GPUs, written host-side (docs/gpu-telemetry.md)
    validator/          written only by the validator, mounted read-only at /validator: frozen/ (submissions as
                        validated, with sealed sha256 manifests), verdicts/ (sealed), progress.jsonl, responses/
    slurm/              the Slurm job: job.sh (what sbatch runs), launch.json (the launch, secrets left out), job.out

Host side, `sessions/.egress/<docker host>/` (the model gateway's, mounted into its container and no session's):
    gateway.json, clients.json (address -> session), routes/<id>.json (a session's API endpoints, no keys),
    out/<id>.jsonl      what the gateway metered (`usage`: tokens per model request) and refused (`blocked`) for
                        a session; created when the session is attached, so its presence means "metered"

Inside, paths come from the environment (`nanogpt_tui.contract.env`), so the same runner works in a container and as
a local process tree.
"""

from __future__ import annotations

import os
from pathlib import Path

SESSION_FILE = "session.json"
CONTAINER_LOG = "container.log"
EVENTS_FILE = "events.jsonl"
INSPECT_FILE = "inspect.json"
GPU_FILE = "gpu.jsonl"  # host-side GPU samples (utilisation, memory, power) of the session's pinned GPUs
WORKSPACE = "workspace"
RUNNER = "runner"
CONTROL = "control"
DEADLINE_FILE = "deadline.json"  # in control/: read and written by nanogpt_tui.contract.deadline only
RUNNER_EXIT_FILE = "runner_exit.json"  # in workspace/logs/: how the runner ended (nanogpt_tui.contract.runner_exit)
VALIDATOR = "validator"
REQUESTS = "requests"  # in workspace/: the agent's `submit` asks the validator here
WORKSPACE_DIRS = ("experiments", "submissions", "verdicts", "logs", "home", REQUESTS)
EGRESS_DIR = ".egress"  # in the sessions folder: one folder per Docker host for its model gateway
EGRESS_OUT = "out"  # in EGRESS_DIR/<host>/: <session id>.jsonl, the gateway's records of each session
SLURM_DIR = "slurm"
SLURM_SCRIPT = "job.sh"
SLURM_LAUNCH = "launch.json"
SLURM_OUTPUT = "job.out"
SLURM_HANDOVER = "handover.json"  # in slurm/: the job waits for its API keys (names only), written by the job
SLURM_NODE = "node.json"  # in slurm/: where the job runs the session (node, runtime, handle), written by the job

# Container-side mount points.
CONTAINER_WORKSPACE = "/workspace"
CONTAINER_RUNNER = "/runner"
CONTAINER_CONTROL = "/control"
CONTAINER_DATA = "/workspace/data"
CONTAINER_VALIDATOR = "/validator"
CONTAINER_ANCHOR = "/runner/anchor"  # the anchor's code, read-only: what `submit` compares with


def session_dir(sessions_root: Path, session_id: str) -> Path:
    """The folder of one session."""
    return Path(sessions_root) / session_id


def gateway_dir(sessions_root: Path, host: str | None) -> Path:
    """The model gateway's folder for Docker host `host`: its config, address book and per-session records."""
    return Path(sessions_root) / EGRESS_DIR / (host or "unplaced")


def gateway_meter(gateway_folder: Path, session_id: str) -> Path:
    """Where the gateway of `gateway_folder` writes a session's records (metered usage and refusals)."""
    return Path(gateway_folder) / EGRESS_OUT / f"{session_id}.jsonl"


def events_path(session_dir: Path) -> Path:
    """A session's event stream: the folder's `events.jsonl` link, or the workspace's file itself where the link
    is missing (a session folder copied without its links)."""
    link = Path(session_dir) / EVENTS_FILE
    return link if os.path.lexists(link) else Path(session_dir) / WORKSPACE / "logs" / EVENTS_FILE


def gateway_records(sessions_root: Path, host: str, session_id: str) -> Path:
    """The model gateway's records of a session placed on Docker host `host` (usage and refusals)."""
    return gateway_meter(gateway_dir(sessions_root, host), session_id)
