"""Stopping a child's whole process tree, and waiting until every process of it is gone (headless, stdlib only).

A training run is a tree (bash, torchrun, the training processes), started in its own process group so it can be
stopped as one. A process group is not enough: torchrun starts its workers in sessions of their own, so a SIGKILL
to the group orphans them. So the tree is read from /proc (each process with its start time, so a recycled pid is
never signalled), signalled with the group, and waited for: once `stop_tree` returns, nothing of it runs.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable

GONE_TIMEOUT_S = 10.0


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, start time in clock ticks, state) of a process, from /proc; None when it is gone."""
    try:
        raw = open(f"/proc/{pid}/stat", "rb").read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2:].split()
    return int(fields[1]), int(fields[19]), fields[0].decode()


def descendants(pid: int) -> dict[int, int]:
    """Every process below `pid`, as pid -> start ticks (empty where there is no /proc)."""
    children: dict[int, list[tuple[int, int]]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return {}
    for name in names:
        if name.isdigit():
            info = _stat(int(name))
            if info is not None:
                children.setdefault(info[0], []).append((int(name), info[1]))
    found: dict[int, int] = {}
    stack = [pid]
    while stack:
        for child, ticks in children.get(stack.pop(), ()):
            if child not in found:
                found[child] = ticks
                stack.append(child)
    return found


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat); None once it is gone or a
    zombie. With the pid it names one process for good (a pid is reused, its start time is not)."""
    info = _stat(pid)
    return None if info is None or info[2] == "Z" else info[1]


def _alive(pid: int, ticks: int) -> bool:
    info = _stat(pid)
    return info is not None and info[1] == ticks and info[2] != "Z"


def watch_tree(seen: dict[int, int], pid: int) -> dict[int, int]:
    """`seen` with the processes now below `pid` added and those that have ended dropped: called while `pid` runs,
    it keeps every live process that was ever below it, orphans included (bounded by what is alive)."""
    alive = {p: ticks for p, ticks in seen.items() if _alive(p, ticks)}
    alive.update(descendants(pid))
    return alive


def kill_tree(tree: dict[int, int], sig: int) -> None:
    """Signal each process of `tree` that is still the same process (same start time)."""
    for pid, ticks in tree.items():
        if _alive(pid, ticks):
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_gone(tree: dict[int, int], pgid: int | None = None, timeout_s: float = GONE_TIMEOUT_S) -> bool:
    """Wait until no process of `tree` (and of group `pgid`) runs; False if some still do after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = any(_alive(pid, ticks) for pid, ticks in tree.items()) or (pgid is not None and _group_alive(pgid))
        if not alive:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def stop_tree(proc: subprocess.Popen, first: int = signal.SIGTERM, grace_s: float = 10.0,
              gone_timeout_s: float = GONE_TIMEOUT_S, on_kill: Callable[[], None] | None = None,
              known: dict[int, int] | None = None) -> bool:
    """Send `first` to the group of `proc` (started with `start_new_session=True`), give it `grace_s` seconds,
    SIGKILL what is left of its group and of its process tree, and wait until all of it is gone; True when it is.

    The tree is read from /proc only while `proc` has not been reaped (afterwards its pid may belong to another
    process); `known` adds processes seen earlier (pid -> start ticks), e.g. by a caller that watched the tree
    while it ran. `on_kill` is called when the leader outlived the grace period (it is about to be SIGKILLed)."""
    tree = dict(known or {})
    if proc.poll() is None:
        tree.update(descendants(proc.pid))
    try:
        os.killpg(proc.pid, first)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            tree.update(descendants(proc.pid))  # started meanwhile; the leader still runs, so its pid is its own
            if on_kill is not None:
                on_kill()
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group's pid stays taken while members remain
    except (ProcessLookupError, PermissionError):
        pass
    kill_tree(tree, signal.SIGKILL)
    try:
        proc.wait(timeout=gone_timeout_s)
    except subprocess.TimeoutExpired:
        return False  # stuck in the kernel (uninterruptible sleep): nothing more a signal can do
    return wait_gone(tree, proc.pid, gone_timeout_s)


@functools.lru_cache(maxsize=1)
def pid_namespace_prefix() -> tuple[tuple[str, ...], str]:
    """The command prefix that runs a session in its own PID namespace, with the runner as its PID 1, so that
    the kernel kills every process of the session the moment the runner dies (however it dies; a killed
    `unshare` takes the runner with it through --kill-child). Tried once: as root a PID and mount namespace,
    otherwise a user namespace mapping the current user to itself. ((), why) where this machine allows neither."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return (), "util-linux's unshare is not installed"
    base = (unshare, "--pid", "--fork", "--kill-child", "--mount-proc")
    tries = [base] if os.geteuid() == 0 else []
    tries.append((unshare, "--user", "--map-current-user", *base[1:]))
    why = ""
    for prefix in tries:
        try:
            done = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as err:
            why = str(err)
            continue
        if done.returncode == 0:
            return prefix, ""
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit status {done.returncode}"
    return (), f"unshare cannot make a PID namespace here ({why})"


def tied_to_caller() -> tuple[str, ...]:
    """The command prefix for a child that must not outlive this process (a `submit`'s training run): its own PID
    namespace where the machine allows one, entered through `setpriv --pdeathsig KILL`, so that this process
    dying, even by SIGKILL, kills the namespace's entry and the kernel kills everything in it. Where no namespace
    is possible, the parent-death signal still reaches the direct child."""
    setpriv = shutil.which("setpriv")
    prefix, _ = pid_namespace_prefix()
    return ((setpriv, "--pdeathsig", "KILL") if setpriv else ()) + prefix
