"""The progress figure: % of human progress (left) and seconds faster (right) over GPU-hours, one step line per
session, dashed lines for the human records between anchor and target; or the human timeline by calendar date."""

from __future__ import annotations

import datetime as dt

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static
from textual_plotext import PlotextPlot

from nanogpt_tui.reports.axis import FittedAxis, fit_axis, overlapping
from nanogpt_tui.tui.data.plotdata import PlotData

SERIES_COLORS = ("cyan", "green", "orange", "magenta", "blue", "red", "yellow", "white")
# One marker per series, so lines that coincide still show as two (the later one's marker over the earlier).
MARKERS = ("braille", "•", "+", "x", "*", "o", "#", "@")
MARKER_GLYPHS = {"braille": "⣿"}
RICH_COLORS = {"orange": "dark_orange"}  # plotext's colour names where Rich spells them differently
DASH = "┄"


def fitted(data: PlotData) -> tuple[FittedAxis, float, str]:
    """The plot's y axis for `data` (in % of human progress, or seconds without a timeline), the factor from
    seconds faster to that unit, and the unit."""
    gap = data.gap_s
    unit = "percent" if gap else "seconds"
    scale = (100 / gap) if gap else 1.0
    data_top = max([0.0] + [max(s.ys) * scale for s in data.series if s.ys])
    return fit_axis(data_top, [line.percent for line in data.human] if gap else [], unit), scale, unit


def series_style(index: int) -> tuple[str, str]:
    """(colour, marker) of the index-th series: colours cycle first, markers change with each cycle and more."""
    return SERIES_COLORS[index % len(SERIES_COLORS)], MARKERS[(index + index // len(SERIES_COLORS)) % len(MARKERS)]


def drawing_order(data: PlotData) -> list[int]:
    """The series' indices in the order they are drawn: the one reaching highest first. A step line's rise fills
    its column from below, so sessions whose first verdict came at the same GPU-hours share a column; drawn
    highest first, each lower one covers only the part of the column under its own top, and every session's best
    stays in sight (drawn in list order, the last one's rise hid the others' tops)."""
    return sorted(range(len(data.series)), key=lambda i: (-max(data.series[i].ys, default=0.0), i))


class ProgressPlot(PlotextPlot):
    """Draws through `self.plt` only (never plotext's global state); data arrives ready-made from `PlotData`."""

    DEFAULT_CSS = """
    ProgressPlot { height: 1fr; min-height: 8; }
    """

    by_date: reactive[bool] = reactive(False)
    """Plot the human record timeline by calendar date instead of progress over GPU-hours."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.data: PlotData | None = None
        self.timeline_points: list[tuple[dt.date, float, str]] = []

    def set_data(self, data: PlotData | None, timeline_points: list[tuple[dt.date, float, str]]) -> None:
        self.data = data
        self.timeline_points = timeline_points
        self.replot()

    def watch_by_date(self) -> None:
        self.replot()

    def on_resize(self) -> None:
        self.replot()  # label spacing depends on the height

    def replot(self) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.theme("clear")
        data = self.data
        try:
            if data is None:
                plt.title("progress: no session selected")
            elif self.by_date:
                self._draw_by_date(data)
            else:
                self._draw_progress(data)
        except (TypeError, ValueError, ZeroDivisionError, IndexError) as err:
            # A figure that cannot be drawn must not take the control room down: say so in its place.
            plt.clear_figure()
            plt.title(f"the plot could not be drawn ({type(err).__name__}: {err})")
        self.refresh()

    def _label_rows(self, values: list[float], y_max: float) -> set[int]:
        """Which of the sorted `values` get a label: at most one per plot row, so labels never overprint."""
        rows = max(3, self.size.height - 6)
        step = y_max / rows if y_max > 0 else 1.0
        chosen, last = set(), None
        for i, value in enumerate(values):
            if last is None or value - last >= step:
                chosen.add(i)
                last = value
        return chosen

    def _draw_progress(self, data: PlotData) -> None:
        plt = self.plt
        x_max = max(data.x_limit or data.x_max, 1e-3)
        gap = data.gap_s
        fit, scale, _ = fitted(data)
        values = [line.percent for line in data.human] if gap else []
        # Human records first, so the sessions' lines are drawn over them; labels at the right end (the legend
        # is under the plot, not over it). Only the records inside the fitted range are drawn.
        inside = [values[i] for i in fit.in_range]
        labelled = self._label_rows(inside, fit.top)
        for n, i in enumerate(fit.in_range):
            line = data.human[i]
            plt.plot([0, x_max], [line.percent, line.percent], marker=DASH, color="gray")
            if n in labelled:
                plt.text(line.label, x=x_max, y=line.percent, alignment="right", color="gray")
        for i in drawing_order(data):
            color, marker = series_style(i)
            series = data.series[i]
            plt.plot(series.xs, [y * scale for y in series.ys], color=color, marker=marker)
        if gap:
            plt.ylim(0, fit.top)
            plt.ylabel("% of human progress")
            # The right axis: the same lines in seconds, through an invisible point on that side.
            plt.plot([0], [0], yside="right", marker=" ")
            plt.ylim(0, fit.top * gap / 100, yside="right")
            plt.ylabel("s faster", yside="right")
        else:
            plt.ylim(0, fit.top)
            plt.ylabel("seconds faster")
        plt.xlim(0, x_max)
        plt.xlabel("GPU-hours")
        plt.title(data.title)  # what lies above the fitted range is said under the plot, with the legend

    def _draw_by_date(self, data: PlotData) -> None:
        plt = self.plt
        points = self.timeline_points
        if not points or not data.gap_s:
            plt.title(f"human timeline by date · no human timeline for {data.anchor}")
            return
        gap = data.gap_s
        start = points[0][0]
        days = [(d - start).days for d, _, _ in points]
        pcts = [s * 100 / gap for _, s, _ in points]
        xs, ys = [days[0]], [pcts[0]]
        for d, p in zip(days[1:], pcts[1:]):
            xs += [d, d]
            ys += [ys[-1], p]
        plt.plot(xs, ys, label="human records", color="gray", marker="braille")
        last_day = max(days[-1], 1)
        labelled = self._label_rows(pcts, 105.0)
        for i, (day, pct, (_, _, label)) in enumerate(zip(days, pcts, points)):
            if i and i in labelled:
                plt.text(label.split(" · ")[0], x=day, y=pct, alignment="left", color="gray")
        for i, series in enumerate(data.series):
            best = max(series.ys) * 100 / gap if series.ys else 0.0
            plt.plot([0, last_day], [best, best], marker=DASH, color=series_style(i)[0])
        ticks = sorted({0, days[-1] // 2, days[-1]})
        plt.xticks(ticks, [(start + dt.timedelta(days=t)).strftime("%b %d %Y") for t in ticks])
        plt.xlim(0, last_day)
        plt.ylim(0, 105)
        plt.ylabel("% of human progress")
        plt.xlabel("calendar date (human records)")
        plt.title(f"human records by date · {data.anchor} → {data.target} · agents' best as dashed lines")


class PlotLegend(Static):
    """The plot's legend as lines under it (plotext's own legend covers the plot and vanishes with many series):
    each session's marker and colour, its label, and which series it coincides with."""

    DEFAULT_CSS = """
    PlotLegend { height: auto; max-height: 5; padding: 0 1; }
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shown: tuple[PlotData | None, bool] = (None, False)

    def show(self, data: PlotData | None, by_date: bool = False) -> None:
        self._shown = (data, by_date)
        text = Text(no_wrap=False, overflow="fold")
        if data is not None:
            gap = data.gap_s
            fit, _, unit = fitted(data)
            short = [f"#{line.index} ({line.seconds_faster:.1f} s)" for line in data.human]
            note = None if by_date else fit.note(short, unit)
            if note:
                text.append(note + "\n", style="bright_black")
            hides = overlapping([(s.xs, s.ys) for s in data.series])
            entries = []
            for i, series in enumerate(data.series):
                color, marker = series_style(i)
                entry = Text(MARKER_GLYPHS.get(marker, marker) * 2, style=f"bold {RICH_COLORS.get(color, color)}")
                entry.append(f" {series.label}")
                if by_date and gap and series.ys:
                    entry.append(f" best {max(series.ys) * 100 / gap:.1f}%", style="dim")
                if i in hides:
                    entry.append(f" (= {data.series[hides[i]].label})", style="dim")
                entries.append(entry)
            if by_date and data.human:
                entries.append(Text.assemble(("⣿⣿", "bold bright_black"), " human records"))
            text.append_text(packed(entries, self.size.width))
            # Where the human times come from goes last: with many sessions the legend's last lines are cut, and a
            # session missing from the legend is worse than that note cut short.
            if data.note:
                text.append("\n" + data.note, style="bright_black")
        self.update(text)

    def on_resize(self) -> None:
        if self._shown[0] is not None:
            self.show(*self._shown)


def packed(entries: list[Text], width: int) -> Text:
    """Legend entries two spaces apart, a new line started before an entry that would not fit whole: a marker
    stays on the line of its label (wrapped as one text, `xx` ended one line and `claude/default` began the next)."""
    out = Text()
    used = 0
    for entry in entries:
        if used and width > 0 and used + 2 + entry.cell_len > width:
            out.append("\n")
            used = 0
        elif used:
            out.append("  ")
            used += 2
        out.append_text(entry)
        used += entry.cell_len
    return out


class PlotPane(Vertical):
    """The progress plot with its legend under it."""

    DEFAULT_CSS = """
    PlotPane { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._pending: tuple | None = None  # data that arrived before the children were mounted

    def compose(self) -> ComposeResult:
        yield ProgressPlot(id="plot-figure")
        yield PlotLegend(id="plot-legend")

    def on_mount(self) -> None:
        if self._pending is not None:
            self.set_data(*self._pending)

    def set_data(self, data: PlotData | None, timeline_points: list[tuple[dt.date, float, str]]) -> None:
        plots = self.query(ProgressPlot)
        if not plots:  # not composed yet: drawn once it is
            self._pending = (data, timeline_points)
            return
        self._pending = None
        plot = plots.first()
        plot.set_data(data, timeline_points)
        self.query_one(PlotLegend).show(data, plot.by_date)
