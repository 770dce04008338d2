"""A live log of one file (container.log or events.jsonl): a title line, the view, and a search box."""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static

from nanogpt_tui.dashboard import LOG_FILTERS, log_line_renderer
from nanogpt_tui.tui.watch import LogFollower
from nanogpt_tui.tui.widgets.log_view import LogView

OLDER_CHUNK = 1_000
MAX_UPDATES_PER_S = 5  # repaints of a flooded log; a person reads no faster, and each repaint costs the UI


class LogPanel(Vertical):
    """Follows one file through a `LogFollower` thread and shows it in a `LogView`."""

    DEFAULT_CSS = """
    LogPanel { height: 1fr; }
    LogPanel > .log-title { height: 1; background: $panel; color: $text; padding: 0 1; }
    LogPanel > Input { display: none; height: 3; }
    LogPanel.-searching > Input { display: block; }
    """

    class Batch(Message):
        """The follower has lines waiting; pending copies collapse into one (a flood is one update)."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, LogPanel.Batch)

    def __init__(self, what: str = "log", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.what = what
        self.path: Path | None = None
        self.label = ""
        self.follower: LogFollower | None = None
        self._line_renderer = None
        self._title: Text | None = None
        self._last_drain = 0.0
        self._drain_pending = False

    def compose(self) -> ComposeResult:
        yield Static(Text("no session selected"), classes="log-title")
        yield LogView()
        yield Input(placeholder="search (enter: next match upwards, esc: close)")

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    # --- following a file ---------------------------------------------------------------------------------

    def show(self, path: Path | None, label: str) -> None:
        """Follow `path` (None: show nothing), replacing what was shown."""
        if path is not None and self.path is not None and Path(path) == self.path and self.follower is not None:
            return
        self.path = Path(path) if path is not None else None
        self.label = label
        if self.follower is not None:
            self.follower.hold()  # what was read of the previous file is dropped
        self.view.clear()
        self.view.follow = True
        self.update_title()
        # The key that asked for this is answered by the next frame (title, cleared view); reading the new file
        # starts after it, so the follower's thread does not compete with that frame.
        self.call_after_refresh(self._follow, self.path)

    def _follow(self, path: Path | None) -> None:
        if path != self.path or not self.is_mounted:
            return  # another show() came first
        if path is None:
            self._stop_follower()
        elif self.follower is None:
            if self._line_renderer is None:
                self._line_renderer = log_line_renderer()
            self.follower = LogFollower(path, self._line_renderer, self._on_batch, window=self.view.window,
                                        name=f"nanogpt-tui-{self.what}")
            self.follower.start()
        else:
            self.follower.switch(path)
        refresh_followed = getattr(self.app, "refresh_followed", None)
        if refresh_followed is not None:
            refresh_followed()

    def _on_batch(self) -> None:  # called from the follower thread
        self.post_message(self.Batch())

    def poke(self) -> None:
        if self.follower is not None:
            self.follower.poke()

    def on_log_panel_batch(self, message: Batch) -> None:
        message.stop()
        if self.follower is None or not self.is_mounted or self._closing:
            return
        # At most MAX_UPDATES_PER_S repaints: lines arriving in between wait in the follower's buffer.
        wait = self._last_drain + 1 / MAX_UPDATES_PER_S - time.monotonic()
        if wait > 0:
            if not self._drain_pending:
                self._drain_pending = True
                self.set_timer(wait, self._drain)
            return
        self._drain()

    def _drain(self) -> None:
        self._drain_pending = False
        self._last_drain = time.monotonic()
        if self.follower is None or not self.is_mounted or self._closing:
            return
        new, older, reset, at_start = self.follower.drain()
        view = self.view
        if reset:
            if view.detached:
                return
            view.replace(new, at_start)
        else:
            view.append(new)
        if older is not None:
            view.prepend(older, at_start)
        self.update_title()

    def on_log_view_need_older(self, message: LogView.NeedOlder) -> None:
        message.stop()
        if self.follower is not None:
            self.follower.request_older(OLDER_CHUNK)

    def on_log_view_follow_changed(self, message: LogView.FollowChanged) -> None:
        message.stop()
        self.update_title()

    def _stop_follower(self) -> None:
        if self.follower is not None:
            self.follower.stop()
            self.follower = None

    def on_unmount(self) -> None:
        self._stop_follower()

    # --- follow, filter, search ---------------------------------------------------------------------------

    def toggle_follow(self) -> bool:
        view = self.view
        if view.follow:
            view.follow = False
        else:
            if view.detached and self.follower is not None:
                view.detached = False
                self.follower.reopen()
            view.follow = True
        self.update_title()
        return view.follow

    def cycle_filter(self) -> str:
        names = list(LOG_FILTERS)
        view = self.view
        view.filter_name = names[(names.index(view.filter_name) + 1) % len(names)]
        self.update_title()
        return view.filter_name

    def open_search(self) -> None:
        self.add_class("-searching")
        box = self.query_one(Input)
        box.value = self.view.search
        box.focus()

    def close_search(self) -> None:
        self.remove_class("-searching")
        self.view.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.view.search = event.value
        self.update_title()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.view.search = event.value
        if event.value and not self.view.find(backwards=True):
            self.notify(f"No more matches for {event.value!r} above.", severity="warning", markup=False)
        self.update_title()

    def on_key(self, event) -> None:
        if event.key == "escape" and self.has_class("-searching"):
            event.stop()
            event.prevent_default()
            self.close_search()

    def update_title(self) -> None:
        view = self.view
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append(f"{self.what} ", style="bold")
        title.append(self.label or "no session selected")
        if self.path is not None:
            title.append(" · ")
            title.append("following" if view.follow else "paused (f: follow)",
                         style="green" if view.follow else "yellow")
            if view.filter_name != "all":
                title.append(f" · filter {view.filter_name} (t)", style="cyan")
            if view.search:
                title.append(f" · /{view.search}", style="reverse")
            if view.detached:
                title.append(" · older lines (f: back to the end)", style="yellow")
        if title != self._title:  # a fixed-size line: no layout pass, and nothing at all when unchanged
            self._title = title
            self.query_one(".log-title", Static).update(title, layout=False)
