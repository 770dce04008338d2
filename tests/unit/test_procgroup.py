"""Stopping a process tree: a grandchild in its own session (as torchrun starts its workers) goes too, and a
recycled pid is never signalled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from nanogpt_tui import procgroup

# A leader that starts a worker in a session of its own, then waits, ignoring SIGTERM like a busy launcher.
LAUNCHER = ("import signal, subprocess, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "w = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
            "print(w.pid, flush=True)\n"
            "time.sleep(300)\n")


def test_stop_tree_reaches_workers_outside_the_group():
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    worker = int(proc.stdout.readline())
    assert os.getpgid(worker) != proc.pid  # out of reach of a killpg
    assert worker in procgroup.descendants(proc.pid)
    started = time.monotonic()
    procgroup.stop_tree(proc, grace_s=0.5)
    assert time.monotonic() - started < 5
    assert proc.returncode == -signal.SIGKILL  # SIGTERM was ignored: SIGKILL after the grace period
    assert not os.path.exists(f"/proc/{worker}") or open(f"/proc/{worker}/stat").read().split(") ")[1][0] == "Z"
    proc.stdout.close()


def test_a_recycled_pid_is_not_signalled():
    me = os.getpid()
    ticks = procgroup.descendants(os.getppid()).get(me)
    assert ticks is not None
    procgroup.kill_tree({me: ticks + 1}, signal.SIGKILL)  # same pid, another start time: not us
    assert procgroup.wait_gone({me: ticks + 1}, timeout_s=0.1)
    assert not procgroup.wait_gone({me: ticks}, timeout_s=0.1)  # we still run


def test_a_worker_left_by_a_leader_that_already_ended_is_stopped_when_it_was_watched():
    """The runner's case: the agent exits by itself, its worker (own session) is reparented; what the runner saw
    while the agent ran is enough to stop it, and the reaped leader's pid is never walked again."""
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER.replace("time.sleep(300)", "time.sleep(0.5)")],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    worker = int(proc.stdout.readline())
    seen = procgroup.watch_tree({}, proc.pid)
    assert worker in seen
    proc.wait(timeout=10)
    assert procgroup.watch_tree(seen, proc.pid) == seen  # the worker lives on, reparented
    assert procgroup.stop_tree(proc, first=signal.SIGKILL, grace_s=0.0, known=seen)
    assert not os.path.exists(f"/proc/{worker}") or open(f"/proc/{worker}/stat").read().split(") ")[1][0] == "Z"
    proc.stdout.close()
