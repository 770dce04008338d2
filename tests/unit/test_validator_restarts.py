"""A host process that finds many sessions' validators gone (a control room re-attaching after a reboot) restarts
them a few at a time, not all at once: at most VALIDATOR_STARTS_AT_ONCE still starting. The backend is a test double
whose sessions all run; starting a validator is replaced by a double that records the start as a live process of
this test that has not yet begun to serve (the real serve is in tests/integration/test_validator_local.py)."""

from __future__ import annotations

import json
import os

from nanogpt_tui.backends.base import RUNNING, BackendState
from nanogpt_tui.config import load_config
from nanogpt_tui.contract import layout as L
from nanogpt_tui.procgroup import start_ticks
from nanogpt_tui.sessions import manager as manager_module
from nanogpt_tui.sessions import validation
from nanogpt_tui.sessions.manager import SessionManager
from nanogpt_tui.validator import protocol as P
from tests.tui.sessions_data import make_session


class RunningBackend:
    """Every session runs."""

    default_gpus = None
    sandboxed = False

    def state(self, ref):
        return BackendState(status=RUNNING)

    def follow_logs(self, ref, log_path):
        return None

    def hand_over(self, ref, spec):
        return None

    def close(self):
        pass


def record(session_dir, *, serving: bool, pid: int | None = None) -> None:
    pid = os.getpid() if pid is None else pid
    vdir = session_dir / L.VALIDATOR
    vdir.mkdir(parents=True, exist_ok=True)
    info = {"pid": pid, "ticks": start_ticks(pid) if pid == os.getpid() else 1, "started_at": "x"}
    (vdir / P.SERVICE_FILE).write_text(json.dumps(info | ({"serving": True} if serving else {})))


def test_gone_validators_restart_a_few_at_a_time(tmp_path, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_text(f'schema_version = 1\n[paths]\nsessions_dir = "{tmp_path / "sessions"}"\n')
    ids = [f"s{i}" for i in range(6)]
    for sid in ids:
        make_session(tmp_path / "sessions", sid, agent="claude", strategy="default", budget=5000.0)
        data = json.loads((tmp_path / "sessions" / sid / L.SESSION_FILE).read_text())
        data["handle"] = f"container-{sid}"
        (tmp_path / "sessions" / sid / L.SESSION_FILE).write_text(json.dumps(data))
    started = []

    def spawn(session_dir, config_path):  # a started validator, still loading
        started.append(session_dir.name)
        record(session_dir, serving=False)
        return os.getpid()

    monkeypatch.setattr(validation, "spawn_service", spawn)
    manager = SessionManager(load_config(str(config)), backends={"docker": RunningBackend()})

    def refresh_all() -> None:
        for sid in ids:
            manager.refresh(manager.get(sid))

    refresh_all()
    limit = manager_module.VALIDATOR_STARTS_AT_ONCE
    assert started == ids[:limit]  # the others wait for a later refresh
    refresh_all()
    assert started == ids[:limit]  # still starting: nothing more
    record(tmp_path / "sessions" / ids[0], serving=True)  # the first serves now
    refresh_all()
    assert started == ids[:limit + 1]
    record(tmp_path / "sessions" / ids[1], serving=False, pid=2**22 + 7)  # the second died while starting
    refresh_all()
    assert started == ids[:limit + 1] + [ids[1]]  # its slot is free, and it is gone: started again first
    assert validation.service_starting(tmp_path / "sessions" / ids[2])
    assert not validation.service_starting(tmp_path / "sessions" / ids[0])
    assert validation.service_alive(tmp_path / "sessions" / ids[0])
    # A launch starts its own validator at once, whatever else is starting.
    manager.ensure_validator(manager.get(ids[5]))
    assert started[-1] == ids[5]
