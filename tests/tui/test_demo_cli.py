"""`nanogpt-tui demo` (its three real local sessions) and `nanogpt-tui` with no command."""

from __future__ import annotations

import json

from nanogpt_tui.cli import main
from nanogpt_tui.config import load_config
from nanogpt_tui.contract import layout as L
from nanogpt_tui.demo import DEMO_FOLDER, demo_config
from nanogpt_tui.sessions import model as M
from nanogpt_tui.sessions.manager import SessionManager


def test_demo_starts_three_scripted_local_sessions_on_the_smoke_record(tui_env, capsys):
    assert main(["demo", "--no-ui"]) == 0
    out = capsys.readouterr()
    ids = out.out.split()
    assert len(ids) == 3
    config = demo_config(load_config())
    assert config.paths.sessions_dir == tui_env.root / DEMO_FOLDER
    assert config.paths.data_dir == tui_env.config.paths.local_data_dir  # shards shared with local sessions
    manager = SessionManager(config)
    try:
        sessions = [manager.get(i) for i in ids]
        for s in sessions:
            assert (s.agent, s.anchor, s.backend, s.gpus) == ("scripted", "smoke", "local", 1)
            assert s.config["extra_env"] == {"BENCHMARK_SCRIPTED_RUNS": "3"}
            assert s.budget_gpu_hours <= 0.15 and s.status == M.RUNNING
        strategies = [s.strategy for s in sessions]
        assert strategies[0] == "default"
        # The demo asks for the autoresearch strategy; until it lists the scripted agent it says so out loud.
        assert strategies[1] == "autoresearch" or "does not list the scripted agent" in out.err
        # Running it again re-attaches instead of starting more.
        assert main(["demo", "--no-ui"]) == 0
        assert sorted(capsys.readouterr().out.split()) == sorted(ids)
    finally:
        for s in manager.list()[0]:
            if s.is_active:
                manager.kill(s.id, grace_s=3.0)
    for i in ids:
        data = json.loads((config.paths.sessions_dir / i / L.SESSION_FILE).read_text())
        assert data["status"] == M.KILLED


def test_no_command_without_a_terminal_prints_the_commands(tui_env, capsys):
    assert main([]) == 0
    captured = capsys.readouterr()
    assert "needs a terminal" in captured.err and "demo" in captured.out
