"""The GPU-hour budget arithmetic and the status history of a session."""

from __future__ import annotations

import datetime as dt

import pytest

from nanogpt_tui.sessions.model import Budget, Extension, Session


def session(sid: str, host: str = "a", gpus: int = 4, status: str = "running", ids=()) -> Session:
    return Session(id=sid, agent="scripted", strategy="default", strategy_hash="x", anchor="smoke", target=None,
                   backend="docker", host=host, image="img", gpus=gpus, budget_gpu_hours=8, created_at="t",
                   gpu_ids=list(ids), status=status)


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
