"""The local backend: a session as a plain process tree on this machine (no Docker, no GPU), with the same layout,
budget, kill and extend as a container. The demo and many tests use it."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from nanogpt_tui.backends.base import (
    EXITED,
    RUNNING,
    BackendState,
    Holding,
    LaunchSpec,
    MountPoints,
    Placement,
    PlaceRequest,
    SessionRef,
    Target,
    forward_worker_line,
    host_mounts,
    read_worker_result,
    worker_argv,
)
from nanogpt_tui.contract import layout as L
from nanogpt_tui.contract.env import without_secrets
from nanogpt_tui.contract.runner_exit import STOP_SIGNALS
from nanogpt_tui.errors import UserError
from nanogpt_tui.procgroup import pid_namespace_prefix, start_ticks

STOP_RESEND_S = 1.0  # how often a stop is sent again while the session has not ended


class ShardFolder:
    """The shards of a folder on this machine (`paths.data_dir`), linked in as a process session's workspace/data:
    the data placement of the local backend and of Slurm's process runtime alike."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir)

    @property
    def linked(self) -> Path:
        """The folder as the session links it."""
        return self.path.resolve()

    def missing(self) -> list[str]:
        """What is missing in the folder for a session, one sentence with the fix."""
        shards = self.path / "fineweb10B"
        if shards.is_dir() and any(shards.glob("fineweb_val_*.bin")):
            return []
        return [f"No shards in {shards} for the session; put FineWeb shards there (or set paths.data_dir)."]

    def prepare(self, request: PlaceRequest) -> None:
        """The smoke track's records train on synthetic shards: make them when there are none."""
        if request.synthetic_data and self.missing():
            from nanogpt_tui.shards import synthesize

            synthesize(self.path / "fineweb10B")


class ProcessTrees:
    """Runs `spec.command` in a new session (process group) whose output is appended to container.log; a handle is
    `pid:start ticks`, so a reused pid is not mistaken for the session."""

    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen] = {}

    def start(self, spec: LaunchSpec) -> str:
        if spec.data_dir is not None:
            link = spec.workspace_dir / "data"
            if not link.exists() and not link.is_symlink():
                link.symlink_to(Path(spec.data_dir).resolve(), target_is_directory=True)
        # A process of this user: it inherits this environment under the session's own variables.
        env = {**os.environ, **spec.env}
        command = list(spec.command)
        if command[:1] == ["python3"]:
            command[0] = sys.executable  # the runner runs on the interpreter running us
        # Harness scripts call `python3 -m nanogpt_tui ...`: make that the interpreter running us.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.environ.get("PATH", ""))])
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        prefix, why = pid_namespace_prefix()
        try:
            with open(spec.log_path, "ab") as log:
                if not prefix:
                    log.write(f"[local backend] no PID namespace for this session: {why}; the runner (a child "
                              "subreaper) still stops its agent's whole tree, but a SIGKILLed runner leaves it "
                              "running.\n".encode())
                    log.flush()
                # Started with the stop signals blocked (a child inherits the mask): a stop while the runner's
                # interpreter is still starting waits for the runner's handlers instead of killing it unrecorded.
                blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
                try:
                    proc = subprocess.Popen([*prefix, *command], cwd=spec.workspace_dir, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
                finally:
                    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        except OSError as err:
            raise UserError(f"Could not start the local session process ({err}); check that {command[0]} "
                            "exists.") from None
        self._children[proc.pid] = proc
        ticks = None
        for _ in range(50):
            ticks = start_ticks(proc.pid)
            if ticks is not None or proc.poll() is not None:
                break
            time.sleep(0.01)
        return f"{proc.pid}:{ticks or 0}"

    @staticmethod
    def parse_handle(handle: str) -> tuple[int, int]:
        pid, _, ticks = handle.partition(":")
        return int(pid), int(ticks or 0)

    def state(self, handle: str) -> BackendState:
        pid, ticks = self.parse_handle(handle)
        child = self._children.get(pid)
        if child is not None:
            code = child.poll()
            if code is None:
                return BackendState(RUNNING)
            return BackendState(EXITED, exit_code=code)
        current = start_ticks(pid)
        if current is not None and (ticks == 0 or current == ticks):
            return BackendState(RUNNING)
        return BackendState(EXITED, detail="the process is gone; its exit code is in the runner's record")

    def stop(self, handle: str, grace_s: float) -> None:
        pid, _ = self.parse_handle(handle)
        if self.state(handle).status != "running":
            return
        try:
            os.killpg(pid, signal.SIGINT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        again = time.monotonic() + STOP_RESEND_S
        while time.monotonic() < deadline:
            if self.state(handle).status != "running":
                return
            if time.monotonic() >= again:
                # A stop sent before `unshare` has forked the runner reaches only unshare, which holds it blocked
                # and never passes it on: ask again (a runner already stopping takes it as the same request).
                try:
                    os.killpg(pid, signal.SIGINT)
                except ProcessLookupError:
                    return
                again = time.monotonic() + STOP_RESEND_S
            time.sleep(0.1)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child = self._children.get(pid)
        if child is not None:
            child.wait()

    # --- the validator apart from the agent (same user here: not tamper-proof, see sessions.validation) -------

    def _tree(self, handle: str) -> list[int]:
        from nanogpt_tui.procgroup import descendants

        pid, _ = self.parse_handle(handle)
        if self.state(handle).status != "running":
            return []
        return [pid, *descendants(pid)]

    def pause(self, handle: str) -> list[int]:
        """SIGSTOP to the session's whole process tree; the pids stopped."""
        pids = self._tree(handle)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        # A process forked between the listing and the stop: stop it too.
        for pid in self._tree(handle):
            if pid not in pids:
                try:
                    os.kill(pid, signal.SIGSTOP)
                    pids.append(pid)
                except ProcessLookupError:
                    pass
        return pids

    def resume(self, handle: str) -> None:
        for pid in self._tree(handle):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def retime_isolated(self, handle: str | None, *, session_dir: Path, candidate_dir: Path, out_dir: Path,
                        runs: int, val_loss_target: float, p_value_threshold: float, timeout_s: float,
                        gpu_ids: list[int], data_dir: Path | None, agent_pids: list[int], on_line) -> dict:
        """The retiming worker as a separate process of this user, secrets left out of its environment."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        argv = worker_argv(sys.executable, candidate=str(candidate_dir), out=str(out_dir),
                           data=str(data_dir) if data_dir else None, runs=runs, val_loss_target=val_loss_target,
                           p_value_threshold=p_value_threshold, timeout_s=timeout_s, agent_pids=agent_pids,
                           control=str(Path(session_dir) / L.CONTROL))
        env = without_secrets(os.environ)
        # As for the session itself: the interpreter running us (and its torchrun) first on PATH.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        if gpu_ids:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpu_ids))
        tail: list[str] = []
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=out_dir, text=True, start_new_session=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = (tail + [line])[-20:]
            forward_worker_line(line, on_line)
        code = proc.wait()
        return read_worker_result(out_dir, code, "".join(tail))

    def close(self) -> None:
        return None  # the trees keep running; nothing is held open


class LocalBackend:
    """The local backend: sessions as process trees of this machine (no Docker, no GPU: one GPU is counted), with
    the shards of `data_dir` linked in as workspace/data (the smoke record's are synthesized there on demand)."""

    kind = "local"
    default_gpus = 1
    sandboxed = False  # a process of this user: no sandbox

    def __init__(self, data_dir: Path) -> None:
        self.shards = ShardFolder(data_dir)
        self.processes = ProcessTrees()

    def mounts(self, session_dir: Path) -> MountPoints:
        return host_mounts(session_dir)

    def admit(self, host: str | None, image: str | None) -> Target:
        if host not in (None, "", self.kind):
            raise UserError(f"A local session runs on this machine; drop --host {host} or use --backend docker.")
        return Target(host=self.kind, image=None)

    def survey(self) -> None:
        return None

    def preflight(self, host: str, image: str | None) -> list[str]:
        return self.shards.missing()

    def place(self, request: PlaceRequest, held: Sequence[Holding]) -> Placement:
        self.shards.prepare(request)
        problems = self.preflight(self.kind, None)
        if problems:
            return Placement(None, [], " ".join(problems), blocking=True)
        return Placement(self.kind, [], "on this machine", data_dir=str(self.shards.linked))

    def start(self, ref: SessionRef, spec: LaunchSpec) -> str:
        return self.processes.start(replace(spec, data_dir=self.shards.linked))

    def find(self, ref: SessionRef) -> str | None:
        return None  # a process is found by the handle recorded at start only

    def state(self, ref: SessionRef) -> BackendState:
        if not ref.handle:
            return BackendState(EXITED, detail="no process was recorded")
        return self.processes.state(ref.handle)

    def stop(self, ref: SessionRef, grace_s: float) -> None:
        if ref.handle:
            self.processes.stop(ref.handle, grace_s)

    def follow_logs(self, ref: SessionRef, log_path: Path) -> None:
        return None  # the process tree writes container.log itself

    def extend(self, ref: SessionRef, deadline: dt.datetime) -> str | None:
        return None  # the deadline file is all there is

    def release(self, ref: SessionRef, egress_prefix: str | None) -> None:
        return None  # a process tree holds nothing once it has ended

    def hand_over(self, ref: SessionRef, launch) -> None:
        return None  # its environment was given at start, by this machine

    def pause(self, ref: SessionRef) -> list[int]:
        return self.processes.pause(ref.handle) if ref.handle else []

    def resume(self, ref: SessionRef) -> None:
        if ref.handle:
            self.processes.resume(ref.handle)

    def retime_isolated(self, ref: SessionRef, **kwargs) -> dict:
        return self.processes.retime_isolated(ref.handle, **kwargs)

    def close(self) -> None:
        return None
