"""Fault injection on the local backend: SIGKILL of the session runner, and of the process the host recorded. The
agent's whole tree must die with the runner (its own PID namespace), leaving nothing behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from nanogpt_tui.backends.local import ProcessTrees
from nanogpt_tui.procgroup import pid_namespace_prefix
from nanogpt_tui.contract import layout as L
from tests.integration.test_runner_local import make_session
from tests.tui.conftest import tui_env  # noqa: F401  (the fixture: a pinned config and sessions folder)

pytestmark = pytest.mark.faults


def processes_mentioning(text: str) -> list[int]:
    """Live (non-zombie) processes whose command line holds `text`."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def children_of(pid: int) -> list[int]:
    kids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == str(pid):
                kids.append(int(entry.name))
    return kids


def wait_for(predicate, timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout_s, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - start


def test_this_machine_gives_sessions_a_pid_namespace():
    prefix, why = pid_namespace_prefix()
    assert prefix, why  # CI runs as root: the faults below rely on it


@pytest.mark.parametrize("victim", ["runner", "recorded process"])
def test_a_sigkilled_runner_takes_its_agent_tree_with_it(tmp_path, victim):
    spec = make_session(tmp_path, seconds=120.0)
    backend = ProcessTrees()
    handle = backend.start(spec)
    pid, _ = backend.parse_handle(handle)
    marker = str(spec.runner_dir / "agent" / "run.sh")
    wait_for(lambda: processes_mentioning(marker) and "tick 3" in spec.log_path.read_text(), 20, "the agent")
    agent = processes_mentioning(marker)
    runner = children_of(pid)
    assert len(runner) == 1, runner  # unshare's one child: the runner, PID 1 of the session's namespace
    log_before = spec.log_path.read_bytes()
    killed_at = time.monotonic()
    os.kill(runner[0] if victim == "runner" else pid, signal.SIGKILL)
    gone_after = wait_for(lambda: not processes_mentioning(marker), 5, "the agent's processes to end")
    assert gone_after < 2.0 and all(not Path(f"/proc/{p}").exists() or p not in processes_mentioning(marker)
                                    for p in agent)
    wait_for(lambda: backend.state(handle).status == "exited", 5, "the session to end")
    assert time.monotonic() - killed_at < 5
    # Nothing written before the fault was lost, and no record claims a reason the runner never wrote.
    assert spec.log_path.read_bytes().startswith(log_before)
    assert not (spec.workspace_dir / "logs" / L.RUNNER_EXIT_FILE).exists()


def test_the_host_records_a_dead_runner_truthfully(tui_env):
    """A session whose runner is SIGKILLed: failed, 'runner died at T', GPU-hours counted to T, not to when the host
    looked; the agent gone with it."""
    from nanogpt_tui.sessions import model as M
    from nanogpt_tui.sessions.model import parse_iso
    from tests.tui.sessions_data import make_ticker_session

    session = make_ticker_session(tui_env.manager, "killed-runner", seconds=600)
    folder = tui_env.root / session.id
    marker = str(folder / L.RUNNER / "agent" / "run.sh")
    wait_for(lambda: processes_mentioning(marker) and "tick 3" in (folder / L.CONTAINER_LOG).read_text(), 20,
             "the agent")
    runner = children_of(int(session.handle.split(":")[0]))
    assert len(runner) == 1
    os.kill(runner[0], signal.SIGKILL)
    killed = M.utc_now()
    wait_for(lambda: not processes_mentioning(marker), 5, "the agent's processes to end")
    time.sleep(2.0)  # the host looks later than the fault: the record must not move the end to then
    ended = tui_env.manager.refresh(tui_env.manager.get(session.id))
    assert ended.status == M.FAILED and ended.status_reason.startswith("runner died at ")
    assert "its agent's processes ended with it" in ended.status_reason
    end = parse_iso(ended.finished_at)
    assert abs((end - killed).total_seconds()) < 1.5, (end, killed)
    used_h = ended.budget().used_gpu_hours()
    assert abs(used_h * 3600 - (end - parse_iso(ended.started_at)).total_seconds()) < 0.01


def test_a_sigkilled_submit_takes_its_training_run_with_it(tmp_path):
    """`submit` retimes through `run_once`; SIGKILL of the process running it must not leave the run (and the
    run's own children, here a backgrounded worker as torchrun's would be) alive."""
    import subprocess
    import sys
    import textwrap

    cand = tmp_path / "cand"
    cand.mkdir()
    marker = f"worker-{os.getpid()}-{id(tmp_path)}"
    (cand / "run.sh").write_text(f'bash -c "exec -a {marker} sleep 300" &\nexec -a {marker}-main sleep 300\n')
    script = textwrap.dedent(f"""
        from pathlib import Path
        from nanogpt_tui.validator.retime import run_once
        run_once(Path({str(cand)!r}), Path({str(tmp_path / "run_01.log")!r}), 1, timeout_s=600,
                 env={{"PATH": "/usr/bin:/bin"}})
    """)
    submit = subprocess.Popen([sys.executable, "-c", script])
    try:
        wait_for(lambda: len(processes_mentioning(marker)) == 2, 20, "the training run and its worker")
        os.kill(submit.pid, signal.SIGKILL)
        submit.wait(10)
        wait_for(lambda: not processes_mentioning(marker), 3, "the run to die with submit")
    finally:
        for pid in processes_mentioning(marker):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("delay_s", [0.0, 0.1])
def test_a_stop_in_the_runners_first_moments_is_recorded_as_a_stop(tmp_path, delay_s):
    """Stopped before its interpreter has started (CI's `test_stop_is_a_kill...` failure under load): the stop
    used to be lost in `unshare` before it forked, or to raise KeyboardInterrupt inside an import; either way the
    session ended with no exit record. Now the runner starts with the stop signals blocked and the stop is sent
    again until the session ends."""
    spec = make_session(tmp_path, seconds=60.0)
    backend = ProcessTrees()
    handle = backend.start(spec)
    time.sleep(delay_s)
    started = time.monotonic()
    backend.stop(handle, grace_s=20.0)
    assert time.monotonic() - started < 10  # not the grace period and a SIGKILL
    state = backend.state(handle)
    assert (state.status, state.exit_code) == ("exited", 130)
    assert (spec.workspace_dir / "logs" / L.RUNNER_EXIT_FILE).is_file()
    assert '"reason": "stopped"' in (spec.workspace_dir / "logs" / L.RUNNER_EXIT_FILE).read_text()
    assert "Traceback" not in spec.log_path.read_text()
