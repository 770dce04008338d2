"""A live log of one file (container.log or events.jsonl): a title line, the view, and a search box."""

from __future__ import annotations

import time
from collections import OrderedDict
from functools import partial
from operator import itemgetter
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from nanogpt_tui.tui.data.logrender import LOG_FILTERS, LogLine, log_line_renderer
from nanogpt_tui.tui.data.logsearch import LogMatch, search_log
from nanogpt_tui.tui.watch import POSITIONS_KEPT, LogFollower
from nanogpt_tui.tui.widgets.log_view import LogView

OLDER_CHUNK = 1_000
MAX_UPDATES_PER_S = 5  # repaints of a flooded log; a person reads no faster, and each repaint costs the UI
BUFFERS_KEPT = POSITIONS_KEPT  # files whose loaded lines are kept: moving back to one shows them at once
_kind, _text, _offset = itemgetter(0), itemgetter(1), itemgetter(2)
_line = partial(tuple.__new__, LogLine)  # a LogLine from its (kind, text, offset), at the speed of a tuple


class LogPanel(Vertical):
    """Follows one file through a `LogFollower` thread and shows it in a `LogView`.

    Moving to another file keeps the lines loaded from this one (for the last `BUFFERS_KEPT` files): moving
    back shows them in the same frame, and the follower reads only what was appended meanwhile.
    """

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

    class SearchProgress(Message):
        """How much of the file a search has read; a newer one replaces any still queued."""

        def __init__(self, path: Path, fraction: float) -> None:
            super().__init__()
            self.path = path
            self.fraction = fraction

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, LogPanel.SearchProgress)

    class SearchDone(Message):
        """A search of the file ended: the match found (None: none), for the file and text searched."""

        def __init__(self, path: Path, needle: str, match: LogMatch | None, error: str | None = None) -> None:
            super().__init__()
            self.path = path
            self.needle = needle
            self.match = match
            self.error = error

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
        # Lines of files moved away from, as (kinds, texts, offsets, at_file_start, widest): lists of plain strings
        # and numbers, which the cycle collector does not walk (kept as LogLines they would lengthen every full
        # collection, a pause of the UI).
        self._buffers: OrderedDict[Path, tuple[list[str], list[str], list[int], bool, int]] = OrderedDict()
        self._searching: float | None = None  # how much of the file a running search has read
        self._found: LogMatch | None = None  # a match in the file whose lines the follower is reading

    def compose(self) -> ComposeResult:
        yield Static(Text("no session selected"), classes="log-title")
        yield LogView()
        yield Input(placeholder="search the whole log (enter: next match upwards, esc: close)")

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    # --- following a file ---------------------------------------------------------------------------------

    def show(self, path: Path | None, label: str) -> None:
        """Follow `path` (None: show nothing), replacing what was shown."""
        if path is not None and self.path is not None and Path(path) == self.path and self.follower is not None:
            return
        view = self.view
        if self.path is not None and self.follower is not None and view.lines and not view.detached:
            lines = view.lines
            self._buffers[self.path] = (list(map(_kind, lines)), list(map(_text, lines)), list(map(_offset, lines)),
                                        view.at_file_start, view.widest)
            self._buffers.move_to_end(self.path)
            while len(self._buffers) > BUFFERS_KEPT:
                self._buffers.popitem(last=False)
        self._cancel_file_search()
        self._found = None
        self.path = Path(path) if path is not None else None
        self.label = label
        if self.follower is not None:
            self.follower.hold()  # what was read of the previous file and not shown yet is dropped
        kept = self._buffers.pop(self.path, None) if self.path is not None else None
        if kept is not None:
            kinds, texts, offsets, at_file_start, widest = kept
            view.replace(list(map(_line, zip(kinds, texts, offsets))), at_file_start, widest=widest)
        else:
            view.clear()
        view.follow = True
        self._last_drain = 0.0  # the new file's first lines are drawn as soon as they are read
        self.update_title()
        # The key that asked for this is answered by the next frame (title, the lines kept or a cleared view);
        # reading the file starts after it, so the follower's thread does not compete with that frame.
        self.call_after_refresh(self._follow, self.path, kept is not None)

    def _follow(self, path: Path | None, resume: bool = False) -> None:
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
            self.follower.switch(path, resume=resume)
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
        view = self.view
        jump = self.follower.take_jump()
        if jump is not None and self._found is not None and jump[2] == self._found.offset:
            found, self._found = self._found, None
            if not view.show_found(jump[0], jump[1], found.offset, found.text):
                self.notify(f"The match for {view.search!r} is no longer in {self.path.name} as found (the file "
                            "changed, or the filter hides it).", severity="warning", markup=False)
            elif found.wrapped:
                self.notify(f"Search for {view.search!r} went on from the end of the log.", timeout=2)
        new, older, reset, at_start = self.follower.drain()
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

    def usable_filters(self) -> list[str]:
        """`all`, then the filters that would show at least one of the lines this pane holds."""
        present = self.view.kinds_present()
        return [name for name, kinds in LOG_FILTERS.items() if kinds is None or present.intersection(kinds)]

    def cycle_filter(self) -> str:
        """The next filter that shows something here (the full list order, skipping filters that match no line);
        `all` when none does."""
        names, usable = list(LOG_FILTERS), set(self.usable_filters())
        view = self.view
        start = names.index(view.filter_name) if view.filter_name in names else 0
        for step in range(1, len(names) + 1):
            name = names[(start + step) % len(names)]
            if name in usable:
                view.filter_name = name
                break
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
        self._cancel_file_search()
        self.update_title()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """The next match upwards: among the lines loaded, else in the rest of the file (read in a thread)."""
        event.stop()
        self.find(event.value)

    def find(self, needle: str) -> None:
        """Search for `needle` from the end upwards, as `/` then enter does (a jump from elsewhere uses it)."""
        view = self.view
        view.search = needle
        if needle and not view.find(backwards=True):
            self._search_file(needle)
        self.update_title()

    # --- searching the whole file -------------------------------------------------------------------------

    def _search_file(self, needle: str) -> None:
        """Search the part of the file not loaded: above the first line held, then (when the view holds an
        older window) below the last one, from the end of the file up."""
        view = self.view
        if self.path is None or self._line_renderer is None:
            return
        above = not view.at_file_start
        first = view.first_offset
        after = view.last_offset if view.detached else None
        if (not above or first is None) and after is None:
            self.notify(f"No more matches for {needle!r} above (the whole file is loaded).", severity="warning",
                        markup=False)
            return
        self._searching = 0.0
        self.search_file(self.path, needle, first if above and first is not None else 0, after,
                         LOG_FILTERS.get(view.filter_name))

    @work(thread=True, exclusive=True, exit_on_error=False, group="log-search", name="log search")
    def search_file(self, path: Path, needle: str, before: int, after: int | None,
                    kinds: tuple[str, ...] | None) -> None:
        worker = get_current_worker()
        try:
            match = search_log(path, needle, self._line_renderer, before=before, after=after, kinds=kinds,
                               cancelled=lambda: worker.is_cancelled,
                               progress=lambda f: self.post_message(self.SearchProgress(path, f)))
        except OSError as err:
            self.post_message(self.SearchDone(path, needle, None, f"Could not search {path.name}: {err}"))
            return
        if not worker.is_cancelled:
            self.post_message(self.SearchDone(path, needle, match))

    def _cancel_file_search(self) -> None:
        if self._searching is not None:
            self.workers.cancel_group(self, "log-search")
            self._searching = None

    def on_log_panel_search_progress(self, message: SearchProgress) -> None:
        message.stop()
        if self._searching is not None and message.path == self.path:
            self._searching = message.fraction
            self.update_title()

    def on_log_panel_search_done(self, message: SearchDone) -> None:
        message.stop()
        if message.path != self.path or message.needle != self.view.search or self._searching is None:
            return  # a search for another file or text, since replaced
        self._searching = None
        if message.error:
            self.notify(message.error, severity="error", markup=False)
        elif message.match is None:
            self.notify(f"No more matches for {message.needle!r} in {message.path.name} (searched the whole "
                        "file).", severity="warning", markup=False)
        elif self.follower is not None:
            self._found = message.match
            self.follower.jump(message.match.offset)  # the lines around it arrive with the next drain
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
                shown = len(view.visible_lines)
                title.append(f" · filter {view.filter_name}: {shown} of {len(view.lines)} lines (t)",
                             style="cyan" if shown else "yellow")
            if view.search:
                title.append(f" · /{view.search}", style="reverse")
            if self._searching is not None:
                title.append(f" · searching the file… {self._searching * 100:.0f}%", style="cyan")
            if view.detached:
                title.append(" · older lines (f: back to the end)", style="yellow")
        if title != self._title:  # a fixed-size line: no layout pass, and nothing at all when unchanged
            self._title = title
            self.query_one(".log-title", Static).update(title, layout=False)
