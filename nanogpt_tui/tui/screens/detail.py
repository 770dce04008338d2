"""One session in full: its log, its events, its submissions with their diff against the anchor, its verdicts."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from nanogpt_tui.contract import layout as L
from nanogpt_tui.tui.data.diffs import ANCHOR, classified_hunks, side_by_side_lines, unified_lines, versions
from nanogpt_tui.tui.data.formatting import format_duration, format_gpu_hours, place_text, time_left_text
from nanogpt_tui.tui.data.logrender import LogLine
from nanogpt_tui.tui.data.transcript import Transcript, read_transcript
from nanogpt_tui.tui.data.views import SessionView
from nanogpt_tui.tui.screens.main import SessionActions
from nanogpt_tui.tui.widgets.card import STATUS_STYLES
from nanogpt_tui.tui.widgets.footer import KeyFooter
from nanogpt_tui.tui.widgets.log_panel import LogPanel
from nanogpt_tui.tui.widgets.log_view import LogView
from nanogpt_tui.tui.widgets.transcript_view import TranscriptView
from nanogpt_tui.tui.widgets.verdict_detail import verdict_text
from nanogpt_tui.tui.widgets.verdict_table import VerdictTable

TABS = ("log", "events", "submissions", "verdicts")


def diff_lines(lines: list[str]) -> list[LogLine]:
    from nanogpt_tui.agents.render import env_secrets, mask_secrets, sanitize

    secrets = env_secrets()
    out = []
    for line in lines:
        kind = ("diff_hunk" if line.startswith("@@") else "diff_add" if line.startswith("+")
                else "diff_del" if line.startswith("-") else "output")
        # sanitize() trims; a diff's indentation (and a side-by-side diff's columns) must survive it.
        indent = " " * (len(line) - len(line.lstrip(" ")))
        out.append(LogLine(kind, indent + mask_secrets(sanitize(line), secrets) if line.strip() else ""))
    return out


class DetailScreen(SessionActions, Screen):
    BINDINGS = [
        Binding("escape", "back", "back"),
        Binding("k", "kill", "kill"),
        Binding("e", "extend", "extend"),
        Binding("r", "export", "report"),
        Binding("slash", "search", "search"),
        Binding("f", "follow", "follow"),
        Binding("t", "filter", "filter", show=False),
        Binding("n", "new_session", "new", show=False),
        Binding("g", "goto_transcript", "verdict in transcript", show=False),
        Binding("b", "diff_base", "diff base", show=False),
        Binding("s", "diff_side_by_side", "side by side", show=False),
        Binding("G", "goto_log", "verdict in log", show=False),
        *[Binding(str(i + 1), f"tab('{name}')", name, show=False) for i, name in enumerate(TABS)],
    ]

    def __init__(self, session_id: str, *, verdict_id: str | None = None) -> None:
        super().__init__(id="detail")
        self.session_id = session_id
        self.verdict_id = verdict_id
        self.session_dir: Path | None = None
        self._header_text: Text | None = None
        self._events_stat: tuple | None = None  # the events file as last read into the transcript
        self.diff_base = ANCHOR  # what the Submissions tab's diff compares against (b: the highlighted version)
        self.side_by_side = False  # s: old and new side by side instead of unified

    def compose(self) -> ComposeResult:
        yield Static(Text(""), id="detail-header")
        with TabbedContent(id="tabs", initial="verdicts" if self.verdict_id else "log"):
            with TabPane("Log (1)", id="log"):
                yield LogPanel("log", id="detail-log")
            with TabPane("Transcript (2)", id="events"):
                yield TranscriptView(id="transcript")
            with TabPane("Submissions (3)", id="submissions"):
                with Horizontal():
                    yield OptionList(id="submission-list")
                    yield LogView(id="diff")
            with TabPane("Verdicts (4)", id="verdicts"):
                with Vertical():
                    yield VerdictTable(show_session=False, id="session-verdicts")
                    with VerticalScroll(id="verdict-detail-scroll"):
                        yield Static(Text("no verdict yet"), id="verdict-detail")
        yield KeyFooter()

    def on_mount(self) -> None:
        root = Path(self.app.sessions_root) / self.session_id
        self.session_dir = root
        self.query_one("#detail-log", LogPanel).show(root / L.CONTAINER_LOG, f"{self.session_id} · container.log")
        self.load_transcript()
        self.query_one("#diff", LogView).follow = False
        self.update_views(self.app.views)
        self.load_submissions()
        if self.verdict_id:
            self.query_one(VerdictTable).select_verdict(self.verdict_id)
            self.query_one(VerdictTable).focus()
        else:
            self.query_one("#detail-log", LogPanel).view.focus()

    # --- data ---------------------------------------------------------------------------------------------

    def update_views(self, views: list[SessionView]) -> None:
        view = next((v for v in views if v.id == self.session_id), None)
        header = self.query_one("#detail-header", Static)
        if view is None:
            header.update(Text(f"{self.session_id}: this session's folder is gone or unreadable.", style="red"))
            return
        self._set_header(self._header(view))
        table = self.query_one(VerdictTable)
        count = len(table.rows_by_key)
        table.update_rows(view.verdicts)
        if len(table.rows_by_key) != count:
            self.load_submissions()
        self._show_verdict()
        self.load_transcript()

    def tick(self) -> None:
        view = self.app.view(self.session_id)
        if view is not None:
            self._set_header(self._header(view))

    def _set_header(self, text: Text) -> None:
        if text != self._header_text:
            self._header_text = text
            self.query_one("#detail-header", Static).update(text, layout=False)

    def _header(self, view: SessionView) -> Text:
        s = view.session
        b = view.budget_figures(self.app.clock())
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(s.id, style="bold")
        text.append("  ")
        text.append(f"● {s.status}", style=STATUS_STYLES.get(s.status, "bold"))
        text.append(f" ({s.status_reason})\n", style="bright_black")
        text.append(f"{s.agent} · strategy {s.strategy} ({s.strategy_hash[:10]}) · anchor {s.anchor}"
                    + (f" → {s.target}" if s.target else "") + f" · {place_text(s.backend, s.host, s.facts)}"
                    + f" · {s.gpus} GPU(s)"
                    + (f" {s.gpu_ids}" if s.gpu_ids else "") + "\n")
        text.append(f"budget {format_gpu_hours(b['used'])}/{format_gpu_hours(b['total'])} GPU-h")
        if b["seconds_left"] is not None:
            text.append(f" · {time_left_text(b['seconds_left'])}")
        if s.extensions:
            text.append(f" · extended {len(s.extensions)}x (+{sum(e.gpu_hours for e in s.extensions):g} GPU-h)")
        best = view.best_seconds_faster
        text.append(" · best " + ("-" if best is None else f"{best:+.2f} s"))
        if view.best_percent is not None:
            text.append(f" ({view.best_percent:.1f}% of human progress)")
        text.append("\n")
        # The sandbox, then what the session costs and what its GPUs do, before the token counts: at 100 columns
        # the end of a header line is cut, and the dollars and an idle-GPU alert must not be what goes.
        text.append(view.sandbox_text(), style="bold yellow" if not s.sandboxed else
                    "bold red" if view.blocked else "bright_black")
        text.append(f" · {view.cost.text() if view.cost else 'cost -'}")
        if view.gpu is not None and view.gpu.latest is not None:
            figures = view.gpu.compact().split(" · ", 1)
            text.append(f" · GPU {figures[0]}")
            if view.gpu.idle_s >= 60:
                text.append(f" idle {format_duration(view.gpu.idle_s)}", style="yellow")
            text.append("".join(f" · {rest}" for rest in figures[1:]))
        text.append(f" · {view.usage.text()}\n")
        text.append("GPU-h by kind of change: ", style="bold")
        if view.changes is None:
            text.append("classifying the experiments and submissions…", style="bright_black")
        else:
            text.append(view.changes.detail(b["used"]))
        return text

    def _show_verdict(self) -> None:
        row = self.query_one(VerdictTable).current
        detail = self.query_one("#verdict-detail", Static)
        detail.update(verdict_text(row.verdict, row.percent) if row is not None else Text("no verdict yet"))

    def on_data_table_row_highlighted(self, event) -> None:
        self._show_verdict()

    def on_verdict_table_chosen(self, message: VerdictTable.Chosen) -> None:
        message.stop()
        self._show_verdict()
        self.query_one("#verdict-detail-scroll").focus()

    # --- transcript ---------------------------------------------------------------------------------------

    def _events_file_stat(self) -> tuple | None:
        try:
            st = (self.session_dir / L.EVENTS_FILE).stat()
        except (OSError, TypeError):
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def load_transcript(self) -> None:
        """Read the events file into turns again when it changed since the last read."""
        stat = self._events_file_stat()
        if stat == self._events_stat and self.query_one(TranscriptView).transcript is not None:
            return
        self._events_stat = stat
        self.read_transcript(self.session_dir / L.EVENTS_FILE)

    @work(thread=True, exclusive=True, exit_on_error=False, group="transcript")
    def read_transcript(self, path: Path) -> None:
        transcript = read_transcript(path)
        self.app.call_from_thread(self._show_transcript, transcript)

    def _show_transcript(self, transcript: Transcript) -> None:
        self.query_one(TranscriptView).show(transcript)
        tabs = self.query_one(TabbedContent)
        tabs.get_tab("events").label = f"Transcript (2) · {len(transcript.turns)} turns"

    def action_goto_transcript(self) -> None:
        """From the verdict under the cursor to its place in the transcript."""
        row = self.query_one(VerdictTable).current
        view = self.query_one(TranscriptView)
        if row is None or view.transcript is None:
            self.notify("No verdict is selected (Verdicts tab, 4), or the transcript is not read yet.",
                        severity="warning")
            return
        found = view.transcript.find_verdict(row.verdict.submission)
        if found is None or not view.reveal(*found):
            self.notify(f"{row.verdict.submission} does not appear in the agent's events.", severity="warning",
                        markup=False)
            return
        self.query_one(TabbedContent).active = "events"
        view.focus()

    def action_goto_log(self) -> None:
        """From the verdict under the cursor to the last mention of its submission in the session's log."""
        row = self.query_one(VerdictTable).current
        if row is None:
            self.notify("No verdict is selected (Verdicts tab, 4).", severity="warning")
            return
        self.query_one(TabbedContent).active = "log"
        panel = self.query_one("#detail-log", LogPanel)
        panel.find(row.verdict.submission)
        panel.view.focus()

    # --- submissions ----------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="submissions")
    def load_submissions(self) -> None:
        found = versions(self.session_dir)
        self.app.call_from_thread(self._set_submissions, [name for name, _ in found])

    def _set_submissions(self, names: list[str]) -> None:
        options = self.query_one("#submission-list", OptionList)
        current = options.highlighted
        options.clear_options()
        options.add_options([Option(Text(name), id=name) for name in names if name != ANCHOR] or
                            [Option(Text("no experiments or submissions yet"), id="", disabled=True)])
        names = [n for n in names if n != ANCHOR]
        if names:
            options.highlighted = current if current is not None and current < len(names) else len(names) - 1

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            self.load_diff(event.option.id)

    def load_diff(self, name: str) -> None:
        self.read_diff(name, self.diff_base, self.side_by_side, max(60, self.size.width - 30))

    @work(thread=True, exclusive=True, exit_on_error=False, group="diff")
    def read_diff(self, name: str, base: str, side_by_side: bool, width: int) -> None:
        """`name` against `base` (the anchor, or the version `b` chose), each hunk with its kind of change."""
        known = dict(versions(self.session_dir))
        base = base if base in known else ANCHOR
        if name not in known:
            return
        hunks = classified_hunks(known[base], known[name], base, name)
        raw = side_by_side_lines(hunks, base, name, width) if side_by_side else unified_lines(hunks, base, name)
        self.app.call_from_thread(self.query_one("#diff", LogView).replace, diff_lines(raw), True)

    def _highlighted_version(self) -> str | None:
        options = self.query_one("#submission-list", OptionList)
        if options.highlighted is None:
            return None
        return options.get_option_at_index(options.highlighted).id or None

    def action_diff_base(self) -> None:
        """Compare against the highlighted version from now on (again on it: back to the anchor)."""
        name = self._highlighted_version()
        if name is None:
            return
        self.diff_base = ANCHOR if self.diff_base == name else name
        self.notify(f"Diffs now against {self.diff_base}.", timeout=2, markup=False)
        self.load_diff(name)

    def action_diff_side_by_side(self) -> None:
        self.side_by_side = not self.side_by_side
        name = self._highlighted_version()
        if name is not None:
            self.load_diff(name)

    # --- actions ------------------------------------------------------------------------------------------

    def file_grew(self, session_id: str, what: str) -> None:
        if session_id == self.session_id:
            if what == "log":
                self.query_one("#detail-log", LogPanel).poke()
            else:
                self.load_transcript()

    def target_session_id(self) -> str | None:
        return self.session_id

    def log_panel(self) -> LogPanel | None:
        tabs = self.query_one(TabbedContent)
        if tabs.active != "log":
            tabs.active = "log"
        return self.query_one("#detail-log", LogPanel)

    def action_tab(self, name: str) -> None:
        self.query_one(TabbedContent).active = name

    def action_back(self) -> None:
        self.app.pop_screen()
