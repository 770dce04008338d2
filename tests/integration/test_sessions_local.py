"""Sessions on the local backend through the manager and the CLI: launch, budget, deadline, extend, kill,
re-attach after the host process goes away. The same behaviour the Docker backend is tested for."""

from __future__ import annotations

import json
import os
import time

import pytest

from nanogpt_tui.cli import main
from nanogpt_tui.config import load_config
from nanogpt_tui.contract import layout as L
from nanogpt_tui.errors import UserError
from nanogpt_tui.sessions.manager import LaunchRequest, SessionManager

REPLAY_ENV = (("BENCHMARK_REPLAY_SPEED", "50"), ("BENCHMARK_REPLAY_LOOP", "1"))


@pytest.fixture
def manager(config_file, tmp_path, monkeypatch):
    """A manager over a temporary sessions folder, with the smoke record as anchor (our own code, in the repo)."""
    import shutil

    from tests.conftest import REPO

    config = load_config(config_file)
    shutil.copytree(REPO / "human_baselines" / "smoke", config.paths.baselines_dir / "smoke",
                    ignore=shutil.ignore_patterns("data", "logs"))
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    return SessionManager(config)


def launch(manager: SessionManager, seconds: float, **kw) -> object:
    return manager.launch(LaunchRequest(agent="replay", strategy="default", anchor="smoke", backend="local",
                                        budget_gpu_hours=seconds / 3600, gpus=1, extra_env=REPLAY_ENV, **kw))


def test_a_session_runs_to_its_deadline_with_its_layout(manager):
    session = launch(manager, 4.0)
    d = manager.session_dir(session.id)
    assert session.status == "running" and session.handle
    for name in ("session.json", "container.log", "events.jsonl", "workspace/.git", "workspace/train_gpt.py",
                 "runner/agent/run.sh", "runner/strategy/strategy.toml", "runner/anchor/train_gpt.py",
                 "control/deadline.json", "workspace/submissions", "workspace/verdicts", "workspace/home"):
        assert (d / name).exists(), name
    assert os.readlink(d / "workspace" / "data").endswith(".data")
    used_1 = manager.refresh(manager.get(session.id)).budget().used_gpu_hours()
    time.sleep(0.5)
    used_2 = manager.refresh(manager.get(session.id)).budget().used_gpu_hours()
    assert used_2 > used_1 > 0
    final = manager.wait(session.id, poll_s=0.2, timeout_s=60)
    assert final.status == "out-of-budget" and final.exit_code == 3
    assert [t.status for t in final.transitions] == ["pending", "running", "out-of-budget"]
    log = (d / L.CONTAINER_LOG).read_text()
    assert "starting the agent" in log and "session ends: deadline" in log
    # The replayed agent stream reached the event file through the symlink at the session's top.
    assert (d / "events.jsonl").read_text().count("\n") > 3
    assert final.budget().used_gpu_hours() == pytest.approx(4.0 / 3600, abs=4.0 / 3600)


def test_extend_moves_the_deadline_in_control_and_session_json(manager):
    session = launch(manager, 3.0)
    first_deadline = session.deadline
    extended = manager.extend(session.id, wall_hours=4.0 / 3600)
    assert extended.deadline > first_deadline and extended.total_gpu_hours == pytest.approx(7.0 / 3600)
    control = json.loads((manager.session_dir(session.id) / "control" / "deadline.json").read_text())
    assert control["deadline"] == extended.deadline
    t0 = time.monotonic()
    final = manager.wait(session.id, poll_s=0.2, timeout_s=60)
    assert final.status == "out-of-budget" and time.monotonic() - t0 > 3.0
    assert final.finished_at > first_deadline
    with pytest.raises(UserError, match="only a live session can be extended"):
        manager.extend(session.id, gpu_hours=1.0)


def test_kill_stops_now_and_marks_killed(manager):
    session = launch(manager, 120.0)
    time.sleep(0.5)
    killed = manager.kill(session.id)
    assert killed.status == "killed" and killed.status_reason == "killed by the user"
    assert manager.backend("local").state(manager.ref(killed)).status == "exited"
    with pytest.raises(UserError, match="has already ended"):
        manager.kill(session.id)


def test_a_new_host_process_reattaches_and_sees_the_end(manager):
    session = launch(manager, 3.0)
    # The host that started it goes away: a new manager (new backend objects) follows it from the files alone.
    fresh = SessionManager(manager.config)
    assert fresh.refresh(fresh.get(session.id)).status == "running"
    final = fresh.wait(session.id, poll_s=0.2, timeout_s=60)
    assert final.status == "out-of-budget"


def test_bad_requests_are_clear(manager):
    with pytest.raises(UserError, match="No agent named 'gpt'"):
        manager.create(LaunchRequest(agent="gpt", backend="local", anchor="smoke"))
    with pytest.raises(UserError, match="has no code in .*; fetch it first"):
        manager.create(LaunchRequest(agent="replay", backend="local", anchor="2025-09-03_FA3"))
    with pytest.raises(UserError, match="No strategy named 'nope'"):
        manager.create(LaunchRequest(agent="replay", strategy="nope", backend="local", anchor="smoke"))
    with pytest.raises(UserError, match="There is no session"):
        manager.get("19990101")


def test_cli_run_wait_list_show_extend_kill(manager, capsys):
    assert main(["run", "--agent", "replay", "--backend", "local", "--record", "smoke",
                 "--budget-gpu-hours", str(2.0 / 3600), "--wait"]) == 0
    out = capsys.readouterr()
    session_id = out.out.strip().splitlines()[0]
    assert "out-of-budget" in out.err
    assert main(["sessions", "list", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["id"] == session_id and row["status"] == "out-of-budget"
    assert main(["sessions", "show", session_id]) == 0
    assert "out-of-budget" in capsys.readouterr().out
    assert main(["sessions", "extend", session_id, "--gpu-hours", "1"]) == 2
    assert "only a live session can be extended" in capsys.readouterr().err
    assert main(["sessions", "logs", session_id, "--tail", "2"]) == 0
    assert "session ends: deadline" in capsys.readouterr().out


def test_sessions_logs_prints_untrusted_output_inert(manager, capsys):
    session = launch(manager, 60.0)
    manager.kill(session.id)
    log = manager.session_dir(session.id) / L.CONTAINER_LOG
    with log.open("ab") as handle:
        handle.write(b"agent says \x1b[2J\x1b]0;pwned\x07 key sk-ant-" b"api03-abcdefghijklmnopqrstuvwxyz0123456789\n")
    assert main(["sessions", "logs", session.id, "--tail", "1"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "abcdefghijklmnopqrstuvwxyz" not in out
    assert out.startswith("agent says")
