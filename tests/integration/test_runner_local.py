"""The in-session runner under the local backend: deadline watchdog with no host process, extend, kill, logs."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from nanogpt_tui.backends.base import LaunchSpec
from nanogpt_tui.backends.local import ProcessTrees
from nanogpt_tui.contract import layout as L
from nanogpt_tui.contract.deadline import write_deadline
from nanogpt_tui.contract.env import contract_env

TICKER = Path(__file__).resolve().parents[1] / "fakes" / "harnesses" / "ticker"


def make_session(tmp_path: Path, seconds: float, grace_s: float = 2.0, **env) -> LaunchSpec:
    d = tmp_path / "session"
    ws, runner, control = d / "workspace", d / "runner", d / "control"
    for sub in L.WORKSPACE_DIRS:
        (ws / sub).mkdir(parents=True)
    shutil.copytree(TICKER, runner / "agent")
    control.mkdir()
    write_deadline(control, dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds), gpus=1,
                   budget_gpu_hours=seconds / 3600, grace_s=grace_s)
    contract = contract_env(workspace=str(ws), runner=str(runner), control=str(control), run_id="t", agent="ticker",
                              strategy="none", session_hours=seconds / 3600, anchor="smoke", target=None)
    return LaunchSpec(session_id="t", image=None, command=[sys.executable, "-m", "nanogpt_tui.sessions.runner"],
                      env={"PATH": "/usr/bin:/bin", **contract, **env}, workspace_dir=ws, runner_dir=runner,
                      control_dir=control, log_path=d / L.CONTAINER_LOG)


def wait_until_exited(backend: ProcessTrees, handle: str, timeout_s: float) -> float:
    start = time.monotonic()
    while backend.state(handle).status == "running":
        assert time.monotonic() - start < timeout_s, "the session did not end in time"
        time.sleep(0.05)
    return time.monotonic() - start


def runner_exit(spec: LaunchSpec) -> dict:
    return json.loads((spec.workspace_dir / "logs" / L.RUNNER_EXIT_FILE).read_text())


def test_the_watchdog_stops_the_agent_at_the_deadline_without_a_host(tmp_path):
    spec = make_session(tmp_path, seconds=2.0)
    # A fresh backend object per call stands for "no host process remembers this child".
    handle = ProcessTrees().start(spec)
    elapsed = wait_until_exited(ProcessTrees(), handle, timeout_s=20)
    assert 1.5 < elapsed < 8
    info = runner_exit(spec)
    assert info["reason"] == "deadline" and info["exit_code"] == 3
    log = spec.log_path.read_text()
    assert "tick 3" in log and "the deadline has passed; stopping the agent" in log


def test_a_stubborn_agent_is_killed_after_the_grace_period(tmp_path):
    spec = make_session(tmp_path, seconds=3.0, grace_s=1.0, TICKER_IGNORE_INT="1")
    backend = ProcessTrees()
    handle = backend.start(spec)
    wait_until_exited(backend, handle, timeout_s=20)
    assert "did not stop within 1 s of SIGINT; sending SIGKILL" in spec.log_path.read_text()
    assert runner_exit(spec)["reason"] == "deadline"


def test_extend_moves_the_deadline_without_a_restart(tmp_path):
    spec = make_session(tmp_path, seconds=2.0)
    backend = ProcessTrees()
    handle = backend.start(spec)
    time.sleep(0.8)
    write_deadline(spec.control_dir, dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=4.0), gpus=1,
                   budget_gpu_hours=0.01, grace_s=2.0)
    time.sleep(2.5)  # past the original deadline
    assert backend.state(handle).status == "running"
    elapsed = wait_until_exited(backend, handle, timeout_s=20)
    assert elapsed > 0.5
    assert "deadline moved to" in spec.log_path.read_text()
    assert runner_exit(spec)["reason"] == "deadline"


def test_stop_is_a_kill_and_the_agent_finishing_is_recorded(tmp_path):
    spec = make_session(tmp_path, seconds=60.0)
    backend = ProcessTrees()
    handle = backend.start(spec)
    time.sleep(0.5)
    backend.stop(handle, grace_s=30.0)
    assert backend.state(handle).status == "exited"
    assert runner_exit(spec)["reason"] == "stopped"

    spec2 = make_session(tmp_path / "b", seconds=60.0, TICKER_LINES="3", TICKER_EXIT="0")
    handle2 = backend.start(spec2)
    wait_until_exited(backend, handle2, timeout_s=20)
    assert backend.state(handle2).exit_code == 0 and runner_exit(spec2)["reason"] == "agent-exited"
    spec3 = make_session(tmp_path / "c", seconds=60.0, TICKER_LINES="2", TICKER_EXIT="5")
    handle3 = backend.start(spec3)
    wait_until_exited(backend, handle3, timeout_s=20)
    assert runner_exit(spec3) | {"at": None} == {"schema_version": 1, "reason": "agent-failed", "exit_code": 1,
                                                 "agent_exit_code": 5, "at": None}


def test_a_missing_deadline_fails_clearly(tmp_path):
    spec = make_session(tmp_path, seconds=5.0)
    (spec.control_dir / L.DEADLINE_FILE).unlink()
    backend = ProcessTrees()
    handle = backend.start(spec)
    wait_until_exited(backend, handle, timeout_s=20)
    assert runner_exit(spec)["reason"] == "no-deadline"
    assert "the host must write the deadline" in spec.log_path.read_text()


@pytest.mark.parametrize("reused", [True])
def test_pid_reuse_is_not_mistaken_for_the_session(tmp_path, reused):
    spec = make_session(tmp_path, seconds=60.0)
    backend = ProcessTrees()
    handle = backend.start(spec)
    pid, ticks = ProcessTrees.parse_handle(handle)
    assert ticks > 0
    # Same pid, another start time: not our process.
    assert ProcessTrees().state(f"{pid}:{ticks + 12345}").status == "exited"
    backend.stop(handle, 5.0)


def test_a_bad_deadline_file_is_warned_about_once_per_change(tmp_path):
    spec = make_session(tmp_path, seconds=30.0)
    backend = ProcessTrees()
    handle = backend.start(spec)
    try:
        deadline_file = spec.control_dir / L.DEADLINE_FILE
        started = time.monotonic()
        while "starting the agent" not in spec.log_path.read_text():
            assert time.monotonic() - started < 20, "the runner did not start the agent"
            time.sleep(0.05)
        def put(text: str) -> None:
            # In one step: a write_text is a truncation and then a write, and a runner that reads between the two
            # sees an empty file, a change of its own with its own warning (a flake seen under load).
            part = deadline_file.with_suffix(".part")
            part.write_text(text)
            os.replace(part, deadline_file)

        put("{half")
        time.sleep(2.0)  # four polls of the runner
        put('{"deadline": "tomorrow"}')
        time.sleep(1.5)
        write_deadline(spec.control_dir, dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1.0), gpus=1,
                       budget_gpu_hours=0.01, grace_s=1.0)
        wait_until_exited(backend, handle, timeout_s=20)
    finally:
        backend.stop(handle, 1.0)
    log = spec.log_path.read_text()
    assert log.count("is not JSON") == 1, log
    assert log.count("field 'deadline' is 'tomorrow'") == 1, log
    assert runner_exit(spec)["reason"] == "deadline"
