"""Small modal dialogs: confirm a kill, ask how many GPU-hours to add, choose what a report covers, help."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Static

from nanogpt_tui.fields import MAX_GPU_HOURS, BadField, number_from_text


LISTED = 4  # a dialog for many sessions names this many, then says how many more: its buttons stay in sight


def listed(names: list[str]) -> str:
    """`a, b, c, d and 12 more`."""
    if len(names) <= LISTED + 1:
        return ", ".join(names)
    return f"{', '.join(names[:LISTED])} and {len(names) - LISTED} more"


def left_out(skipped: int) -> str:
    """` 8 marked sessions have ended and are left out.`; empty for none."""
    if not skipped:
        return ""
    return f" {skipped} marked session{'s have' if skipped != 1 else ' has'} ended and " \
        f"{'are' if skipped != 1 else 'is'} left out."


class ConfirmKill(ModalScreen[bool]):
    """Asks before stopping a session; `y` kills, `n` or `esc` keeps it running."""

    BINDINGS = [Binding("y", "answer(True)", "kill"), Binding("n,escape", "answer(False)", "cancel")]

    def __init__(self, session_id: str | list[tuple[str, str]], status: str = "", skipped: int = 0) -> None:
        super().__init__()
        self.targets = session_id if isinstance(session_id, list) else [(session_id, status)]
        self.session_id, self.status = self.targets[0]
        self.skipped = skipped  # marked sessions left out, having ended

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            many = len(self.targets) > 1
            yield Static(Text(f"Kill {len(self.targets)} sessions?" if many else "Kill session?", style="bold"),
                         classes="dialog-title")
            statuses = sorted({status for _, status in self.targets})
            who = listed([sid for sid, _ in self.targets]) + f" ({', '.join(statuses)})" if many else \
                f"{self.session_id} ({self.status})"
            yield Static(Text(f"{who} {'stop' if many else 'stops'} now: the agent gets SIGINT, then SIGKILL "
                              f"after a grace period. Files stay.{left_out(self.skipped)}"))
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

    def __init__(self, session_id: str | list[str], budget_gpu_hours: float, gpus: int, skipped: int = 0) -> None:
        super().__init__()
        self.skipped = skipped  # marked sessions left out, having ended
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
                yield Static(Text(f"{listed(self.session_ids)}: {self.budget:g} GPU-hours in all on "
                                  f"{self.gpus} GPU(s).{left_out(self.skipped)} How many GPU-hours to add to each?"))
            else:
                yield Static(Text(f"{self.session_id}: budget {self.budget:g} GPU-hours on {self.gpus} GPU(s)."
                                  f"{left_out(self.skipped)} How many GPU-hours to add?"))
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


# Two columns, each at most HELP_COLUMN_WIDTH cells, so that the help reads whole at 100 columns (at 160 too);
# on a shorter screen it scrolls (up/down).
HELP_COLUMN_WIDTH = 46
HELP_NARROW_WIDTH = 2 * HELP_COLUMN_WIDTH + 8  # the dialog's border and padding: narrower, the columns stack
HELP_LEFT = """\
Sessions (cards or table)
  arrows, tab  move between sessions
  enter        session detail (esc: back)
  n            new session
  k            kill (asks first)
  e            extend (asks GPU-hours)
  r            export a report
  ctrl+p       command palette
  ?            this help
  q            quit: sessions keep running
               (opening it again re-attaches)

Plot and panes
  d      human timeline by calendar date
  l/p/v  log / plot / verdicts (narrow screen)

Log (the selected session)
  /      search the log (enter: next match)
  f      follow on/off (scrolling up pauses)
  t      filter by event type
  ↑      at the top: older lines, from disk
"""
HELP_RIGHT = """\
Many sessions (cards and table alike)
  T      table / cards
  s / S  sort by the next column / reverse it
  /      filter: words match agent, strategy,
         status, host, anchor, id (agent:x)
  a      status: all/live/running/ended/failed
  h      host: every host, then each in turn
  esc    clear the filters
  space  mark: k and e act on all marked
  c      export the table as CSV (reports/)

On each card and row
  ▸      what it did last, how long ago
  GPU    use (sparkline), memory, power;
         "idle" when its GPUs sit unused
  $      dollars for the agent and the judge

Alerts
  A verdict, a budget nearly spent, idle GPUs:
  bell and toast; the config's [alerts] sets
  bell, toast, desktop, idle_gpu_minutes.
"""


class HelpScreen(Screen[None]):
    """The keys, on a screen of their own (k9s-style): no dimmed copy of the screen below to draw."""

    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Static(Text.assemble(("Keys", "bold"), ("   esc, ? or q closes this help", "bright_black")),
                         classes="dialog-title")
            with VerticalScroll(id="help-body"):
                with Horizontal(id="help-columns"):
                    for column in (HELP_LEFT, HELP_RIGHT):
                        yield Static(Text(column, no_wrap=True, overflow="ellipsis"), classes="help-column")

    def on_mount(self) -> None:
        self.set_class(self.app.size.width < HELP_NARROW_WIDTH, "-narrow")

    def on_resize(self, event) -> None:
        self.set_class(event.size.width < HELP_NARROW_WIDTH, "-narrow")
