"""A plain-text log view with a bounded window, follow mode, a filter by event type and search highlighting."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from nanogpt_tui.tui.data.logrender import LOG_FILTERS, LogLine
from nanogpt_tui.tui.data.logtail import LOG_WINDOW_LINES

KIND_STYLES = {
    "error": Style(color="red", bold=True),
    "verdict": Style(color="green", bold=True),
    "submission_started": Style(color="green"),
    "tool_call": Style(color="cyan"),
    "tool_result": Style(color="bright_black"),
    "reasoning": Style(italic=True, color="bright_black"),
    "status": Style(color="yellow"),
    "usage": Style(color="magenta"),
    "result": Style(color="magenta"),
    "session_start": Style(color="yellow", bold=True),
    "diff_add": Style(color="green"),
    "diff_del": Style(color="red"),
    "diff_hunk": Style(color="cyan"),
}
MATCH_STYLE = Style(reverse=True)
CURRENT_MATCH_STYLE = Style(bgcolor="yellow", color="black", bold=True)
NOTE_STYLE = Style(color="yellow", italic=True)


class LogView(ScrollView, can_focus=True):
    """Lines are `LogLine`s, already sanitised and masked: they are drawn as segments, never parsed as markup.

    At most `window` lines are held; older ones are dropped as new ones come, and read back from disk on
    demand (the view posts `NeedOlder` when the reader scrolls up past its first line).
    """

    BINDINGS = [
        Binding("up", "scroll_up", "up", show=False),
        Binding("pageup", "page_up", "page up", show=False),
        Binding("home", "scroll_home", "top", show=False),
        Binding("end", "scroll_end", "end", show=False),
    ]

    DEFAULT_CSS = """
    /* Scrollbars always shown: one appearing or going costs a layout pass of the whole screen. */
    LogView { background: $surface; scrollbar-size-vertical: 1; scrollbar-size-horizontal: 1;
              overflow-y: scroll; overflow-x: scroll; }
    """

    follow: reactive[bool] = reactive(True)
    """Whether new lines scroll into view; scrolling up pauses it, `f` or `end` resumes it."""

    filter_name: reactive[str] = reactive("all")
    """Which event types are shown (a key of `LOG_FILTERS`)."""

    search: reactive[str] = reactive("")
    """Text to highlight (case-insensitive); empty for none."""

    class FollowChanged(Message):
        def __init__(self, view: "LogView", follow: bool) -> None:
            super().__init__()
            self.view = view
            self.follow = follow

    class NeedOlder(Message):
        """The reader scrolled up past the first line held: read older lines from disk."""

        def __init__(self, view: "LogView") -> None:
            super().__init__()
            self.view = view

    def __init__(self, *, window: int = LOG_WINDOW_LINES, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.window = window
        self._lines: list[LogLine] = []
        self._visible: list[LogLine] = self._lines
        self._width = 0
        self.at_file_start = True
        self.detached = False  # older lines were read in and the newest dropped: new lines wait for `f`
        self._match: int | None = None

    # --- content ------------------------------------------------------------------------------------------

    @property
    def lines(self) -> list[LogLine]:
        return self._lines

    @property
    def visible_lines(self) -> list[LogLine]:
        return self._visible

    def _kinds(self) -> tuple[str, ...] | None:
        return LOG_FILTERS.get(self.filter_name)

    def kinds_present(self) -> set[str]:
        """The kinds of the lines loaded: which filters would show anything."""
        return {line.kind for line in self._lines}

    @property
    def empty_filter_note(self) -> str | None:
        """What the pane says when its filter hides every line it holds."""
        if self._visible or not self._lines or self._kinds() is None:
            return None
        return f"0 of {len(self._lines)} lines match the filter {self.filter_name!r} (t: next filter)"

    @property
    def widest(self) -> int:
        """The width of the widest line shown (the horizontal scroll range)."""
        return self._width

    def _refilter(self, widest: int | None = None) -> None:
        kinds = self._kinds()
        self._visible = self._lines if kinds is None else [x for x in self._lines if x.kind in kinds]
        self._width = widest if widest is not None else max((len(x.text) for x in self._visible), default=0)
        self._match = None
        self._resize()

    def _set_virtual_size(self, size: Size) -> None:
        """Like assigning `virtual_size`, without the layout pass that assignment triggers: the view's own size
        does not depend on its content, and a layout of the whole screen per batch of lines is what makes a
        flooded log slow. Only the scrollbars and this widget are refreshed."""
        if size == self.virtual_size:
            return
        self.set_reactive(LogView.virtual_size, size)
        self._scroll_update(size)

    def _resize(self) -> None:
        self._set_virtual_size(Size(self._width, len(self._visible)))
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def clear(self) -> None:
        self._lines = []
        self.detached = False
        self._refilter()

    def replace(self, lines: list[LogLine], at_file_start: bool, *, widest: int | None = None) -> None:
        """Show `lines` instead (the last `window` of them); `widest`: their widest, when the caller knows it
        for the lines shown under the current filter."""
        self._lines = list(lines[-self.window:])
        self.at_file_start = at_file_start
        self.detached = False
        self._refilter(widest if len(lines) <= self.window else None)

    def append(self, lines: list[LogLine]) -> None:
        if not lines or self.detached:
            return
        self._lines.extend(lines)
        excess = len(self._lines) - self.window
        if excess > 0:
            # The window is full: drop the oldest. The width stays the widest seen (recomputing it over the
            # whole window on every batch is what a flood must not cost).
            del self._lines[:excess]
            self.at_file_start = False
            kinds = self._kinds()
            self._visible = self._lines if kinds is None else [x for x in self._lines if x.kind in kinds]
            self._match = None
            self._width = max(self._width, max((len(x.text) for x in lines), default=0))
            self._resize()
            return
        kinds = self._kinds()
        if kinds is not None:
            fresh = [x for x in lines if x.kind in kinds]
            self._visible.extend(fresh)
        else:
            fresh = lines
        self._width = max(self._width, max((len(x.text) for x in fresh), default=0))
        self._resize()

    def prepend(self, lines: list[LogLine], at_file_start: bool) -> None:
        """Older lines read from disk go on top. While following the end they only fill the window's room (the
        newest stay); when the reader scrolled up for them, the newest are dropped past the window instead
        (the view is then detached from the end until `f`)."""
        if self.follow:
            room = self.window - len(self._lines)
            if len(lines) > room:
                lines, at_file_start = lines[len(lines) - max(0, room):], False
        self.at_file_start = at_file_start
        if not lines:
            return
        before = len(self._visible)
        self._lines[:0] = lines
        if len(self._lines) > self.window:
            del self._lines[self.window:]
            self.detached = True
            self.follow = False
        kinds = self._kinds()
        self._visible = self._lines if kinds is None else [x for x in self._lines if x.kind in kinds]
        self._width = max((len(x.text) for x in self._visible), default=0)
        added = len(self._visible) - before if not self.detached else sum(
            1 for x in lines if kinds is None or x.kind in kinds)
        self._set_virtual_size(Size(self._width, len(self._visible)))
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        else:
            self.scroll_to(y=self.scroll_y + max(0, added), animate=False, immediate=True)
        self.refresh()

    # --- rendering ----------------------------------------------------------------------------------------

    def render_lines(self, crop):
        # The base style walks the DOM for colours: work it out once per repaint, not once per line.
        self._base_style = self.rich_style
        self._content_width = self.scrollable_content_region.width
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        base = getattr(self, "_base_style", None) or self.rich_style
        width = getattr(self, "_content_width", None) or self.scrollable_content_region.width
        if index >= len(self._visible):
            note = self.empty_filter_note if index == 0 else None
            if note:
                return Strip([Segment(note, base + NOTE_STYLE)]).crop_extend(0, width, base)
            return Strip.blank(width, base)
        line = self._visible[index]
        style = base + KIND_STYLES[line.kind] if line.kind in KIND_STYLES else base
        segments = self._segments(line.text, style, index == self._match)
        return Strip(segments).crop_extend(scroll_x, scroll_x + width, base)

    def _segments(self, text: str, style: Style, current: bool) -> list[Segment]:
        needle = self.search.lower()
        if not needle or needle not in text.lower():
            return [Segment(text, style)]
        hay, out, pos = text.lower(), [], 0
        mark = style + (CURRENT_MATCH_STYLE if current else MATCH_STYLE)
        while True:
            i = hay.find(needle, pos)
            if i < 0:
                break
            if i > pos:
                out.append(Segment(text[pos:i], style))
            out.append(Segment(text[i:i + len(needle)], mark))
            pos = i + len(needle)
        if pos < len(text):
            out.append(Segment(text[pos:], style))
        return out

    # --- reactives ----------------------------------------------------------------------------------------

    def watch_filter_name(self) -> None:
        self._refilter()

    def watch_search(self) -> None:
        self._match = None
        self.refresh()

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.post_message(self.FollowChanged(self, follow))

    # --- searching ----------------------------------------------------------------------------------------

    def find(self, backwards: bool = True) -> bool:
        """Move to the next match of `search` (upwards from the current one, or from the bottom); True if found."""
        needle = self.search.lower()
        if not needle or not self._visible:
            return False
        n = len(self._visible)
        start = self._match if self._match is not None else (n if backwards else -1)
        order = range(start - 1, -1, -1) if backwards else range(start + 1, n)
        for i in order:
            if needle in self._visible[i].text.lower():
                self._match = i
                self.follow = False
                height = self.scrollable_content_region.height
                if not (self.scroll_y <= i < self.scroll_y + height):
                    self.scroll_to(y=max(0, i - height // 2), animate=False, immediate=True)
                self.refresh()
                return True
        return False

    @property
    def match_index(self) -> int | None:
        return self._match

    @property
    def match_line(self) -> LogLine | None:
        """The line of the current match, if any."""
        return self._visible[self._match] if self._match is not None and self._match < len(self._visible) else None

    def _edge_offset(self, lines) -> int | None:
        return next((x.offset for x in lines if x.offset >= 0), None)

    @property
    def first_offset(self) -> int | None:
        """Where the first line held (read from a file) begins in it; None when none was."""
        return self._edge_offset(self._lines)

    @property
    def last_offset(self) -> int | None:
        """Where the last line held (read from a file) begins in it; None when none was."""
        return self._edge_offset(reversed(self._lines))

    def show_found(self, lines: list[LogLine], at_file_start: bool, offset: int, text: str) -> bool:
        """Show a window read around a line a search found in the file (detached from the end, like older lines
        read in), with that line as the current match; False when the line is not among those shown (the
        filter hides it, or the file changed since)."""
        self._lines = list(lines[: self.window])
        self.at_file_start = at_file_start
        self.detached = True
        self.follow = False
        self._refilter()
        for i, line in enumerate(self._visible):
            if line.offset == offset and line.text == text:
                self._match = i
                height = self.scrollable_content_region.height
                self.scroll_to(y=max(0, i - height // 2), animate=False, immediate=True)
                self.refresh()
                return True
        return False

    # --- scrolling: up pauses follow, the top asks for older lines -----------------------------------------

    def _scrolled_up(self) -> None:
        self.follow = False
        if self.scroll_y <= 0 and not self.at_file_start:
            self.post_message(self.NeedOlder(self))

    def action_scroll_up(self) -> None:
        self._scrolled_up()
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self._scrolled_up()
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self._scrolled_up()
        super().action_scroll_home()

    def action_scroll_end(self) -> None:
        if not self.detached:
            self.follow = True
        super().action_scroll_end()

    def _on_mouse_scroll_up(self, event) -> None:
        self._scrolled_up()
        super()._on_mouse_scroll_up(event)
