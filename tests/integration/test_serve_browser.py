"""`nanogpt-tui serve` in a real Chromium (Debian's, driven by Playwright): the page needs nothing but 127.0.0.1,
a session id is on the screen, a key typed in the page opens that session's detail, and the room is read-only
unless the page was opened with the printed control token."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.tui.sessions_data import build_fixed_sessions, write_config

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SESSION = "20261120T180000Z-claude-default"
ANSI = re.compile(r"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78DEHM])")

# The terminal is drawn on a canvas, so the test reads what the server sent instead: every binary websocket frame,
# decoded, kept on the page (a test-side hook, added before the page's own script runs).
RECORD_FRAMES = """
window.__screen = "";
const NativeWebSocket = window.WebSocket;
const decoder = new TextDecoder();
window.WebSocket = function (url, protocols) {
  const ws = protocols === undefined ? new NativeWebSocket(url) : new NativeWebSocket(url, protocols);
  ws.addEventListener("message", (event) => {
    if (typeof event.data !== "string") {
      window.__screen += decoder.decode(event.data, { stream: true });
    }
  });
  return ws;
};
window.WebSocket.prototype = NativeWebSocket.prototype;
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The server on three fixed sessions, its printed URLs, and its output so far."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `bash tests/provision/run` (tests/provision/50-browser.sh installs "
                    "Debian's chromium)")
    root = tmp_path_factory.mktemp("serve")
    baselines = root / "human_baselines"
    baselines.mkdir()
    shutil.copy(REPO / "human_baselines" / "records.tsv", baselines / "records.tsv")
    sessions = root / "sessions"
    sessions.mkdir()
    build_fixed_sessions(sessions)
    # The sessions are named by --sessions-dir, not by the config (whose folder is empty): each tab's control room
    # must get the folder this server was started with (`nanogpt-tui --sessions-dir sessions/demo serve`).
    config = write_config(root, baselines, root / "no-sessions-here")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")}
    log = (root / "serve.log").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "nanogpt_tui", "--config", str(config), "--sessions-dir",
                             str(sessions), "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    text = ""
    deadline = time.monotonic() + 30
    while "with control: " not in text:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the server did not start: {Path(log.name).read_text()}")
        time.sleep(0.2)
        text = Path(log.name).read_text()
    control = re.search(r"with control: (\S+)", text).group(1)
    yield {"url": f"http://127.0.0.1:{port}/", "control": control, "port": port, "output": text}
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def open_page(browser, url: str):
    """A page on `url` that may reach 127.0.0.1 only: every other request is aborted and recorded."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    refused: list[str] = []

    def guard(route):
        host = re.match(r"^[a-z]+://([^/:]+)", route.request.url)
        if route.request.url.startswith(("data:", "blob:")) or (host and host.group(1) == "127.0.0.1"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.add_init_script(RECORD_FRAMES)
    page.goto(url)
    return context, page, refused


def screen_text(page) -> str:
    return ANSI.sub("", page.evaluate("window.__screen"))


def wait_for_text(page, needle: str, timeout_s: float = 30.0, since: int = 0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        text = screen_text(page)
        if needle in text[since:]:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} never reached the page; it last showed: {text[-1500:]!r}")
        page.wait_for_timeout(200)


def test_served_page_shows_sessions_and_opens_a_detail_by_key(served, browser):
    assert served["url"].startswith("http://127.0.0.1:") and "read-only" in served["output"]
    context, page, refused = open_page(browser, served["url"])
    try:
        wait_for_text(page, SESSION[:16])  # a session id on the screen (its card's title)
        page.locator("#terminal").click()
        before = len(screen_text(page))
        page.keyboard.press("Enter")  # the selected card's session opens in its detail screen
        wait_for_text(page, "Verdicts (", since=before)
        wait_for_text(page, "strategy default", since=before)
        # Read-only without the token: kill is refused with a sentence, nothing asks for confirmation.
        before = len(screen_text(page))
        page.keyboard.press("k")
        wait_for_text(page, "read-only", since=before)
        assert "Kill " not in screen_text(page)[before:]
        assert refused == [], f"the page asked for {refused}: it must need nothing but this server"
    finally:
        context.close()


def test_the_control_link_enables_control_and_a_wrong_token_is_refused(served, browser):
    context, page, refused = open_page(browser, served["control"])
    try:
        wait_for_text(page, SESSION[:16])
        page.locator("#terminal").click()
        before = len(screen_text(page))
        page.keyboard.press("k")  # with the token, kill asks for confirmation (answered no)
        wait_for_text(page, "Kill", since=before)
        assert "read-only" not in screen_text(page)[before:]
        page.keyboard.press("Escape")
        assert refused == []
    finally:
        context.close()
    wrong = f"http://127.0.0.1:{served['port']}/ws/not-the-token"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(wrong, timeout=10)
    assert err.value.code == 403
