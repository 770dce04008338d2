"""Small modal dialogs: confirm a kill, ask how many GPU-hours to add, choose what a report covers, help."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Static

from nanogpt_tui.fields import MAX_GPU_HOURS, BadField, number_from_text


class ConfirmKill(ModalScreen[bool]):
    """Asks before stopping a session; `y` kills, `n` or `esc` keeps it running."""

    BINDINGS = [Binding("y", "answer(True)", "kill"), Binding("n,escape", "answer(False)", "cancel")]

    def __init__(self, session_id: str | list[tuple[str, str]], status: str = "") -> None:
        super().__init__()
        self.targets = session_id if isinstance(session_id, list) else [(session_id, status)]
        self.session_id, self.status = self.targets[0]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            many = len(self.targets) > 1
            yield Static(Text(f"Kill {len(self.targets)} sessions?" if many else "Kill session?", style="bold"),
                         classes="dialog-title")
            who = ", ".join(f"{sid} ({status})" for sid, status in self.targets)
            yield Static(Text(f"{who} {'stop' if many else 'stops'} now: the agent gets SIGINT, then SIGKILL "
                              "after a grace period. Files stay."))
            with Horizontal(classes="buttons"):
                yield Button("Kill (y)", variant="error", id="yes")
                yield Button("Keep running (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class ExtendDialog(ModalScreen[float | None]):
    """Asks how many GPU-hours to add; the deadline moves without restarting the session."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, session_id: str | list[str], budget_gpu_hours: float, gpus: int) -> None:
        super().__init__()
        self.session_ids = session_id if isinstance(session_id, list) else [session_id]
        self.session_id = self.session_ids[0]
        self.budget = budget_gpu_hours
        self.gpus = gpus

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            many = len(self.session_ids) > 1
            yield Static(Text(f"Extend {len(self.session_ids)} sessions" if many else "Extend session",
                              style="bold"), classes="dialog-title")
            if many:
                yield Static(Text(f"{', '.join(self.session_ids)}: {self.budget:g} GPU-hours in all on "
                                  f"{self.gpus} GPU(s). How many GPU-hours to add to each?"))
            else:
                yield Static(Text(f"{self.session_id}: budget {self.budget:g} GPU-hours on {self.gpus} GPU(s). "
                                  "How many GPU-hours to add?"))
            yield Input(placeholder="GPU-hours, e.g. 8", id="hours")
            yield Static("", id="error", classes="dialog-error")
            with Horizontal(classes="buttons"):
                yield Button("Extend", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def _submit(self) -> None:
        text = self.query_one(Input).value.strip()
        try:
            hours = number_from_text(text, "extension", positive=True, maximum=MAX_GPU_HOURS)
        except BadField as err:
            self.query_one("#error", Static).update(Text(f"The {err}; type GPU-hours such as 8 or 0.5."))
            return
        self.dismiss(hours)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ExportDialog(ModalScreen[str | None]):
    """Chooses what the report covers: the focused session (`s`) or all sessions (`a`)."""

    BINDINGS = [Binding("s", "choose('one')", "this session"), Binding("a", "choose('all')", "all sessions"),
                Binding("escape", "choose(None)", "cancel")]

    def __init__(self, session_id: str | None, count: int) -> None:
        super().__init__()
        self.session_id = session_id
        self.count = count

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text("Export a report", style="bold"), classes="dialog-title")
            yield Static(Text("Markdown, HTML and JSON with the progress figure: one session's report goes to its "
                              "report/ folder, a report of all sessions to the sessions folder's reports/."))
            with Horizontal(classes="buttons"):
                yield Button("This session (s)", variant="primary", id="one", disabled=self.session_id is None)
                yield Button(f"All {self.count} sessions (a)", id="all", disabled=not self.count)
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_choose(event.button.id if event.button.id in ("one", "all") else None)

    def action_choose(self, what: str | None) -> None:
        if what == "one" and self.session_id is None:
            return
        self.dismiss(what)


HELP = """\
Sessions                                   Log (focused session)
  ←/→/↑/↓, tab   move between sessions        /      search, in the log pane (enter: next match up)
  enter          session detail               f      follow on/off (scrolling up pauses it)
  esc            back                         t      filter by event type
  n              new session                  ↑ at the top reads older lines from disk
  k              kill (asks first)
  e              extend (asks GPU-hours)     Many sessions (cards and table alike)
  r              export a report              T      table / cards
  ctrl+p         command palette              s / S  sort by the next column / reverse
  ?              this help                    /      filter: agent, strategy, status, host, anchor, id
  q              quit: sessions keep running  a      status filter (all, live, running, ended, failed)
                 (opening it again            h      host filter (cycles)
                 re-attaches)                 space  mark: k and e act on every marked session
Plot and panes                                c      export the table as CSV (sessions/reports/)
  d      human timeline by calendar date
  l/p/v  show log / plot / verdicts (small terminals)
"""


class HelpScreen(Screen[None]):
    """The keys, on a screen of their own (k9s-style): no dimmed copy of the screen below to draw."""

    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Static(Text("Keys", style="bold"), classes="dialog-title")
            yield Static(Text(HELP))
