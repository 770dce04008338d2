"""The log panel: moving between sessions keeps the lines loaded (no file is read again), and `/` search finds
lines anywhere in the file, outside the window of loaded lines too (read in a thread, then the window around the
match is loaded)."""

from __future__ import annotations

import threading
import time

from nanogpt_tui.config import load_config
from nanogpt_tui.tui.app import create_app
from nanogpt_tui.tui.data.logrender import log_line_renderer
from nanogpt_tui.tui.data.logsearch import search_log
from nanogpt_tui.tui.data.logtail import LogTail
from nanogpt_tui.tui.screens.main import MainScreen
from nanogpt_tui.tui.watch import INITIAL_LINES, RESUME_MAX_LAG_BYTES, LogFollower
from nanogpt_tui.tui.widgets.log_panel import LogPanel
from tests.tui.conftest import run, wait_for
from tests.tui.sessions_data import add_log, fixed_clock, make_session

SIZE = (120, 36)
SECRET = "sk-proj-" + "abcdefghijklmnopqrstuv"
MARKED = {7: "needle-in-haystack, first at line 7", 40: "needle-in-haystack again at line 40"}


def haystack(n: int = 3000) -> list[str]:
    lines = [f"step:{i}/{n} train_loss:3.{i % 100:02d} train_time:{i * 61}ms" for i in range(n)]
    for i, text in MARKED.items():
        lines[i] = text
    lines[20] = f"OPENAI_API_KEY={SECRET}"
    return lines


def offsets_of(lines: list[str]) -> list[int]:
    out, pos = [], 0
    for line in lines:
        out.append(pos)
        pos += len(line.encode()) + 1
    return out


def messages(app) -> list[str]:
    return [n.message for n in app._notifications]


def log_panel(app) -> LogPanel:
    return app.screen.query_one("#log-panel", LogPanel)


# ------------------------------------------------------------------------------------------ headless search


def test_search_log_finds_lines_as_shown_upwards_then_wrapping(tmp_path):
    lines = haystack()
    path = tmp_path / "container.log"
    path.write_text("".join(x + "\n" for x in lines) + "a line being writt")
    offsets = offsets_of(lines)
    render = log_line_renderer(secrets=())
    found = search_log(path, "NEEDLE-in", render, before=offsets[1000], chunk_bytes=4096)
    assert (found.offset, found.text, found.wrapped) == (offsets[40], MARKED[40], False)
    found = search_log(path, "needle", render, before=offsets[40])
    assert found.offset == offsets[7]
    assert search_log(path, "needle", render, before=offsets[7]) is None
    # Below the caller's last line, from the end of the file up (the half-written line is not a line yet).
    found = search_log(path, "needle", render, before=offsets[7], after=offsets[2])
    assert (found.offset, found.wrapped) == (offsets[40], True)
    assert search_log(path, "being writt", render, before=offsets[7], after=offsets[2]) is None
    # Masked keys are not found by their value; the filter's event types are kept to.
    assert search_log(path, SECRET[8:], render, before=len(path.read_bytes())) is None
    assert search_log(path, "OPENAI_API_KEY=***", render, before=offsets[2999]).offset == offsets[20]
    assert search_log(path, "needle", render, before=offsets[2999], kinds=("error",)) is None
    # Progress is reported, and a cancelled search stops with nothing.
    seen: list[float] = []
    search_log(path, "not there", render, before=offsets[2999], progress=seen.append, chunk_bytes=4096)
    assert seen and seen == sorted(seen) and 0 <= seen[0] and seen[-1] <= 1
    assert search_log(path, "needle", render, before=offsets[2999], cancelled=lambda: True) is None


def test_the_tail_reads_the_lines_around_an_offset_with_their_offsets(tmp_path):
    lines = haystack(100)
    path = tmp_path / "container.log"
    path.write_text("".join(x + "\n" for x in lines))
    offsets = offsets_of(lines)
    tail = LogTail(path)
    assert tail.open(5) == lines[-5:] and tail.offsets == offsets[-5:]
    assert tail.read_around(offsets[50], 3, 2) == lines[47:52] and tail.offsets == offsets[47:52]
    assert tail.start == offsets[47] and tail.read_older(2) == lines[45:47] and tail.offsets == offsets[45:47]
    assert tail.read_around(offsets[1], 5, 1000) == lines and tail.at_start
    with open(path, "a") as handle:
        handle.write("appended\n")
    assert tail.read_new() == (["appended"], False)  # the end is where it was: a jump does not move it
    assert tail.offsets == [offsets[-1] + len(lines[-1]) + 1]


def drained(follower, until, timeout: float = 5.0):
    """Drain the follower until `until(new, older, reset)` holds; returns that drain."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = follower.drain()
        if until(*got[:3]):
            return got
        time.sleep(0.02)
    raise AssertionError("the follower did not deliver")


def test_a_follower_resumes_a_file_it_left_reading_only_what_came_since(tmp_path):
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text("".join(f"a {i}\n" for i in range(50)))
    second.write_text("".join(f"b {i}\n" for i in range(50)))
    follower = LogFollower(first, log_line_renderer(secrets=()), lambda: None, window=100, fallback_poll_s=0.05)
    follower.start()
    try:
        new, _, reset, _ = drained(follower, lambda new, older, reset: reset and new)
        assert new[0].offset == 0 and new[-1].text == "a 49"
        follower.switch(second)
        drained(follower, lambda new, older, reset: reset and new and new[-1].text == "b 49")
        with open(first, "a") as handle:
            handle.write("a 50\n")
        follower.switch(first, resume=True)
        new, older, reset, _ = drained(follower, lambda new, older, reset: new or reset)
        assert not reset and [x.text for x in new] == ["a 50"]  # what came since, nothing read twice
        follower.switch(second, resume=True)
        drained(follower, lambda new, older, reset: True)
        with open(first, "a") as handle:  # far more than is worth catching up with: read afresh from the end
            handle.write("".join(f"a {i}\n" for i in range(51, 51 + RESUME_MAX_LAG_BYTES // 4)))
        follower.switch(first, resume=True)
        new, older, reset, _ = drained(follower, lambda new, older, reset: reset)
        assert new[-1].text == f"a {50 + RESUME_MAX_LAG_BYTES // 4}"
    finally:
        follower.stop()


# ------------------------------------------------------------------------------------------ in the app


def test_search_finds_a_line_outside_the_loaded_window(tui_env):
    lines = haystack()
    d = make_session(tui_env.root, "s-search", agent="codex", strategy="default")
    add_log(d, lines)
    offsets = offsets_of(lines)

    async def scenario():
        app = create_app(load_config(), clock=fixed_clock, live=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.loaded and log_panel(app).path is not None, what="the session")
            view = log_panel(app).view
            await wait_for(pilot, lambda: len(view.lines) >= INITIAL_LINES, what="the first fill")
            assert not view.at_file_start and not any("needle" in x.text for x in view.lines)
            view.focus()  # `/` searches the log from the log pane (elsewhere it filters the sessions)
            await pilot.press("slash", *"needle-in-haystack", "enter")
            await wait_for(pilot, lambda: view.match_line is not None, what="the match in the file")
            assert view.match_line.text == MARKED[40] and view.match_line.offset == offsets[40]
            assert view.detached and not view.follow  # a window of older lines, around the match
            assert view.first_offset == 0 and view.lines[0].text == lines[0]
            assert view.scroll_y <= view.match_index < view.scroll_y + view.scrollable_content_region.height
            # The next match upwards is in the window now loaded.
            await pilot.press("enter")
            await wait_for(pilot, lambda: view.match_line.text == MARKED[7], what="the match above")
            # Nothing further up, nor below the window: the whole file was searched.
            await pilot.press("enter")
            await wait_for(pilot, lambda: any("searched the whole file" in m for m in messages(app)),
                           what="the end of the search")
            assert view.match_line.text == MARKED[7]
            # A key is masked on screen, so searching for its value finds nothing.
            box = log_panel(app).query_one("Input")
            box.value = SECRET[8:]
            await pilot.press("enter")
            await wait_for(pilot, lambda: sum("searched the whole file" in m for m in messages(app)) == 2,
                           what="the second search")
            assert view.match_line is None
            assert not any("Traceback" in m for m in messages(app))

    run(scenario())


def test_moving_back_to_a_session_shows_its_lines_at_once_without_reading_its_file_again(tui_env, monkeypatch):
    a = make_session(tui_env.root, "a-first", agent="codex", strategy="default")
    b = make_session(tui_env.root, "b-second", agent="claude", strategy="default")
    add_log(a, [f"a line {i}" for i in range(300)])
    add_log(b, [f"b line {i}" for i in range(300)])
    opened: list[str] = []
    lock = threading.Lock()
    real_open = LogTail.open

    def counting_open(self, n=5000):
        with lock:
            opened.append(self.path.parent.name)
        return real_open(self, n)

    monkeypatch.setattr(LogTail, "open", counting_open)

    async def scenario():
        app = create_app(load_config(), clock=fixed_clock, live=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.loaded and isinstance(app.screen, MainScreen)
                           and app.screen.selected == a.name, what="the first session")
            view = log_panel(app).view
            await wait_for(pilot, lambda: len(view.lines) == 300, what="a's log")
            a_lines = list(view.lines)
            await pilot.press("right")
            assert app.screen.selected == b.name
            await wait_for(pilot, lambda: view.lines and view.lines[-1].text == "b line 299", what="b's log")
            await pilot.press("left")
            # a's lines are back with the key (kept, not read), and its file is not opened again.
            assert app.screen.selected == a.name and view.lines == a_lines
            add_log(a, ["a line appended"])
            await wait_for(pilot, lambda: view.lines[-1].text == "a line appended", what="the new line")
            assert view.lines[:-1] == a_lines
            assert opened == [a.name, b.name]

    run(scenario())
