"""Snapshots of the control room on fixed session folders: a pinned clock, pinned config, no live processes."""

from __future__ import annotations

from nanogpt_tui.config import load_config
from nanogpt_tui.tui.app import create_app
from nanogpt_tui.tui.screens.detail import DetailScreen
from nanogpt_tui.tui.widgets.log_panel import LogPanel
from tests.tui.conftest import wait_for
from tests.tui.sessions_data import fixed_clock


def fixed_app():
    # The factory the CLI uses, with the config from NANOGPT_TUI_CONFIG, a fixed clock and no watchers.
    return create_app(load_config(), clock=fixed_clock, live=False)


async def loaded(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.loaded, what="the sessions to load")
    await wait_for(pilot, lambda: all(p.view.lines for p in app.screen.query(LogPanel) if p.path is not None
                                      and p.display), what="the log to be read")
    await app.workers.wait_for_complete()
    await pilot.pause(0.2)


def test_main_screen_80x24(fixed_env, snap_compare):
    assert snap_compare(fixed_app(), terminal_size=(80, 24), run_before=loaded)


def test_main_screen_160x48(fixed_env, snap_compare):
    assert snap_compare(fixed_app(), terminal_size=(160, 48), run_before=loaded)


def test_main_screen_plot_by_date_80x24(fixed_env, snap_compare):
    async def by_date(pilot):
        await loaded(pilot)
        await pilot.press("d")
        await pilot.pause(0.2)
        pilot.app.clear_notifications()
        await pilot.pause(0.1)

    assert snap_compare(fixed_app(), terminal_size=(80, 24), run_before=by_date)


def test_detail_screen_log(fixed_env, snap_compare):
    async def detail(pilot):
        await loaded(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, DetailScreen), what="the detail screen")
        await loaded(pilot)

    assert snap_compare(fixed_app(), terminal_size=(120, 36), run_before=detail)


def test_detail_screen_verdict(fixed_env, snap_compare):
    async def verdicts(pilot):
        await loaded(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, DetailScreen), what="the detail screen")
        await loaded(pilot)
        await pilot.press("4")
        await pilot.pause(0.2)

    assert snap_compare(fixed_app(), terminal_size=(120, 36), run_before=verdicts)


async def table(pilot) -> None:
    await loaded(pilot)
    await pilot.press("T")
    await pilot.pause(0.3)


def test_fleet_table_160x48(tui_env, snap_compare):
    from tests.tui.sessions_data import build_fleet

    build_fleet(tui_env.root, 24)
    assert snap_compare(fixed_app(), terminal_size=(160, 48), run_before=table)


def test_fleet_cards_100x30(tui_env, snap_compare):
    from tests.tui.sessions_data import build_fleet

    build_fleet(tui_env.root, 24)
    assert snap_compare(fixed_app(), terminal_size=(100, 30), run_before=loaded)


def test_fleet_table_100x30(tui_env, snap_compare):
    from tests.tui.sessions_data import build_fleet

    build_fleet(tui_env.root, 24)
    assert snap_compare(fixed_app(), terminal_size=(100, 30), run_before=table)


def test_a_verdict_that_does_not_count_shows_no_speedup_in_its_detail(fixed_env):
    from nanogpt_tui.tui.widgets.verdict_table import VerdictTable
    from tests.tui.conftest import run

    async def scenario():
        app = fixed_app()
        async with app.run_test(size=(120, 36)) as pilot:
            await loaded(pilot)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the detail screen")
            await loaded(pilot)
            await pilot.press("4")
            table = app.screen.query_one(VerdictTable)
            table.focus()
            shown = {}
            for _ in range(len(table.rows)):
                await pilot.pause(0.1)
                row = table.current
                shown[row.verdict.submission] = str(app.screen.query_one("#verdict-detail").render())
                await pilot.press("down")
            # As in the table's speedup and % columns: only a submission that counts has them.
            assert "% of human progress" in shown["submission_3"] and "+5.880 s vs the anchor" in shown["submission_3"]
            assert "no speedup or % of human progress: the submission does not count (not-significant)" \
                in shown["submission_2"] and "vs the anchor" not in shown["submission_2"]
            assert "the reference this session's speedups are measured against" in shown["baseline"]

    run(scenario())
