"""Faults under running Docker sessions, on a private dockerd this module starts (its own socket, data root, exec
root and bridge; never the shared daemon): the daemon restarted with and without live-restore, a container killed
for its memory limit, the disk holding the sessions folder filling up (a small tmpfs) and coming back, and the
control room SIGKILLed and started again. Each asserts the one sentence, that no line already written is lost or
doubled, the session's true end, and that nothing of it is left running."""

from __future__ import annotations

import datetime as dt
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from nanogpt_tui.config import load_config
from nanogpt_tui.contract import layout as L
from nanogpt_tui.sessions import model as M
from nanogpt_tui.sessions.manager import LaunchRequest, SessionManager
from nanogpt_tui.sessions.model import parse_iso, utc_now
from tests.conftest import REPO, smoke_baselines
from tests.integration.test_hosts_pool import IMAGE, Daemon, _runner_image, _second_daemon_problem

pytestmark = [pytest.mark.faults, pytest.mark.docker, pytest.mark.timeout(600)]

VOLUME = "nanogpt-tui-faults-data"
TICK = re.compile(r"^tick (\d+)( x+)?$")


@pytest.fixture(scope="module")
def daemon():
    problem = _second_daemon_problem()
    if problem:
        pytest.skip(problem)
    from nanogpt_tui.backends.docker_backend import DockerBackend
    from nanogpt_tui.backends.testimage import build_package_wheel

    d = Daemon("f", 3)
    work = Path(tempfile.mkdtemp(prefix="ngt-faults-wheel-"))
    try:
        wheel = build_package_wheel(REPO, work / "pkg")
        d.create_bridge()
        d.start()
        backend = DockerBackend(d.url, None, d.name)
        _runner_image(backend, wheel)
        backend.close()
        d.client().volumes.create(VOLUME)
        yield d
    finally:
        d.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def restart(daemon: Daemon, *, live_restore: bool) -> None:
    if daemon.live_restore != live_restore or daemon.proc is None:
        daemon.stop()
        daemon.live_restore = live_restore
        daemon.start()


def write_config(daemon: Daemon, folder: Path, sessions_dir: Path, *, memory: str | None = None) -> Path:
    smoke_baselines(folder / "human_baselines")
    path = folder / "nanogpt-tui.toml"
    path.write_text(f'schema_version = 1\n[paths]\nbaselines_dir = "{folder / "human_baselines"}"\n'
                    f'sessions_dir = "{sessions_dir}"\n'
                    f'[docker]\nimage = "{IMAGE}"\ndata_volume = "{VOLUME}"\n'
                    + (f'memory = "{memory}"\n' if memory else "")
                    + f'[[hosts]]\nname = "f"\nurl = "{daemon.url}"\ngpus = [0, 1, 2, 3]\n')
    return path


def start_ticking(manager: SessionManager, script: str) -> M.Session:
    """A session whose agent is `script` (bash), printing numbered `tick N` lines; unsandboxed (the runner image
    holds our wheel without the gateway's dependencies: the sandbox is tested in test_sandbox_docker)."""
    session = manager.create(LaunchRequest(agent="replay", anchor="smoke", budget_gpu_hours=4.0, gpus=1,
                                           backend="docker", sandbox="off"))
    run_sh = manager.session_dir(session.id) / L.RUNNER / "agent" / "run.sh"
    run_sh.write_text("#!/usr/bin/env bash\n" + script)
    return manager.start(session)


FOREVER = 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.02; done\n'


def ticks(manager: SessionManager, session_id: str) -> list[int]:
    """The tick numbers in container.log; every line that looks like a tick must be a whole one."""
    out = []
    for line in (manager.session_dir(session_id) / L.CONTAINER_LOG).read_text(errors="replace").splitlines():
        if line.startswith("tick"):
            m = TICK.match(line)
            assert m, f"a tick line cut or garbled: {line[:80]!r}"
            out.append(int(m.group(1)))
    return out


def wait_for(predicate, timeout_s: float, what: str, step: float = 0.2):
    start = time.monotonic()
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() - start < timeout_s, f"timed out after {timeout_s:.0f} s waiting for {what}"
        time.sleep(step)


def refreshed(manager: SessionManager, session_id: str) -> M.Session:
    return manager.refresh(manager.get(session_id))


def wait_until_ended(manager: SessionManager, session_id: str, timeout_s: float = 60) -> M.Session:
    return wait_for(lambda: (s := refreshed(manager, session_id)).status in M.FINAL and s, timeout_s,
                    "the session to end")


def session_containers(daemon: Daemon, session_id: str) -> list:
    return daemon.client().containers.list(all=True, filters={"label": f"nanogpt-tui.session={session_id}"})


@pytest.mark.parametrize("live_restore", [True, False], ids=["live-restore", "no-live-restore"])
def test_a_docker_daemon_restarted_under_a_running_session(daemon, tmp_path, live_restore):
    restart(daemon, live_restore=live_restore)
    manager = SessionManager(load_config(write_config(daemon, tmp_path, tmp_path / "sessions")))
    try:
        session = start_ticking(manager, FOREVER)
        wait_for(lambda: refreshed(manager, session.id) and len(ticks(manager, session.id)) >= 40, 60, "40 ticks")
        stopped_at = utc_now()
        daemon.stop()
        away = refreshed(manager, session.id)
        assert away.status == M.UNREACHABLE and away.status_reason.startswith("Cannot reach the Docker daemon at")
        assert manager.list()[0]  # the rest keeps working: the folder still lists
        time.sleep(1.5)  # the agent prints on meanwhile (with live-restore)
        daemon.start()
        if live_restore:
            # Asked again after the pool's back-off for a host that did not answer.
            back = wait_for(lambda: (s := refreshed(manager, session.id)).status != M.UNREACHABLE and s, 30,
                            "the host to answer again")
            assert (back.status, back.status_reason) == (M.RUNNING, "f answers again")
            # The outage's lines arrive after it: no line lost or doubled.
            done = wait_for(lambda: refreshed(manager, session.id) and (n := ticks(manager, session.id))
                            and n[-1] > 40 + 60 and n, 60, "the lines printed during and after the outage")
            assert done == list(range(len(done)))
            assert manager.kill(session.id, grace_s=2).status == M.KILLED
        else:
            ended = wait_until_ended(manager, session.id)
            assert ended.status == M.FAILED, ended.status_reason
            assert "while its host f did not answer: a Docker daemon without live-restore stops its containers" \
                in ended.status_reason
            # Its true end: when the daemon stopped it, not when the daemon came back and the host looked.
            end = parse_iso(ended.finished_at)
            assert stopped_at - dt.timedelta(seconds=1) <= end <= stopped_at + dt.timedelta(seconds=15), \
                (end, stopped_at)
            assert ended.budget().used_gpu_hours() * 3600 == pytest.approx(
                (end - parse_iso(ended.started_at)).total_seconds(), abs=0.01)
            numbers = ticks(manager, session.id)
            assert numbers == list(range(len(numbers))) and len(numbers) >= 40
            assert "session ends: stopped" in (manager.session_dir(session.id) / L.CONTAINER_LOG).read_text()
        assert session_containers(daemon, session.id) == []  # removed once its log was copied
    finally:
        manager.close()


def test_a_container_killed_for_its_memory_limit_says_so(daemon, tmp_path):
    from nanogpt_tui.tui.data.views import SessionView
    from nanogpt_tui.tui.widgets.card import card_lines

    restart(daemon, live_restore=True)
    manager = SessionManager(load_config(write_config(daemon, tmp_path, tmp_path / "sessions", memory="64m")))
    try:
        session = start_ticking(manager, 'for i in $(seq 0 19); do echo "tick $i"; done\n'
                                         "python3 -c \"b = b'x' * (512 << 20)\"\n"
                                         'echo "the allocation ended with status $?"\nexit 3\n')
        ended = wait_until_ended(manager, session.id)
        assert ended.status == M.FAILED
        assert ended.status_reason.startswith("killed: out of memory (limit 64 MiB); "), ended.status_reason
        card = "\n".join(line.plain for line in card_lines(SessionView(session=ended), utc_now(), 200))
        assert "killed: out of memory (limit 64 MiB)" in card
        # What it wrote before and after the kill is all there.
        assert ticks(manager, session.id) == list(range(20))
        log = (manager.session_dir(session.id) / L.CONTAINER_LOG).read_text()
        assert "the allocation ended with status 137" in log
        assert session_containers(daemon, session.id) == []
    finally:
        manager.close()


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "sessions"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "ngt-reliability-disk", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Fill the filesystem holding `folder` to the last byte."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out:
        block = b"\0" * (1 << 20)
        while block:
            try:
                out.write(block)
            except OSError:
                block = block[: len(block) // 2]
    return filler


def test_a_full_disk_loses_no_line_and_records_the_true_end(daemon, tmp_path, small_disk):
    restart(daemon, live_restore=True)
    manager = SessionManager(load_config(write_config(daemon, tmp_path, small_disk)))
    pad = "x" * 200
    try:
        session = start_ticking(manager, 'for i in $(seq 0 49); do echo "tick $i"; done\n'
                                         'while [ ! -e /workspace/go ]; do sleep 0.1; done\n'
                                         f'for i in $(seq 50 1999); do echo "tick $i {pad}"; done\n'
                                         'exit 0\n')
        folder = manager.session_dir(session.id)
        wait_for(lambda: refreshed(manager, session.id) and len(ticks(manager, session.id)) == 50, 60, "50 ticks")
        filler = fill(small_disk)
        (folder / L.WORKSPACE / "go").touch()  # an empty file needs no block
        container = daemon.client().containers.get(session.handle)
        container.wait(timeout=60)  # the agent ends while the disk is full: the runner cannot write its record
        container.reload()
        finished = container.attrs["State"]["FinishedAt"]
        # The copy stops at a whole line, with one sentence saying why and what to do.
        error = wait_for(lambda: manager.log_copy_error(session.id), 30, "the log copy to give up")
        assert error == (f"The disk holding {folder / L.CONTAINER_LOG} is full: the session's output stays on its "
                         "Docker host and is copied on from the last whole line once it can be written; free space "
                         f"and run `nanogpt-tui sessions show {session.id}`.")
        copied = ticks(manager, session.id)
        assert copied == list(range(len(copied))) and len((folder / L.CONTAINER_LOG).read_bytes()) > 0
        assert (folder / L.CONTAINER_LOG).read_bytes().endswith(b"\n")
        time.sleep(2.0)  # space returns later than the session ended: the record must not move its end to then
        filler.unlink()
        ended = wait_until_ended(manager, session.id)
        assert ticks(manager, session.id) == list(range(2000))  # every line once, whole
        log = (folder / L.CONTAINER_LOG).read_text()
        assert "session ends: agent-exited (exit 0)" in log  # how it ended, in the log the disk could not take
        assert "could not write the exit record in /workspace/logs (No space left on device); exiting 4" in log
        from nanogpt_tui.backends.docker_backend import parse_docker_time

        true_end = parse_docker_time(finished)
        assert ended.status == M.FAILED and ended.status_reason == (
            f"the session ended at {M.iso(true_end)} but its runner could not write its exit record (the disk "
            "holding the session was full or read-only); the last lines of container.log say how it ended")
        assert abs((parse_iso(ended.finished_at) - true_end).total_seconds()) < 0.01, (ended.finished_at, finished)
        assert manager.log_copy_error(session.id) is None
        assert session_containers(daemon, session.id) == []
    finally:
        manager.close()


def validator_services(session_dir: Path) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmd = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in cmd and str(session_dir).encode() in b" ".join(cmd):
                found.append(int(entry.name))
    return found


class ControlRoom:
    """The real control room (`nanogpt-tui`) in a pseudo-terminal of its own."""

    def __init__(self, config: Path) -> None:
        env = {**os.environ, "NANOGPT_TUI_CONFIG": str(config), "TERM": "xterm-256color", "COLUMNS": "160",
               "LINES": "48"}
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(sys.executable, [sys.executable, "-m", "nanogpt_tui"], env)
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                if not os.read(self.fd, 65536):
                    return
            except OSError:
                return

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def test_a_sigkilled_control_room_is_replaced_with_nothing_lost_or_doubled(daemon, tmp_path):
    restart(daemon, live_restore=True)
    config = write_config(daemon, tmp_path, tmp_path / "sessions")
    manager = SessionManager(load_config(config))
    session = start_ticking(manager, FOREVER)
    manager.close()  # from here only the control rooms copy its output
    folder = manager.session_dir(session.id)
    first = ControlRoom(config)
    try:
        wait_for(lambda: len(ticks(manager, session.id)) >= 40, 90, "the control room to copy 40 ticks")
        wait_for(lambda: validator_services(folder), 30, "the session's validator service")
        first.kill()
        services = validator_services(folder)
        at_kill = len(ticks(manager, session.id))
        time.sleep(1.5)  # the agent prints on with nobody copying
        assert len(ticks(manager, session.id)) <= at_kill + 1
        # Two fresh ones at once (a second terminal): one copies, the other leaves the log to it.
        second, third = ControlRoom(config), ControlRoom(config)
        try:
            numbers = wait_for(lambda: (n := ticks(manager, session.id)) and len(n) >= at_kill + 100 and n, 90,
                               "the new control room to copy on")
        finally:
            second.kill()
            third.kill()
        assert numbers == list(range(len(numbers))), "lines lost or doubled across the control room's restart"
        assert validator_services(folder) == services  # re-attached to the one it had, not a second one
    finally:
        manager = SessionManager(load_config(config))
        assert manager.kill(session.id, grace_s=2).status == M.KILLED
        manager.close()
    assert session_containers(daemon, session.id) == []
    assert validator_services(folder) == []
