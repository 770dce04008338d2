"""The main screen: every session's card (or, with `T`, a table row each), sorted and filtered by one query; for
the selected one its live log, the progress plot and verdicts."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Input, Static

from nanogpt_tui.contract import layout as L
from nanogpt_tui.tui.data.fleet import FleetQuery, ViewState
from nanogpt_tui.tui.data.plotdata import human_timeline_by_date, plot_data
from nanogpt_tui.tui.data.views import SessionView
from nanogpt_tui.tui.widgets.card import SessionCard
from nanogpt_tui.tui.widgets.footer import KeyFooter
from nanogpt_tui.tui.widgets.grid import SessionGrid
from nanogpt_tui.tui.widgets.log_panel import LogPanel
from nanogpt_tui.tui.widgets.plot import PlotLegend, PlotPane
from nanogpt_tui.tui.widgets.table import SessionTable
from nanogpt_tui.tui.widgets.verdict_table import VerdictTable


class Room(Protocol):
    """What the main screen asks of the app that pushes it (the control room; screens do not import the app)."""

    view_state: ViewState | None
    looked: bool
    initial_selection: str | None

    def sessions_drawn(self) -> None: ...

    def save_view_state(self, state: ViewState) -> None: ...

NARROW_WIDTH = 120  # below this the lower area shows one pane at a time (l, p, v switch)
# After a move to another session the plot is redrawn once the moves pause for this long: drawing it is the
# costliest thing on this screen, and keys held down should move the selection, not wait for plots.
REPLOT_AFTER_MOVE_S = 0.25
PANES = ("log", "plot", "verdicts")


class SessionActions:
    """Keys every session screen shares; `target_session_id` says which session they act on, and
    `target_session_ids` which sessions kill and extend act on (the marked ones, where some are)."""

    shows_sessions = True  # the app hands it every new set of session views (`update_views`)

    def target_session_id(self) -> str | None:
        raise NotImplementedError

    def target_session_ids(self) -> list[str]:
        sid = self.target_session_id()
        return [sid] if sid else []

    def action_kill(self) -> None:
        ids = self.target_session_ids()
        self.app.ask_kill(ids if len(ids) > 1 else self.target_session_id())

    def action_extend(self) -> None:
        ids = self.target_session_ids()
        self.app.ask_extend(ids if len(ids) > 1 else self.target_session_id())

    def action_export(self) -> None:
        self.app.ask_export(self.target_session_id())

    def action_new_session(self) -> None:
        self.app.ask_new_session()

    def log_panel(self) -> LogPanel | None:
        raise NotImplementedError

    def action_search(self) -> None:
        panel = self.log_panel()
        if panel is not None:
            panel.open_search()

    def action_follow(self) -> None:
        panel = self.log_panel()
        if panel is not None:
            following = panel.toggle_follow()
            self.notify("Following the log." if following else "Follow paused.", timeout=1.5)

    def action_filter(self) -> None:
        panel = self.log_panel()
        if panel is not None:
            name = panel.cycle_filter()
            if panel.usable_filters() == ["all"]:
                self.notify("No filter matches any line here yet: every line shows.", timeout=3)
            else:
                self.notify(f"Log filter: {name}.", timeout=1.5)


class MainScreen(SessionActions, Screen):
    """Cards on top; below them the selected session's log and the progress plot; the verdicts at the bottom."""

    AUTO_FOCUS = "SessionGrid"

    BINDINGS = [
        Binding("enter", "open_detail", "detail"),
        Binding("n", "new_session", "new"),
        Binding("k", "kill", "kill"),
        Binding("e", "extend", "extend"),
        Binding("r", "export", "report"),
        Binding("slash", "slash", "filter"),
        Binding("T", "toggle_table", "table"),
        Binding("s", "sort_next", "sort"),
        Binding("S", "sort_reverse", "reverse", show=False),
        Binding("a", "filter_status", "status", show=False),
        Binding("space", "mark", "mark", show=False),
        Binding("c", "export_csv", "csv", show=False),
        Binding("f", "follow", "follow"),
        Binding("t", "filter", "filter", show=False),
        Binding("d", "toggle_dates", "by date", show=False),
        Binding("h", "filter_host", "host", show=False),
        Binding("l", "pane('log')", "log", show=False),
        Binding("p", "pane('plot')", "plot", show=False),
        Binding("v", "pane('verdicts')", "verdicts", show=False),
    ]

    @property
    def room(self) -> Room:
        """The control room this screen belongs to (it is only ever pushed by the control room's app)."""
        return cast(Room, self.app)

    def __init__(self) -> None:
        # The pane class from the start: set once mounted, it would restyle every widget of the first frame.
        super().__init__(id="main", classes="-show-log")
        self.selected: str | None = None
        self.pane = "log"
        self._title: Text | None = None
        self._plot_key: tuple | None = None
        self._replot_timer = None  # a redraw of the plot waiting for moves between sessions to pause
        state = self.room.view_state
        self.query_state: FleetQuery = state.query if state is not None else FleetQuery()
        """Which sessions the cards and the table show, and in what order (kept between runs)."""
        self.table_mode: bool = state.table if state is not None else False
        """Whether the table stands in for the cards (`T`)."""
        self.marked: set[str] = set()
        """Sessions marked with space: kill and extend act on all of them."""
        self._grid_stale = False  # the cards miss views that came while the table was shown
        self._shown: list[SessionView] = []

    @property
    def host_filter(self) -> str | None:
        """Show only the sessions on this host (None: every host)."""
        return self.query_state.host

    def compose(self) -> ComposeResult:
        yield Static(Text(""), id="title")
        yield Input(placeholder="filter: agent, strategy, status, host, anchor or id (agent:codex for one) · "
                                "enter keeps · esc clears", id="session-filter")
        yield SessionGrid(id="grid")
        yield SessionTable(id="table")
        with Horizontal(id="middle"):
            yield LogPanel("log", id="log-panel")
            yield PlotPane(id="plot")
        yield VerdictTable(id="verdicts")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(SessionGrid).display = not self.table_mode
        self.query_one(SessionTable).display = self.table_mode
        self.set_class(bool(self.query_state.text), "-filtering")  # a filter in effect stays in sight
        self.query_one("#session-filter", Input).value = self.query_state.text
        self._layout_for(self.app.size.width)
        self.update_views(self.app.views)
        if self.table_mode:
            self.query_one(SessionTable).focus()
        self.screen_layout_refresh_signal.subscribe(self, self._after_layout)

    def _after_layout(self, _screen) -> None:
        """After each layout until the first look at the sessions is laid out (and so drawn: the frame is made in
        the same pass): tell the app, which then starts the work that would compete with that frame."""
        if not self.room.looked:
            return
        if self.table_mode:
            laid_out = bool(self.query_one(SessionTable).region.area)
        else:
            # Every card in sight: cards mounted together can be laid out over two passes (seen under load: the
            # first row in one, the second row still without a region), and the first look is the later frame.
            cards = self.query_one(SessionGrid).cards
            laid_out = bool(cards) and all(card.region.area for card in cards)
        if self._shown and not laid_out:
            return
        self.screen_layout_refresh_signal.unsubscribe(self)
        self.room.sessions_drawn()

    def on_resize(self, event) -> None:
        self._layout_for(event.size.width)

    def _layout_for(self, width: int) -> None:
        self.set_class(width < NARROW_WIDTH, "-narrow")
        # Tighter keys in the footer on a narrow screen, so `? help` at its end stays in sight.
        self.query_one(KeyFooter).compact = width < NARROW_WIDTH
        if self.is_mounted:
            self.query_one(SessionGrid).set_columns()  # the rows of cards that fit follow the grid's max-height
            self.update_title()

    # --- data ---------------------------------------------------------------------------------------------

    def shown(self, views: list[SessionView]) -> list[SessionView]:
        """The views the query lets through, in its order."""
        return self.query_state.apply(views, self.app.clock())

    def set_query(self, query: FleetQuery) -> None:
        """Show the sessions `query` picks, on the cards and in the table; remembered for the next run."""
        self.query_state = query
        self.update_views(self.app.views, replot=False)  # the plot shows every session, whatever the query
        self._save_state()

    def _save_state(self) -> None:
        self.room.save_view_state(ViewState(self.query_state, self.table_mode))

    def hosts(self) -> list[str]:
        """The hosts to filter by: the config's, then any other a session runs on (e.g. `local`)."""
        names = [h.name for h in self.app.config.hosts]
        return names + sorted({v.session.host for v in self.app.views if v.session.host} - set(names))

    def action_filter_host(self) -> None:
        hosts = self.hosts()
        choices: list[str | None] = [None, *hosts]
        index = choices.index(self.host_filter) if self.host_filter in choices else 0
        self.set_query(replace(self.query_state, host=choices[(index + 1) % len(choices)]))
        if self.host_filter is None:
            self.notify("Showing the sessions of every host.", timeout=1.5)
        else:
            count = len(self.shown(self.app.views))
            self.notify(f"Showing the {count} session(s) on host {self.host_filter} (h: next host).", timeout=1.5,
                        markup=False)

    def update_views(self, views: list[SessionView], replot: bool = True) -> None:
        views = self.shown(views)
        self._shown = views
        self.marked &= {v.id for v in self.app.views}
        grid = self.query_one(SessionGrid)
        # Only the pane in sight follows at once; the cards catch up when `T` brings them back.
        if not self.table_mode:
            grid.update_views(views, marked=frozenset(self.marked), of=len(self.app.views))
        self._grid_stale = self.table_mode
        self._show_table()
        ids = {v.id for v in views}
        if self.selected not in ids:
            self.selected = None
        if self.selected is None and views:
            wanted = self.room.initial_selection
            self.select(wanted if wanted in ids else views[0].id)
            if self.focused is None:
                (self.query_one(SessionTable) if self.table_mode else grid).focus()
        elif not views and self.query_one(LogPanel).path is not None:
            self.query_one(LogPanel).show(None, "")
        self.query_one(VerdictTable).update_rows([row for v in views for row in v.verdicts])
        if self._plot_key is None:  # nothing plotted yet: the first plot comes after the frame with the cards
            self.call_after_refresh(self.replot)
        elif replot and self._replot_timer is None:
            self.replot()
        self.update_title()

    def _show_table(self) -> None:
        if self.table_mode:
            self.query_one(SessionTable).show(self._shown, self.app.clock(), marked=frozenset(self.marked),
                                              sort_key=self.query_state.sort, reverse=self.query_state.reverse)

    def tick(self) -> None:
        """The clock moved: budget figures and time left change, and the plot's lines reach the present."""
        if self.table_mode:
            self._show_table()
        else:
            self.query_one(SessionGrid).refresh_cards()

    def update_title(self) -> None:
        """`nanogpt-tui control room · 24 sessions, 16 running · 2 marked · by cost ↓ · live · ? help · …`: what is
        shown always; then the hints, most needed first, as many as fit."""
        views = self._shown
        running = sum(1 for v in views if v.session.status == "running")
        where = f" on host {self.host_filter}" if self.host_filter is not None else ""
        hidden = len(self.app.views) - len(views)
        query = replace(self.query_state, host=None).describe()
        marked = f" · {len(self.marked)} marked" if self.marked else ""
        first, last, of = self.query_one(SessionGrid).window()
        window = f" · cards {first}-{last}/{of}" if not self.table_mode and (first > 1 or last < of) else ""
        width = self.app.size.width - 2  # the title's padding
        # On a narrow screen l/p/v come first: the only way to the plot and the verdicts (the footer ends in ? help).
        hints = [" · l/p/v log/plot/verdicts"] if self.has_class("-narrow") else []
        hints += [" · ? help", " · ctrl+p commands", " · q quit (sessions keep running)"]
        state = Text.assemble(f"{len(views)} session{'s' if len(views) != 1 else ''}{where}, {running} running",
                              (f" ({hidden} hidden)" if hidden else "", "yellow"), marked, f" · {query}{window}")
        # A narrow screen shortens the app's name, then leaves it out, before what is shown or the help key.
        for name in (" control room · ", " · ", None):
            if name is None or len("nanogpt-tui") + len(name) + state.cell_len + len(hints[0]) <= width:
                break
        title = Text.assemble(("nanogpt-tui", "bold"), name, state) if name is not None else state
        for hint in hints:
            if title.cell_len + len(hint) > width:
                break
            title.append(hint, style="bright_black")
        title.no_wrap, title.overflow = True, "ellipsis"
        if title != self._title:
            self._title = title
            self.query_one("#title", Static).update(title, layout=False)

    def replot(self, force: bool = False) -> None:
        """Redraw the plot when what it shows changed (drawing is the costliest thing on this screen)."""
        view = self.app.view(self.selected)
        plot = self.query_one(PlotPane)
        if view is None:
            if self._plot_key != ():
                self._plot_key = ()
                plot.set_data(None, [])
            return
        s = view.session
        data = plot_data(self.app.views, s.anchor, s.target, self.app.timeline, self.app.clock())
        key = data.key()
        if key == self._plot_key and not force:
            return
        self._plot_key = key
        plot.set_data(data, human_timeline_by_date(self.app.timeline, s.anchor, s.target))

    def select(self, session_id: str) -> None:
        """Make `session_id` the session the log, plot and actions refer to. The card's mark and the log's
        switch happen here together, so the key that asked is answered by one frame; the plot follows later."""
        changed, first = session_id != self.selected, self.selected is None
        self.selected = session_id
        grid = self.query_one(SessionGrid)
        if grid.selected == session_id:
            grid.show_selection()  # the grid announced it: mark the card now, with the log's switch
        else:
            grid.select(session_id, announce=False)
        self.query_one(SessionTable).select(session_id, announce=False)
        view = self.app.view(session_id)
        if view is not None and changed:
            path = self.app.sessions_root / session_id / L.CONTAINER_LOG
            self.query_one(LogPanel).show(path, f"{session_id} · container.log")
            if self._replot_timer is not None:
                self._replot_timer.stop()
            if first:
                self._replot_timer = None
                self.call_after_refresh(self.replot)  # the first selection: after the frame that shows it
            else:
                self._replot_timer = self.set_timer(REPLOT_AFTER_MOVE_S, self._replot_after_move)

    def _replot_after_move(self) -> None:
        self._replot_timer = None
        self.replot()

    # --- events -------------------------------------------------------------------------------------------

    def on_session_grid_selected(self, message: SessionGrid.Selected) -> None:
        self.select(message.session_id)

    def on_session_grid_window_moved(self, message: SessionGrid.WindowMoved) -> None:
        self.update_title()

    def on_session_table_selected(self, message: SessionTable.Selected) -> None:
        self.select(message.session_id)

    def on_session_card_open(self, message: SessionCard.Open) -> None:
        self.app.open_detail(message.session_id)

    def on_verdict_table_chosen(self, message: VerdictTable.Chosen) -> None:
        self.app.open_detail(message.session_id, verdict_id=message.verdict_id)

    def file_grew(self, session_id: str, what: str) -> None:
        if what == "log" and session_id == self.selected:
            self.query_one(LogPanel).poke()

    # --- actions ------------------------------------------------------------------------------------------

    def target_session_id(self) -> str | None:
        return self.selected

    def target_session_ids(self) -> list[str]:
        if self.marked:
            return [v.id for v in self._shown if v.id in self.marked] or sorted(self.marked)
        return super().target_session_ids()

    # --- many sessions: table, sort, filter, marks ----------------------------------------------------------

    def action_toggle_table(self) -> None:
        self.table_mode = not self.table_mode
        grid, table = self.query_one(SessionGrid), self.query_one(SessionTable)
        # `display` on the two widgets, not a class on the screen: a screen class makes Textual restyle every
        # widget on it (measured: most of the toggle's time with 50 cards).
        grid.display, table.display = not self.table_mode, self.table_mode
        self._show_table()
        if self.table_mode:
            table.select(self.selected, announce=False)
            table.focus()
        else:
            if self._grid_stale:
                grid.update_views(self._shown, marked=frozenset(self.marked), of=len(self.app.views))
                self._grid_stale = False
                grid.select(self.selected, announce=False)
            grid.focus()
        self.update_title()
        self._save_state()

    def action_sort_next(self) -> None:
        self.set_query(self.query_state.next_sort())
        self.notify(f"Sorted {self.query_state.describe().split(' · ')[0]} (s: next column, S: reverse).",
                    timeout=1.5)

    def action_sort_reverse(self) -> None:
        self.set_query(replace(self.query_state, reverse=not self.query_state.reverse))

    def action_filter_status(self) -> None:
        self.set_query(self.query_state.next_status())
        self.notify(f"Status filter: {self.query_state.status} (a: next).", timeout=1.5)

    def action_slash(self) -> None:
        """`/` in the log pane searches the log; anywhere else it filters the sessions."""
        panel = self.query_one(LogPanel)
        if self.focused is not None and panel in self.focused.ancestors_with_self:
            panel.open_search()
            return
        box = self.query_one("#session-filter", Input)
        self.add_class("-filtering")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "session-filter":
            event.stop()
            # Characters typed faster than the cards follow: the box already holds a later word, whose own change
            # is on its way; only the latest word is applied (each one sorts, filters and redraws the fleet).
            if event.value != event.input.value:
                return
            if event.value != self.query_state.text:
                self.set_query(replace(self.query_state, text=event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "session-filter":
            event.stop()
            self._close_filter()

    def _close_filter(self) -> None:
        self.set_class(bool(self.query_state.text), "-filtering")
        (self.query_one(SessionTable) if self.table_mode else self.query_one(SessionGrid)).focus()

    def key_escape(self) -> None:
        """esc in the filter box clears the text; anywhere else on this screen, every filter (text, status,
        host), so that a user lost in filters gets all the sessions back with one key."""
        box = self.query_one("#session-filter", Input)
        if self.focused is box:
            box.value = ""
            self.set_query(replace(self.query_state, text=""))
            self._close_filter()
            return
        query = self.query_state
        if query.text or query.status != "all" or query.host is not None:
            box.value = ""
            self.set_query(replace(query, text="", status="all", host=None))
            self._close_filter()
            self.notify(f"Filters cleared: all {len(self.app.views)} sessions shown.", timeout=1.5)

    def action_mark(self) -> None:
        if self.selected is None:
            return
        self.marked ^= {self.selected}
        self.update_views(self.app.views)

    def action_export_csv(self) -> None:
        self.app.export_csv(list(self._shown))

    def log_panel(self) -> LogPanel | None:
        if self.has_class("-narrow") and self.pane != "log":
            self.action_pane("log")
        return self.query_one(LogPanel)

    def action_open_detail(self) -> None:
        if self.selected is None:
            self.notify("No session is selected; move to a session card first (arrows or tab).", severity="warning")
            return
        self.app.open_detail(self.selected)

    def action_toggle_dates(self) -> None:
        plot = self.query_one(PlotPane).figure
        if plot is None:  # not drawn yet (the first frame is still coming)
            return
        plot.by_date = not plot.by_date
        self.query_one(PlotLegend).show(plot.data, plot.by_date)
        if self.has_class("-narrow"):
            self.action_pane("plot")
        self.notify("Plot: human timeline by calendar date." if plot.by_date else "Plot: progress over GPU-hours.",
                    timeout=1.5)

    def action_pane(self, pane: str) -> None:
        self.pane = pane
        for name in PANES:
            self.set_class(name == pane, f"-show-{name}")
        if pane == "verdicts":
            self.query_one(VerdictTable).focus()
        elif pane == "log":
            self.query_one(LogPanel).view.focus()
        else:
            # The plot takes no keys: the sessions do (on a narrow screen the log that had focus is hidden now, and
            # the arrows that follow would reach nothing).
            (self.query_one(SessionTable) if self.table_mode else self.query_one(SessionGrid)).focus()
