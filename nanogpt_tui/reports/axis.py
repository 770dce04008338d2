"""The progress figure's y axis fitted to the data, and which series overlap: one set of choices for the control
room's plot and the reports' PNG (headless, standard library only)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Headroom above the highest curve, and the smallest range drawn (in the axis' unit: % or seconds).
HEADROOM = 1.25
MIN_TOP = {"percent": 5.0, "seconds": 1.0}
# The range stretches to the next human line above it when that line is within this factor of the best curve.
NEXT_LINE_REACH = 2.0


@dataclass(frozen=True)
class FittedAxis:
    """A y range from 0 to `top`; the human lines inside it (indices into the values given) and the first one
    above it, which the figure notes instead of drawing (typically the target, 100%)."""

    top: float
    in_range: tuple[int, ...]
    above: int | None  # the lowest human line above the range, None when every line is in range

    def note(self, labels: Sequence[str], unit: str) -> str | None:
        """`↑ above the scale: next #5 …; target #12 … (100%)`, for the figure's title or a line under it; None when
        nothing is above."""
        if self.above is None:
            return None
        last = len(labels) - 1
        target = f"target {labels[last]}" + (" (100%)" if unit == "percent" else "")
        if self.above == last:
            return f"↑ above the scale: {target}"
        return f"↑ above the scale: next {labels[self.above]}; {target}"


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above `value` (round axis tops)."""
    if value <= 0:
        return 1.0
    exp = math.floor(math.log10(value))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * 10**exp >= value * (1 - 1e-9):
            return m * 10**exp
    return 10.0 ** (exp + 1)


def fit_axis(data_top: float, human_values: Sequence[float], unit: str = "percent") -> FittedAxis:
    """Fit the y axis to the curves (`data_top`: their highest value), not to the human scale: with agents at
    5-19% the curves fill the plot instead of its bottom rows. When nothing has risen yet, the range reaches the
    first human line, so the figure shows where the next step is. Human lines inside are kept (all, in order);
    the lowest one above is named by `FittedAxis.note`."""
    values = list(human_values)
    positive = sorted(v for v in values if v > 0)
    if data_top > 0:
        wanted = data_top * HEADROOM
    else:
        wanted = positive[0] * 1.1 if positive else MIN_TOP.get(unit, 1.0)
    top = nice_ceiling(max(wanted, MIN_TOP.get(unit, 1.0)))
    above_data = [v for v in positive if v > top]
    if data_top > 0 and above_data and above_data[0] <= data_top * NEXT_LINE_REACH:
        top = above_data[0] * 1.08  # the next record line above the curves is near: draw it, it is the reference
    if positive and top > positive[-1] * HEADROOM:
        top = max(positive[-1] * 1.08, data_top * HEADROOM)  # the whole human scale fits: go no further
    inside = tuple(i for i, v in enumerate(values) if v <= top)
    above = [i for i, v in enumerate(values) if v > top]
    return FittedAxis(top=top, in_range=inside, above=min(above, key=lambda i: values[i]) if above else None)


def overlapping(series: Sequence[tuple[Sequence[float], Sequence[float]]], tolerance: float = 1e-9) -> dict[int, int]:
    """For each series that coincides with an earlier one (same points), the index of the first it hides behind."""
    seen: list[tuple[int, tuple]] = []
    out: dict[int, int] = {}
    for i, (xs, ys) in enumerate(series):
        scale = 1 / tolerance
        key = (tuple(round(x * scale) for x in xs), tuple(round(y * scale) for y in ys))
        for j, other in seen:
            if other == key:
                out[i] = j
                break
        else:
            seen.append((i, key))
    return out
