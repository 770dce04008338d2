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
import signal
import sys
import threading
import time
from pathlib import Path

from nanogpt_tui.backends.base import EXITED, LaunchSpec
from nanogpt_tui.backends.slurm import LAUNCH_SCHEMA_VERSION, node_gpus, write_node_record
from nanogpt_tui.contract.deadline import DeadlineError, read_deadline, write_deadline
from nanogpt_tui.contract.runner_exit import EXIT_FAILED, EXIT_STOPPED
from nanogpt_tui.errors import UserError

POLL_S = 0.5


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
    for name in launch.get("env_from_job") or []:
        if os.environ.get(name):
            env[name] = os.environ[name]
    spec = LaunchSpec(
        session_id=launch["session_id"], image=launch.get("image"), command=list(launch["command"]), env=env,
        workspace_dir=Path(launch["workspace_dir"]), runner_dir=Path(launch["runner_dir"]),
        control_dir=Path(launch["control_dir"]), log_path=Path(launch["log_path"]),
        data_volume=launch.get("data_volume"), data_dir=Path(launch["data_dir"]) if launch.get("data_dir") else None,
        labels=dict(launch.get("labels") or {}), shm_size=launch.get("shm_size") or "16g", name=launch.get("name"),
        user=launch.get("user"), data_read_only=bool(launch.get("data_read_only", True)),
    )
    return spec, launch


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
    write_node_record(slurm_dir, runtime="docker", handle=container, docker_url=url)
    say(f"container {container[:12]} started" + (f" with GPUs {','.join(map(str, gpus))}" if gpus else ""))
    stop_event = threading.Event()
    stopper = Stopper(lambda: docker.stop(container, grace))
    signal.signal(signal.SIGINT, stopper)
    signal.signal(signal.SIGTERM, stopper)
    try:
        docker.stream_logs(container, spec.log_path, stop_event)
        code = docker.wait(container)
    finally:
        docker.remove(container)
        docker.close()
    return EXIT_FAILED if code is None else code


def run_as_processes(spec: LaunchSpec, slurm_dir: Path) -> int:
    from nanogpt_tui.backends.local import ProcessTrees

    trees = ProcessTrees()
    handle = trees.start(spec)
    write_node_record(slurm_dir, runtime="process", handle=handle, docker_url=None)
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
        if early.is_set():
            say("stopped before the session started")
            return EXIT_STOPPED
        start_the_budget(spec.control_dir)
        slurm_dir = Path(args[0]).parent
        if launch.get("runtime") == "process":
            return run_as_processes(spec, slurm_dir)
        return run_in_docker(spec, launch, slurm_dir)
    except UserError as err:
        say(f"cannot run the session: {err}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
