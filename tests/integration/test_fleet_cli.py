"""The CLI sees what the control room sees (issue 16): `run` on one chosen Docker host that cannot be reached fails
at once unless --queue, and `sessions list --json` gives each session's activity and dollars.

The unreachable host is a Docker socket path that does not exist: the real SDK is asked, nothing leaves the machine.
"""

from __future__ import annotations

import json

import pytest

from nanogpt_tui.cli import main

REPO_BASELINES = __import__("pathlib").Path(__file__).resolve().parents[2] / "human_baselines"


@pytest.fixture
def gone_host(tmp_path, monkeypatch):
    config = tmp_path / "nanogpt-tui.toml"
    config.write_text(f'schema_version = 1\n[paths]\nsessions_dir = "sessions"\nbaselines_dir = "{REPO_BASELINES}"\n'
                      f'[[hosts]]\nname = "gone"\nurl = "unix://{tmp_path}/no-such-docker.sock"\n')
    monkeypatch.setenv("NANOGPT_TUI_CONFIG", str(config))
    return tmp_path


def test_run_on_the_only_host_that_cannot_be_reached_fails_unless_queued(gone_host, capsys):
    args = ["run", "--agent", "scripted", "--record", "smoke", "--gpus", "1", "--budget-gpu-hours", "0.01"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "did not start: Docker host gone cannot be reached" in err and "--queue" in err
    assert main([*args, "--queue"]) == 0
    queued = capsys.readouterr().out.strip()
    assert main(["sessions", "list", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert len(rows) == 2
    [failed] = [r for r in rows.values() if r["id"] != queued]
    assert failed["status"] == "failed" and "cannot be reached" in failed["reason"]
    assert rows[queued]["status"] == "pending"  # waits for the host, as a pool's queue does
    for row in rows.values():
        assert row["activity"] is None and row["cost_usd"] == 0.0 and row["cost"]["agent_cli_reported"] is None


def test_a_dollar_budget_is_enforced_from_the_host_side(config_file, tmp_path):
    import shutil
    import time

    from nanogpt_tui.agents.events import append_event
    from nanogpt_tui.config import load_config
    from nanogpt_tui.contract import layout as L
    from nanogpt_tui.sessions.manager import LaunchRequest, SessionManager
    from tests.conftest import REPO

    config = load_config(config_file)
    shutil.copytree(REPO / "human_baselines" / "smoke", config.paths.baselines_dir / "smoke",
                    ignore=shutil.ignore_patterns("data", "logs"))
    manager = SessionManager(config)
    session = manager.launch(LaunchRequest(agent="replay", anchor="smoke", backend="local", budget_gpu_hours=0.1,
                                           gpus=1, budget_usd=0.50, extra_env=(("BENCHMARK_REPLAY_SPEED", "1"),
                                                                               ("BENCHMARK_REPLAY_LOOP", "1"))))
    try:
        assert manager.refresh(session).status == "running"  # nothing spent yet
        events = manager.session_dir(session.id) / L.EVENTS_FILE
        # 100k output tokens of Claude Opus 4.6 (the replay agent's model here): $2.50 at $25 per million.
        append_event(events, "session_start", agent="claude", text="init")
        append_event(events, "usage", input_tokens=0, cached_input_tokens=0, output_tokens=100_000)
        session = manager.get(session.id)
        session.agent_model = "claude-opus-4-6"
        manager.save(session)
        deadline = time.monotonic() + 30
        while session.status == "running" and time.monotonic() < deadline:
            session = manager.refresh(manager.get(session.id))
        assert session.status == "out-of-budget"
        assert "$2.50 spent of its $0.50 budget" in session.status_reason
    finally:
        if manager.get(session.id).is_active:
            manager.kill(session.id, grace_s=1.0)
