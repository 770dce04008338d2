"""How a verdict is read, shared by the reports and the control room (`nanogpt_tui.tui.data`); headless and light.

Conventions: a verdict happens at its `finished_at` (else `started_at`); the GPU-hours at a moment are (moment -
session start) x the session's GPUs; a verdict's % of human progress is its seconds faster over the timeline's
anchor-to-target gap, the gap the session's curve and best use (so a manifest re-timed since the verdict moves
every number alike), else its own `speedup.percent_of_human_progress` where the timeline has no gap (never
invented, and never from a value that is not a finite number); the judge's result reads as one or two words with
the static rule checks folded in.

Only the standard library and the session model are imported here, so the control room can use it without
loading the report machinery (the change ledger, the classifier).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nanogpt_tui.errors import UserError
from nanogpt_tui.records import Timeline
from nanogpt_tui.sessions.model import Session, parse_iso

if TYPE_CHECKING:
    from nanogpt_tui.validator.verdict import Verdict


def finite_number(value: Any) -> float | None:
    """`value` as a float when it is a finite int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def gap_for(timeline: Timeline | None, anchor: str, target: str | None) -> float | None:
    """Seconds of human progress from anchor to target, None where either is not on the timeline."""
    if timeline is None or not target or anchor not in timeline or target not in timeline:
        return None
    try:
        return timeline.gap(anchor, target)
    except UserError:
        return None


def anchor_here_note(verdicts: Iterable[Verdict], timeline: Timeline | None, anchor: str) -> str:
    """Where the sessions timed their anchor (their baselines) at least 20% away from the anchor's record time,
    one clause saying so: their seconds faster are this machine's seconds, the human gap is the record's, so the %
    reads high on a slower machine and low on a faster one (the smoke track's times come from one machine).
    Empty without a baseline, without the anchor's record time, or within 20% of it."""
    if timeline is None or anchor not in timeline:
        return ""
    record_s = finite_number(timeline.get(anchor).record_time_s)
    times = sorted(t for t in (finite_number(v.mean_train_time_ms) for v in verdicts if v.kind == "baseline")
                   if t and t > 0)
    if not record_s or record_s <= 0 or not times:
        return ""
    here_s = times[len(times) // 2] / 1000 if len(times) % 2 else (times[len(times) // 2 - 1]
                                                                      + times[len(times) // 2]) / 2000
    ratio = here_s / record_s
    if 1 / 1.2 <= ratio <= 1.2:
        return ""
    runs = "its baseline" if len(times) == 1 else f"median of {len(times)} baselines"
    return (f"here the anchor took {here_s:.2f} s ({runs}), its record {record_s:.2f} s: "
            f"{ratio:.1f}x, so % reads {'high' if ratio > 1 else 'low'}")


def gpu_hours_at(session: Session, moment: str | dt.datetime | None) -> float | None:
    """GPU-hours the session had used at `moment` (an ISO time or a datetime): its start plus elapsed wall-clock
    time, times its GPUs; None when either time is unknown."""
    start = parse_iso(session.started_at)
    when = parse_iso(moment) if isinstance(moment, str) or moment is None else moment
    if start is None or when is None:
        return None
    return max(0.0, (when - start).total_seconds()) / 3600 * max(1, session.gpus)


def verdict_moment(verdict: Verdict) -> str | None:
    return verdict.finished_at or verdict.started_at


def verdict_percent(verdict: Verdict, gap_s: float | None) -> float | None:
    """The verdict's % of human progress over the timeline's gap (the one its session's curve uses), else the
    verdict's own where there is no gap; never invented. The verdict's own is what the validator computed with the
    manifest of its day: after a re-timing of the records it would disagree with the session's best on one screen."""
    speedup = verdict.speedup or {}
    faster = finite_number(speedup.get("seconds_faster"))
    if gap_s and faster is not None:
        return 100.0 * faster / gap_s
    return finite_number(speedup.get("percent_of_human_progress"))


def judge_label(verdict: Verdict) -> str:
    """The judge's result in a word or two, with the static rule checks folded in."""
    if (verdict.static or {}).get("ok") is False:
        return "rules broken"
    judge = verdict.judge or {}
    status = judge.get("status")
    if status == "answered":
        return "flagged" if judge.get("cheating") else "cleared"
    if status in ("skipped", "unavailable", "failed"):
        return status
    return "-" if verdict.kind == "baseline" else "not run"
