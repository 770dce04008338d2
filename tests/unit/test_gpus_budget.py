"""GPU allocation without overlap, pending reasons, and the GPU-hour budget arithmetic."""

from __future__ import annotations

import datetime as dt

import pytest

from nanogpt_tui.config import HostConfig
from nanogpt_tui.sessions.gpus import GpuAllocator
from nanogpt_tui.sessions.model import Budget, Extension, Session

HOSTS = (HostConfig("a", "unix:///a.sock", gpus=(0, 1, 2, 3, 4, 5, 6, 7)), HostConfig("b", "ssh://u@b", gpus=None))


def session(sid: str, host: str = "a", gpus: int = 4, status: str = "running", ids=()) -> Session:
    return Session(id=sid, agent="scripted", strategy="default", strategy_hash="x", anchor="smoke", target=None,
                   backend="docker", host=host, image="img", gpus=gpus, budget_gpu_hours=8, created_at="t",
                   gpu_ids=list(ids), status=status)


def test_sessions_get_disjoint_gpus_and_wait_with_a_reason():
    running = [session("s1", ids=(0, 1, 2, 3)), session("s2", gpus=2, ids=(4, 5)),
               session("old", ids=(6, 7), status="killed")]
    alloc = GpuAllocator(HOSTS, running)
    assert alloc.free("a") == [6, 7]
    got = alloc.allocate(session("s3", gpus=2))
    assert got.gpu_ids == [6, 7]
    waiting = alloc.allocate(session("s4", gpus=4))
    assert waiting.gpu_ids is None
    assert waiting.reason == "waiting for 4 GPU(s) on a: 2 of 8 free (held by s1, s2)"
    # An unreachable host's sessions still hold their GPUs (they recover when it returns).
    alloc = GpuAllocator(HOSTS, [session("s5", gpus=8, ids=range(8), status="unreachable")])
    assert alloc.allocate(session("s6", gpus=1)).gpu_ids is None


def test_a_host_without_known_gpus_pins_none():
    got = GpuAllocator(HOSTS, []).allocate(session("s1", host="b", gpus=8))
    assert got.gpu_ids == [] and "lists no GPUs" in got.reason


def test_budget_arithmetic():
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    budget = Budget(gpu_hours=512, gpus=8, started_at=start, finished_at=None)
    assert budget.deadline == start + dt.timedelta(hours=64)
    assert budget.used_gpu_hours(start + dt.timedelta(hours=2)) == pytest.approx(16)
    assert budget.remaining_gpu_hours(start + dt.timedelta(hours=2)) == pytest.approx(496)
    assert budget.burn_rate == 8.0
    s = session("s", gpus=8)
    s.budget_gpu_hours, s.started_at = 512, "2026-01-01T00:00:00.000Z"
    s.extensions.append(Extension(at="t", gpu_hours=64))
    assert s.total_gpu_hours == 576 and s.budget().deadline == start + dt.timedelta(hours=72)


def test_transitions_are_recorded_once_with_reasons():
    s = session("s", status="pending")
    s.transition("running", "started")
    s.transition("running", "started")
    s.transition("out-of-budget", "deadline")
    assert [(t.status, t.reason) for t in s.transitions] == [("running", "started"), ("out-of-budget", "deadline")]
    assert s.finished_at is not None
    with pytest.raises(ValueError):
        s.transition("exploded", "?")
