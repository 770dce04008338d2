"""The progress figure's fitted y axis and overlap detection (shared by the control room and the reports)."""

from __future__ import annotations

import pytest

from nanogpt_tui.reports.axis import fit_axis, nice_ceiling, overlapping

# FA3 -> BigramHashEmbedding: the published figure's record lines, in % of the gap.
HUMAN = [14.7, 20.0, 29.4, 35.0, 48.0, 61.0, 80.0, 100.0]
LABELS = [f"#{i + 1} line" for i in range(len(HUMAN))]


def test_agents_at_a_few_percent_fill_the_plot_not_its_bottom_rows():
    fit = fit_axis(9.3, HUMAN)
    assert fit.top == pytest.approx(20.0)  # 9.3 x 1.25 = 11.6, rounded up
    assert fit.in_range == (0, 1) and fit.above == 2
    assert fit.note(LABELS, "percent") == "↑ above the scale: next #3 line; target #8 line (100%)"


def test_the_next_record_line_close_above_the_curves_is_drawn():
    # The demo's case: a session at 34.9% with the first smoke record at 53.9%: the axis reaches that line.
    fit = fit_axis(34.9, [53.9, 88.8, 100.0])
    assert fit.top == pytest.approx(53.9 * 1.08) and fit.in_range == (0,) and fit.above == 1


def test_nothing_risen_yet_reaches_the_first_record_line():
    fit = fit_axis(0.0, HUMAN)
    assert fit.top == pytest.approx(20.0) and fit.in_range == (0, 1)


def test_the_whole_scale_when_the_data_reaches_it():
    fit = fit_axis(95.0, HUMAN)
    assert fit.top == pytest.approx(118.75) and fit.in_range == tuple(range(8)) and fit.above is None
    assert fit.note(LABELS, "percent") is None
    assert fit_axis(30.0, [10.0, 20.0]).top == pytest.approx(37.5)  # past the target, to the data's headroom
    only = fit_axis(2.0, [40.0])
    assert only.above == 0 and only.note(["#1 target"], "percent") == "↑ above the scale: target #1 target (100%)"


def test_seconds_without_a_timeline_and_round_tops():
    assert fit_axis(0.0, [], unit="seconds").top == 1.0
    assert fit_axis(3.1, [], unit="seconds").top == 5.0
    assert [nice_ceiling(v) for v in (0.7, 1.0, 1.3, 2.2, 4.9, 7.5, 12.0)] == [1.0, 1.0, 2.0, 2.5, 5.0, 10.0, 20.0]


def test_overlapping_series_name_the_one_they_hide_behind():
    a = ([0.0, 1.0, 1.0, 2.0], [0.0, 0.0, 3.2, 3.2])
    b = ([0.0, 1.0, 1.0, 2.0], [0.0, 0.0, 3.3, 3.3])
    assert overlapping([a, b, a, b, a]) == {2: 0, 3: 1, 4: 0}
    assert overlapping([a, b]) == {}
