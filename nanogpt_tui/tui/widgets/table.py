"""Every session as one row: the compact view of a fleet (`T` toggles it with the cards), sorted and filtered by
the same query as the cards, with rows marked for kill or extend all at once."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from nanogpt_tui.tui.data.fleet import ACTIVITY_MIN, BY_KEY, COLUMNS, Column
from nanogpt_tui.tui.data.views import SessionView
from nanogpt_tui.tui.widgets.card import ACTIVITY_STYLES, STATUS_STYLES, SessionCard

MARK = "✓"
# The activity column gives up to this many cells of its room to bring the sorted column into sight.
ACTIVITY_FLOOR = 12


def fit_columns(width: int, sort_key: str | None = None) -> list[tuple[Column, int]]:
    """The columns that fit `width` cells (one cell between columns, two for the mark), each with its width: the
    most needed first (`Column.keep`), shown in table order, the activity column taking what the others leave.

    The column sorted by is always among them (a sort by a column out of sight orders the rows by nothing the user
    sees), and wide enough for its title and arrow (the arrow that says what the rows are sorted by is never cut):
    the room it needs comes from the activity column, down to `ACTIVITY_FLOOR` cells, then from the least needed
    of the other columns, which give way."""
    room = width - 2
    chosen: list[Column] = []
    used = 0
    for column in sorted(COLUMNS, key=lambda c: c.keep):
        need = (column.width or ACTIVITY_MIN) + (1 if chosen else 0)
        if used + need > room:
            break  # strictly by need: a less needed column never takes the place of a more needed one
        chosen.append(column)
        used += need
    widths = {c.key: c.width for c in chosen}
    sort = BY_KEY.get(sort_key) if sort_key is not None else None
    if sort is not None and sort.width and len(sort.title) + 1 <= room:
        fitted = list(chosen)
        if sort not in fitted:
            fitted.append(sort)
        wider = {**widths, sort.key: max(sort.width, len(sort.title) + 1)}

        def short() -> bool:
            left = room - sum(wider[c.key] for c in fitted if c.width) - (len(fitted) - 1)
            return left < (ACTIVITY_FLOOR if any(not c.width for c in fitted) else 0)

        while short() and len(fitted) > 1:
            fitted.remove(max((c for c in fitted if c is not sort), key=lambda c: c.keep))
        if not short():
            chosen, widths = fitted, wider
    left = room - sum(widths[c.key] for c in chosen if c.width) - (len(chosen) - 1)
    return [(c, widths[c.key] or left) for c in COLUMNS if c in chosen]


def _cell(text: str, width: int, right: bool) -> str:
    if len(text) > width:
        return text[:max(0, width - 1)] + "…"
    return text.rjust(width) if right else text.ljust(width)


class SessionTable(ScrollView, can_focus=True):
    """A header and one row per session; up/down move the selection, enter opens, space marks."""

    BINDINGS = [
        Binding("up", "move(-1)", "up", show=False),
        Binding("down", "move(1)", "down", show=False),
        Binding("pageup", "move(-10)", "page up", show=False),
        Binding("pagedown", "move(10)", "page down", show=False),
        Binding("home", "move(-100000)", "first", show=False),
        Binding("end", "move(100000)", "last", show=False),
        # Shown as the screen's own `enter` is, so moving focus between cards and table changes no key the footer
        # shows (a footer that changes recomposes: most of a toggle's time).
        Binding("enter", "open", "detail"),
    ]

    DEFAULT_CSS = """
    SessionTable { background: $surface; scrollbar-size-vertical: 1; overflow-y: auto; overflow-x: hidden; }
    """

    class Selected(Message):
        """Another row is selected: it is now the session the log, plot and actions refer to."""

        def __init__(self, session_id: str) -> None:
            super().__init__()
            self.session_id = session_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.views: list[SessionView] = []
        self.selected: str | None = None
        self.marked: frozenset[str] = frozenset()
        self.sort_key = "id"
        self.reverse = False
        self._rows: list[list[tuple[str, str]]] = []  # per row: (text, style) per shown column
        self._strips: dict[int, Strip] = {}
        self._layout: list[tuple[Column, int]] = []
        self._layout_key: tuple[int, str] | None = None  # the width and sort column the layout was fitted to
        self._signature: tuple = ()
        self._now = None

    # --- data ---------------------------------------------------------------------------------------------

    def show(self, views: list[SessionView], now, *, marked: frozenset[str], sort_key: str, reverse: bool) -> None:
        """Show `views` in this order at `now`; repaints the rows whose text changed."""
        self.views, self.marked, self.sort_key, self.reverse = views, marked, sort_key, reverse
        self._now = now
        self._build()

    def _build(self) -> None:
        width = max(20, self.size.width - 1)  # one cell for the scrollbar
        if (width, self.sort_key) != self._layout_key:
            self._layout, self._layout_key = fit_columns(width, self.sort_key), (width, self.sort_key)
        rows = [self._row(v) for v in self.views]
        signature = (tuple(v.id for v in self.views), self.marked, self.sort_key, self.reverse)
        if rows != self._rows or signature != self._signature:
            self._rows, self._signature = rows, signature
            self._strips.clear()
            self.virtual_size = Size(width, len(rows) + 1)
            self.refresh()
        if self.selected not in {v.id for v in self.views}:
            self.selected = self.views[0].id if self.views else None

    def _row(self, view: SessionView) -> list[tuple[str, str]]:
        cells = []
        for column, _ in self._layout:
            text = column.text(view, self._now)
            style = ""
            if column.key == "status":
                style = STATUS_STYLES.get(view.session.status, "")
            elif column.key == "activity" and view.activity is not None:
                style = ACTIVITY_STYLES.get(view.activity.kind, "")
            elif column.key == "gpu" and text.endswith("idle"):
                style = "yellow"
            cells.append((text, style))
        return cells

    def on_resize(self) -> None:
        if self.views:
            self._layout_key = None
            self._build()
            self._strips.clear()
            self.refresh()

    # --- drawing ------------------------------------------------------------------------------------------

    def _header(self) -> Text:
        line = Text("  ", style="bold")
        for i, (column, width) in enumerate(self._layout):
            arrow = ("▼" if self.reverse else "▲") if column.key == self.sort_key else ""
            title = column.title + arrow
            line.append((" " if i else "") + _cell(title, width, column.right),
                        style="bold reverse" if arrow else "bold")
        return line

    def _row_text(self, index: int) -> Text:
        view = self.views[index]
        line = Text(MARK + " " if view.id in self.marked else "  ", style="bold green")
        for i, ((column, width), (text, style)) in enumerate(zip(self._layout, self._rows[index])):
            line.append((" " if i else "") + _cell(text, width, column.right), style=style)
        return line

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y == 0:
            return self._strip(self._header(), width, base)
        index = self.scroll_offset.y + y - 1
        if index >= len(self.views):
            return Strip.blank(width, base)
        selected = self.views[index].id == self.selected
        key = index * 2 + selected
        strip = self._strips.get(key)
        if strip is None:
            style = base + Style(bgcolor="grey23" if not self.has_focus else "dark_blue", bold=True) if selected \
                else base
            strip = self._strips[key] = self._strip(self._row_text(index), width, style)
        return strip

    def _strip(self, text: Text, width: int, base: Style) -> Strip:
        console = self.app.console
        text.truncate(width, overflow="ellipsis")
        segments = Segment.apply_style(text.render(console), base)
        return Strip(segments).extend_cell_length(width, base).crop(0, width)

    def watch_scroll_y(self, old, new) -> None:
        super().watch_scroll_y(old, new)
        self._strips.clear()

    def on_focus(self) -> None:
        self._strips.clear()
        self.refresh()

    def on_blur(self) -> None:
        self._strips.clear()
        self.refresh()

    # --- selection ----------------------------------------------------------------------------------------

    def _index(self) -> int:
        ids = [v.id for v in self.views]
        return ids.index(self.selected) if self.selected in ids else -1

    def select(self, session_id: str | None, *, announce: bool = True) -> None:
        if session_id == self.selected:
            return
        old = self._index()
        self.selected = session_id
        new = self._index()
        for index in (old, new):
            if index >= 0:
                self.refresh(Region(0, index - self.scroll_offset.y + 1, self.size.width, 1))
        if new >= 0:
            top = self.scroll_offset.y
            visible = max(1, self.size.height - 1)
            if new < top:
                self.scroll_to(y=new, animate=False)
            elif new >= top + visible:
                self.scroll_to(y=new - visible + 1, animate=False)
        if announce and session_id is not None:
            self.post_message(self.Selected(session_id))

    def action_move(self, step: int) -> None:
        if not self.views:
            return
        index = self._index()
        target = 0 if index < 0 else max(0, min(len(self.views) - 1, index + step))
        self.select(self.views[target].id)

    def action_open(self) -> None:
        if self.selected is not None:
            self.post_message(SessionCard.Open(self.selected))

    def on_click(self, event) -> None:
        index = self.scroll_offset.y + event.y - 1
        if 0 <= index < len(self.views) and event.y >= 1:
            self.focus()
            self.select(self.views[index].id)
            if event.chain >= 2:
                self.post_message(SessionCard.Open(self.views[index].id))

    @property
    def plain_rows(self) -> list[str]:
        """The header and rows as plain text (tests read them)."""
        return [self._header().plain] + [self._row_text(i).plain for i in range(len(self.views))]
