"""Scoring: seconds faster, % of human progress, human record lines relative to an anchor, the progress curve."""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from nanogpt_tui.records import Timeline


def seconds_faster(anchor_time_s: float, candidate_time_s: float) -> float:
    """How much faster a candidate is than the anchor, in seconds (negative when slower)."""
    return anchor_time_s - candidate_time_s


def percent_of_human_progress(seconds_faster_s: float, gap_s: float) -> float:
    """(anchor time - candidate time) / (anchor time - target time) x 100, with the gap taken from the timeline."""
    if gap_s <= 0:
        raise ValueError(f"the anchor-to-target gap must be positive, got {gap_s}")
    return 100.0 * seconds_faster_s / gap_s


@dataclass(frozen=True)
class HumanLine:
    """A human record drawn as a horizontal line on the progress figure, relative to the anchor."""

    index: int  # records after the anchor: 1 for the first new record
    name: str
    date: dt.date
    seconds_faster: float
    percent: float

    @property
    def label(self) -> str:
        """The published figure's label, e.g. `#4 Sep 15 2025 · 9.3 s`."""
        return f"#{self.index} {self.date.strftime('%b')} {self.date.day} {self.date.year} · {self.seconds_faster:.1f} s"


def human_lines(timeline: Timeline, anchor: str, target: str) -> list[HumanLine]:
    """Every new human record after the anchor up to the target, as seconds faster and % of progress."""
    gap = timeline.gap(anchor, target)
    anchor_number = timeline.get(anchor).number
    lines = []
    for record in timeline.between(anchor, target):
        faster = timeline.seconds_faster(record.name, anchor)
        lines.append(HumanLine(index=record.number - anchor_number, name=record.name, date=record.date,
                               seconds_faster=faster, percent=percent_of_human_progress(faster, gap)))
    return lines


@dataclass(frozen=True)
class ProgressPoint:
    gpu_hours: float
    seconds_faster: float


class ProgressCurve:
    """Best validated seconds-faster as a step function of GPU-hours spent: flat at 0 until the first validated
    submission, then rising at each new best (a slower validated submission never lowers it)."""

    def __init__(self, submissions: Iterable[ProgressPoint]) -> None:
        steps: list[ProgressPoint] = []
        best = 0.0
        for point in sorted(submissions, key=lambda p: p.gpu_hours):
            if point.gpu_hours < 0:
                raise ValueError("GPU-hours cannot be negative")
            if point.seconds_faster > best:
                best = point.seconds_faster
                steps.append(ProgressPoint(point.gpu_hours, best))
        self.steps: tuple[ProgressPoint, ...] = tuple(steps)
        self._hours = [p.gpu_hours for p in self.steps]

    def value_at(self, gpu_hours: float) -> float:
        """Best seconds faster reached by `gpu_hours`."""
        i = bisect.bisect_right(self._hours, gpu_hours)
        return self.steps[i - 1].seconds_faster if i else 0.0

    @property
    def final(self) -> float:
        return self.steps[-1].seconds_faster if self.steps else 0.0

    def series(self, until_gpu_hours: float) -> tuple[list[float], list[float]]:
        """x and y of the step line from 0 to `until_gpu_hours`, ready to plot (each step drawn vertical)."""
        xs, ys = [0.0], [0.0]
        for p in self.steps:
            if p.gpu_hours > until_gpu_hours:
                break
            xs += [p.gpu_hours, p.gpu_hours]
            ys += [ys[-1], p.seconds_faster]
        xs.append(max(until_gpu_hours, xs[-1]))
        ys.append(ys[-1])
        return xs, ys

    def area(self, until_gpu_hours: float) -> float:
        """Integral of seconds faster over GPU-hours from 0 to `until_gpu_hours` (rewards getting there early)."""
        total, prev_h, prev_v = 0.0, 0.0, 0.0
        for p in self.steps:
            if p.gpu_hours >= until_gpu_hours:
                break
            total += prev_v * (p.gpu_hours - prev_h)
            prev_h, prev_v = p.gpu_hours, p.seconds_faster
        return total + prev_v * max(0.0, until_gpu_hours - prev_h)
