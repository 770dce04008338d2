"""The main screen: every session's card, and for the focused one its live log, the progress plot and verdicts."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Static

from nanogpt_tui.dashboard import SessionView, human_timeline_by_date, plot_data
from nanogpt_tui.sessions import layout as L
from nanogpt_tui.tui.widgets.card import SessionCard
from nanogpt_tui.tui.widgets.footer import KeyFooter
from nanogpt_tui.tui.widgets.grid import SessionGrid
from nanogpt_tui.tui.widgets.log_panel import LogPanel
from nanogpt_tui.tui.widgets.plot import ProgressPlot
from nanogpt_tui.tui.widgets.verdict_table import VerdictTable

NARROW_WIDTH = 120  # below this the lower area shows one pane at a time (l, p, v switch)
PANES = ("log", "plot", "verdicts")


class SessionActions:
    """Keys every session screen shares; `target_session_id` says which session they act on."""

    def target_session_id(self) -> str | None:
        raise NotImplementedError

    def action_kill(self) -> None:
        self.app.ask_kill(self.target_session_id())

    def action_extend(self) -> None:
        self.app.ask_extend(self.target_session_id())

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
        Binding("slash", "search", "search"),
        Binding("f", "follow", "follow"),
        Binding("t", "filter", "filter", show=False),
        Binding("d", "toggle_dates", "by date", show=False),
        Binding("l", "pane('log')", "log", show=False),
        Binding("p", "pane('plot')", "plot", show=False),
        Binding("v", "pane('verdicts')", "verdicts", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="main")
        self.selected: str | None = None
        self.pane = "log"
        self._title: Text | None = None
        self._plot_key: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text(""), id="title")
        yield SessionGrid(id="grid")
        with Horizontal(id="middle"):
            yield LogPanel("log", id="log-panel")
            yield ProgressPlot(id="plot")
        yield VerdictTable(id="verdicts")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.add_class("-show-log")
        self._layout_for(self.app.size.width)
        self.update_views(self.app.views)

    def on_resize(self, event) -> None:
        self._layout_for(event.size.width)

    def _layout_for(self, width: int) -> None:
        self.set_class(width < NARROW_WIDTH, "-narrow")
        if self.is_mounted:
            self.update_title()

    # --- data ---------------------------------------------------------------------------------------------

    def update_views(self, views: list[SessionView]) -> None:
        grid = self.query_one(SessionGrid)
        added = grid.update_views(views)
        if self.selected not in {v.id for v in views}:
            self.selected = None
        if self.selected is None and views:
            wanted = getattr(self.app, "initial_selection", None)
            card = grid.card(wanted) if wanted else None
            card = card or (added[0] if added else grid.cards[0] if grid.cards else None)
            if card is not None:
                self.select(card.session_id)
                if self.focused is None:
                    grid.focus()
        elif not views and self.query_one(LogPanel).path is not None:
            self.query_one(LogPanel).show(None, "")
        self.query_one(VerdictTable).update_rows([row for v in views for row in v.verdicts])
        self.replot()
        self.update_title()

    def tick(self) -> None:
        """The clock moved: budget figures and time left change, and the plot's lines reach the present."""
        self.query_one(SessionGrid).refresh_cards()

    def update_title(self) -> None:
        views = self.app.views
        running = sum(1 for v in views if v.session.status == "running")
        hints = " · l/p/v log/plot/verdicts" if self.has_class("-narrow") else ""
        title = Text.assemble(("nanogpt-tui", "bold"), " control room · ",
                              f"{len(views)} session{'s' if len(views) != 1 else ''}, {running} running",
                              (f"{hints} · ? help · ctrl+p commands · q quit (sessions keep running)",
                               "bright_black"))
        title.no_wrap, title.overflow = True, "ellipsis"
        if title != self._title:
            self._title = title
            self.query_one("#title", Static).update(title, layout=False)

    def replot(self, force: bool = False) -> None:
        """Redraw the plot when what it shows changed (drawing is the costliest thing on this screen)."""
        view = self.app.view(self.selected)
        plot = self.query_one(ProgressPlot)
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
        changed = session_id != self.selected
        self.selected = session_id
        self.query_one(SessionGrid).select(session_id, announce=False)
        view = self.app.view(session_id)
        if view is not None and changed:
            path = self.app.sessions_root / session_id / L.CONTAINER_LOG
            self.query_one(LogPanel).show(path, f"{session_id} · container.log")
            self.call_after_refresh(self.replot)  # after the frame that answers the key

    # --- events -------------------------------------------------------------------------------------------

    def on_session_grid_selected(self, message: SessionGrid.Selected) -> None:
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
        plot = self.query_one(ProgressPlot)
        plot.by_date = not plot.by_date
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
