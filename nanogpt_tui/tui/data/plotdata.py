"""What the progress figure draws: each session's best seconds faster over GPU-hours, and the human record lines
between the anchor and the target (none for an anchor outside the human timeline, such as `smoke`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from nanogpt_tui.records import Timeline
from nanogpt_tui.reports.conventions import anchor_here_note, gap_for
from nanogpt_tui.scoring import HumanLine, human_lines
from nanogpt_tui.tui.data.formatting import record_short, short_label
from nanogpt_tui.tui.data.views import SessionView


@dataclass(frozen=True)
class PlotSeries:
    label: str
    xs: list[float]
    ys: list[float]  # seconds faster


@dataclass(frozen=True)
class PlotData:
    """What the progress figure draws for one anchor/target pair."""

    title: str
    anchor: str
    target: str | None
    gap_s: float | None  # None: no human timeline, plot seconds faster only
    series: list[PlotSeries]
    human: list[HumanLine]
    x_max: float  # GPU-hours used by the furthest session so far
    x_limit: float = 0.0  # the x axis: the largest budget of the group (as the published figure), or x_max
    note: str = ""  # where the human times come from, when the manifest says (the smoke track's own timings)

    def key(self, resolution: int = 200) -> tuple:
        """Equal keys draw the same figure at `resolution` steps across the x axis (lines that grew by less
        than a step since the last drawing need no new one)."""
        step = (self.x_limit or 1.0) / resolution
        return (self.title, self.note, self.x_limit, tuple((s.label, tuple(s.ys), int(s.xs[-1] / step) if s.xs else 0)
                                               for s in self.series))


def plot_data(views: list[SessionView], anchor: str, target: str | None, timeline: Timeline | None,
              now: dt.datetime) -> PlotData:
    """Progress vs GPU-hours for the sessions on `anchor` (and `target`), with the human record lines."""
    group = [v for v in views if v.session.anchor == anchor and v.session.target == target]
    gap = gap_for(timeline, anchor, target)
    human = human_lines(timeline, anchor, target) if gap is not None else []
    series, x_max, budget = [], 0.0, 0.0
    labels: dict[str, int] = {}
    for view in group:
        budget = max(budget, view.session.total_gpu_hours)
        used = view.session.budget().used_gpu_hours(now)
        xs, ys = view.curve.series(used)
        label = short_label(view.session)
        labels[label] = labels.get(label, 0) + 1
        if labels[label] > 1:
            label += f" #{labels[label]}"
        series.append(PlotSeries(label, xs, ys))
        x_max = max(x_max, used, xs[-1] if xs else 0.0)
    if gap is not None:
        title = f"% of human progress · {record_short(anchor)} → {record_short(target)} ({gap:.1f} s)"
    else:
        title = f"seconds faster than {anchor} · no human timeline for this anchor"
    return PlotData(title=title, anchor=anchor, target=target, gap_s=gap, series=series, human=human,
                    x_max=x_max, x_limit=max(budget, x_max), note=plot_note(group, timeline, anchor) if gap else "")


def plot_note(group: list[SessionView], timeline: Timeline | None, anchor: str) -> str:
    """Where the human times come from, and how far this machine's anchor is from them (both when they say so)."""
    baselines = [row.verdict for view in group for row in view.verdicts]
    parts = [times_note(timeline, anchor), anchor_here_note(baselines, timeline, anchor)]
    return "; ".join(p for p in parts if p)


def times_note(timeline: Timeline | None, anchor: str) -> str:
    """`record times measured on …` for a track whose manifest names its hardware (else empty)."""
    if timeline is None or anchor not in timeline or not timeline.get(anchor).hardware:
        return ""
    return f"% against record times measured on {timeline.get(anchor).hardware}"


def human_timeline_by_date(timeline: Timeline | None, anchor: str, target: str | None
                           ) -> list[tuple[dt.date, float, str]]:
    """The human progress from anchor to target by calendar date: (date, seconds faster, label), anchor first."""
    if gap_for(timeline, anchor, target) is None:
        return []
    start = timeline.get(anchor)
    points = [(start.date, 0.0, f"#0 {start.name}")]
    for line in human_lines(timeline, anchor, target):
        points.append((line.date, line.seconds_faster, line.label))
    return points
