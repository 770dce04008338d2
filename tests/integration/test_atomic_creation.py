"""Session creation is atomic: a process killed half-way leaves no half-made session folder, and the next launch
clears what it left in the staging area."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from nanogpt_tui.cli import main
from nanogpt_tui.config import load_config
from nanogpt_tui.contract import layout as L
from nanogpt_tui.sessions.manager import STAGING_PREFIX, LaunchRequest, SessionManager

REPO = Path(__file__).resolve().parents[2]


def test_a_creation_killed_half_way_leaves_no_session_folder(tmp_path, capsys):
    sessions = tmp_path / "sessions"
    config = tmp_path / "nanogpt-tui.toml"
    config.write_text(f'schema_version = 1\n[paths]\nsessions_dir = "{sessions}"\n'
                      f'baselines_dir = "{REPO / "human_baselines"}"\n')
    # The creating process stops for good in its second git call (the workspace half-built), and is SIGKILLed.
    script = textwrap.dedent(f"""
        import time
        from nanogpt_tui.config import load_config
        from nanogpt_tui.sessions import manager as manager_module
        real_git, calls = manager_module._git, []

        def git_then_hang(workspace, *args):
            calls.append(args)
            if len(calls) == 2:
                print("half-way", flush=True)
                time.sleep(600)
            real_git(workspace, *args)

        manager_module._git = git_then_hang
        manager = manager_module.SessionManager(load_config({str(config)!r}))
        manager.create(manager_module.LaunchRequest(agent="scripted", anchor="smoke", backend="local",
                                                    budget_gpu_hours=0.01))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout.readline().strip() == "half-way"
        staging = [p for p in sessions.iterdir() if p.name.startswith(STAGING_PREFIX)]
        assert len(staging) == 1 and (staging[0] / L.WORKSPACE).is_dir()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [p.name for p in sessions.iterdir() if not p.name.startswith(".")] == []
    assert main(["--config", str(config), "sessions", "list", "--json"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == "[]" and out.err == ""

    manager = SessionManager(load_config(str(config)))
    session = manager.create(LaunchRequest(agent="scripted", anchor="smoke", backend="local", budget_gpu_hours=0.01))
    assert not staging[0].exists()  # the dead process's staging folder went with the next launch
    folder = manager.session_dir(session.id)
    assert (folder / L.SESSION_FILE).is_file() and (folder / L.WORKSPACE / ".git").is_dir()
    assert (folder / L.EVENTS_FILE).resolve() == (folder / L.WORKSPACE / "logs" / L.EVENTS_FILE).resolve()
    assert [p.name for p in sessions.iterdir() if p.name.startswith(STAGING_PREFIX)] == []


def test_two_launches_in_the_same_second_get_two_sessions(tmp_path):
    config = tmp_path / "nanogpt-tui.toml"
    config.write_text(f'schema_version = 1\n[paths]\nsessions_dir = "{tmp_path / "sessions"}"\n'
                      f'baselines_dir = "{REPO / "human_baselines"}"\n')
    manager = SessionManager(load_config(str(config)))
    started = time.monotonic()
    ids = {manager.create(LaunchRequest(agent="scripted", anchor="smoke", backend="local",
                                        budget_gpu_hours=0.01)).id for _ in range(2)}
    assert len(ids) == 2 and all(manager.get(i).id == i for i in ids), time.monotonic() - started
