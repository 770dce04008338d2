"""The control room for a fleet (issue 16), through Pilot: the table, sort and filter shared with the cards and kept
between runs, marks for kill and extend, CSV export, live activity, GPU telemetry and cost on cards and rows."""

from __future__ import annotations

import csv
import gc
import re
import weakref

from textual import events
from textual.widgets import Input
from textual.widgets._toast import Toast

from nanogpt_tui.config import load_config
from nanogpt_tui.sessions import model as M
from nanogpt_tui.tui.app import create_app
from nanogpt_tui.tui.screens.dialogs import ConfirmKill, ExtendDialog
from nanogpt_tui.tui.widgets.card import SessionCard
from nanogpt_tui.tui.widgets.grid import SessionGrid
from nanogpt_tui.tui.widgets.log_view import LogView
from nanogpt_tui.tui.widgets.table import SessionTable
from tests.tui.conftest import run, wait_for
from tests.tui.sessions_data import FLEET_PAIRS, build_fleet, fixed_clock

SIZE = (160, 48)


def fleet_app():
    return create_app(load_config(), clock=fixed_clock, live=False)


async def loaded(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.loaded and app.screen.selected is not None, what="the sessions")
    await pilot.pause(0.1)


def card_ids(app) -> list[str]:
    """The sessions the cards show, in their order (a filter leaves the others out); the cards in sight are the
    window of them the grid shows."""
    grid = app.screen.query_one(SessionGrid)
    order = [v.id for v in grid.views]
    first, last, _of = grid.window()
    assert [c.session_id for c in grid.query_children(SessionCard)] == order[first - 1:last]
    return order


def table(app) -> SessionTable:
    return app.screen.query_one(SessionTable)


def test_the_table_shows_a_row_per_session_with_activity_gpu_and_cost(tui_env):
    ids = build_fleet(tui_env.root, 24)

    async def scenario():
        app = fleet_app()
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            await pilot.press("T")
            await wait_for(pilot, lambda: len(table(app).views) == 24, what="the table")
            assert table(app).display and not app.screen.query_one(SessionGrid).display
            assert isinstance(app.focused, SessionTable)
            header, *rows = table(app).plain_rows
            for title in ("session", "agent", "status", "GPU-h used", "best  %human", "activity", "GPU", "cost"):
                assert title in header
            assert len(rows) == 24
            assert "Bash $ torch" in rows[0] and "$" in rows[0] and "%" in rows[0]
            assert "#3: run 4/10, step" in rows[2] and "last verdict" in header  # submission_3, as "#3" there
            assert "0% idle" in rows[3]  # its GPUs sat at 0% for 20 minutes
            # down moves the selection, which the log follows
            await pilot.press("down")
            await wait_for(pilot, lambda: app.screen.selected == ids[1], what="the second row")
            # T again: the cards, with the same selection and cost, activity and GPU lines on each
            await pilot.press("T")
            assert not table(app).display and isinstance(app.focused, SessionGrid)
            card = app.screen.query_one(SessionGrid).card(ids[0])
            lines = card.plain_lines
            # A card four to a row is 34 cells wide: `ago` and the kind's word give way to the command itself, and
            # the CLI's own cost figure to the tokens.
            assert any(x.startswith("▸ 30s Bash $ torchrun") for x in lines)
            assert any(x.startswith("$") and "200k in · 9.0k out" in x and "CLI says" not in x for x in lines)
            assert any(x.startswith("GPU ") and "mem 42%" in x and " kW" in x for x in lines)
            progress = app.screen.query_one(SessionGrid).card(ids[2]).plain_lines
            assert any("submission_3: run 4/10, step 1200/1600" in x for x in progress)
            idle = app.screen.query_one(SessionGrid).card(ids[3]).plain_lines
            assert any("GPU ▁▁▁" in x and "idle 19m55s" in x for x in idle)  # the samples kept: 20 minutes

    run(scenario())


def test_sort_and_filter_apply_to_cards_and_table_and_survive_a_restart(tui_env):
    build_fleet(tui_env.root, 12)

    async def first():
        app = fleet_app()
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            await pilot.press("s")  # session -> agent
            await wait_for(pilot, lambda: app.screen.query_state.sort == "agent", what="the sort")
            agents = [app.view(i).session.agent for i in card_ids(app)]
            await wait_for(pilot, lambda: [app.view(i).session.agent for i in card_ids(app)] == sorted(agents),
                           what="the cards in agent order")
            await pilot.press("S")
            await wait_for(pilot, lambda: [app.view(i).session.agent for i in card_ids(app)]
                           == sorted(agents, reverse=True), what="the cards in reverse order")
            # / filters the sessions (the grid has focus, not the log)
            await pilot.press("slash")
            assert isinstance(app.focused, Input) and app.focused.id == "session-filter"
            await pilot.press(*"codex", "enter")
            await wait_for(pilot, lambda: {app.view(i).session.agent for i in card_ids(app)} == {"codex"},
                           what="only codex cards")
            assert "(9 hidden)" in str(app.screen.query_one("#title").render())
            await pilot.press("a", "a")  # status: all -> live -> running
            await wait_for(pilot, lambda: all(app.view(i).session.status == M.RUNNING for i in card_ids(app)),
                           what="running codex sessions")
            await pilot.press("T")
            await wait_for(pilot, lambda: table(app).views, what="the table")
            assert [v.id for v in table(app).views] == card_ids(app)  # one query for both
            assert "agent▼" in table(app).plain_rows[0]

    async def second():
        app = fleet_app()
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            # The next control room opens as the last one was left: table, sort, filter, status.
            q = app.screen.query_state
            assert (q.sort, q.reverse, q.text, q.status) == ("agent", True, "codex", "running")
            assert app.screen.table_mode and table(app).display and app.screen.has_class("-filtering")
            await wait_for(pilot, lambda: table(app).views, what="the table")
            assert {v.session.agent for v in table(app).views} == {"codex"}
            # esc in the filter box clears it
            await pilot.press("slash", "escape")
            await wait_for(pilot, lambda: len(table(app).views) > 2, what="every running session")
            # in the log pane, / is the log's search again
            app.screen.query_one("#log-panel").query_one(LogView).focus()
            await pilot.press("slash")
            assert app.screen.query_one("#log-panel").has_class("-searching")

    run(first())
    run(second())


def test_a_toast_once_gone_leaves_nothing_of_it_behind(tui_env):
    """Every `s` shows a toast ("Sorted by …") for 1.5 s: two widgets. Once they are gone, nothing may keep what they
    drew: Textual's own styles cache did (textual#6665), and a control room left on a fleet for hours grew with every
    key and alert until nanogpt_tui/tui/textual_mends.py."""
    build_fleet(tui_env.root, 6)

    async def scenario():
        app = fleet_app()
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await loaded(pilot)
            widgets: list[weakref.ref] = []
            caches: list[weakref.ref] = []
            for _ in range(8):  # eight toasts, several up at once (each lasts 1.5 s)
                await pilot.press("s")
                await wait_for(pilot, lambda: app.screen.query(Toast), what="the toast")
                await pilot.pause(0.3)  # drawn
                for toast in app.screen.query(Toast):
                    for widget in (toast, toast.parent):
                        widgets.append(weakref.ref(widget))
                        caches.append(weakref.ref(widget._styles_cache))
            # (not their holders: when a toast has run out but its timer not yet fired, Textual's rack removes the
            # toast alone at the next notification and leaves its holder, empty, in the rack)
            await wait_for(pilot, lambda: not app.screen.query(Toast), what="the toasts gone")

            def freed() -> list[int]:
                gc.collect()
                return [i for i, w in enumerate(widgets) if w() is None]

            # The toast rack keeps its last few arrangements (and in them the toasts they placed): the earlier
            # toasts' widgets are freed, and with them must go what they drew.
            await wait_for(pilot, lambda: len(freed()) >= 6, what="the first toasts' widgets freed")
            assert [i for i in freed() if caches[i]() is not None] == []

    run(scenario())


def test_marked_sessions_are_killed_or_extended_at_once_and_the_table_exports_as_csv(tui_env):
    ids = build_fleet(tui_env.root, 6)

    async def scenario():
        app = fleet_app()
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            await pilot.press("T")
            await wait_for(pilot, lambda: table(app).views, what="the table")
            await pilot.press("space", "down", "space")
            assert app.screen.marked == {ids[0], ids[1]}
            assert table(app).plain_rows[1].startswith("✓") and table(app).plain_rows[2].startswith("✓")
            assert not table(app).plain_rows[3].startswith("✓")
            await pilot.press("k")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmKill), what="the kill dialog")
            assert [sid for sid, _ in app.screen.targets] == ids[:2]
            await pilot.press("n")
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, ExtendDialog), what="the extend dialog")
            assert app.screen.session_ids == ids[:2]
            await pilot.press("escape")
            await pilot.press("c")
            folder = tui_env.root / "reports"
            await wait_for(pilot, lambda: folder.is_dir() and list(folder.glob("sessions-*.csv")), what="the CSV")
            [path] = folder.glob("sessions-*.csv")
            rows = list(csv.DictReader(path.open()))
            assert [r["id"] for r in rows] == [v.id for v in table(app).views]
            assert {r["agent"] for r in rows} <= {a for a, _ in FLEET_PAIRS} and rows[0]["cost_usd"]

    run(scenario())


def test_new_verdicts_ring_the_bell_and_show_a_toast(tui_env):
    from tests.tui.sessions_data import add_verdict

    ids = build_fleet(tui_env.root, 3)

    async def scenario():
        app = create_app(load_config(), clock=fixed_clock, live=True, refresh_every_s=0.3)
        bells = []
        app.bell = lambda: bells.append(1)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            await wait_for(pilot, lambda: app.loaded, what="the full load")
            add_verdict(tui_env.root / ids[0], 7, hours_after_start=5.0, outcome="validated", mean_ms=150_000.0,
                        p=0.0001)
            await wait_for(pilot, lambda: any("submission_7 validated" in n.message for n in app._notifications),
                           what="the verdict toast")
            assert bells

    run(scenario())


def test_the_validators_progress_is_the_live_activity_of_card_row_and_cli(tui_env, capsys):
    """While the validator works on a request, its progress (written by its own writer into validator/progress.jsonl)
    is the session's activity on the card, the table row and `sessions list --json`; its verdict ends it."""
    import json

    from nanogpt_tui.cli import main
    from nanogpt_tui.validator.protocol import append_progress
    from nanogpt_tui.validator.retime import step_progress

    ids = build_fleet(tui_env.root, 3)
    vdir = tui_env.root / ids[0] / "validator"
    vdir.mkdir(exist_ok=True)  # made with the session, as the manager makes it

    def card_activity(app) -> str:
        lines = app.screen.query_one(SessionGrid).card(ids[0]).plain_lines
        return next((x for x in lines if x.startswith("▸ ")), "")

    async def scenario():
        app = create_app(load_config(), clock=fixed_clock, live=True, refresh_every_s=0.3)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            await wait_for(pilot, lambda: "Bash $ torchrun" in card_activity(app), what="the agent's tool call")
            append_progress(vdir, "req-1", "received", "request req-1 received: submission submission_4",
                            submission="submission_4", request_kind="submission")
            append_progress(vdir, "req-1", "progress", step_progress(4, 10, 1200, 1600))
            await wait_for(pilot, lambda: "submission_4: run 4/10, step 1200/1600" in card_activity(app),
                           what="the validator's step on the card")
            await pilot.press("T")
            await wait_for(pilot, lambda: any("#4: run 4/10, step" in row  # the rest is cut at 160 columns
                                              for row in table(app).plain_rows[1:]), what="the step in the row")
            append_progress(vdir, "req-1", "verdict", "verdict: VALIDATED (submission_4)", outcome="validated",
                            counts=True)
            await wait_for(pilot, lambda: any("#4: validated" in row for row in table(app).plain_rows[1:]),
                           what="the verdict in the row")

    run(scenario())
    capsys.readouterr()
    assert main(["sessions", "list", "--json"]) == 0
    listed = {s["id"]: s for s in json.loads(capsys.readouterr().out)}
    assert listed[ids[0]]["activity"]["kind"] == "verdict"
    assert listed[ids[0]]["activity"]["text"] == "submission_4: validated"
    assert listed[ids[1]]["activity"]["kind"] == "message"  # no validator at work: the agent's last event


def test_the_cards_in_sight_are_a_window_that_follows_the_selection(tui_env):
    """With more sessions than fit, only the cards in sight exist (4 columns x 2 rows at 160x48): moving the
    selection past the last row, the mouse wheel, a sort and a filter hand the same cards other sessions, and the
    title says which are in sight."""
    ids = build_fleet(tui_env.root, 24)

    def title(app) -> str:
        return str(app.screen.query_one("#title").render())

    async def scenario():
        app = fleet_app()
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            grid = app.screen.query_one(SessionGrid)
            pool = list(grid.query_children(SessionCard))
            assert len(pool) == 8 and [c.session_id for c in pool] == ids[:8]
            assert "cards 1-8/24" in title(app)
            await pilot.press("down", "down")  # a row below the window: it moves by one row
            assert app.screen.selected == ids[8] and grid.card(ids[8]).selected
            assert card_ids(app) == ids and [c.session_id for c in grid.cards] == ids[4:12]
            assert list(grid.query_children(SessionCard)) == pool  # the same cards, other sessions
            assert "cards 5-12/24" in title(app)
            assert any("Bash $ torchrun" in x for x in grid.card(ids[8]).plain_lines)  # its own lines
            await pilot.press("pagedown")
            assert app.screen.selected == ids[16] and "cards 13-20/24" in title(app)
            grid.post_message(events.MouseScrollUp(grid, 5, 5, 0, -1, 0, False, False, False))
            await pilot.pause()  # the wheel moves the window, not the selection
            assert app.screen.selected == ids[16] and [c.session_id for c in grid.cards] == ids[8:16]
            await pilot.press("S")  # reversed: the selected session stays in sight
            await wait_for(pilot, lambda: card_ids(app) == ids[::-1], what="the reversed order")
            assert grid.card(ids[16]) is not None and grid.card(ids[16]).selected
            await pilot.press("slash", *"codex")  # 6 of the 24: fewer cards than places
            await wait_for(pilot, lambda: len(card_ids(app)) == 6, what="the codex cards")
            assert {app.view(i).session.agent for i in card_ids(app)} == {"codex"}
            assert len(list(grid.query_children(SessionCard))) == 6 and "cards" not in title(app)
            await pilot.press("escape")
            await wait_for(pilot, lambda: len(card_ids(app)) == 24, what="every card again")
            assert len(grid.cards) == 8

    run(scenario())


# --- tried as a new user with 24 sessions, at 160x48 and at 100x30 ------------------------------------------------

NEW_USER_SIZES = [(160, 48), (100, 30)]


def screen_text(app) -> list[str]:
    """The screen as the user sees it, one string per row (toasts and dialogs over it included)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system=None,
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text().splitlines()


def card_rows(rows: list[str]) -> list[str]:
    """The inside of every card row on screen (`│ text │`), one string per card per row."""
    return [m.group(1) for row in rows for m in re.finditer(r"│ (.*?) │", row)]


def new_user_app(env, size):
    """A control room that opens as it does the first time (its own view-state file per size)."""
    return create_app(load_config(), clock=fixed_clock, live=False,
                      state_path=env.root.parent / f"view-{size[0]}x{size[1]}.json")


async def new_user(pilot, size) -> None:
    await loaded(pilot)
    await wait_for(pilot, lambda: any("24 sessions" in row for row in screen_text(pilot.app)), what="the title")


def test_a_new_user_sees_cards_whose_figures_are_never_cut(tui_env):
    ids = build_fleet(tui_env.root, 24)

    async def scenario(size):
        app = new_user_app(tui_env, size)
        async with app.run_test(size=size) as pilot:
            await new_user(pilot, size)
            # The idle session's card (the fourth) into view: on 100 columns two cards make a row.
            await pilot.press(*(["right"] * 3 if size[0] >= 160 else ["down", "right"]))
            await wait_for(pilot, lambda: app.screen.selected == ids[3], what="the idle session")
            await pilot.pause(0.1)
            rows = screen_text(app)
            cards = card_rows(rows)
            assert cards, rows
            # A card says less rather than cutting a figure: only free text (the last activity) or a head line with
            # a long agent name may end in an ellipsis.
            cut = [c for c in cards if c.rstrip().endswith("…") and not c.startswith("▸") and "●" not in c]
            assert not cut, cut
            assert any("0% idle 19m55s" in c for c in cards), cards  # the idle-GPU alert, whole
            assert any(re.match(r"best \+\d\.\d\d s · \d\.\d% (of )?human progress", c) for c in cards), cards
            assert any(c.startswith("last #1: validated p=0.001") for c in cards)
            assert any(c.startswith("▸ ") and "submission_3: run 4/10" in c for c in cards)
            assert any(re.match(r"\$\d+\.\d\d · \d+k in · [\d.]+k out", c) for c in cards), cards
            assert any("GPU-h hp 100%" in c for c in cards)
            # The help key is in sight: in the footer at either size.
            assert "? help" in rows[-1], rows[-1]

    for size in NEW_USER_SIZES:
        run(scenario(size))


def test_a_new_user_sorts_filters_and_clears_the_table_at_both_sizes(tui_env):
    build_fleet(tui_env.root, 24)

    async def scenario(size):
        app = new_user_app(tui_env, size)
        async with app.run_test(size=size) as pilot:
            await new_user(pilot, size)
            await pilot.press("T")
            await wait_for(pilot, lambda: table(app).views, what="the table")
            await pilot.pause(0.1)
            rows = screen_text(app)
            header = rows[1]
            wanted = ["session", "agent", "status", "best  %human", "activity", "GPU", "cost"]
            if size[0] >= 160:
                wanted += ["strategy", "anchor", "host", "GPU-h used", "left", "last verdict"]
            assert all(title in header for title in wanted), header
            assert any("0% idle" in row for row in rows[2:]), rows  # the GPU column and its idle alert
            await pilot.press("s")
            await wait_for(pilot, lambda: "agent▲" in screen_text(app)[1], what="the sort arrow")
            await pilot.press("S")
            await wait_for(pilot, lambda: "agent▼" in screen_text(app)[1], what="the reversed sort")
            assert "by agent ↓" in screen_text(app)[0]
            # A text filter and a status filter: the title says both, and how many are hidden.
            await pilot.press("slash", *"codex", "enter", "a")
            await wait_for(pilot, lambda: "live" in screen_text(app)[0], what="the status filter in the title")
            title = screen_text(app)[0]
            assert "(20 hidden)" in title and '"codex"' in title, title
            # Two marked: the title counts them at both sizes.
            await pilot.press("space", "down", "space")
            await wait_for(pilot, lambda: "2 marked" in screen_text(app)[0], what="the marks in the title")
            # esc, away from the filter box, clears every filter: all 24 again.
            await pilot.press("escape")
            await wait_for(pilot, lambda: "24 sessions" in screen_text(app)[0], what="all the sessions")
            assert "hidden" not in screen_text(app)[0] and app.screen.query_state.status == "all"
            assert app.screen.query_state.text == ""

    for size in NEW_USER_SIZES:
        run(scenario(size))


def test_every_column_sorted_by_is_in_sight_with_its_arrow_at_both_sizes(tui_env):
    """`s` through every column: the header shows the column sorted by, its title and arrow whole, with 50 sessions
    (a scrollbar) at 160x48 and at 100x30, where the columns out of sight give way to it; sorted by session again,
    the table is as it was."""
    from nanogpt_tui.tui.data.fleet import COLUMNS

    build_fleet(tui_env.root, 50)

    async def scenario(size):
        app = new_user_app(tui_env, size)
        async with app.run_test(size=size) as pilot:
            await loaded(pilot)
            await pilot.press("T")
            await wait_for(pilot, lambda: table(app).views, what="the table")
            await pilot.pause(0.1)
            first = screen_text(app)[1]
            assert "session▲" in first, first
            for column in [*COLUMNS[1:], COLUMNS[0]]:
                await pilot.press("s")
                await wait_for(pilot, lambda: f"{column.title}▲" in screen_text(app)[1],
                               what=f"{column.title}▲ in the header {screen_text(app)[1]!r}")
                if size[0] >= 160:  # every column is in sight, whichever is sorted by
                    header = screen_text(app)[1]
                    assert all(c.title[:5] in header for c in COLUMNS), header
                row = screen_text(app)[2]
                assert len(row.rstrip()) <= size[0], row
            assert screen_text(app)[1] == first

    for size in NEW_USER_SIZES:
        run(scenario(size))


def test_killing_or_extending_many_marked_sessions_keeps_the_dialogs_buttons_in_sight(tui_env):
    build_fleet(tui_env.root, 24)

    async def scenario(size):
        app = new_user_app(tui_env, size)
        async with app.run_test(size=size) as pilot:
            await new_user(pilot, size)
            await pilot.press("T")
            await wait_for(pilot, lambda: table(app).views, what="the table")
            await pilot.press(*["space", "down"] * 24)
            await wait_for(pilot, lambda: len(app.screen.marked) == 24, what="every session marked")
            await pilot.press("k")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmKill), what="the kill dialog")
            await pilot.pause(0.1)
            text = "\n".join(screen_text(app))
            assert "Kill 16 sessions?" in text and "and 12 more" in text, text
            assert "8 marked sessions have ended" in text, text
            assert "Kill (y)" in text and "Keep running (n)" in text, text
            await pilot.press("n")
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, ExtendDialog), what="the extend dialog")
            await pilot.pause(0.1)
            text = "\n".join(screen_text(app))
            assert "Extend 16 sessions" in text and "and 12 more" in text, text
            assert "Extend" in text.split("How many")[-1] and "Cancel" in text, text
            await pilot.press("escape")

    for size in NEW_USER_SIZES:
        run(scenario(size))


def test_the_help_tells_a_new_user_every_fleet_key_at_both_sizes(tui_env):
    build_fleet(tui_env.root, 24)

    async def scenario(size):
        app = new_user_app(tui_env, size)
        async with app.run_test(size=size) as pilot:
            await new_user(pilot, size)
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: "Keys" in "".join(screen_text(app)), what="the help")
            text = "\n".join(screen_text(app))
            for line in ("T      table / cards", "s / S  sort by the next column / reverse it",
                         "/      filter: words match agent, strategy,", "a      status: all/live/running/ended/failed",
                         "esc    clear the filters", "space  mark: k and e act on all marked",
                         "c      export the table as CSV (reports/)", "l/p/v  log / plot / verdicts",
                         "GPU    use (sparkline), memory, power;", "bell and toast",
                         "q            quit: sessions keep running"):
                assert line in text, (line, text)
            await pilot.press("escape")

    for size in NEW_USER_SIZES:
        run(scenario(size))


def test_on_a_narrow_screen_p_leaves_the_keys_with_the_sessions(tui_env):
    ids = build_fleet(tui_env.root, 6)

    async def scenario():
        app = fleet_app()
        async with app.run_test(size=(100, 30)) as pilot:
            await loaded(pilot)
            await pilot.press("l", "p")  # the log had focus; the plot takes its place and takes no keys
            assert isinstance(app.focused, SessionGrid)
            await pilot.press("right")
            await wait_for(pilot, lambda: app.screen.selected == ids[1], what="the next session")

    run(scenario())


def test_the_csv_export_says_where_it_went_in_a_toast_at_both_sizes(tui_env):
    build_fleet(tui_env.root, 24)

    async def scenario(size):
        app = new_user_app(tui_env, size)
        async with app.run_test(size=size, notifications=True) as pilot:
            await new_user(pilot, size)
            await pilot.press("c")
            await wait_for(pilot, lambda: "Table of 24 sessions written to" in "".join(screen_text(app)),
                           what="the CSV toast")

    for size in NEW_USER_SIZES:
        run(scenario(size))


def test_the_new_session_form_keeps_its_buttons_and_the_detail_its_cost_and_gpus_at_100x30(tui_env):
    ids = build_fleet(tui_env.root, 24)

    async def scenario():
        from nanogpt_tui.tui.screens.detail import DetailScreen
        from nanogpt_tui.tui.screens.new_session import NewSessionScreen

        app = new_user_app(tui_env, (100, 30))
        async with app.run_test(size=(100, 30)) as pilot:
            await new_user(pilot, (100, 30))
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, NewSessionScreen), what="the form")
            await pilot.pause(0.1)
            text = "\n".join(screen_text(app))
            assert "Launch (ctrl+s)" in text and "Cancel (esc)" in text, text
            await pilot.press("escape")
            await pilot.press("down", "right", "enter")  # the fourth session: its GPUs idle
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the detail")
            await pilot.pause(0.1)
            assert app.screen.session_id == ids[3]
            header = screen_text(app)[3]
            assert "$4.90" in header and "GPU 0% idle 19m55s" in header, header

    run(scenario())


def test_a_filter_typed_faster_than_the_cards_follow_applies_only_the_latest_word(tui_env):
    build_fleet(tui_env.root, 12)

    async def scenario():
        app = fleet_app()
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            screen = app.screen
            applied = []
            set_query = screen.set_query
            screen.set_query = lambda query: (applied.append(query.text), set_query(query))
            await pilot.press("slash")
            box = screen.query_one("#session-filter", Input)
            # Two changes before the screen hears of the first: when it does, the box already holds the second.
            box.value = "cod"
            box.value = "codex"
            await wait_for(pilot, lambda: screen.query_state.text == "codex", what="the latest word")
            await pilot.pause(0.1)
            assert applied == ["codex"]
            assert {app.view(i).session.agent for i in card_ids(app)} == {"codex"}
            box.value = "code"  # one change at a time: each word is applied
            await wait_for(pilot, lambda: screen.query_state.text == "code", what="the shorter word")
            assert applied == ["codex", "code"]

    run(scenario())
