"""What a session's Slurm job runs on its node (host side, not the agent's): starts the budget, then runs the session
runner through the node's Docker (the container contract, sandbox included) or as a process tree, copies its output
into the shared container.log, and stops it cleanly on SIGINT/SIGTERM (`scancel --batch --signal=INT`, or Slurm's
own signal at the job's time limit).

    python3 -m nanogpt_tui.backends.slurm_job SESSION/slurm/launch.json

Exit status: the runner's (0 done, 3 deadline, 130 stopped, 1 failed), 1 when the session could not start.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

from nanogpt_tui.backends.base import EXITED, EgressSpec, LaunchSpec
from nanogpt_tui.backends.slurm import (
    LAUNCH_SCHEMA_VERSION,
    ContainerOnNode,
    ProcessesOnNode,
    node_gpus,
    write_handover,
    write_node_record,
)
from nanogpt_tui.contract import layout
from nanogpt_tui.contract.deadline import DeadlineError, read_deadline, write_deadline
from nanogpt_tui.contract.runner_exit import EXIT_FAILED, EXIT_STOPPED
from nanogpt_tui.errors import UserError

POLL_S = 0.5
HANDOVER_WAIT_S = 600.0  # how long a job waits for its API keys before it gives up


def say(text: str) -> None:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%H:%M:%S")
    print(f"[slurm job {stamp}] {text}", flush=True)


def load_launch(path: Path) -> tuple[LaunchSpec, dict]:
    """The launch the control room wrote, with the secret values it left out taken from the job's environment."""
    try:
        launch = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"{path} cannot be read ({err}); submit the session again.") from None
    if not isinstance(launch, dict) or launch.get("schema_version") != LAUNCH_SCHEMA_VERSION:
        raise UserError(f"{path} is not a launch this version of nanogpt-tui reads; submit the session again.")
    env = dict(launch["env"])
    spec = LaunchSpec(
        session_id=launch["session_id"], image=launch.get("image"), command=list(launch["command"]), env=env,
        workspace_dir=Path(launch["workspace_dir"]), runner_dir=Path(launch["runner_dir"]),
        control_dir=Path(launch["control_dir"]), log_path=Path(launch["log_path"]),
        data_volume=launch.get("data_volume"), data_dir=Path(launch["data_dir"]) if launch.get("data_dir") else None,
        labels=dict(launch.get("labels") or {}), shm_size=launch.get("shm_size") or "16g", name=launch.get("name"),
        user=launch.get("user"), data_read_only=bool(launch.get("data_read_only", True)),
        # The validator's folder (read-only in the container: the agent's submit reads its answers there).
        validator_dir=Path(launch["validator_dir"]) if launch.get("validator_dir") else None,
        memory=launch.get("memory"), pids_limit=int(launch.get("pids_limit") or 8192),
        read_only_root=bool(launch.get("read_only_root", True)),
    )
    egress = launch.get("egress")
    if egress:
        spec.egress = EgressSpec(state_dir=Path(egress["state_dir"]), routes=dict(egress["routes"]), keys={},
                                 prefix=egress["prefix"], allow=tuple(egress.get("allow") or ()))
    return spec, launch


class Stopped(Exception):
    """A stop came before the session started."""


def receive_secrets(slurm_dir: Path, wanted: dict, stop: threading.Event) -> dict:
    """Wait for the control room to hand over the session's secrets (a step of this job writes them to a socket in a
    folder only this user can open; see slurm_step): they pass through no Slurm state and no file. A hand-over that
    lacks one of the `wanted` names (from a host process whose environment lacks the key) is refused, and the job
    waits on for one that has them all."""
    names = sorted(set(wanted.get("env") or []) | set(wanted.get("gateway") or []))
    folder = Path(tempfile.mkdtemp(prefix=f"ngt-{os.environ.get('SLURM_JOB_ID', 'job')}-"))  # mode 0700
    path = folder / "hand-over.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        server.listen(2)
        server.settimeout(0.5)
        write_handover(slurm_dir, socket_path=str(path), names=names)
        say(f"waiting for the control room to hand over {', '.join(names)} (they never pass through Slurm)")
        give_up = time.monotonic() + HANDOVER_WAIT_S
        while True:
            if stop.is_set():
                raise Stopped
            if time.monotonic() > give_up:
                raise UserError(f"no host process handed over the API keys within {HANDOVER_WAIT_S:g} s; keep the "
                                "control room (or `nanogpt-tui sessions list`) running where the session was "
                                "started, and start it again")
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                          struct.calcsize("3i")))[1]
                if uid != os.getuid():
                    continue  # only this user's steps (the directory already keeps others out)
                conn.settimeout(20)
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
                    if len(data) > 1 << 20:
                        break
                try:
                    secrets = json.loads(data)
                except ValueError:
                    conn.sendall(b"unreadable\n")
                    continue
                if not isinstance(secrets, dict):
                    conn.sendall(b"unreadable\n")
                    continue
                missing = [n for part in ("env", "gateway") for n in wanted.get(part) or []
                           if not (secrets.get(part) or {}).get(n)]
                if missing:
                    conn.sendall(f"missing {' '.join(missing)}\n".encode())
                    continue
                conn.sendall(b"ok\n")
            say("the API keys were handed over")
            return secrets
    finally:
        server.close()
        (slurm_dir / layout.SLURM_HANDOVER).unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)


def take_secrets(spec: LaunchSpec, launch: dict, slurm_dir: Path, stop: threading.Event) -> None:
    """The API keys into the session's environment, or to its model gateway (the sandbox), as the launch says."""
    wanted = launch.get("hand_over") or {}
    if not (wanted.get("env") or wanted.get("gateway")):
        return
    secrets = receive_secrets(slurm_dir, wanted, stop)
    env = {k: str(v) for k, v in (secrets.get("env") or {}).items() if k in (wanted.get("env") or [])}
    spec.env.update(env)
    if spec.egress is not None:
        spec.egress.keys = {k: str(v) for k, v in (secrets.get("gateway") or {}).items()}


def start_the_budget(control_dir: Path) -> None:
    """The budget runs from now, not from the submission: move the deadline to now + budget / GPUs."""
    try:
        current = read_deadline(control_dir)
    except DeadlineError as err:
        say(f"warning: {err}")
        return  # the runner refuses to start without a deadline, and says so
    if current.budget_gpu_hours is None or not current.gpus:
        return
    deadline = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=current.budget_gpu_hours / current.gpus)
    write_deadline(control_dir, deadline, gpus=current.gpus, budget_gpu_hours=current.budget_gpu_hours,
                   grace_s=current.grace_s)
    say(f"the budget starts now: deadline {deadline.isoformat(timespec='seconds')}")


class Stopper:
    """Turns SIGINT/SIGTERM into one stop of the session, on a thread (a signal handler must not block)."""

    def __init__(self, stop) -> None:
        self._stop = stop
        self.requested = threading.Event()

    def __call__(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        if self.requested.is_set():
            return
        self.requested.set()
        say(f"{signal.Signals(signum).name} received; stopping the session")
        threading.Thread(target=self._stop, name="stop-session", daemon=True).start()


def run_in_docker(spec: LaunchSpec, launch: dict, slurm_dir: Path) -> int:
    from nanogpt_tui.backends.docker_backend import DockerBackend

    url = launch.get("docker_url") or "unix:///var/run/docker.sock"
    docker = DockerBackend(url=url, name=os.environ.get("SLURMD_NODENAME") or "this node")
    gpus, warning = node_gpus(docker)
    if warning:
        say(warning)
    spec.gpu_ids = gpus
    grace = _grace(spec)
    container = docker.create_and_start(spec)
    write_node_record(slurm_dir, runtime=ContainerOnNode.name, handle=container, docker_url=url)
    say(f"container {container[:12]} started" + (f" with GPUs {','.join(map(str, gpus))}" if gpus else ""))
    stop_event = threading.Event()
    stopper = Stopper(lambda: docker.stop(container, grace))
    signal.signal(signal.SIGINT, stopper)
    signal.signal(signal.SIGTERM, stopper)
    try:
        docker.stream_logs(container, spec.log_path, stop_event)
        code = docker.wait(container)
    finally:
        # The container (its stored config with it) and the session's internal network go; the redacted inspect
        # stays beside container.log.
        docker.release(container, spec.session_id, spec.log_path.with_name(layout.INSPECT_FILE),
                       spec.egress.prefix if spec.egress is not None else None)
        docker.close()
    return EXIT_FAILED if code is None else code


def run_as_processes(spec: LaunchSpec, slurm_dir: Path) -> int:
    from nanogpt_tui.backends.local import ProcessTrees

    trees = ProcessTrees()
    handle = trees.start(spec)
    write_node_record(slurm_dir, runtime=ProcessesOnNode.name, handle=handle, docker_url=None)
    stopper = Stopper(lambda: trees.stop(handle, _grace(spec)))
    signal.signal(signal.SIGINT, stopper)
    signal.signal(signal.SIGTERM, stopper)
    while True:
        state = trees.state(handle)
        if state.status == EXITED:
            return EXIT_FAILED if state.exit_code is None else state.exit_code
        time.sleep(POLL_S)


def _grace(spec: LaunchSpec) -> float:
    try:
        return min(read_deadline(spec.control_dir).grace_s, 10.0)
    except DeadlineError:
        return 10.0


def main(argv: list[str] | None = None) -> int:
    # A stop that comes before the session has started: nothing to stop yet, so do not start it.
    early = threading.Event()
    signal.signal(signal.SIGINT, lambda signum, frame: early.set())
    signal.signal(signal.SIGTERM, lambda signum, frame: early.set())
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python3 -m nanogpt_tui.backends.slurm_job SESSION/slurm/launch.json", file=sys.stderr)
        return 2
    try:
        spec, launch = load_launch(Path(args[0]))
        say(f"session {spec.session_id} on {os.environ.get('SLURMD_NODENAME', 'this node')}, job "
            f"{os.environ.get('SLURM_JOB_ID', '?')}")
        slurm_dir = Path(args[0]).parent
        if early.is_set():
            say("stopped before the session started")
            return EXIT_STOPPED
        try:
            take_secrets(spec, launch, slurm_dir, early)
        except Stopped:
            say("stopped before the session started")
            return EXIT_STOPPED
        start_the_budget(spec.control_dir)
        if launch.get("runtime") == ProcessesOnNode.name:
            return run_as_processes(spec, slurm_dir)
        return run_in_docker(spec, launch, slurm_dir)
    except UserError as err:
        say(f"cannot run the session: {err}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
