"""The progress figure drawn through plotext (`ProgressPlot`): made with the control room's first plot, so plotext
is not imported on the way to the first frame (`plot.py` holds the pane, the legend and the axis fitting)."""

from __future__ import annotations

import datetime as dt

from rich.text import Text
from textual.geometry import Size
from textual.reactive import reactive
from textual_plotext import PlotextPlot

from nanogpt_tui.tui.data.plotdata import PlotData
from nanogpt_tui.tui.widgets.plot import DASH, drawing_order, fitted, series_style


class ProgressPlot(PlotextPlot):
    """Draws through `self.plt` only (never plotext's global state); data arrives ready-made from `PlotData`.

    A figure is built (plotext's `build`, the costliest drawing on the main screen) only at the size it was
    drawn for: in the frame where the pane changes size (a filter leaving fewer cards, a terminal resized) the last
    picture stands, cropped or padded, and the resize's replot builds the new one right after. Textual renders a
    resized widget before the widget hears of the resize, so each resize built the figure twice, the first time
    inside the frame that answers the key.
    """

    DEFAULT_CSS = """
    ProgressPlot { height: 1fr; min-height: 8; }
    """

    by_date: reactive[bool] = reactive(False)
    """Plot the human record timeline by calendar date instead of progress over GPU-hours."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.data: PlotData | None = None
        self.timeline_points: list[tuple[dt.date, float, str]] = []
        self._drawn_for: Size | None = None  # the size the figure was last drawn for (`replot`)
        self._picture = Text("")  # the last figure built

    def render(self):
        if self.size != self._drawn_for:
            self.call_after_refresh(self._catch_up)  # the resize's replot draws it; should none come, this does
            stale = self._picture.copy()
            stale.no_wrap, stale.overflow = True, "crop"
            return stale
        self._picture = super().render()
        return self._picture

    def _catch_up(self) -> None:
        if self.is_mounted and self.size != self._drawn_for:
            self.replot()

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
        self._drawn_for = self.size
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
