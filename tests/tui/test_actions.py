"""Every key action of the control room, driven by Pilot against real local-backend sessions (the ticker harness
run by the real session runner): kill, extend, new session, export, search, follow, filter, navigation, detail,
help, the command palette, and quitting without stopping anything, then re-attaching."""

from __future__ import annotations

import json
import os

import pytest
from textual.widgets import Input, Select

from nanogpt_tui.config import load_config
from nanogpt_tui.contract import layout as L
from nanogpt_tui.contract.deadline import read_deadline
from nanogpt_tui.sessions import model as M
from nanogpt_tui.sessions.manager import SessionManager
from nanogpt_tui.tui.app import create_app
from nanogpt_tui.tui.screens.detail import DetailScreen
from nanogpt_tui.tui.screens.dialogs import ConfirmKill, ExportDialog, ExtendDialog, HelpScreen
from nanogpt_tui.tui.screens.main import MainScreen
from nanogpt_tui.tui.screens.new_session import NewSessionScreen, Place
from nanogpt_tui.tui.widgets.card import SessionCard
from nanogpt_tui.tui.widgets.grid import SessionGrid
from nanogpt_tui.tui.widgets.log_panel import LogPanel
from tests.tui.conftest import run, wait_for
from tests.tui.sessions_data import make_ticker_session

SIZE = (120, 36)


def live_app(**options):
    return create_app(load_config(), refresh_every_s=0.3, **options)


def status_of(env, sid: str) -> str:
    return json.loads((env.root / sid / L.SESSION_FILE).read_text())["status"]


def messages(app) -> list[str]:
    return [n.message for n in app._notifications]


def process_alive(session) -> bool:
    from nanogpt_tui.backends.local import ProcessTrees

    return ProcessTrees().state(session.handle).status == "running"


async def started(pilot, count: int = 1) -> MainScreen:
    app = pilot.app
    await wait_for(pilot, lambda: app.loaded and len(app.screen.query(SessionCard)) >= count, what="the cards")
    await wait_for(pilot, lambda: isinstance(app.focused, SessionGrid) and app.screen.selected, what="a selection")
    return app.screen


def log_panel(app) -> LogPanel:
    return app.screen.query_one("#log-panel", LogPanel)


# ------------------------------------------------------------------------------------------ navigation


def test_arrows_and_tab_move_between_sessions_and_the_log_follows(tui_env):
    a = make_ticker_session(tui_env.manager, "a-first")
    b = make_ticker_session(tui_env.manager, "b-second")

    async def scenario():
        app = live_app()
        async with app.run_test(size=SIZE) as pilot:
            screen = await started(pilot, 2)
            grid = screen.query_one(SessionGrid)
            assert screen.selected == a.id and grid.card(a.id).selected
            await pilot.press("right")
            assert screen.selected == b.id and grid.card(b.id).selected
            assert not grid.card(a.id).selected
            await wait_for(pilot, lambda: any("tick" in x.text for x in log_panel(app).view.lines),
                           what="b's log")
            assert log_panel(app).path == tui_env.root / b.id / L.CONTAINER_LOG
            await pilot.press("left")
            assert screen.selected == a.id
            await pilot.press("tab")
            assert screen.selected == b.id
            await pilot.press("tab")  # past the last card: on to the log
            assert app.focused is log_panel(app).view and screen.selected == b.id
            await pilot.press("shift+tab")
            assert app.focused is grid
            # a click selects a card too
            await pilot.click(grid.card(a.id))
            assert screen.selected == a.id
            await pilot.press("right")
            # enter opens the detail screen, esc comes back
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the detail screen")
            assert app.screen.session_id == b.id
            await wait_for(pilot, lambda: app.screen.query_one("#detail-log", LogPanel).view.lines,
                           what="the full log")
            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen)
            # ? shows the keys
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen)

    run(scenario())


# ------------------------------------------------------------------------------------------------ kill


def test_kill_asks_first_then_stops_the_session(tui_env):
    session = make_ticker_session(tui_env.manager, "k-session")

    async def scenario():
        app = live_app()
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            await pilot.press("k")
            assert isinstance(app.screen, ConfirmKill)
            await pilot.press("n")  # keep it
            assert isinstance(app.screen, MainScreen)
            assert process_alive(session) and status_of(tui_env, session.id) == M.RUNNING
            await pilot.press("k")
            await pilot.press("y")
            await wait_for(pilot, lambda: status_of(tui_env, session.id) == M.KILLED, what="the kill")
            await wait_for(pilot, lambda: any(m.startswith(f"Killed {session.id}") for m in messages(app)),
                           what="the toast")
            # The card changes too.
            card = app.screen.query_one(SessionCard)
            await wait_for(pilot, lambda: card.view.session.status == M.KILLED, what="the card to change")
            assert not process_alive(session)
            # Killing it again is refused with a sentence, not a traceback.
            await pilot.press("k")
            assert isinstance(app.screen, MainScreen)
            assert any("has already ended (killed)" in m for m in messages(app))

    run(scenario())


# ---------------------------------------------------------------------------------------------- extend


def test_extend_asks_for_gpu_hours_and_moves_the_deadline(tui_env):
    session = make_ticker_session(tui_env.manager, "e-session", seconds=120)
    control = tui_env.root / session.id / L.CONTROL
    before = read_deadline(control).deadline

    async def scenario():
        app = live_app()
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            await pilot.press("e")
            assert isinstance(app.screen, ExtendDialog)
            await pilot.press("a", "b", "c", "enter")  # not a number: the dialog says so and stays
            assert isinstance(app.screen, ExtendDialog)
            assert "is 'abc', not a number" in str(app.screen.query_one("#error").render())
            app.screen.query_one(Input).value = ""
            await pilot.press("0", ".", "5", "enter")
            await wait_for(pilot, lambda: any(m.startswith(f"Extended {session.id} by 0.5") for m in messages(app)),
                           what="the toast")
            after = read_deadline(control).deadline
            assert (after - before).total_seconds() == pytest.approx(1800, abs=1)
            data = json.loads((tui_env.root / session.id / L.SESSION_FILE).read_text())
            assert data["extensions"][0]["gpu_hours"] == 0.5
            card = app.screen.query_one(SessionCard)
            await wait_for(pilot, lambda: card.view.session.total_gpu_hours > 0.5, what="the card's budget")
            assert process_alive(session)  # no restart

    run(scenario())


# ----------------------------------------------------------------------------------------- new session


def test_new_session_form_launches_a_real_local_session(tui_env):
    async def scenario():
        app = live_app()
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.loaded, what="the first load")
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, NewSessionScreen), what="the form")
            form = app.screen
            assert "smoke" in form.choices.anchors and "replay" in form.choices.agents
            # Every record with code is offered, fetched or not (its code is fetched at launch).
            assert {"2025-09-03_FA3", "2026-07-17_FP8DownProjection"} <= set(form.choices.anchors)
            form.query_one("#agent", Select).value = "replay"
            form.query_one("#anchor", Select).value = "smoke"
            form.query_one("#backend", Select).value = "local"
            form.query_one("#budget", Input).value = "-1"
            await pilot.press("ctrl+s")  # refused, with the reason, and the form stays
            assert isinstance(app.screen, NewSessionScreen)
            assert "must be more than 0" in str(form.query_one("#error").render())
            for bad in ("nan", "inf"):
                form.query_one("#budget", Input).value = bad
                await pilot.press("ctrl+s")
                assert isinstance(app.screen, NewSessionScreen)
                assert "not a finite number" in str(form.query_one("#error").render())
            form.query_one("#budget", Input).value = "0.01"
            form.query_one("#gpus", Input).value = "1"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: any(m.startswith("Started ") for m in messages(app)), timeout=30,
                           what="the launch toast")
            await wait_for(pilot, lambda: len(app.screen.query(SessionCard)) == 1, what="the new card")
            card = app.screen.query_one(SessionCard)
            assert card.view.session.agent == "replay" and card.view.session.status == M.RUNNING

    run(scenario())
    sessions, _ = SessionManager(load_config()).list()
    assert [s.agent for s in sessions] == ["replay"]


def test_a_launch_that_fails_says_why(tui_env):
    async def scenario():
        app = live_app()
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.loaded, what="the first load")
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, NewSessionScreen), what="the form")
            form = app.screen
            form.query_one("#agent", Select).value = "scripted"
            form.query_one("#strategy", Select).value = "autoresearch" if "autoresearch" in form.choices.strategies \
                else "default"
            form.query_one("#anchor", Select).value = "smoke"
            form.query_one("#backend", Select).value = "docker"
            form.query_one("#host", Select).value = Place.named("gpu-box-2")  # a closed loopback port: nothing answers
            form.query_one("#budget", Input).value = "0.01"
            await pilot.press("ctrl+s")
            # The pool keeps a session for an unreachable host pending (it backs off and tries again) and says
            # why; a launch refused outright says so too.
            await wait_for(pilot, lambda: any(m.startswith("Could not start the session") or "failed" in m
                                              or ("pending" in m and "gpu-box-2 does not answer" in m)
                                              for m in messages(app)), timeout=60, what="the reason")
            assert not any("Traceback" in m for m in messages(app))

    run(scenario())


def test_the_form_offers_slurm_with_its_partitions_in_place_of_docker_hosts(tui_env, monkeypatch):
    from nanogpt_tui.tui.screens.new_session import AUTO_HOST, DEFAULT_PARTITION, THIS_MACHINE

    monkeypatch.delenv("SLURM_CONF", raising=False)  # no cluster here: sinfo is not asked (it would ask DNS)

    async def scenario():
        app = live_app()
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.loaded, what="the first load")
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, NewSessionScreen), what="the form")
            form = app.screen
            host = form.query_one("#host", Select)
            assert "slurm" in [str(v) for _, v in form.query_one("#backend", Select)._options]
            assert host.value == AUTO_HOST and Place.named("gpu-box-2") in form.choices.places["docker"]
            form.query_one("#agent", Select).value = "replay"
            form.query_one("#anchor", Select).value = "smoke"
            form.query_one("#backend", Select).value = "slurm"
            await pilot.pause()
            assert [v for _, v in host._options] == [DEFAULT_PARTITION] and host.value == DEFAULT_PARTITION
            request = form.build_request()
            assert (request.backend, request.host) == ("slurm", None)  # Slurm's default partition
            form.query_one("#backend", Select).value = "local"
            await pilot.pause()
            assert host.value == THIS_MACHINE and form.build_request().host is None
            form.query_one("#backend", Select).value = "docker"
            await pilot.pause()
            host.value = Place.named("gpu-box-2")
            assert (form.build_request().backend, form.build_request().host) == ("docker", "gpu-box-2")
            # A host named like one of the form's own labels is still that host, not "the backend chooses".
            form.choices.places["docker"].append(Place.named(THIS_MACHINE.label))
            form.query_one("#backend", Select).value = "local"
            await pilot.pause()
            form.query_one("#backend", Select).value = "docker"
            await pilot.pause()
            host.value = Place.named(THIS_MACHINE.label)
            assert form.build_request().host == "this machine"

    run(scenario())


# ---------------------------------------------------------------------------------------------- export


def test_export_writes_a_report_of_the_session_or_of_all(tui_env):
    a = make_ticker_session(tui_env.manager, "r-one")
    make_ticker_session(tui_env.manager, "r-two")

    async def scenario():
        app = live_app()
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot, 2)
            await pilot.press("r")
            assert isinstance(app.screen, ExportDialog)
            await pilot.press("s")
            await wait_for(pilot, lambda: any(m.startswith("Report of 1 session written") or
                                              m.startswith("Could not export") for m in messages(app)),
                           timeout=60, what="the report")
            assert any(m.startswith("Report of 1 session written") for m in messages(app)), messages(app)
            assert (tui_env.root / a.id / "report" / "report.md").is_file()
            await pilot.press("r", "a")
            await wait_for(pilot, lambda: any(m.startswith("Report of 2 sessions written") or
                                              m.startswith("Could not export the report") and "2" in m
                                              for m in messages(app)), timeout=60, what="the group report")
            assert any(m.startswith("Report of 2 sessions written") for m in messages(app)), messages(app)
            assert list((tui_env.root / "reports").glob("group-2-*/report.md"))

    run(scenario())


def test_reports_missing_is_a_clear_message(monkeypatch, tui_env):
    import sys

    from nanogpt_tui.errors import UserError
    from nanogpt_tui.tui.reporting import export_report

    monkeypatch.setitem(sys.modules, "nanogpt_tui.reports", None)
    with pytest.raises(UserError, match="Reports are not available"):
        export_report(tui_env.config, None, [tui_env.root / "x"])


# ------------------------------------------------------------------------------- search, follow, filter


def test_search_follow_and_filter_in_the_live_log(tui_env):
    make_ticker_session(tui_env.manager, "s-session")

    async def scenario():
        app = live_app()
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            panel = log_panel(app)
            view = panel.view
            await wait_for(pilot, lambda: sum("tick" in x.text for x in view.lines) >= 15, what="ticks")
            # follow is on by default: the view sits at the end as lines arrive
            assert view.follow
            await wait_for(pilot, lambda: view.scroll_y == view.max_scroll_y, what="the end")
            # f pauses; new lines still come in but the view stays put
            await pilot.press("f")
            assert not view.follow
            count, y = len(view.lines), view.scroll_y
            await wait_for(pilot, lambda: len(view.lines) > count + 3, what="more lines")
            assert view.scroll_y == y
            await pilot.press("f")
            assert view.follow and view.scroll_y == view.max_scroll_y
            # scrolling up pauses follow too
            view.focus()
            await pilot.press("up")
            assert not view.follow
            await pilot.press("f")
            # / searches: highlight, enter jumps to the match above, esc closes
            await pilot.press("slash")
            assert panel.has_class("-searching") and isinstance(app.focused, Input)
            await pilot.press(*"tick 3", "enter")
            assert view.search == "tick 3"
            assert view.match_index is not None and "tick 3" in view.visible_lines[view.match_index].text
            assert not view.follow  # looking at a match pauses follow
            await pilot.press("escape")
            assert not panel.has_class("-searching")
            # t filters by event type, offering only filters that show something: the ticker prints plain output
            # lines, so `output` is the one filter here, and the next t is back to all
            assert panel.usable_filters() == ["all", "output"]
            await pilot.press("t")
            assert view.filter_name == "output" and view.visible_lines == view.lines
            await pilot.press("t")
            assert view.filter_name == "all" and view.visible_lines
            # A filter that comes to match nothing (set directly; t skips it) says so instead of an empty pane.
            view.filter_name = "agent"
            await pilot.pause()
            assert not view.visible_lines and "0 of" in view.empty_filter_note
            assert "lines match the filter 'agent' (t: next filter)" in view.render_line(0).text
            view.filter_name = "all"

    run(scenario())


def test_agent_output_is_plain_text_with_escapes_stripped_and_keys_masked(tui_env):
    session = make_ticker_session(tui_env.manager, "x-session")
    log = tui_env.root / session.id / L.CONTAINER_LOG

    async def scenario():
        app = live_app()
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            with open(log, "a") as handle:
                handle.write("\x1b[2J\x1b]0;pwned\x07[red]not markup[/red] key sk-ant-" "api03-SECRETSECRET99\n")
            view = log_panel(app).view
            await wait_for(pilot, lambda: any("not markup" in x.text for x in view.lines), what="the line")
            line = next(x.text for x in view.lines if "not markup" in x.text)
            assert line == "[red]not markup[/red] key sk-ant-***"

    run(scenario())


# ------------------------------------------------------------------------------------ command palette


def test_every_action_is_in_the_command_palette(tui_env):
    make_ticker_session(tui_env.manager, "p-session")

    async def scenario():
        app = live_app()
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            titles = [c.title for c in app.get_system_commands(app.screen)]
            for title in ("New session", "Kill session", "Extend session", "Export report", "Search the log",
                          "Follow the log on/off", "Filter the log by event type", "Plot the human timeline by date",
                          "Open session detail", "Help: keys", "Quit, sessions keep running"):
                assert title in titles
            await pilot.press("ctrl+p")
            await pilot.pause(0.2)
            await pilot.press(*"Kill session")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmKill), what="the kill dialog")
            await pilot.press("n")

    run(scenario())


# ----------------------------------------------------------------------------------- host filter


def test_h_filters_the_sessions_by_host(fixed_env):
    async def scenario():
        app = live_app()
        async with app.run_test(size=SIZE) as pilot:
            screen = await started(pilot, 3)

            def shown() -> list[str]:
                return [c.view.session.host for c in screen.query(SessionCard) if c.display]  # hidden: filtered out

            assert sorted(shown()) == ["gpu-box-1", "gpu-box-2", "gpu-box-3"]
            # The config's hosts first, then any other a session runs on; then every host again.
            for host in ("gpu-box-1", "gpu-box-2", "gpu-box-3"):
                await pilot.press("h")
                await wait_for(pilot, lambda: shown() == [host], what=f"only {host}'s card")
                assert f"1 session on host {host}" in str(screen.query_one("#title").render())
                assert screen.selected is not None and app.view(screen.selected).session.host == host
            await pilot.press("h")
            await wait_for(pilot, lambda: len(shown()) == 3, what="every card again")
            assert "Showing the sessions of every host." in messages(app)
            assert "Filter sessions by host" in [c.title for c in app.get_system_commands(app.screen)]

    run(scenario())


# ----------------------------------------------------------------------------- quit and re-attach


def test_quit_leaves_sessions_running_and_a_new_control_room_reattaches(tui_env):
    session = make_ticker_session(tui_env.manager, "q-session", seconds=300)

    async def first():
        app = live_app()
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            await pilot.press("q")
            await pilot.pause(0.2)
        assert app.return_code == 0

    run(first())
    assert process_alive(session) and status_of(tui_env, session.id) == M.RUNNING

    async def second():
        app = live_app()  # a fresh app, fresh manager and backend: nothing remembers the process
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            card = app.screen.query_one(SessionCard)
            assert card.view.session.status == M.RUNNING
            view = log_panel(app).view
            n = sum("tick" in x.text for x in view.lines)
            await wait_for(pilot, lambda: sum("tick" in x.text for x in view.lines) > n + 2, what="new ticks")
            await pilot.press("k", "y")
            await wait_for(pilot, lambda: card.view.session.status == M.KILLED, what="the kill")

    run(second())
    assert not process_alive(session)


def test_a_session_that_ends_by_itself_shows_its_status(tui_env):
    session = make_ticker_session(tui_env.manager, "end-session", env={"TICKER_LINES": "5"})

    async def scenario():
        app = live_app()
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            card = app.screen.query_one(SessionCard)
            await wait_for(pilot, lambda: card.view.session.status == M.EXITED, what="the exit")
            # An ended session cannot be extended; the message says so.
            await pilot.press("e")
            assert isinstance(app.screen, MainScreen)
            assert any("only a live session can be extended" in m for m in messages(app))

    run(scenario())
    assert os.path.exists(tui_env.root / session.id / L.WORKSPACE / "logs" / L.RUNNER_EXIT_FILE)


# ---------------------------------------------------------------------------------- small terminals


def test_small_terminals_show_one_lower_pane_at_a_time(fixed_env):
    from tests.tui.sessions_data import fixed_clock

    async def scenario():
        app = create_app(load_config(), clock=fixed_clock, live=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.loaded, what="the sessions")
            screen = app.screen
            shown = lambda: [w.id for w in (screen.query_one("#log-panel"), screen.query_one("#plot"),  # noqa: E731
                                           screen.query_one("#verdicts")) if w.display and w.parent.display]
            assert screen.has_class("-narrow") and shown() == ["log-panel"]
            await pilot.press("p")
            assert shown() == ["plot"]
            await pilot.press("v")
            assert shown() == ["verdicts"] and isinstance(app.focused, type(screen.query_one("#verdicts")))
            await pilot.press("enter")  # a verdict row opens its session's detail on the verdicts tab
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the detail screen")
            assert app.screen.query_one("#tabs").active == "verdicts"
            await pilot.press("escape")
            await pilot.press("l")
            assert shown() == ["log-panel"]

    run(scenario())
