"""The progress figure: % of human progress (and seconds faster) against GPU-hours, one step line per session, the
human record lines between anchor and target, drawn like NanoGPT-Bench's published figure. The one place that
imports matplotlib (Agg, no display; object-oriented, never pyplot's global state)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from nanogpt_tui.fsutil import atomic_write_bytes
from nanogpt_tui.reports.axis import fit_axis, overlapping

WIDTH_IN, HEIGHT_IN, DPI = 10.0, 6.0, 120
# One colour per group, in order (matplotlib's tab10, fixed here so reports look the same everywhere).
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
HUMAN_COLOUR = "#6b6b6b"
# One marker per line (at its steps and its end), so lines that coincide still show as two.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LEGEND_INSIDE_MAX = 6  # more entries than this go under the plot, in columns


@dataclass
class Series:
    """One step line: x in GPU-hours, y in seconds faster than the anchor."""

    label: str
    xs: list[float]
    ys: list[float]
    group: str = ""
    bold: bool = False  # a group's mean line
    faint: bool = False  # one session of a group drawn behind its mean
    gap_s: float | None = None  # this line's own 100% (sessions of a group report may differ)


@dataclass
class HumanLineSpec:
    label: str  # "#4 Sep 15 2025 · 9.3 s"
    seconds_faster: float
    percent: float


@dataclass
class FigureSpec:
    title: str
    series: list[Series]
    human_lines: list[HumanLineSpec] = field(default_factory=list)
    gap_s: float | None = None  # 100% of human progress, in seconds; None: plot seconds faster only
    anchor: str = ""
    x_max: float | None = None
    budget_marks: list[tuple[float, str]] = field(default_factory=list)  # vertical dotted lines (x, label)
    note: str = ""  # one line under the plot


def _label_positions(values: list[float], span: float, min_gap_fraction: float = 0.035) -> list[int]:
    """Which human lines get a text label: greedily from the bottom, skipping any too close to the last labelled
    one, always keeping the top one (the target)."""
    chosen: list[int] = []
    order = sorted(range(len(values)), key=lambda i: values[i])
    last = None
    for i in order:
        if last is None or values[i] - last >= min_gap_fraction * span:
            chosen.append(i)
            last = values[i]
    if order and order[-1] not in chosen:
        if chosen and values[order[-1]] - values[chosen[-1]] < min_gap_fraction * span:
            chosen.pop()
        chosen.append(order[-1])
    return chosen


def render_progress_figure(spec: FigureSpec, path: Path) -> dict:
    """Draw the figure into a PNG at `path`; returns {"file", "width_px", "height_px"}."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    percent_axis = spec.gap_s is not None and spec.gap_s > 0

    def to_y(seconds: float, gap: float | None) -> float:
        g = gap or spec.gap_s
        return 100.0 * seconds / g if percent_axis and g else seconds

    x_max = spec.x_max or max((max(s.xs) for s in spec.series if s.xs), default=1.0) or 1.0
    y_top = 0.0
    groups: dict[str, str] = {}
    markers: dict[str, str] = {}
    shown = [s for s in spec.series if not s.faint]
    hides = overlapping([(s.xs, [to_y(v, s.gap_s) for v in s.ys]) for s in shown])
    for s in spec.series:
        key = s.group or s.label
        if key not in groups:
            groups[key] = COLOURS[len(groups) % len(COLOURS)]
            markers[key] = MARKERS[(len(markers) + len(markers) // len(COLOURS)) % len(MARKERS)]
        ys = [to_y(v, s.gap_s) for v in s.ys]
        y_top = max([y_top, *ys])
        label = None
        if not s.faint:
            index = shown.index(s)
            label = s.label + (f" (= {shown[hides[index]].label})" if index in hides else "")
        kwargs = dict(color=groups[key], linewidth=2.6 if s.bold else 1.8, alpha=0.35 if s.faint else 1.0,
                      solid_joinstyle="miter", zorder=3 if s.bold else 2)
        if not s.faint:
            # A marker where the line steps up (every other point of a step line) and at its end.
            kwargs.update(marker=markers[key], markersize=4.5, markevery=list(range(2, len(s.xs), 2)) + [len(s.xs) - 1]
                          if len(s.xs) > 1 else None)
        ax.plot(s.xs, ys, label=label, **kwargs)

    # The y axis fitted to the curves (agents at a few % fill the plot), the human lines inside it drawn and
    # labelled, and the next one above it (the target, often) named at the top.
    values = [h.percent if percent_axis else h.seconds_faster for h in spec.human_lines]
    fit = fit_axis(y_top, values, "percent" if percent_axis else "seconds")
    span = fit.top
    inside = list(fit.in_range)
    labelled = {inside[j] for j in _label_positions([values[i] for i in inside], span, 0.05)}
    for i in inside:
        ax.axhline(values[i], color=HUMAN_COLOUR, linestyle=(0, (4, 3)), linewidth=0.8,
                   alpha=0.75 if i in labelled else 0.3, zorder=1)
    for i in labelled:
        ax.text(x_max * 0.99, values[i], spec.human_lines[i].label, ha="right", va="bottom", fontsize=7.5,
                color=HUMAN_COLOUR, zorder=5)
    note = fit.note([h.label for h in spec.human_lines], "percent" if percent_axis else "seconds")
    if note:
        ax.annotate(note, xy=(0.99, 0.99), xycoords="axes fraction", ha="right", va="top", fontsize=7.5,
                    color=HUMAN_COLOUR)
    for x, label in spec.budget_marks:
        ax.axvline(x, color="#444444", linestyle=":", linewidth=1.0, zorder=1)
        ax.annotate(label, xy=(x, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 3),
                    textcoords="offset points", ha="center", va="bottom", fontsize=7.5, color="#444444",
                    annotation_clip=False)

    ax.set_xlim(0, x_max * 1.02)
    ax.set_ylim(min(0.0, *(min(to_y(v, s.gap_s) for v in s.ys) for s in spec.series if s.ys)) if spec.series else 0.0,
                span)
    ax.set_xlabel("GPU-hours")
    anchor = spec.anchor or "the anchor"
    if percent_axis:
        gap = spec.gap_s
        ax.set_ylabel("% of human progress recovered")
        right = ax.secondary_yaxis("right", functions=(lambda p: p * gap / 100.0, lambda s: s * 100.0 / gap))
        right.set_ylabel(f"seconds faster than {anchor}")
    else:
        ax.set_ylabel(f"seconds faster than {anchor}")
    ax.grid(True, axis="x", color="#e6e6e6", linewidth=0.6)
    for side in ("top",):
        ax.spines[side].set_visible(False)
    ax.set_title(spec.title, fontsize=11, loc="left")
    entries = len(shown)
    if entries and entries <= LEGEND_INSIDE_MAX:
        ax.legend(loc="upper left", fontsize=8, frameon=False)
    elif entries:
        # A fleet: the legend goes under the plot in columns, where it covers nothing and every entry fits.
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=min(4, (entries + 3) // 4 + 1),
                  fontsize=7, frameon=False)
    if spec.note:
        fig.text(0.01, 0.01, spec.note, fontsize=7, color="#555555", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03 if spec.note else 0, 1, 1))
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    atomic_write_bytes(path, buffer.getvalue(), mode=0o644)
    return {"file": path.name, "width_px": int(WIDTH_IN * DPI), "height_px": int(HEIGHT_IN * DPI)}
