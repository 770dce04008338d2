"""Every session side by side: a grid of cards whose column count follows the terminal width, a window of rows of
them in sight at a time."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.color import Color
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from nanogpt_tui.tui.data.views import SessionView
from nanogpt_tui.tui.widgets.card import CARD_HEIGHT, SessionCard

MIN_CARD_WIDTH = 38


class SessionGrid(Widget, can_focus=True):
    """Cards in a grid, one of them selected: arrows move the selection (left/right by one, up/down by a row),
    tab and shift+tab go to the next and previous card (and on past the last, to the log).

    Only the cards in sight exist: the grid keeps one card per place that fits its height (columns x rows) and
    shows in them a window of the sessions, in the query's order. Moving the selection past the window's edge,
    or the mouse wheel, moves the window by a row; a sort or a filter hands the cards other sessions. So a key
    costs the same with 50 sessions as with 8: no card is mounted, hidden, moved or restyled for sessions out of
    sight (with a card each, a filter word hid and laid out dozens of cards at each character).
    """

    BINDINGS = [
        Binding("left", "move(-1, 0)", "previous", show=False),
        Binding("right", "move(1, 0)", "next", show=False),
        Binding("up", "move(0, -1)", "row up", show=False),
        Binding("down", "move(0, 1)", "row down", show=False),
        Binding("pageup", "page(-1)", "page up", show=False),
        Binding("pagedown", "page(1)", "page down", show=False),
        Binding("tab", "step(1)", "next session", show=False),
        Binding("shift+tab", "step(-1)", "previous session", show=False),
    ]

    DEFAULT_CSS = f"""
    SessionGrid {{ layout: grid; grid-size: 2; grid-gutter: 0 1; grid-rows: {CARD_HEIGHT}; height: auto; }}
    SessionGrid > .empty {{ column-span: 4; height: 3; color: $text-muted; padding: 1 2; }}
    """

    class Selected(Message):
        """Another card is selected: it is now the session the log, plot and actions refer to."""

        def __init__(self, session_id: str) -> None:
            super().__init__()
            self.session_id = session_id

    class WindowMoved(Message):
        """Other rows of cards are in sight (the screen's title says which)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = 2
        self.rows = 1  # rows of cards in sight (what fits the grid's max-height)
        self.top = 0  # the first row in sight
        self.views: list[SessionView] = []
        """Every session the cards show, in order; those in sight have a card."""
        self.of = 0  # sessions in all, shown or filtered out: what the grid's size is for
        self._places = 0
        self.marked: frozenset[str] = frozenset()
        self.selected: str | None = None
        self._pool: list[SessionCard] = []
        self._colors: dict[str, Color] = {}
        self._colors_theme: str | None = None

    def on_mount(self) -> None:
        self.mount(Static(Text("Reading the sessions folder…"), classes="empty"))
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.show_selection())

    @property
    def cards(self) -> list[SessionCard]:
        """The cards in sight, in order."""
        return list(self._pool)

    def card(self, session_id: str) -> SessionCard | None:
        """The card showing `session_id`, if it is in sight."""
        for card in self._pool:
            if card.session_id == session_id:
                return card
        return None

    def window(self) -> tuple[int, int, int]:
        """(first, last, of): the sessions in sight, counted from 1 (first > last when there are none)."""
        first = self.top * self.columns
        return first + 1, min(len(self.views), first + self.columns * self.rows), len(self.views)

    # --- layout -------------------------------------------------------------------------------------------

    def on_resize(self) -> None:
        self.set_columns()

    def _arrange(self) -> bool:
        """Columns, rows in sight and the grid's height for the sessions there are (`of`, filtered out or not,
        so that typing a filter never moves the panes below: they would all be drawn again); whether the
        number of places changed."""
        width = self.size.width
        columns = max(1, min(width // MIN_CARD_WIDTH, self.of or 1)) if width else self.columns
        if columns != self.columns:
            self.columns = columns
            self.styles.grid_size_columns = columns
        rows_needed = max(1, -(-self.of // columns))
        limit = self.styles.max_height
        if limit is None or not self.is_mounted:
            rows, height = rows_needed, rows_needed * CARD_HEIGHT
        else:
            # As tall as the cards would be, up to the max-height: the height the table takes too (`T` then
            # moves nothing below the two).
            cells = int(limit.resolve(self.screen.size, self.app.size))
            rows = max(1, min(rows_needed, cells // CARD_HEIGHT))
            height = max(CARD_HEIGHT, min(cells, rows_needed * CARD_HEIGHT))
        if not self.of:
            if self.styles.has_rule("height"):
                self.styles.height = None  # the stylesheet's: as tall as the note that there are no sessions
        elif self.styles.height is None or self.styles.height.cells != height:
            self.styles.height = height
        changed = rows != self.rows or columns * rows != self._places
        self.rows, self._places = rows, columns * rows
        return changed

    def set_columns(self) -> None:
        """As many columns as cards of at least MIN_CARD_WIDTH fit, but no more than there are sessions; as many
        rows as the height holds."""
        if self.is_mounted and self._arrange():
            self._fill()

    # --- data ---------------------------------------------------------------------------------------------

    def update_views(self, views: list[SessionView], marked: frozenset[str] = frozenset(),
                     of: int | None = None) -> None:
        """Show `views` in this order (`marked` ones with a tick), of `of` sessions in all (default: these): the
        cards in sight take the sessions of the window, which follows the selection."""
        self.views, self.marked = views, marked
        self.of = len(views) if of is None else max(of, len(views))
        self._arrange()
        self._follow_selection()
        self._fill()
        for empty in self.query(".empty"):
            if empty.display != (not views):
                empty.display = not views
            if not views:
                empty.update(Text("No sessions yet. Press n to start one (or run `nanogpt-tui demo`)."))

    def _fill(self) -> None:
        """Give the cards in sight the sessions of the window (cards are added or removed only when the number
        of places changes)."""
        top_max = max(0, -(-len(self.views) // self.columns) - self.rows)
        self.top = max(0, min(self.top, top_max))
        first = self.top * self.columns
        window = self.views[first:first + self.columns * self.rows]
        focused, colors = self.has_focus, self.selection_colors()
        added = []
        for i, view in enumerate(window):
            if i < len(self._pool):
                card = self._pool[i]
                card.show(view)  # repaints only when a line of the card changed
            else:
                card = SessionCard(view)
                self._pool.append(card)
                added.append(card)
            card.set_ticked(view.id in self.marked)
            card.mark(view.id == self.selected, focused, colors)
        for card in self._pool[len(window):]:
            card.remove()
        del self._pool[len(window):]
        if added:
            self.mount_all(added)

    def _follow_selection(self) -> bool:
        """Move the window by the fewest rows that bring the selected card into sight; whether it moved."""
        ids = [v.id for v in self.views]
        if self.selected not in ids:
            return False
        row = ids.index(self.selected) // self.columns
        top = min(self.top, row) if row < self.top + self.rows else row - self.rows + 1
        if top == self.top:
            return False
        self.top = top
        self.post_message(self.WindowMoved())
        return True

    def scroll_rows(self, rows: int) -> None:
        """Move the window by `rows` (the selection stays where it is)."""
        before = self.top
        self.top += rows
        self._fill()
        if self.top != before:
            self.post_message(self.WindowMoved())

    def on_mouse_scroll_down(self, event) -> None:
        event.stop()
        self.scroll_rows(1)

    def on_mouse_scroll_up(self, event) -> None:
        event.stop()
        self.scroll_rows(-1)

    def refresh_cards(self) -> None:
        """Redraw the cards of live sessions whose budget figures or time left, as drawn, moved with the clock."""
        for card in self._pool:
            if card.view.session.is_active:
                card.update_texts()

    # --- selection ----------------------------------------------------------------------------------------

    def select(self, session_id: str | None, *, announce: bool = True) -> None:
        """Select `session_id`'s card (the window moves to bring it into sight). Announced, the screen is told
        and marks the card (`show_selection`) in the same handler that switches the log, so the key is answered
        by one frame; otherwise it is marked here."""
        if session_id == self.selected:
            return
        self.selected = session_id
        if self._follow_selection():
            self._fill()
        if announce and session_id is not None:
            self.post_message(self.Selected(session_id))
        else:
            self.show_selection()

    def show_selection(self) -> None:
        """Mark the selected card (only two cards change)."""
        focused, colors = self.has_focus, self.selection_colors()
        for card in self._pool:
            card.mark(card.session_id == self.selected, focused, colors)

    def selection_colors(self) -> dict[str, Color]:
        """The theme's colours for the selected card, worked out once per theme."""
        theme = self.app.theme
        if self._colors_theme != theme:
            variables = self.app.get_css_variables()
            self._colors = {name: Color.parse(variables[name]) for name in ("accent", "accent-darken-1", "boost")}
            self._colors_theme = theme
        return self._colors

    def watch_has_focus(self, _has_focus: bool) -> None:
        # No rule of ours styles the grid or its cards by focus (the selected card's colours are set by `mark`):
        # restyle the grid alone, not each of its cards, as Textual would.
        self.app.stylesheet.update_nodes([self], animate=False)
        self.show_selection()

    def _index(self) -> int:
        ids = [v.id for v in self.views]
        return ids.index(self.selected) if self.selected in ids else -1

    def action_move(self, dx: int, dy: int) -> None:
        if not self.views:
            return
        index = self._index()
        if index < 0:
            self.select(self.views[min(len(self.views) - 1, self.top * self.columns)].id)
            return
        target = index + dx + dy * self.columns
        if 0 <= target < len(self.views):
            self.select(self.views[target].id)

    def action_page(self, pages: int) -> None:
        """As many rows as are in sight, up or down (stopping at the first or last session)."""
        index = self._index()
        if self.views and index >= 0:
            target = max(0, min(len(self.views) - 1, index + pages * self.rows * self.columns))
            self.select(self.views[target].id)
        else:
            self.action_move(0, 0)

    def action_step(self, step: int) -> None:
        target = self._index() + step
        if self.views and 0 <= target < len(self.views):
            self.select(self.views[target].id)
        elif step > 0:
            self.screen.focus_next()
        else:
            self.screen.focus_previous()

    def on_session_card_clicked(self, message: SessionCard.Clicked) -> None:
        message.stop()
        self.focus()
        self.select(message.session_id)
        if message.double:
            self.post_message(SessionCard.Open(message.session_id))
