"""The session runner: what a session container (or local process tree) runs. It installs and starts the agent
harness, and is the in-session budget watchdog: at the deadline in control/ it stops the agent, even when no host
process is watching. `extend` moves the deadline file; the runner re-reads it every poll, so no restart is needed.

Run as `python3 -m nanogpt_tui.sessions.runner`. Exit status: 0 the agent finished, 3 the deadline passed,
130 stopped by a signal (kill), 1 the agent failed or could not start.
"""

from __future__ import annotations

import signal
import threading

STOP_REQUESTED = threading.Event()  # SIGINT or SIGTERM came, however early


def _on_stop(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    STOP_REQUESTED.set()


if __name__ == "__main__":
    # First, before anything slow is imported: a stop in the runner's first moments used to raise KeyboardInterrupt
    # inside an import (SIGTERM simply killed it), so the session ended with no exit record and was recorded as a
    # runner that died. Now it is a stop like any other.
    signal.signal(signal.SIGINT, _on_stop)
    signal.signal(signal.SIGTERM, _on_stop)

import datetime as dt  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from nanogpt_tui.contract.deadline import DeadlineError, read_deadline  # noqa: E402
from nanogpt_tui.contract.env import ENV_CONTROL_DIR, ENV_LOG_DIR, ENV_RUNNER_DIR, ENV_WORKSPACE  # noqa: E402
from nanogpt_tui.contract.layout import CONTAINER_CONTROL, CONTAINER_RUNNER, CONTAINER_WORKSPACE  # noqa: E402
from nanogpt_tui.contract.runner_exit import (  # noqa: E402
    EXIT_AGENT_DONE,
    EXIT_DEADLINE,
    EXIT_FAILED,
    EXIT_NO_RECORD,
    EXIT_STOPPED,
    STOP_SIGNALS,
    ExitReason,
    write_runner_exit,
)
from nanogpt_tui.procgroup import stop_tree, watch_tree  # noqa: E402

POLL_S = 0.5


def say(text: str) -> None:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%H:%M:%S")
    try:
        print(f"[runner {stamp}] {text}", flush=True)
    except OSError:
        pass  # the log's disk is full (the local backend's log is a file): the exit record still tells the host


def stop_agent(proc: subprocess.Popen, grace_s: float, seen: dict[int, int]) -> None:
    """SIGINT to the agent's whole process group, a grace period, then SIGKILL to whatever is left of its process
    tree (a retiming run, torchrun's workers in their own sessions; `seen` holds those watched while it ran),
    waiting until all of it is gone."""
    if not stop_tree(proc, first=signal.SIGINT, grace_s=grace_s, known=seen,
                     on_kill=lambda: say(f"the agent did not stop within {grace_s:g} s of SIGINT; sending SIGKILL")):
        say("warning: some of the agent's processes did not end after SIGKILL")


PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def become_subreaper() -> bool:
    """Make this process a child subreaper: the agent's orphaned descendants (a training run whose parent shell
    died, a daemonised helper) are re-parented to the runner rather than to init, so they stay in its tree and die
    with the rest when it stops the agent. False where the kernel refuses (not Linux)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans(keep: int) -> None:
    """Collect the exit status of finished re-parented descendants (zombies), never the agent's own (`keep`):
    its Popen reads that."""
    me = str(os.getpid())
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == keep:
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] == "Z" and fields[1] == me:
            try:
                os.waitpid(int(entry.name), os.WNOHANG)
            except ChildProcessError:
                pass


def _file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def run() -> int:
    workspace = Path(os.environ.get(ENV_WORKSPACE, CONTAINER_WORKSPACE))
    runner_dir = Path(os.environ.get(ENV_RUNNER_DIR, CONTAINER_RUNNER))
    control_dir = Path(os.environ.get(ENV_CONTROL_DIR, CONTAINER_CONTROL))
    log_dir = Path(os.environ.get(ENV_LOG_DIR, str(workspace / "logs")))
    log_dir.mkdir(parents=True, exist_ok=True)
    agent_dir = runner_dir / "agent"

    def finish(reason: ExitReason, code: int, agent_exit: int | None = None) -> int:
        say(f"session ends: {reason} (exit {code})")  # first: the log may still take a line when the disk won't
        try:
            write_runner_exit(log_dir, reason, code, agent_exit)
        except OSError as err:
            say(f"could not write the exit record in {log_dir} ({err.strerror}); exiting {EXIT_NO_RECORD}")
            return EXIT_NO_RECORD
        return code

    try:
        deadline = read_deadline(control_dir)
    except DeadlineError as err:
        say(f"cannot start: the host must write the deadline before starting the session ({err})")
        return finish(ExitReason.NO_DEADLINE, EXIT_FAILED)
    if deadline.seconds_left() <= 0:
        return finish(ExitReason.DEADLINE, EXIT_DEADLINE)
    if not (agent_dir / "run.sh").is_file():
        say(f"cannot start: {agent_dir}/run.sh is missing")
        return finish(ExitReason.NO_AGENT, EXIT_FAILED)

    stop_requested = STOP_REQUESTED
    signal.signal(signal.SIGINT, _on_stop)  # already so when run as the runner; again for run() called directly
    signal.signal(signal.SIGTERM, _on_stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # a stop that came while starting is handled now
    if stop_requested.is_set():
        say("stop requested before the agent started")
        return finish(ExitReason.STOPPED, EXIT_STOPPED)
    if not become_subreaper():
        say("warning: cannot become a child subreaper; orphaned agent processes are re-parented to init")

    say(f"starting the agent; deadline {deadline.deadline.isoformat(timespec='seconds')} "
        f"({deadline.seconds_left():.0f} s left)")
    proc = subprocess.Popen(["bash", str(agent_dir / "run.sh")], cwd=workspace, start_new_session=True)
    last_deadline = deadline.deadline
    warned: tuple | None = None  # the bad deadline file last warned about: one warning per change, not per poll
    seen: dict[int, int] = {}  # the agent's process tree as last watched (pid -> start ticks), for the final sweep
    while True:
        code = proc.poll()
        if code is not None:
            stop_tree(proc, first=signal.SIGKILL, grace_s=0.0, known=seen)  # leftovers of a finished agent
            try:
                deadline = read_deadline(control_dir)
            except DeadlineError:
                pass
            if deadline.seconds_left() <= 0:
                # The agent saw the deadline itself (harnesses check it before each resume): out of budget.
                return finish(ExitReason.DEADLINE, EXIT_DEADLINE, code)
            if code == 0:
                return finish(ExitReason.AGENT_EXITED, EXIT_AGENT_DONE, code)
            return finish(ExitReason.AGENT_FAILED, EXIT_FAILED, code)
        if stop_requested.is_set():
            say("stop requested; stopping the agent")
            stop_agent(proc, min(deadline.grace_s, 10.0), seen)
            return finish(ExitReason.STOPPED, EXIT_STOPPED, proc.returncode)
        try:
            deadline = read_deadline(control_dir)
            warned = None
        except DeadlineError as err:
            if (stamp := (_file_stamp(err.path), str(err))) != warned:
                say(f"warning: {err} Keeping the last deadline.")
                warned = stamp
        if deadline.deadline != last_deadline:
            say(f"deadline moved to {deadline.deadline.isoformat(timespec='seconds')} "
                f"({deadline.seconds_left():.0f} s left)")
            last_deadline = deadline.deadline
        if deadline.seconds_left() <= 0:
            say("the deadline has passed; stopping the agent")
            stop_agent(proc, deadline.grace_s, seen)
            return finish(ExitReason.DEADLINE, EXIT_DEADLINE, proc.returncode)
        seen = watch_tree(seen, proc.pid)  # while it runs its pid is its own; workers may leave its group
        reap_orphans(keep=proc.pid)
        time.sleep(POLL_S)


def main() -> int:
    try:
        return run()
    except Exception as err:  # the last line of defence inside the container: say what broke, exit failed
        say(f"runner error: {type(err).__name__}: {err}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
