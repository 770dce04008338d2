"""Fixtures for the control room's tests: a pinned config in a temporary folder, fixed or live sessions."""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from nanogpt_tui.config import Config, load_config
from nanogpt_tui.errors import UserError
from nanogpt_tui.sessions.manager import SessionManager
from tests.tui.sessions_data import build_fixed_sessions, build_fleet_sessions, write_config

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Env:
    config: Config
    config_path: Path
    root: Path
    manager: SessionManager


@pytest.fixture(autouse=True)
def private_view_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The control room keeps sort, filter and the table toggle under $XDG_STATE_HOME: a fresh one per test."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    return state


@pytest.fixture
def tui_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    """Config pinned through NANOGPT_TUI_CONFIG: the record timeline, the smoke record, a sessions folder and a
    stand-in shard folder (local sessions only check that shards exist)."""
    baselines = tmp_path / "human_baselines"
    baselines.mkdir()
    for name in ("records.tsv", "our_records.toml"):  # the timeline, and our smoke track's records (the demo's)
        shutil.copy(REPO / "human_baselines" / name, baselines / name)
    shutil.copytree(REPO / "human_baselines" / "smoke", baselines / "smoke",
                    ignore=shutil.ignore_patterns("data", "__pycache__"))
    data = tmp_path / "data"
    (data / "fineweb10B").mkdir(parents=True)
    (data / "fineweb10B" / "fineweb_val_000000.bin").write_bytes(b"")
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    path = write_config(tmp_path, baselines, sessions, data)
    monkeypatch.setenv("NANOGPT_TUI_CONFIG", str(path))
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    config = load_config()
    manager = SessionManager(config)
    yield Env(config, path, sessions, manager)
    # Never leave a live session behind.
    cleanup = SessionManager(config)
    for session in cleanup.list()[0]:
        if session.is_active and session.backend == "local":
            try:
                cleanup.kill(session.id, grace_s=2.0)
            except UserError:
                pass


@pytest.fixture
def fixed_env(tui_env: Env) -> Env:
    build_fixed_sessions(tui_env.root)
    return tui_env


@pytest.fixture
def fleet_env(tui_env: Env) -> Env:
    """Twelve fixed sessions on FA3 -> BigramHashEmbedding (the plot with a fleet)."""
    build_fleet_sessions(tui_env.root)
    return tui_env


async def wait_for(pilot, predicate, timeout: float = 15.0, what: str = "the condition") -> None:
    """Pause the app until `predicate()` holds (the app keeps running meanwhile)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def run(coro) -> None:
    asyncio.run(coro)
