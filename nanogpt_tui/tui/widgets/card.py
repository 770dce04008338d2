"""One session at a glance: agent and strategy, anchor, status, host and GPUs, budget gauge, best result, where
its GPU-hours went by kind of change, what it is doing, what it costs, and its GPUs' utilisation."""

from __future__ import annotations

from rich.segment import Segment
from rich.text import Text
from textual.color import Color
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from nanogpt_tui.agents.catalog import AGENTS
from nanogpt_tui.sessions import model as M
from nanogpt_tui.sessions.model import parse_iso
from nanogpt_tui.telemetry.gpu import sparkline
from nanogpt_tui.tui.data.formatting import (format_duration, format_gpu_hours, place_text, record_short,
                                             time_left_text)
from nanogpt_tui.tui.data.views import SessionView, judge_label

STATUS_STYLES = {
    M.RUNNING: "bold green", M.PENDING: "bold yellow", M.UNREACHABLE: "bold yellow", M.EXITED: "bold blue",
    M.OUT_OF_BUDGET: "bold magenta", M.KILLED: "bold red", M.FAILED: "bold red",
}
CARD_HEIGHT = 12  # lines, borders included: one row of the session grid
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

    A card shows whichever session the grid hands it (`show`): the grid keeps cards only for the places in sight.
    Cards take no focus: the grid holds it and moves a selection between them (a focus change repaints the
    whole screen in Textual; a selection repaints two cards). The selected card's border and background are
    set on it directly (`mark`), not through a CSS class: a class change makes Textual match the whole
    stylesheet against the card again, which took about half the time of a whole move between sessions.
    A card draws its own lines (Textual's line API): its texts are built when its view or the clock moves, it
    repaints only when they changed, and its strips are kept until its texts, width or colours change.
    """

    DEFAULT_CSS = f"""
    SessionCard {{ height: {CARD_HEIGHT}; border: round $panel-lighten-2; padding: 0 1; }}
    """

    class Open(Message):
        """`enter` on a card: open the session's detail screen."""

        def __init__(self, session_id: str) -> None:
            super().__init__()
            self.session_id = session_id

    class Clicked(Message):
        def __init__(self, session_id: str, double: bool) -> None:
            super().__init__()
            self.session_id = session_id
            self.double = double

    def __init__(self, view: SessionView) -> None:
        super().__init__()
        self.session_id = view.id
        self.view: SessionView = view
        """The session shown; replaced (through `show`) whenever its files change."""
        self._texts: list[Text] = []
        self._texts_width = -1
        self._strips: list[Strip] | None = None
        self._strips_key: tuple = ()
        self._base_style = None
        self._mark: tuple = (False, False, None)
        self.selected = False
        """Whether the grid's selection is on this card (`mark` sets it)."""
        self.ticked = False
        """Whether the card is marked (space) for a kill or extend of several sessions."""
        self.border_title = Text(view.id)

    def set_ticked(self, ticked: bool) -> None:
        """Show or clear the tick of a session marked for a kill or extend of several."""
        if ticked != self.ticked:
            self.ticked = ticked
            self.border_title = Text.assemble(("✓ ", "bold green"), self.session_id) if ticked \
                else Text(self.session_id)

    def mark(self, selected: bool, grid_focused: bool, colors: dict[str, Color]) -> None:
        """Show whether the card is selected (a brighter border, and a lighter background while the grid has
        focus), with the theme's `colors` (accent, accent-darken-1, boost)."""
        mark = (selected, selected and grid_focused, colors.get("accent"))
        if mark == self._mark:
            return
        self._mark, self.selected = mark, selected
        if selected:
            self.styles.border = ("round", colors["accent"] if grid_focused else colors["accent-darken-1"])
            self.styles.background = colors["boost"] if grid_focused else None
        else:
            self.styles.border = None  # back to the stylesheet's
            self.styles.background = None

    # --- what is drawn ------------------------------------------------------------------------------------

    def show(self, view: SessionView) -> None:
        """Show `view` (a fresh view of the session, or another session); repaints only if a line of the card
        changed."""
        if view.id != self.session_id:
            self.session_id = view.id
            self.ticked = False
            self.border_title = Text(view.id)
        self.view = view
        self.update_texts()

    def update_texts(self) -> bool:
        """Rebuild the card's lines (the view, or the clock, moved); repaint when they changed. Returns whether
        they did."""
        if not self.is_mounted:
            return False
        width = max(10, self.size.width)
        texts = card_lines(self.view, self.app.clock(), width)
        if texts == self._texts and width == self._texts_width:
            return False
        self._texts, self._texts_width, self._strips = texts, width, None
        self.refresh()
        return True

    @property
    def plain_lines(self) -> list[str]:
        """The card's lines as plain text (tests read them)."""
        return [t.plain for t in self._texts]

    def on_mount(self) -> None:
        self.update_texts()

    def on_resize(self) -> None:
        self.update_texts()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips = None  # selected or not: the colours under the text changed

    # --- drawing ------------------------------------------------------------------------------------------

    def render_lines(self, crop):
        # The base style walks the DOM for colours: work it out once per repaint, not once per line.
        self._base_style = self.rich_style
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self._base_style or self.rich_style
        if self._strips is None or self._strips_key != (width, base):
            if max(10, width) != self._texts_width:
                self._texts_width = max(10, width)
                self._texts = card_lines(self.view, self.app.clock(), self._texts_width)
            console = self.app.console
            strips = []
            for text in self._texts:
                line = text.copy()
                line.truncate(width, overflow="ellipsis")
                # `Text.render` leaves the text's own style to the caller: under the spans, over the base.
                segments = Segment.apply_style(line.render(console), base + console.get_style(line.style))
                strips.append(Strip(segments).extend_cell_length(width, base).crop(0, width))
            self._strips, self._strips_key = strips, (width, base)
        return self._strips[y] if y < len(self._strips) else Strip.blank(width, base)

    def on_click(self, event) -> None:
        self.post_message(self.Clicked(self.session_id, event.chain >= 2))


REAL_AGENTS = frozenset(a.name for a in AGENTS if a.real_agent)


def longest_fitting(width: int, *variants: Text) -> Text:
    """The first of `variants` (longest wording first) that fits `width` cells; else the last, which the card
    then cuts with an ellipsis. A card says less rather than cutting a figure in half (`p=0.…`, `8 …`)."""
    for variant in variants:
        if variant.cell_len <= width:
            return variant
    return variants[-1]


def gpu_ids_text(ids: list[int]) -> str:
    """`0-7` for 0,1,...,7; `0,2,5-7` otherwise (runs of three or more as ranges)."""
    out, run = [], [ids[0]] if ids else []
    for i in ids[1:]:
        if i == run[-1] + 1:
            run.append(i)
            continue
        out.append(_run_text(run))
        run = [i]
    if run:
        out.append(_run_text(run))
    return ",".join(out)


def _run_text(run: list[int]) -> str:
    return f"{run[0]}-{run[-1]}" if len(run) >= 3 else ",".join(map(str, run))


def card_lines(view: SessionView, now, width: int) -> list[Text]:
    """The lines of a session's card at `now`, for a card `width` cells wide: each says what fits, dropping its
    least needed parts first (only free text, such as the last activity, ends in an ellipsis)."""
    s = view.session
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

    lines.append(where_text(view, width))

    b = view.budget_figures(now)
    pct = Text(f" {b['fraction'] * 100:3.0f}%")
    lines.append(gauge(b["fraction"], width - pct.cell_len) + pct)
    budget = Text(f"{format_gpu_hours(b['used'])}/{format_gpu_hours(b['total'])} GPU-h")
    if b["seconds_left"] is not None:
        budget.append(f" · {time_left_text(b['seconds_left'])}")
    elif s.status in M.FINAL:
        budget.append(f" · {s.status_reason}", style="bright_black")
    burning = budget.copy()
    if b["burn"]:
        burning.append(f" · {b['burn']:g} GPU-h/h")
    lines.append(longest_fitting(width, burning, budget))

    best = view.best_seconds_faster
    if not view.complete:
        lines.append(Text("reading verdicts and usage…", style="bright_black"))
    elif best is None and view.validated:
        # Validated, but no anchor timing to measure a speedup against (`submit --baseline` gives one).
        lines.append(longest_fitting(
            width, Text(f"best: {view.validated} validated, speedup unmeasured (no anchor baseline)", style="yellow"),
            Text(f"best: {view.validated} validated, no anchor baseline", style="yellow")))
    elif best is None:
        lines.append(Text("best: no validated submission yet", style="bright_black"))
    else:
        pct_best = view.best_percent
        wordings = ("% of human progress", "% human progress", "% human") if pct_best is not None else \
            (" · % n/a (no timeline)", " · % n/a")
        variants = []
        for wording in wordings:
            line = Text.assemble("best ", (f"{best:+.2f} s", "bold green"))
            if pct_best is not None:
                line.append(f" · {pct_best:.1f}{wording}")
            else:
                line.append(wording, style="bright_black")
            variants.append(line)
        lines.append(longest_fitting(width, *variants))

    last = view.last_verdict
    if not view.complete:
        lines.append(Text(""))
    elif last is None:
        lines.append(Text("last verdict: none", style="bright_black"))
    else:
        lines.append(last_verdict_text(last, width))

    if not view.complete:
        lines.append(Text(""))
    elif view.changes is None:
        lines.append(Text("GPU-h by kind of change: classifying…", style="bright_black"))
    else:
        style = "" if view.changes.changes_gpu_hours > 0 else "bright_black"
        lines.append(longest_fitting(width, Text.assemble(("GPU-h ", "bright_black"), (view.changes.compact(), style)),
                                     Text.assemble(("GPU-h ", "bright_black"), (view.changes.compact(True), style))))

    if not view.complete:
        return lines
    lines.append(activity_text(view, now, width))
    lines.append(cost_text(view, width))
    lines.append(gpu_text(view, width))
    return lines


def where_text(view: SessionView, width: int) -> Text:
    """`FA3 → BigramHashEmbedding · docker gpu-box-1 · 8 GPUs [0-7]`; on a narrow card the target, the backend and
    then the GPU ids give way, never the host (with a scheduler's job) or what the sandbox says."""
    s = view.session
    gpus = f"{s.gpus} GPU" + ("s" if s.gpus != 1 else "")
    ids = f" [{gpu_ids_text(list(s.gpu_ids))}]" if s.gpu_ids else ""
    warning = None
    if not s.sandboxed and s.agent in REAL_AGENTS:
        warning = Text(" · not sandboxed", style="bold yellow")
    elif s.sandboxed and view.blocked:  # what the sandbox refused (the detail names the last ones)
        warning = Text(f" · {view.blocked} blocked", style="bold red")

    def line(anchor: str, where: str, gpus_part: str) -> Text:
        text = Text.assemble((anchor, "bright_black"), f" · {where}")
        if gpus_part:
            text.append(f" · {gpus_part}")
        if warning is not None:
            text.append_text(warning)
        return text

    anchor = record_short(s.anchor)
    pair = anchor + (f" → {record_short(s.target)}" if s.target else "")
    full, bare = place_text(s.backend, s.host, s.facts), place_text(None, s.host, s.facts)
    return longest_fitting(width, line(pair, full, gpus + ids), line(anchor, full, gpus + ids),
                           line(anchor, bare, gpus + ids), line(anchor, bare, gpus), line(anchor, bare, ""))


def last_verdict_text(last, width: int) -> Text:
    """`last submission_3: validated p=0.0006 · judge cleared`, shortened to `last #3: validated p=0.0006`."""
    v = last.verdict
    number = v.submission.rsplit("_", 1)[-1]
    short = f"#{number}" if v.submission.startswith("submission_") and number.isdigit() else v.submission

    def line(name: str, judge: bool) -> Text:
        text = Text(f"last {name}: ")
        text.append(v.outcome, style=OUTCOME_STYLES.get(v.outcome, ""))
        if last.p_value is not None:
            text.append(f" p={last.p_value:.2g}")
        if judge:
            text.append(f" · judge {judge_label(v)}", style="bright_black")
        return text

    return longest_fitting(width, line(v.submission, True), line(short, True), line(v.submission, False),
                           line(short, False))


ACTIVITY_STYLES = {"tool": "cyan", "message": "", "thinking": "bright_black", "submit": "magenta",
                   "validator": "magenta", "verdict": "green", "error": "red"}


def activity_text(view: SessionView, now, width: int = 1000) -> Text:
    """`▸ 2m ago tool Bash $ nvidia-smi`: what the session did last, and how long ago. When that is cut on a narrow
    card, `ago` and then the kind's word (its colour stays) give way to the text itself."""
    a = view.activity
    if a is None:
        return Text("no activity yet", style="bright_black")
    ago = activity_age(a.at, now)

    def line(age: str, kind: bool) -> Text:
        text = Text("▸ ", style="bright_black")
        if age:
            text.append(f"{age} ", style="bright_black")
        style = ACTIVITY_STYLES.get(a.kind, "")
        if kind:
            text.append(a.kind, style=style)
            text.append(f" {a.text}")
        else:
            text.append(a.text, style=style)
        return text

    short_age = ago.removesuffix(" ago")
    return longest_fitting(width, line(ago, True), line(short_age, True), line(short_age, False))


def activity_age(at: str | None, now) -> str:
    """`12s ago`; empty when the moment is unknown."""
    moment = parse_iso(at) if at else None
    if moment is None:
        return ""
    return f"{format_duration(max(0.0, (now - moment).total_seconds()))} ago"


def cost_text(view: SessionView, width: int) -> Text:
    """`$12.40 · 1.2M in · 40k out · CLI says $11.90`; the CLI's own figure, then the tokens give way."""
    cost = Text(view.cost.compact() if view.cost else "$-", style="bold" if view.cost and view.cost.total_usd
                else "bright_black")
    tokens = cost.copy()
    tokens.append(f" · {view.usage.text()}", style="" if view.usage.total_tokens else "bright_black")
    full = tokens.copy()
    if view.usage.cost_usd is not None:
        full.append(f" · CLI says ${view.usage.cost_usd:,.2f}{'' if view.usage.cost_complete else '+'}",
                    style="bright_black")
    return longest_fitting(width, full, tokens, cost)


def gpu_text(view: SessionView, width: int) -> Text:
    """`GPU ▂▅▇█ 97% · mem 42% · 642 W`, the sparkline as wide as the card leaves room for; GPUs idle
    for a minute or more say so first (`GPU ▁▁▁▁ 0% idle 19m55s · mem 0%`), so a narrow card never cuts the alert."""
    g = view.gpu
    if g is None:
        return longest_fitting(width, Text("GPU: no samples" + ("" if view.session.status != M.RUNNING
                                                                else " (no sampler on its host)"),
                                           style="bright_black"), Text("GPU: no samples", style="bright_black"))
    parts = g.compact().split(" · ")
    idle = Text(f" idle {format_duration(g.idle_s)}", style="yellow") if g.idle_s >= 60 else Text("")
    variants = []
    for keep in range(len(parts), 0, -1):
        figures = Text(parts[0]) + idle + Text("".join(f" · {p}" for p in parts[1:keep]))
        spark_width = max(4, width - figures.cell_len - 5)
        line = Text("GPU ", style="bright_black")
        line.append(sparkline(list(g.util_history), spark_width), style="green" if not g.idle_s else "yellow")
        line.append(" ")
        line.append_text(figures)
        variants.append(line)
    return longest_fitting(width, *variants)

