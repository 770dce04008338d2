"""Sessions as Slurm jobs, through Slurm's own client commands (sbatch, squeue, scontrol, scancel, sacct).

A session is one job: `sbatch --gres=gpu:N` (Slurm picks and pins the GPUs), the session id in the job name
(`ngt-<id>`) and comment, `--no-requeue` (a job that ran once must not start over with a fresh budget), `--time`
from the budget or a configured cap. The job runs `python3 -m nanogpt_tui.backends.slurm_job` on the node, which
starts the budget there (it rewrites the deadline file when the job starts, so time in the queue is not spent) and
runs the same container contract as the Docker backend through the node's Docker (or a process tree, for tests).
Logs come back through the shared sessions folder, so the node must see it at the same path.

Status and re-attach go through `squeue` (the job's state, Slurm's reason, partition, node), then `sacct` where
accounting is configured, then `scontrol show job` while the controller still remembers the job. A controller
that does not answer makes the session `unreachable`, never ended: the job keeps running on its node. Where
accounting is on, a job's GPU-hours are sacct's (elapsed x the allocated `gres/gpu` TRES).

Kill is `scancel --batch --signal=INT` (the job's own process, which stops the container and the runner cleanly),
the grace period, then `scancel`. `extend` moves the deadline file; the job's TimeLimit only where
`slurm.raise_time_limit` says the user may (an operator's right on most clusters).

The validator apart from the agent works through job steps of the session's own job (`srun --jobid=J --overlap`,
`nanogpt_tui.backends.slurm_step`), on its node and its allocation: a step pauses the agent (`docker pause` of the
session's container, or SIGSTOP to its process tree), a step retimes the frozen submission (in a container of its own
on the node's Docker, or a separate process) with the job's GPUs, bounded by the session's deadline file, and a step
resumes the agent. The job records where it runs the session in `slurm/node.json`; the result comes back through the
shared sessions folder.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Protocol
from pathlib import Path

from nanogpt_tui.backends.base import (
    CONTAINER_MOUNTS,
    EXITED,
    MISSING,
    QUEUED,
    RUNNING,
    UNREACHABLE,
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
)
from nanogpt_tui.backends.local import ShardFolder
from nanogpt_tui.config import Config
from nanogpt_tui.contract import layout
from nanogpt_tui.contract.env import is_secret_name, without_secrets
from nanogpt_tui.errors import UserError
from nanogpt_tui.fsutil import atomic_write_text

JOB_PREFIX = "ngt-"
COMMAND_TIMEOUT_S = 30.0
# Minutes added to a budget-derived --time: the watchdog's grace period and the runner's own start-up.
TIME_LIMIT_MARGIN_S = 90.0
LAUNCH_SCHEMA_VERSION = 2
HANDOVER_SCHEMA_VERSION = 1
NODE_SCHEMA_VERSION = 1
STEP_MODULE = "nanogpt_tui.backends.slurm_step"
QUEUED_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED"})
RUNNING_STATES = frozenset({"RUNNING", "CONFIGURING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING"})
# Errors that mean the controller did not answer (as opposed to an answer saying no).
UNREACHABLE_MARKS = ("Unable to contact slurm controller", "Socket timed out", "Zero Bytes were transmitted",
                     "Connection refused", "Communication connection failure", "slurm_load_jobs error: Unable")
SQUEUE_FORMAT = "%i|%T|%r|%P|%N|%S|%l"
ACCOUNTING_FIELDS = "ElapsedRaw,AllocTRES"  # a job's GPU-hours (parse_accounting)
ENDED_FIELDS = f"State,ExitCode,Partition,NodeList,End,{ACCOUNTING_FIELDS}"  # an ended job, its GPU-hours included
ACCOUNTING_EVERY_S = 30.0  # how often a running job's accounting (sacct) is read again
NO_ACCOUNTING_RETRY_S = 300.0  # where sacct says accounting is off, when to ask again


class SlurmUnreachable(UserError):
    """The Slurm controller did not answer."""


def run_command(argv: Sequence[str], *, timeout: float = COMMAND_TIMEOUT_S, env: dict[str, str] | None = None,
                input: str | None = None) -> str:
    """Run one Slurm client command (in `env`, with `input` on its stdin); its stdout. A UserError with Slurm's own
    words when it fails."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)
    except FileNotFoundError:
        raise UserError(f"`{argv[0]}` is not installed here; install Slurm's client commands (Debian: slurm-client) "
                        "and point them at the cluster (/etc/slurm/slurm.conf or $SLURM_CONF).") from None
    except subprocess.TimeoutExpired:
        raise SlurmUnreachable(f"`{argv[0]}` got no answer within {timeout:g} s; the Slurm controller may be down "
                               "or overloaded (`scontrol ping` says).") from None
    if done.returncode != 0:
        said = " ".join((done.stderr or done.stdout).split())[:300] or f"exit status {done.returncode}"
        if any(mark in said for mark in UNREACHABLE_MARKS):
            raise SlurmUnreachable(f"The Slurm controller does not answer ({said}); the job keeps running on its "
                                   "node, and the session recovers when the controller is back.")
        raise UserError(f"`{' '.join(argv[:2])}` failed: {said}")
    return done.stdout


def parse_slurm_time(text: str) -> dt.datetime | None:
    """A Slurm timestamp (local time, `2026-12-03T11:43:58`), None for N/A, Unknown, None."""
    try:
        return dt.datetime.fromisoformat(text.strip()).astimezone(dt.timezone.utc)
    except ValueError:
        return None


def parse_squeue(line: str) -> BackendState:
    """One `squeue --format=%i|%T|%r|%P|%N|%S|%l` line as our state."""
    job, state, reason, partition, node, start, limit = (line.strip().split("|") + [""] * 7)[:7]
    facts = {"job": job, "state": state, "partition": partition, "time_limit": limit}
    if node and node != "(null)":
        facts["node"] = node
    shown = state + (f" ({reason})" if reason and reason != "None" else "")
    facts["queue"] = shown
    if state in QUEUED_STATES:
        return BackendState(QUEUED, detail=shown, facts=facts)
    if state in RUNNING_STATES:
        return BackendState(RUNNING, detail=shown, facts=facts, started_at=parse_slurm_time(start))
    return BackendState(EXITED, detail=shown, facts=facts)


def _exit_code(text: str) -> int | None:
    """Slurm's `ExitCode=3:0` (status:signal) as one status, 128 + signal for a signal."""
    m = re.match(r"(\d+):(\d+)", text.strip())
    if not m:
        return None
    status, signal = int(m.group(1)), int(m.group(2))
    return 128 + signal if signal else status


def parse_accounting(elapsed: str, tres: str) -> float | None:
    """GPU-hours from sacct's ElapsedRaw and AllocTRES fields: elapsed seconds x the allocated GPUs (`gres/gpu=N`);
    None when the accounting counts no GPUs (AccountingStorageTRES lacks gres/gpu)."""
    elapsed, tres = elapsed.strip(), tres.strip()
    if not elapsed.isdigit():
        return None
    gpus = dict(part.split("=", 1) for part in tres.split(",") if "=" in part).get("gres/gpu", "")
    if not gpus.isdigit():
        return None
    return int(elapsed) * int(gpus) / 3600.0


def _minutes(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60.0))


def parse_time_limit(text: str) -> int | None:
    """Slurm's `[days-]hours:minutes:seconds` (or `minutes:seconds`, `minutes`) in whole minutes rounded up;
    None for UNLIMITED, INVALID or anything else."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        return None
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if c is not None:
        seconds = a * 3600 + b * 60 + c
    elif b is not None:
        seconds = (a * 3600 + b * 60) if days is not None else (a * 60 + b)
    else:
        seconds = a * 3600 if days is not None else a * 60
    return _minutes(seconds + (days or 0) * 86400)


class NodeRuntime(Protocol):
    """How the job runs its session on the node (`slurm.node_runtime`): what admission, placement and the launch
    ask of it, so the backend never asks which one it holds."""

    name: str  # launch.json's `runtime`, by which the job on the node chooses how to run the session
    sandboxed: bool

    def mounts(self, session_dir: Path) -> MountPoints: ...

    def image(self, asked: str | None) -> str | None:
        """The image the session runs in (None: no image)."""

    def prepare(self, request: PlaceRequest) -> None:
        """Make what the control room may make for the session (the smoke record's synthetic shards)."""

    def missing(self) -> list[str]:
        """What the control room can tell is missing for the session, one sentence each with the fix."""

    def data(self) -> tuple[str | None, str | None]:
        """The shards the job gives the session: (a Docker volume on the node, a folder linked in)."""


class ContainerOnNode:
    """The session in a container of the node's Docker, in its sandbox, the shards from its data volume (the job
    finds out on the node what it lacks)."""

    name = "docker"
    sandboxed = True

    def __init__(self, config: Config) -> None:
        self.docker = config.docker

    def mounts(self, session_dir: Path) -> MountPoints:
        return CONTAINER_MOUNTS

    def image(self, asked: str | None) -> str | None:
        return asked or self.docker.image

    def prepare(self, request: PlaceRequest) -> None:
        return None

    def missing(self) -> list[str]:
        return []

    def data(self) -> tuple[str | None, str | None]:
        return self.docker.data_volume, None


class ProcessesOnNode:
    """The session as a process tree on the node (tests, clusters without Docker), the shards of `paths.data_dir`
    linked in as the local backend links them (the node sees that folder at the same path)."""

    name = "process"
    sandboxed = False

    def __init__(self, config: Config) -> None:
        self.shards = ShardFolder(config.paths.local_data_dir)

    def mounts(self, session_dir: Path) -> MountPoints:
        return host_mounts(session_dir)

    def image(self, asked: str | None) -> str | None:
        return None

    def prepare(self, request: PlaceRequest) -> None:
        self.shards.prepare(request)

    def missing(self) -> list[str]:
        return self.shards.missing()

    def data(self) -> tuple[str | None, str | None]:
        return None, str(self.shards.linked)


NODE_RUNTIMES: dict[str, type] = {runtime.name: runtime for runtime in (ContainerOnNode, ProcessesOnNode)}


class SlurmBackend:
    """Sessions submitted to the Slurm cluster this machine's client commands talk to."""

    kind = "slurm"
    default_gpus = None

    def __init__(self, config: Config, sessions_root: Path) -> None:
        self.config = config
        self.slurm = config.slurm
        self.root = Path(sessions_root)
        self.runtime: NodeRuntime = NODE_RUNTIMES[self.slurm.node_runtime](config)
        self._accounted: dict[str, tuple[float, float | None]] = {}  # job -> (when read, GPU-hours)
        self._no_accounting_until = 0.0
        self._surveyed: tuple[list[str], str] | None = None  # (the partitions, why sinfo could not tell) by survey()

    # --- before start ---------------------------------------------------------------------------------------

    @property
    def sandboxed(self) -> bool:
        return self.runtime.sandboxed

    def mounts(self, session_dir: Path) -> MountPoints:
        return self.runtime.mounts(session_dir)

    def admit(self, host: str | None, image: str | None) -> Target:
        partition = host or self.slurm.partition
        return Target(host=partition, image=self.runtime.image(image), host_forced=bool(host))

    def survey(self) -> None:
        """The cluster's partitions (`sinfo`, up to COMMAND_TIMEOUT_S where the controller is far or busy): Slurm
        places the job, this is all a placement checks, and the manager asks it outside the placement lock."""
        if shutil.which("sinfo") is None:
            self._surveyed = ([], "")  # preflight names the missing client commands
            return
        try:
            self._surveyed = (run_command(["sinfo", "--noheader", "--format=%R"]).split(), "")
        except UserError as err:
            self._surveyed = ([], str(err))

    def preflight(self, host: str, image: str | None) -> list[str]:
        """sbatch there, the controller answering, the partition known (as the last survey found them); what the
        node runtime lacks."""
        if shutil.which("sbatch") is None:
            return ["Slurm's `sbatch` is not installed here; install the client commands (Debian: slurm-client) "
                    "and point them at the cluster ($SLURM_CONF)."]
        if self._surveyed is None:
            self.survey()
        partitions, problem = self._surveyed or ([], "")
        if problem:
            return [problem]
        if host and host not in partitions:
            return [f"Slurm has no partition {host!r} (it has {', '.join(partitions) or 'none'}); set "
                    "slurm.partition or pass --host PARTITION."]
        return self.runtime.missing()

    def place(self, request: PlaceRequest, held: Sequence[Holding]) -> Placement:
        self.runtime.prepare(request)
        problems = self.preflight(request.host or self.slurm.partition, request.image)
        if problems:
            return Placement(None, [], " ".join(problems), blocking=True)
        where = request.host or self.slurm.partition or "the default partition"
        return Placement(request.host or self.slurm.partition, [], f"submitted to Slurm ({where})",
                         data_dir=self.runtime.data()[1])

    # --- the job --------------------------------------------------------------------------------------------

    def _time_limit(self, spec: LaunchSpec) -> int | None:
        """--time in minutes: a configured cap, else the budget (plus the grace margin); None: the partition's."""
        if self.slurm.time_limit_minutes:
            return self.slurm.time_limit_minutes
        if spec.time_limit_s is None:
            return None
        return _minutes(spec.time_limit_s + TIME_LIMIT_MARGIN_S)

    def write_launch(self, ref: SessionRef, spec: LaunchSpec) -> Path:
        """launch.json (the launch, without secret values: those reach the job through its environment) and the
        job script, in the session's slurm/ folder."""
        folder = Path(ref.session_dir) / layout.SLURM_DIR
        folder.mkdir(parents=True, exist_ok=True)
        secret = sorted(k for k in spec.env if is_secret_name(k))
        data_volume, data_dir = self.runtime.data()
        egress = None
        if spec.egress is not None:  # the sandbox on the node: its gateway gets the keys, the agent a placeholder
            egress = {"state_dir": str(spec.egress.state_dir), "routes": spec.egress.routes,
                      "prefix": spec.egress.prefix, "allow": list(spec.egress.allow)}
        launch = {
            "schema_version": LAUNCH_SCHEMA_VERSION, "runtime": self.runtime.name,
            "docker_url": self.slurm.docker_url, "session_id": spec.session_id, "image": spec.image,
            "command": list(spec.command), "env": {k: v for k, v in spec.env.items() if k not in secret},
            # Handed over by the control room once the job runs (a step's stdin, never Slurm's stored state).
            "hand_over": {"env": [k for k in secret if spec.env[k]],
                          "gateway": sorted(k for k, v in (spec.egress.keys if spec.egress else {}).items() if v)},
            "egress": egress, "workspace_dir": str(spec.workspace_dir), "runner_dir": str(spec.runner_dir),
            "control_dir": str(spec.control_dir), "log_path": str(spec.log_path),
            "data_volume": data_volume, "data_dir": data_dir,
            "labels": spec.labels, "shm_size": spec.shm_size, "name": spec.name, "user": spec.user,
            "data_read_only": spec.data_read_only,
            "validator_dir": str(spec.validator_dir) if spec.validator_dir else None, "memory": spec.memory,
            "pids_limit": spec.pids_limit, "read_only_root": spec.read_only_root,
        }
        atomic_write_text(folder / layout.SLURM_LAUNCH, json.dumps(launch, indent=2) + "\n", mode=0o600)
        python = self.slurm.python or sys.executable
        script = folder / layout.SLURM_SCRIPT
        atomic_write_text(script, "#!/bin/sh\n# Written by nanogpt-tui: the session's Slurm job (see "
                          "nanogpt_tui/backends/slurm_job.py).\n"
                          f"exec {shlex.quote(python)} -m nanogpt_tui.backends.slurm_job "
                          f"{shlex.quote(str(folder / layout.SLURM_LAUNCH))}\n", mode=0o700)
        return script

    def sbatch_args(self, ref: SessionRef, spec: LaunchSpec) -> list[str]:
        folder = Path(ref.session_dir) / layout.SLURM_DIR
        args = ["sbatch", "--parsable", f"--job-name={JOB_PREFIX}{ref.session_id}", f"--comment={ref.session_id}",
                "--no-requeue", "--nodes=1", f"--chdir={ref.session_dir}", f"--output={folder / layout.SLURM_OUTPUT}",
                # The submitting environment without its secrets: Slurm stores a job's environment in its state.
                "--export=ALL"]
        if spec.gpus:
            args.append(f"--gres=gpu:{spec.gpus}")
        limit = self._time_limit(spec)
        if limit is not None:
            args.append(f"--time={limit}")
        partition = spec.host or self.slurm.partition
        for flag, value in (("--partition", partition), ("--account", self.slurm.account),
                            ("--qos", self.slurm.qos), ("--constraint", self.slurm.constraint)):
            if value:
                args.append(f"{flag}={value}")
        return args

    def start(self, ref: SessionRef, spec: LaunchSpec) -> str:
        script = self.write_launch(ref, spec)
        out = run_command([*self.sbatch_args(ref, spec), str(script)], env=without_secrets(os.environ)).strip()
        job = out.split(";")[0].strip()  # "<id>[;cluster]"
        if not job.isdigit():
            raise UserError(f"sbatch answered {out[:120]!r} instead of a job id; check the Slurm configuration.")
        return job

    def find(self, ref: SessionRef) -> str | None:
        try:
            out = run_command(["squeue", "--noheader", f"--name={JOB_PREFIX}{ref.session_id}", "--format=%i"])
        except UserError:
            return None
        jobs = [j for j in out.split() if j.isdigit()]
        return jobs[-1] if jobs else None

    def state(self, ref: SessionRef) -> BackendState:
        if not ref.handle:
            return BackendState(MISSING, detail="no Slurm job was recorded")
        try:
            out = run_command(["squeue", "--noheader", f"--jobs={ref.handle}", f"--format={SQUEUE_FORMAT}"])
        except SlurmUnreachable as err:
            return BackendState(UNREACHABLE, detail=str(err), facts={"job": ref.handle})
        except UserError:
            out = ""  # "Invalid job id specified": it has left the queue
        lines = [line for line in out.splitlines() if line.strip()]
        if lines:
            state = parse_squeue(lines[0])
            if state.status == RUNNING:
                self._account(state, ref.handle)
            if state.status != EXITED:
                return state
        return self._ended(ref.handle)

    def _sacct(self, job: str, fields: str) -> list[str] | None:
        """sacct's row of the job's allocation (`fields`, split; [] when it has none yet); None where accounting is
        off, and then for NO_ACCOUNTING_RETRY_S without asking again. SlurmUnreachable passes on."""
        now = time.monotonic()
        if now < self._no_accounting_until:
            return None
        try:
            out = run_command(["sacct", "--noheader", "--parsable2", "--allocations", f"--jobs={job}",
                               f"--format={fields}"])
        except SlurmUnreachable:
            raise
        except UserError:
            self._no_accounting_until = now + NO_ACCOUNTING_RETRY_S  # no accounting storage (slurmdbd)
            return None
        rows = [line.split("|") for line in out.splitlines() if line.strip()]
        return rows[0] if rows else []

    def _note_gpu_hours(self, state: BackendState, job: str, hours: float | None) -> None:
        self._accounted[job] = (time.monotonic(), hours)
        if hours is not None:
            state.gpu_hours = hours
            state.facts["gpu-hours"] = f"{hours:.4f} (sacct)"

    def _account(self, state: BackendState, job: str) -> None:
        """A running job's GPU-hours by Slurm's accounting (sacct: elapsed x allocated GPUs), where it is on: into
        the state and its facts, read again every ACCOUNTING_EVERY_S."""
        seen = self._accounted.get(job)
        if seen is not None and time.monotonic() - seen[0] < ACCOUNTING_EVERY_S:
            hours = seen[1]
        else:
            try:
                row = self._sacct(job, ACCOUNTING_FIELDS)
            except SlurmUnreachable:  # slurmdbd away: the budget counts wall-clock meanwhile
                self._no_accounting_until = time.monotonic() + NO_ACCOUNTING_RETRY_S
                return
            if row is None:
                return
            hours = parse_accounting(*(row + ["", ""])[:2])
        self._note_gpu_hours(state, job, hours)

    def _ended(self, job: str) -> BackendState:
        """A job no longer in the queue: how it ended and its GPU-hours, in one sacct query where accounting is on;
        else what the controller remembers."""
        try:
            row = self._sacct(job, ENDED_FIELDS)
        except SlurmUnreachable as err:
            return BackendState(UNREACHABLE, detail=str(err), facts={"job": job})
        if row and len(row) >= 4:
            state, code, partition, node, end, elapsed, tres = (row + [""] * 7)[:7]
            state = (state.split() or [""])[0]
            ended = BackendState(EXITED, exit_code=_exit_code(code), detail=state,
                                 facts={"job": job, "state": state, "queue": state, "partition": partition,
                                        "node": node}, ended_at=parse_slurm_time(end))
            self._note_gpu_hours(ended, job, parse_accounting(elapsed, tres))
            return ended
        try:
            out = run_command(["scontrol", "--oneliner", "show", "job", job])
        except SlurmUnreachable as err:
            return BackendState(UNREACHABLE, detail=str(err), facts={"job": job})
        except UserError:
            return BackendState(EXITED, detail=f"Slurm no longer knows job {job}; the runner's record says how it "
                                               "ended", facts={"job": job})
        fields = dict(re.findall(r"(\w+)=(\S*)", out))
        state = fields.get("JobState", "")
        facts = {"job": job, "state": state, "queue": state, "partition": fields.get("Partition", ""),
                 "node": fields.get("NodeList", "")}
        if state in QUEUED_STATES:
            return BackendState(QUEUED, detail=state, facts=facts)
        if state in RUNNING_STATES:
            return BackendState(RUNNING, detail=state, facts=facts,
                                started_at=parse_slurm_time(fields.get("StartTime", "")))
        return BackendState(EXITED, exit_code=_exit_code(fields.get("ExitCode", "")), detail=state, facts=facts,
                            ended_at=parse_slurm_time(fields.get("EndTime", "")))

    def stop(self, ref: SessionRef, grace_s: float) -> None:
        """SIGINT to the job's own process (it stops the container or process tree cleanly), `grace_s`, then
        scancel; a job still in the queue is cancelled at once."""
        if not ref.handle:
            return
        state = self.state(ref)
        if state.status == UNREACHABLE:
            raise UserError(state.detail)
        if state.status == RUNNING:
            run_command(["scancel", "--batch", "--signal=INT", ref.handle])
            deadline = time.monotonic() + max(grace_s, 0.5)
            while time.monotonic() < deadline:
                time.sleep(0.25)
                if self.state(ref).status not in (RUNNING, UNREACHABLE):
                    return
        elif state.status != QUEUED:
            return
        run_command(["scancel", ref.handle])
        for _ in range(120):
            if self.state(ref).status not in (RUNNING, QUEUED):
                return
            time.sleep(0.25)

    def follow_logs(self, ref: SessionRef, log_path: Path) -> None:
        return None  # the job writes container.log itself, in the shared sessions folder

    def extend(self, ref: SessionRef, deadline: dt.datetime) -> str | None:
        """Raise the job's TimeLimit to cover the new deadline where the user may; otherwise say until when the job
        can run."""
        if not ref.handle:
            return None
        state = self.state(ref)
        start = state.started_at or dt.datetime.now(dt.timezone.utc)
        needed = _minutes((deadline - start).total_seconds() + TIME_LIMIT_MARGIN_S)
        limit = parse_time_limit(state.facts.get("time_limit", ""))
        if limit is None or limit >= needed:
            return None  # unlimited, or long enough already
        if not self.slurm.raise_time_limit:
            return (f"the job's time limit ({limit} min) stays (slurm.raise_time_limit is off): the session ends "
                    "then, before its new deadline")
        try:
            run_command(["scontrol", "update", f"JobId={ref.handle}", f"TimeLimit={needed}"])
        except UserError as err:
            return f"the job's time limit could not be raised to {needed} min ({err})"
        return None

    def release(self, ref: SessionRef, egress_prefix: str | None) -> None:
        return None  # the job removes its container (and its network) on the node when it ends

    def hand_over(self, ref: SessionRef, launch) -> None:
        """The job waits on its node for the session's API keys (slurm/handover.json says so): a step of the job
        carries them there on its stdin, so they are in no Slurm state, spool, script, comment or file."""
        if not ref.handle or read_handover(Path(ref.session_dir)) is None:
            return
        spec = launch()
        secrets = {"env": {k: v for k, v in spec.env.items() if is_secret_name(k) and v},
                   "gateway": {k: v for k, v in (spec.egress.keys if spec.egress else {}).items() if v}}
        self._step(ref, "hand-over", stdin=json.dumps(secrets))

    # --- the validator apart from the agent: job steps on the session's allocation ---------------------------

    def _step_argv(self, ref: SessionRef, action: str, *args: str, gpus: bool = False,
                   cpus: int | None = None) -> list[str]:
        """`srun` for one step of the session's job: it overlaps the batch step (which holds every CPU and GPU of
        the allocation), on the job's node, with the job's GPUs only where `gpus` (a pause needs none)."""
        argv = ["srun", f"--jobid={ref.handle}", "--overlap", "--nodes=1", "--ntasks=1", "--quiet",
                f"--job-name={JOB_PREFIX}{ref.session_id}-{action}", f"--chdir={ref.session_dir}"]
        if not gpus:
            argv.append("--gres=none")
        if cpus:
            argv.append(f"--cpus-per-task={cpus}")
        return [*argv, self.slurm.python or sys.executable, "-m", STEP_MODULE, action, str(ref.session_dir), *args]

    def _step(self, ref: SessionRef, action: str, stdin: str | None = None) -> dict:
        """Run a short step (pause, resume, hand-over) and return the JSON object it printed last."""
        try:
            done = subprocess.run(self._step_argv(ref, action), capture_output=True, text=True,
                                  timeout=COMMAND_TIMEOUT_S * 2, input=stdin if stdin is not None else "",
                                  env=without_secrets(os.environ))
        except FileNotFoundError:
            raise UserError("`srun` is not installed here; install Slurm's client commands (Debian: slurm-client) "
                            "to validate submissions of Slurm sessions.") from None
        except subprocess.TimeoutExpired:
            raise UserError(f"The {action} step of Slurm job {ref.handle} got no answer within "
                            f"{COMMAND_TIMEOUT_S * 2:g} s; submit again.") from None
        answer = _last_json(done.stdout)
        if answer.get("error"):
            raise UserError(str(answer["error"]))
        if done.returncode != 0 or not answer:
            said = " ".join((done.stderr or done.stdout).split())[:300] or f"exit status {done.returncode}"
            raise UserError(f"Slurm could not run the {action} step in job {ref.handle} ({said}); submit again.")
        return answer

    def _agent_started(self, ref: SessionRef) -> bool:
        """Whether the job has started the session on its node (it records where in slurm/node.json)."""
        return bool(ref.handle) and read_node_record(Path(ref.session_dir)) is not None

    def pause(self, ref: SessionRef) -> list[int]:
        """Freeze the agent from a step on its node (its container paused, or its process tree stopped); the
        node PIDs frozen."""
        if not self._agent_started(ref):
            return []
        return [int(pid) for pid in self._step(ref, "pause").get("pids") or [] if str(pid).isdigit()]

    def resume(self, ref: SessionRef) -> None:
        if not self._agent_started(ref):
            return
        try:
            self._step(ref, "resume")
        except UserError:
            if self.state(ref).status == RUNNING:
                raise
            # The job has ended (killed, deadline): there is nothing left to resume.

    def retime_isolated(self, ref: SessionRef, **kwargs) -> dict:
        """The retiming in a step of the session's job, on its node and its GPUs (Slurm pins them: `gpu_ids` is
        not used), apart from the agent as on Docker; its progress streams back through srun, its result through
        the shared folder."""
        return self._retime_in_a_step(ref, **kwargs)

    def _retime_in_a_step(self, ref: SessionRef, *, session_dir: Path, candidate_dir: Path, out_dir: Path,
                          runs: int, val_loss_target: float, p_value_threshold: float, timeout_s: float,
                          gpu_ids: list[int], data_dir: Path | None, agent_pids: list[int], on_line) -> dict:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if not self._agent_started(ref):
            return {"refused": "Submit refused: the session's Slurm job has not started the session on its node "
                               "yet; submit again."}
        request = {"candidate_dir": str(Path(candidate_dir).absolute()), "out_dir": str(out_dir.absolute()),
                   "runs": runs, "val_loss_target": val_loss_target, "p_value_threshold": p_value_threshold,
                   "timeout_s": timeout_s, "data_dir": str(data_dir) if data_dir else None,
                   "agent_pids": list(agent_pids)}
        request_path = out_dir / STEP_REQUEST
        atomic_write_text(request_path, json.dumps(request, indent=2) + "\n")
        try:
            cpus = int(run_command(["squeue", "--noheader", f"--jobs={ref.handle}", "--format=%C"]).split()[0])
        except (UserError, ValueError, IndexError):
            cpus = None
        tail: list[str] = []
        try:
            proc = subprocess.Popen(self._step_argv(ref, "retime", str(request_path), gpus=True, cpus=cpus),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    text=True, env=without_secrets(os.environ), start_new_session=True)
        except FileNotFoundError:
            raise UserError("`srun` is not installed here; install Slurm's client commands (Debian: slurm-client) "
                            "to validate submissions of Slurm sessions.") from None
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                tail = (tail + [line])[-20:]
                forward_worker_line(line, on_line)
            code = proc.wait()
        except BaseException:
            proc.kill()  # srun's end cancels the step
            raise
        return read_worker_result(out_dir, code, "".join(tail))

    def close(self) -> None:
        return None


STEP_REQUEST = "step.json"  # in the validator's work folder: what the retiming step is asked to do


def write_node_record(slurm_dir: Path, *, runtime: str, handle: str, docker_url: str | None) -> None:
    """Where the job runs the session (written by the job once the session has started on its node)."""
    atomic_write_text(Path(slurm_dir) / layout.SLURM_NODE, json.dumps({
        "schema_version": NODE_SCHEMA_VERSION, "job": os.environ.get("SLURM_JOB_ID", ""),
        "node": os.environ.get("SLURMD_NODENAME", ""), "runtime": runtime, "handle": handle,
        "docker_url": docker_url}, indent=2) + "\n", mode=0o644)


def read_node_record(session_dir: Path) -> dict | None:
    """slurm/node.json, None when the job has not written it (or it is not one this version reads)."""
    try:
        data = json.loads((Path(session_dir) / layout.SLURM_DIR / layout.SLURM_NODE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema_version") != NODE_SCHEMA_VERSION \
            or not isinstance(data.get("handle"), str) or data.get("runtime") not in NODE_RUNTIMES:
        return None
    return data


def write_handover(slurm_dir: Path, *, socket_path: str, names: list[str]) -> None:
    """The job waits for its secrets at `socket_path` on its node (the names only, never a value)."""
    atomic_write_text(Path(slurm_dir) / layout.SLURM_HANDOVER, json.dumps({
        "schema_version": HANDOVER_SCHEMA_VERSION, "job": os.environ.get("SLURM_JOB_ID", ""),
        "socket": socket_path, "names": names}, indent=2) + "\n", mode=0o644)


def read_handover(session_dir: Path) -> dict | None:
    try:
        data = json.loads((Path(session_dir) / layout.SLURM_DIR / layout.SLURM_HANDOVER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema_version") != HANDOVER_SCHEMA_VERSION \
            or not isinstance(data.get("socket"), str):
        return None
    return data


def _last_json(text: str) -> dict:
    """The last line of `text` that is a JSON object ({} when none is)."""
    for line in reversed(text.splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict):
            return data
    return {}


def job_environment_names() -> list[str]:
    """The Slurm variables a job is given that say which GPUs it holds (first one set wins)."""
    return ["SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES"]


def allocated_gpus(environ: dict[str, str] | None = None) -> list[int]:
    """The GPU ids Slurm gave the job on this node (empty when it says none)."""
    env = os.environ if environ is None else environ
    for name in job_environment_names():
        value = env.get(name, "").strip()
        if value:
            ids = [part for part in value.split(",") if part.strip().isdigit()]
            return [int(part) for part in ids]
    return []


def node_gpus(docker=None) -> tuple[list[int], str]:
    """The GPU ids Slurm gave this job (or step) on its node, and a warning when the node's Docker (a DockerBackend,
    where the session runs in a container) has no NVIDIA runtime to give them to a container (then none)."""
    gpus = allocated_gpus()
    if gpus and docker is not None and "nvidia" not in (docker.client.info().get("Runtimes") or {}):
        return [], (f"warning: Slurm gave GPUs {gpus}, but this node's Docker has no NVIDIA runtime: the container "
                    "gets none (install the NVIDIA Container Toolkit on the node)")
    return gpus, ""


def slurm_configured(environ=None) -> bool:
    """Whether this machine's Slurm client commands have a cluster to talk to (without one they look the
    controller up in DNS, which nothing here should do unasked)."""
    env = os.environ if environ is None else environ
    return shutil.which("sinfo") is not None and (bool(env.get("SLURM_CONF")) or Path("/etc/slurm/slurm.conf").is_file())


def partitions(timeout: float = 5.0) -> list[str]:
    """The cluster's partitions (`sinfo`), [] where Slurm is not configured here or does not answer."""
    if not slurm_configured():
        return []
    try:
        return list(dict.fromkeys(p.rstrip("*") for p in
                                  run_command(["sinfo", "--noheader", "--format=%R"], timeout=timeout).split()))
    except UserError:
        return []
