"""How the host records an ended session from what its backend and its runner say: the status, the one sentence and
the end time (the runner's record; else the backend's own end; never when the host looked). The backend is a test
double that answers `state` with a fixed BackendState."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from nanogpt_tui.backends.base import BackendState
from nanogpt_tui.config import load_config
from nanogpt_tui.contract import layout as L
from nanogpt_tui.contract.runner_exit import EXIT_NO_RECORD, ExitReason, write_runner_exit
from nanogpt_tui.sessions import model as M
from nanogpt_tui.sessions.manager import SessionManager
from nanogpt_tui.sessions.model import iso, load_session, parse_iso, save_session
from tests.tui.sessions_data import make_session

ENDED = dt.datetime(2026, 12, 3, 9, 30, 15, 250000, tzinfo=dt.timezone.utc)


class EndedBackend:
    """A backend whose one session has ended as `state` says."""

    default_gpus = None
    sandboxed = False

    def __init__(self, state: BackendState) -> None:
        self.fixed = state
        self.released = []

    def state(self, ref):
        return self.fixed

    def follow_logs(self, ref, log_path):
        return None

    def release(self, ref, egress_prefix):
        self.released.append(ref.session_id)

    def close(self):
        pass


def ended(tmp_path, state: BackendState, record: tuple | None) -> tuple[M.Session, EndedBackend]:
    config = tmp_path / "c.toml"
    config.write_text(f'schema_version = 1\n[paths]\nsessions_dir = "{tmp_path / "sessions"}"\n')
    d = make_session(tmp_path / "sessions", "s1", agent="claude", strategy="default", started_hours_ago=2.0)
    session = load_session(d)
    session.handle = "c0ffee"
    save_session(d, session)
    if record:
        write_runner_exit(d / L.WORKSPACE / "logs", *record)
    backend = EndedBackend(state)
    manager = SessionManager(load_config(str(config)), backends={"docker": backend})
    return manager.refresh(manager.get("s1")), backend


def test_a_memory_kill_is_named_first(tmp_path):
    state = BackendState("exited", exit_code=1, ended_at=ENDED, killed_by="out of memory (limit 64 MiB)")
    session, backend = ended(tmp_path, state, (ExitReason.AGENT_FAILED, 1, 137))
    assert session.status == M.FAILED
    assert session.status_reason == ("killed: out of memory (limit 64 MiB); the session ended (agent-failed, exit "
                                     "status 1)")
    assert backend.released == ["s1"]


def test_a_memory_kill_along_the_way_does_not_rewrite_how_it_ended(tmp_path):
    state = BackendState("exited", exit_code=3, ended_at=ENDED, killed_by="out of memory (limit 64 MiB)")
    session, _ = ended(tmp_path, state, (ExitReason.DEADLINE, 3, None))
    assert session.status == M.OUT_OF_BUDGET
    assert session.status_reason == ("the deadline passed; the watchdog stopped the agent; a process of it was "
                                     "killed: out of memory (limit 64 MiB)")


@pytest.mark.parametrize("code", [137, EXIT_NO_RECORD])
def test_without_a_record_the_end_is_the_backends_own(tmp_path, code):
    session, _ = ended(tmp_path, BackendState("exited", exit_code=code, ended_at=ENDED), None)
    assert session.status == M.FAILED and parse_iso(session.finished_at) == ENDED.replace(microsecond=250000)
    if code == EXIT_NO_RECORD:
        assert session.status_reason == (f"the session ended at {iso(ENDED)} but its runner could not write its "
                                          "exit record (the disk holding the session was full or read-only); the "
                                          "last lines of container.log say how it ended")
    else:
        assert session.status_reason == (f"runner died at {iso(ENDED)} without an exit record (exit status 137); "
                                          "its agent's processes ended with it")
    assert session.budget().used_gpu_hours() == pytest.approx(
        (ENDED - parse_iso(session.started_at)).total_seconds() / 3600 * session.gpus)


def test_a_stop_while_the_host_was_away_is_the_daemons(tmp_path):
    config = tmp_path / "c.toml"
    state = BackendState("exited", exit_code=130, ended_at=ENDED)
    session, _ = ended(tmp_path, state, (ExitReason.STOPPED, 130, None))
    assert (session.status, session.status_reason) == (M.KILLED, "stopped by a signal")
    # The same, seen after its host did not answer for a while.
    d = tmp_path / "sessions" / "s1"
    s = load_session(d)
    s.status, s.finished_at, s.transitions = M.UNREACHABLE, None, s.transitions[:2]
    save_session(d, s)
    manager = SessionManager(load_config(str(config)), backends={"docker": EndedBackend(state)})
    session = manager.refresh(manager.get("s1"))
    recorded = json.loads((d / L.WORKSPACE / "logs" / L.RUNNER_EXIT_FILE).read_text())["at"]
    assert session.status == M.FAILED and session.finished_at == recorded  # the runner's record wins
    assert session.status_reason == (f"stopped by a signal at {recorded} while its host gpu-box-1 did not answer: a "
                                     "Docker daemon without live-restore stops its containers when it stops (enable "
                                     "live-restore there)")
