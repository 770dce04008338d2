"""One session at a glance: agent and strategy, anchor, status, host and GPUs, budget gauge, best result, usage."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from nanogpt_tui.dashboard import SessionView, format_duration, format_gpu_hours, judge_label, time_left_text
from nanogpt_tui.sessions import model as M

STATUS_STYLES = {
    M.RUNNING: "bold green", M.PENDING: "bold yellow", M.UNREACHABLE: "bold yellow", M.EXITED: "bold blue",
    M.OUT_OF_BUDGET: "bold magenta", M.KILLED: "bold red", M.FAILED: "bold red",
}
OUTCOME_STYLES = {"validated": "green", "baseline": "blue", "not-significant": "yellow", "rejected": "red",
                  "failed": "red", "not-validated": "yellow"}


def gauge(fraction: float, width: int) -> Text:
    """A bar of `width` cells, full at 1.0 (red past 90%)."""
    width = max(4, width)
    filled = round(max(0.0, min(1.0, fraction)) * width)
    style = "red" if fraction >= 0.9 else ("yellow" if fraction >= 0.7 else "green")
    return Text.assemble(("█" * filled, style), ("░" * (width - filled), "bright_black"))


class SessionCard(Widget):
    """A card in the session grid. Everything drawn is a `Text` built from data: nothing is parsed as markup.

    Cards take no focus: the grid holds it and moves a selection between them (a focus change repaints the
    whole screen in Textual; a selection repaints two cards).
    """

    DEFAULT_CSS = """
    SessionCard { height: 10; border: round $panel-lighten-2; padding: 0 1; text-wrap: nowrap;
                  text-overflow: ellipsis; }
    SessionCard.-selected { border: round $accent-darken-1; }
    SessionGrid:focus > SessionCard.-selected { border: round $accent; background: $boost; }
    """

    view: reactive[SessionView | None] = reactive(None, always_update=True)
    """The session shown; replaced whenever its files change."""

    class Open(Message):
        """`enter` on a card: open the session's detail screen."""

        def __init__(self, session_id: str) -> None:
            super().__init__()
            self.session_id = session_id

    def __init__(self, view: SessionView) -> None:
        super().__init__(id=f"card-{_css_id(view.id)}")
        self.session_id = view.id
        self._clock_key: tuple = ()
        self.set_reactive(SessionCard.view, view)
        self._set_title(view)

    def _set_title(self, view: SessionView) -> None:
        self.border_title = Text(view.id)

    def watch_view(self, view: SessionView | None) -> None:
        if view is not None:
            self._set_title(view)

    @staticmethod
    def signature(view: SessionView | None) -> tuple:
        """What the card draws from its view (besides the clock): equal signatures draw the same card."""
        if view is None:
            return ()
        s, u = view.session, view.usage
        return (view.complete, s.status, s.status_reason, s.total_gpu_hours, s.deadline, s.started_at,
                s.finished_at, s.host,
                tuple(s.gpu_ids), tuple(r.verdict.verdict_id for r in view.verdicts), u.input_tokens,
                u.output_tokens, u.cost_usd, u.cost_complete)

    class Clicked(Message):
        def __init__(self, session_id: str, double: bool) -> None:
            super().__init__()
            self.session_id = session_id
            self.double = double

    def clock_key(self, now) -> tuple:
        """The parts of the card that move with the clock, as drawn; unchanged, the card needs no repaint."""
        if self.view is None:
            return ()
        b = self.view.budget_figures(now)
        return (round(b["fraction"] * 100), format_gpu_hours(b["used"]), format_duration(b["seconds_left"]),
                self.size.width)

    def on_click(self, event) -> None:
        self.post_message(self.Clicked(self.session_id, event.chain >= 2))

    def render(self) -> Text:
        view = self.view
        if view is None:
            return Text("")
        s = view.session
        now = self.app.clock()
        self._clock_key = self.clock_key(now)
        width = max(10, self.size.width)
        lines: list[Text] = []

        head = Text(no_wrap=True, overflow="ellipsis")
        head.append(s.agent, style="bold")
        head.append(f" · {s.strategy}")
        status = Text(f"● {s.status}", style=STATUS_STYLES.get(s.status, "bold"))
        pad = width - head.cell_len - status.cell_len
        if pad >= 1:
            head.append(" " * pad)
            head.append_text(status)
        else:
            head = Text.assemble(status, " ", head)
        lines.append(head)

        anchor = f"anchor {s.anchor}" + (f" → {s.target}" if s.target else "")
        gpus = f"{s.gpus} GPU" + ("s" if s.gpus != 1 else "")
        if s.gpu_ids:
            gpus += " [" + ",".join(map(str, s.gpu_ids)) + "]"
        lines.append(Text(anchor, style="bright_black"))
        lines.append(Text(f"{s.backend} · {s.host} · {gpus}"))

        b = view.budget_figures(now)
        pct = Text(f" {b['fraction'] * 100:3.0f}%")
        lines.append(gauge(b["fraction"], width - pct.cell_len) + pct)
        budget = Text(f"{format_gpu_hours(b['used'])}/{format_gpu_hours(b['total'])} GPU-h")
        if b["seconds_left"] is not None:
            budget.append(f" · {time_left_text(b['seconds_left'])}")
        elif s.status in M.FINAL:
            budget.append(f" · {s.status_reason}", style="bright_black")
        if b["burn"]:
            budget.append(f" · {b['burn']:g} GPU-h/h")
        lines.append(budget)

        best = view.best_seconds_faster
        if not view.complete:
            lines.append(Text("reading verdicts and usage…", style="bright_black"))
        elif best is None and view.validated:
            # Validated, but no anchor timing to measure a speedup against (`submit --baseline` gives one).
            lines.append(Text(f"best: {view.validated} validated, speedup unmeasured (no anchor baseline)",
                              style="yellow"))
        elif best is None:
            lines.append(Text("best: no validated submission yet", style="bright_black"))
        else:
            line = Text.assemble("best ", (f"{best:+.2f} s", "bold green"))
            pct_best = view.best_percent
            line.append(f" · {pct_best:.1f}% of human progress" if pct_best is not None else " · % n/a (no timeline)",
                        style=None if pct_best is not None else "bright_black")
            lines.append(line)

        last = view.last_verdict
        if not view.complete:
            lines.append(Text(""))
        elif last is None:
            lines.append(Text("last verdict: none", style="bright_black"))
        else:
            v = last.verdict
            line = Text(f"last {v.submission}: ")
            line.append(v.outcome, style=OUTCOME_STYLES.get(v.outcome, ""))
            if last.p_value is not None:
                line.append(f" p={last.p_value:.2g}")
            line.append(f" · judge {judge_label(v)}", style="bright_black")
            lines.append(line)

        if view.complete:
            lines.append(Text(view.usage.text(), style="bright_black" if not view.usage.total_tokens else ""))
        return Text("\n", no_wrap=True, overflow="ellipsis").join(lines)


def _css_id(session_id: str) -> str:
    """A valid CSS id from a session id (which may start with a digit and hold dots)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in session_id)
