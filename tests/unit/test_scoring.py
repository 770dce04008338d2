"""Scoring: % of human progress, the published figure's human lines, and the progress curve."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanogpt_tui.records import FA3, load_timeline
from nanogpt_tui.scoring import ProgressCurve, ProgressPoint, human_lines, percent_of_human_progress, seconds_faster

REPO = Path(__file__).resolve().parents[2]
TARGET = "2026-01-19_BigramHashEmbedding"


@pytest.fixture(scope="module")
def timeline():
    return load_timeline(REPO / "human_baselines")


def test_published_scale(timeline):
    gap = timeline.gap(FA3, TARGET)
    assert round(percent_of_human_progress(5.88, gap), 2) == 9.30
    # The published results, back to seconds: 9.3%, 8.6%, 8.2% of 63.2192 s.
    assert percent_of_human_progress(0.082 * gap, gap) == pytest.approx(8.2)
    assert seconds_faster(163.86, 160.0) == pytest.approx(3.86)
    with pytest.raises(ValueError):
        percent_of_human_progress(1.0, 0.0)


def test_human_lines_match_the_published_figure_labels(timeline):
    lines = {ln.index: ln for ln in human_lines(timeline, FA3, TARGET)}
    assert lines[1].label == "#1 Sep 5 2025 · 1.2 s"
    assert lines[4].label == "#4 Sep 15 2025 · 9.3 s"
    assert lines[7].label == "#7 Sep 23 2025 · 13.0 s"
    assert lines[11].label == "#11 Oct 4 2025 · 22.1 s"
    assert lines[33].label == "#33 Jan 19 2026 · 63.2 s"
    assert lines[33].percent == pytest.approx(100.0)
    assert len(lines) == 33


def test_human_lines_for_a_refreshed_anchor(timeline):
    lines = human_lines(timeline, TARGET, "2026-07-17_FP8DownProjection")
    assert lines[0].index == 1 and lines[0].name == "2026-01-26-UntieValueEmbeddings"
    assert lines[-1].percent == pytest.approx(100.0)
    assert lines[-1].seconds_faster == pytest.approx(99.30 - 73.80)


def test_progress_curve_is_a_non_decreasing_step_function():
    curve = ProgressCurve([ProgressPoint(10.0, 2.0), ProgressPoint(5.0, 1.0), ProgressPoint(20.0, 1.5),
                           ProgressPoint(30.0, 4.0)])
    assert [(p.gpu_hours, p.seconds_faster) for p in curve.steps] == [(5.0, 1.0), (10.0, 2.0), (30.0, 4.0)]
    assert curve.value_at(0) == 0.0 and curve.value_at(5.0) == 1.0 and curve.value_at(25) == 2.0
    assert curve.final == 4.0
    xs, ys = curve.series(40.0)
    assert xs == [0.0, 5.0, 5.0, 10.0, 10.0, 30.0, 30.0, 40.0] and ys == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0]
    # Area: 1*(10-5) + 2*(30-10) + 4*(40-30) = 85
    assert curve.area(40.0) == pytest.approx(85.0)
    assert curve.area(7.0) == pytest.approx(2.0)
    assert ProgressCurve([]).area(10) == 0.0
    # A slower submission never lowers the best.
    assert ProgressCurve([ProgressPoint(1, -3.0)]).final == 0.0
