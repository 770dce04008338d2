"""Every session side by side: a grid of cards whose column count follows the terminal width, scrolling when full."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.color import Color
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from nanogpt_tui.tui.data.views import SessionView
from nanogpt_tui.tui.widgets.card import SessionCard

MIN_CARD_WIDTH = 38


class SessionGrid(VerticalScroll, can_focus=True):
    """Cards in a grid, one of them selected: arrows move the selection (left/right by one, up/down by a row),
    tab and shift+tab go to the next and previous card (and on past the last, to the log)."""

    BINDINGS = [
        Binding("left", "move(-1, 0)", "previous", show=False),
        Binding("right", "move(1, 0)", "next", show=False),
        Binding("up", "move(0, -1)", "row up", show=False),
        Binding("down", "move(0, 1)", "row down", show=False),
        Binding("tab", "step(1)", "next session", show=False),
        Binding("shift+tab", "step(-1)", "previous session", show=False),
    ]

    DEFAULT_CSS = """
    SessionGrid { layout: grid; grid-size: 2; grid-gutter: 0 1; grid-rows: 12; height: auto; }
    SessionGrid > .empty { column-span: 4; height: 3; color: $text-muted; padding: 1 2; }
    """

    class Selected(Message):
        """Another card is selected: it is now the session the log, plot and actions refer to."""

        def __init__(self, session_id: str) -> None:
            super().__init__()
            self.session_id = session_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = 2
        self.selected: str | None = None
        self._colors: dict[str, Color] = {}
        self._colors_theme: str | None = None

    def on_mount(self) -> None:
        self.mount(Static(Text("Reading the sessions folder…"), classes="empty"))
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.show_selection())

    @property
    def cards(self) -> list[SessionCard]:
        """The cards shown (a filter hides the others rather than removing them: typing a filter word must not
        mount and unmount dozens of cards at each character)."""
        return [c for c in self.query(SessionCard) if c.display]

    def card(self, session_id: str) -> SessionCard | None:
        for card in self.cards:
            if card.session_id == session_id:
                return card
        return None

    def on_resize(self) -> None:
        self.set_columns()

    def set_columns(self) -> None:
        """As many columns as cards of at least MIN_CARD_WIDTH fit, but no more than there are cards."""
        columns = max(1, min(self.size.width // MIN_CARD_WIDTH, len(self.cards) or 1))
        if columns != self.columns:
            self.columns = columns
            self.styles.grid_size_columns = columns

    def update_views(self, views: list[SessionView], marked: frozenset[str] = frozenset(),
                     present: set[str] | None = None) -> list[SessionCard]:
        """Cards follow the views (one each, in their order; `marked` ones show a tick); the cards of sessions
        still `present` (default: those in `views`) but not in `views` are hidden, the others removed. Returns
        the cards added."""
        by_id = {v.id: v for v in views}
        present = set(by_id) if present is None else present | set(by_id)
        existing = {}
        for card in self.query(SessionCard):
            if card.session_id not in present:
                card.remove()
            elif card.session_id not in by_id:
                if card.display:
                    card.display = False
            else:
                existing[card.session_id] = card
        added = []
        for view in views:
            card = existing.get(view.id)
            if card is None:
                card = SessionCard(view)
                card.mark(view.id == self.selected, self.has_focus, self.selection_colors())
                added.append(card)
            else:
                if not card.display:  # shown again: its mark may be from before it was hidden
                    card.display = True
                    card.mark(view.id == self.selected, self.has_focus, self.selection_colors())
                card.show(view)  # repaints only when a line of the card changed
            card.set_ticked(view.id in marked)
        if added:
            self.mount_all(added)
        order = [v.id for v in views]
        if [c.session_id for c in self.cards if not c._closing] != order:
            self.call_after_refresh(self._reorder, order)
        self.call_after_refresh(self.set_columns)
        for empty in self.query(".empty"):
            if empty.display != (not views):
                empty.display = not views
            if not views:
                empty.update(Text("No sessions yet. Press n to start one (or run `nanogpt-tui demo`)."))
        return added

    def _reorder(self, order: list[str]) -> None:
        """Put the cards in `order` (the query's sort), moving only the ones out of place."""
        cards = {c.session_id: c for c in self.cards}
        previous = None
        for sid in order:
            card = cards.get(sid)
            if card is None:
                continue
            current = list(self.query_children(SessionCard))
            at = current.index(card)
            want = 0 if previous is None else current.index(previous) + 1
            if at != want:
                if previous is None:
                    self.move_child(card, before=0)
                else:
                    self.move_child(card, after=previous)
            previous = card

    def refresh_cards(self) -> None:
        """Redraw the cards of live sessions whose budget figures or time left, as drawn, moved with the clock."""
        for card in self.cards:
            if card.view.session.is_active:
                card.update_texts()

    def select(self, session_id: str | None, *, announce: bool = True) -> None:
        """Select `session_id`'s card. Announced, the screen is told and marks the card (`show_selection`) in
        the same handler that switches the log, so the key is answered by one frame; otherwise it is marked
        here."""
        if session_id == self.selected:
            return
        self.selected = session_id
        if announce and session_id is not None:
            self.post_message(self.Selected(session_id))
        else:
            self.show_selection()

    def show_selection(self) -> None:
        """Mark the selected card (only two cards change) and scroll it into view."""
        focused, colors = self.has_focus, self.selection_colors()
        selected = None
        for card in self.cards:
            card.mark(card.session_id == self.selected, focused, colors)
            if card.session_id == self.selected:
                selected = card
        if selected is not None:
            self.scroll_to_widget(selected, animate=False)

    def selection_colors(self) -> dict[str, Color]:
        """The theme's colours for the selected card, worked out once per theme."""
        theme = self.app.theme
        if self._colors_theme != theme:
            variables = self.app.get_css_variables()
            self._colors = {name: Color.parse(variables[name]) for name in ("accent", "accent-darken-1", "boost")}
            self._colors_theme = theme
        return self._colors

    def on_focus(self) -> None:
        self.show_selection()

    def on_blur(self) -> None:
        self.show_selection()

    def _index(self) -> int:
        ids = [c.session_id for c in self.cards]
        return ids.index(self.selected) if self.selected in ids else -1

    def action_move(self, dx: int, dy: int) -> None:
        cards = self.cards
        if not cards:
            return
        index = self._index()
        if index < 0:
            self.select(cards[0].session_id)
            return
        target = index + dx + dy * self.columns
        if 0 <= target < len(cards):
            self.select(cards[target].session_id)

    def action_step(self, step: int) -> None:
        cards = self.cards
        target = self._index() + step
        if cards and 0 <= target < len(cards):
            self.select(cards[target].session_id)
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
