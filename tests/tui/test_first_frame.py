"""The first frame comes first (issue 16): the monitor's first look (session.json alone) is drawn before the full
reading of verdicts and usage, the backend refresher and the start-up work begin; the plot is made after it."""

from __future__ import annotations

import threading
import time

from nanogpt_tui.config import load_config
from nanogpt_tui.records import load_timeline
from nanogpt_tui.tui.app import create_app
from nanogpt_tui.tui.data.dashboard import Dashboard
from nanogpt_tui.tui.watch import SessionMonitor
from nanogpt_tui.tui.widgets.card import SessionCard
from nanogpt_tui.tui.widgets.grid import SessionGrid
from nanogpt_tui.tui.widgets.plot import PlotPane
from tests.tui.conftest import REPO, run, wait_for
from tests.tui.sessions_data import build_fleet, fixed_clock


def test_the_monitor_reads_the_rest_once_the_first_look_is_drawn(tmp_path):
    build_fleet(tmp_path, 6)
    got: list[list] = []
    arrived = threading.Event()

    def on_views(views, problems):
        got.append(views)
        arrived.set()

    monitor = SessionMonitor(Dashboard(tmp_path, load_timeline(REPO / "human_baselines")), on_views,
                             wait_drawn_s=30.0)
    monitor.start()
    try:
        assert arrived.wait(5) and len(got) == 1
        assert len(got[0]) == 6 and not any(v.complete for v in got[0])  # the first look: session.json alone
        time.sleep(0.5)
        assert len(got) == 1  # nothing more until the first look is on screen
        monitor.drawn()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (len(got) > 1 and all(v.complete for v in got[-1])):
            time.sleep(0.05)
        assert len(got) > 1 and all(v.complete for v in got[-1])
    finally:
        monitor.stop()


def test_the_first_frame_shows_the_cards_before_the_rest_is_read_and_asked(tui_env):
    build_fleet(tui_env.root, 24)
    seen: dict = {}

    async def scenario():
        app = create_app(load_config(), clock=fixed_clock, live=True, refresh_every_s=0.3)
        drawn = app.sessions_drawn

        def sessions_drawn() -> None:
            if not seen:
                cards = list(app.screen.query(SessionCard))
                first, last, of = app.screen.query_one(SessionGrid).window()
                seen.update(cards=len(cards), in_sight=last - first + 1, of=of,
                            laid_out=sum(1 for c in cards if c.region.area),
                            loaded=app.loaded, refresher=app.refresher is not None)
            drawn()

        app.sessions_drawn = sessions_drawn
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_for(pilot, lambda: bool(seen), what="the main screen to say the sessions are drawn")
            await wait_for(pilot, lambda: app.loaded and app.refresher is not None, what="the full reading")
            await wait_for(pilot, lambda: app.screen.query_one(PlotPane).figure is not None, what="the plot")
            assert all(v.complete for v in app.views) and len(app.views) == 24

    run(scenario())
    # When the screen said so, the first look's cards (one for each place in sight, of the 24 sessions) were laid
    # out (drawn in that pass), and neither the full reading nor the backend refresher had begun.
    assert seen["of"] == 24 and seen["in_sight"] >= 4 and seen["laid_out"] == seen["in_sight"]
    assert seen["loaded"] is False and seen["refresher"] is False
