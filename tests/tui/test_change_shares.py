"""Where a session's GPU-hours went by kind of change (issue #7): the dashboard's shares (the report's ledger,
summarised), rebuilt only when the session's files change, and shown on the cards and the detail screen."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from textual.widgets import Static

from nanogpt_tui.config import load_config
from nanogpt_tui.records import load_timeline
from nanogpt_tui.reports import ledger
from nanogpt_tui.reports import session as report_session
from nanogpt_tui.reports.session import load_session_data
from nanogpt_tui.tui.app import create_app
from nanogpt_tui.tui.data import views as data_views
from nanogpt_tui.tui.data.dashboard import Dashboard
from nanogpt_tui.tui.screens.detail import DetailScreen
from nanogpt_tui.tui.watch import SessionMonitor
from nanogpt_tui.tui.widgets.grid import SessionGrid
from nanogpt_tui.validator.verdict import Verdict
from tests.tui.conftest import run, wait_for
from tests.tui.sessions_data import (
    EXPERIMENTS,
    NOW,
    ZLOSS_CODE,
    add_events,
    add_experiments,
    add_verdict,
    build_fixed_sessions,
    fixed_clock,
    make_session,
)

# Session a: 01_lr 1 h x 8 GPUs (hyperparameter), 02_zloss 0.5 h x 8 (algorithmic), 03_compile 0.25 h x 8
# (systems), and three submissions retimed for 40 min each on 8 GPUs (hyperparameter: 3 x 5.33).
A_HOURS = {"hyperparameter": 24.0, "algorithmic": 4.0, "systems": 2.0, "none": 0.0}


@pytest.fixture
def timeline(baselines_dir):
    return load_timeline(baselines_dir)


def test_the_shares_are_those_of_the_known_experiments_and_of_the_report(tmp_path, timeline):
    ids = build_fixed_sessions(tmp_path)
    dash = Dashboard(tmp_path, timeline, clock=fixed_clock)
    dash.reload()
    assert all(v.changes is None for v in dash.views())  # the views go out first; the ledgers follow
    assert sorted(dash.refresh_changes()) == sorted(ids)
    views = {v.id: v for v in dash.views()}
    a = views[ids[0]].changes
    assert a.gpu_hours == pytest.approx(A_HOURS)
    assert a.of_changes == pytest.approx({"hyperparameter": 0.8, "algorithmic": 4 / 30, "systems": 2 / 30})
    assert a.compact() == "hp 80% · algo 13% · sys 7%"
    assert (a.experiments, a.submissions, a.changes_gpu_hours) == (3, 3, pytest.approx(30.0))
    assert a.detail(76.0) == ("hyperparameter 24.0 (80%) · algorithmic 4.00 (13%) · systems 2.00 (7%) · 30.0 of "
                              "76.0 used on changes (39%) · 3 experiments, 3 submissions")
    # The report reads the same ledger: the same numbers.
    report = load_session_data(tmp_path / ids[0], timeline, now=NOW).ledger
    assert a.of_changes == pytest.approx(report.shares()["of_changes"])
    assert a.gpu_hours == pytest.approx(report.gpu_hours_by_kind())
    # Sessions b and c: only submissions, each a retuned constant.
    assert views[ids[1]].changes.compact() == "hp 100% · algo 0% · sys 0%"
    assert views[ids[1]].changes.gpu_hours["hyperparameter"] == pytest.approx(2 * 40 / 60 * 8)
    assert views[ids[2]].changes.gpu_hours["hyperparameter"] == pytest.approx(2 * 40 / 60 * 4)


def test_no_experiments_and_no_anchor_code_say_so(tmp_path, timeline):
    make_session(tmp_path, "empty", agent="codex", strategy="default")
    d = make_session(tmp_path, "no-anchor", agent="codex", strategy="default")
    (d / "runner" / "anchor" / "train_gpt.py").unlink()
    add_experiments(d, EXPERIMENTS[:1])
    dash = Dashboard(tmp_path, timeline, clock=fixed_clock)
    dash.reload()
    dash.refresh_changes()
    views = {v.id: v for v in dash.views()}
    assert views["empty"].changes.compact() == "no experiments or submissions yet"
    unclassified = views["no-anchor"].changes
    assert unclassified.compact() == "no code change classified (1 experiment, 0 submissions)"
    assert "changes cannot be classified" in unclassified.detail(10.0)


def test_shares_are_rebuilt_only_when_the_session_files_change(tmp_path, timeline, monkeypatch):
    ids = build_fixed_sessions(tmp_path)
    a = tmp_path / ids[0]
    built: list[str] = []
    real = ledger.build_ledger
    monkeypatch.setattr(ledger, "build_ledger", lambda d, s, *args, **kw: built.append(s.id) or real(d, s, *args, **kw))
    dash = Dashboard(tmp_path, timeline, clock=fixed_clock, changes_refresh_s=3600)
    dash.reload()
    dash.refresh_changes()
    assert sorted(built) == sorted(ids)
    first = {v.id: v.changes for v in dash.views()}
    built.clear()
    for _ in range(3):  # reloads with nothing new: no ledger is built, the shares stay the same objects
        dash.reload()
        assert dash.refresh_changes() == []
    assert built == [] and all(v.changes is first[v.id] for v in dash.views())
    # The agent writes events: the ledger is rebuilt for them, but not more often than changes_refresh_s.
    add_events(a, [(10, 10, 0.01)])
    dash.reload([ids[0]])
    dash.refresh_changes()
    assert built == []
    dash.changes_refresh_s = 0.0
    dash.reload([ids[0]])
    assert dash.refresh_changes() == [] and built == [ids[0]]  # rebuilt; the same shares, so no new view
    built.clear()
    # A new experiment folder: rebuilt at once, whatever the interval.
    dash.changes_refresh_s = 3600
    # From the latest kept experiment (02_zloss): fewer steps, a hyperparameter.
    more = EXPERIMENTS + (("04_steps", "hyperparameter", "keep", 1800,
                           ZLOSS_CODE.replace("num_iterations = 1600", "num_iterations = 1500")),)
    add_experiments(a, more)
    dash.reload([ids[0]])
    assert dash.refresh_changes() == [ids[0]] and built == [ids[0]]
    assert {v.id: v for v in dash.views()}[ids[0]].changes.compact() == "hp 82% · algo 12% · sys 6%"
    built.clear()
    # A new verdict (and its submission): at once too.
    add_verdict(a, 4, hours_after_start=9.0, outcome="validated", mean_ms=157_000.0, p=0.001)
    dash.reload([ids[0]])
    assert dash.refresh_changes() == [ids[0]] and built == [ids[0]]
    assert {v.id: v for v in dash.views()}[ids[0]].changes.submissions == 4


def test_a_ledger_that_cannot_be_built_is_one_sentence(tmp_path, timeline, monkeypatch):
    build_fixed_sessions(tmp_path)

    def broken(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(ledger, "build_ledger", broken)
    dash = Dashboard(tmp_path, timeline, clock=fixed_clock)
    dash.reload()
    dash.refresh_changes()
    assert all(v.changes is None for v in dash.views())
    assert any("its GPU-hours per kind of change could not be worked out (OSError: disk on fire)" in p
               for p in dash.problems)


def test_the_monitor_sends_the_shares_after_the_views(tmp_path, timeline):
    ids = build_fixed_sessions(tmp_path)
    got: list[list] = []
    done = threading.Event()

    def on_views(views, problems):
        got.append(views)
        if views and all(v.changes is not None for v in views):
            done.set()

    monitor = SessionMonitor(Dashboard(tmp_path, timeline, clock=fixed_clock), on_views)
    monitor.start()
    try:
        assert done.wait(10)
    finally:
        monitor.stop()
    assert any(v.complete and v.changes is None for views in got for v in views)  # full views came first
    assert {v.id: v for v in got[-1]}[ids[0]].changes.compact() == "hp 80% · algo 13% · sys 7%"


def test_cards_and_the_detail_screen_show_the_shares(fixed_env):
    ids = sorted(p.name for p in fixed_env.root.iterdir() if not p.name.startswith("."))  # not the validator key

    async def scenario():
        app = create_app(load_config(), clock=fixed_clock, live=False)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_for(pilot, lambda: app.loaded, what="the sessions")
            grid = app.screen.query_one(SessionGrid)
            await wait_for(pilot, lambda: grid.card(ids[0]) is not None
                           and "GPU-h hp 80% · algo 13% · sys 7%" in grid.card(ids[0]).plain_lines,
                           what="the shares on the card")
            assert "GPU-h hp 100% · algo 0% · sys 0%" in grid.card(ids[1]).plain_lines
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the detail screen")
            header = str(app.screen.query_one("#detail-header", Static).content)
            assert ("GPU-h by kind of change: hyperparameter 24.0 (80%) · algorithmic 4.00 (13%) · systems 2.00 "
                    "(7%) · 30.0 of 76.0 used on changes (39%) · 3 experiments, 3 submissions") in header

    run(scenario())


# ------------------------------------------------------------------------- conventions shared with the report


def test_the_control_room_and_the_report_read_verdicts_with_the_same_functions():
    for name in ("gap_for", "gpu_hours_at", "verdict_percent", "judge_label"):
        assert getattr(data_views, name) is getattr(report_session, name)
    verdict = Verdict(submission="s", submission_dir="/w/s", verdict_id="s__01", kind="submission",
                      session_id="x", anchor="a", target="b", started_at="2026-11-20T18:00:00Z",
                      finished_at="2026-11-20T19:00:00Z")
    verdict.speedup = {"percent_of_human_progress": float("nan"), "seconds_faster": 6.32}
    assert data_views.verdict_percent(verdict, 63.2) == pytest.approx(10.0)  # NaN is no percentage
    verdict.speedup = {"percent_of_human_progress": True, "seconds_faster": True}
    assert data_views.verdict_percent(verdict, 63.2) is None  # nor is a boolean
    # Scored when the manifest's gap was 14.4 s, read after a re-timing made it 2.58 s: the timeline's gap, as the
    # session's best and curve use it; the verdict's own figure only where the timeline has no gap.
    verdict.speedup = {"percent_of_human_progress": 50.0, "seconds_faster": 7.2}
    assert data_views.verdict_percent(verdict, 2.58) == pytest.approx(279.07, abs=0.01)
    assert data_views.verdict_percent(verdict, None) == 50.0
    s = data_views.Session(id="x", agent="a", strategy="s", strategy_hash="h", anchor="a", target=None,
                           backend="local", host="local", image=None, gpus=4, budget_gpu_hours=1.0,
                           created_at="2026-11-20T18:00:00Z", started_at="2026-11-20T18:00:00Z")
    at = dt.datetime(2026, 11, 20, 19, 30, tzinfo=dt.timezone.utc)
    assert data_views.gpu_hours_at(s, at) == data_views.gpu_hours_at(s, "2026-11-20T19:30:00Z") == 6.0
