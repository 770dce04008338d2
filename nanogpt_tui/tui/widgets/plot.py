"""The progress figure: % of human progress (left) and seconds faster (right) over GPU-hours, one step line per
session, dashed lines for the human records between anchor and target; or the human timeline by calendar date.

The figure itself (`ProgressPlot`, on plotext) lives in `plot_figure.py`, loaded with the first plot drawn: plotext
takes a good part of the start-up's imports, and the first frame shows the sessions before any plot.
"""

from __future__ import annotations

import datetime as dt

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

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
    """The progress plot with its legend under it. The figure is made with the first data (after the first frame:
    the screen asks for it once the first session is selected and drawn)."""

    DEFAULT_CSS = """
    PlotPane { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._pending: tuple | None = None  # data that arrived before the pane was mounted

    def compose(self) -> ComposeResult:
        yield PlotLegend(id="plot-legend")

    def on_mount(self) -> None:
        if self._pending is not None:
            self.set_data(*self._pending)

    @property
    def figure(self):
        """The `ProgressPlot` once made, else None."""
        from nanogpt_tui.tui.widgets.plot_figure import ProgressPlot

        found = self.query(ProgressPlot)
        return found.first() if found else None

    def set_data(self, data: PlotData | None, timeline_points: list[tuple[dt.date, float, str]]) -> None:
        if not (self.is_mounted and self.is_attached):  # drawn once it is (or never: the screen is closing)
            self._pending = (data, timeline_points)
            return
        self._pending = None
        from nanogpt_tui.tui.widgets.plot_figure import ProgressPlot

        plot = self.figure
        if plot is None:
            plot = ProgressPlot(id="plot-figure")
            plot.data, plot.timeline_points = data, timeline_points  # drawn when mounted (its first resize)
            self.mount(plot, before=0)
        else:
            plot.set_data(data, timeline_points)
        self.query_one(PlotLegend).show(data, plot.by_date)
