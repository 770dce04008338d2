"""Many sessions at once: the published table reproduced from session data (`reproduce`), prompting strategies
compared (`compare`), and a session's GPU-hours per kind of change for the control room; headless (scipy for the
statistics, matplotlib only through `figure`).

A session's **outcome** is its % of human progress recovered at the end of its budget: the best seconds faster
among its counted submissions whose verdict came within the budget (original plus extensions), over the
anchor-to-target gap. Sessions still running, and sessions whose anchor/target pair is not on the human
timeline (no % exists), are left out and listed with the reason.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import permutations
from pathlib import Path
from typing import Any

from nanogpt_tui.classify import ALGORITHMIC, HYPERPARAMETER, KINDS, SYSTEMS
from nanogpt_tui.contract import layout as L
from nanogpt_tui.errors import UserError
from nanogpt_tui.records import Timeline
from nanogpt_tui.reports.figure import FigureSpec, HumanLineSpec, Series
from nanogpt_tui.reports.ledger import ClassifierCache
from nanogpt_tui.reports.session import SessionData, load_session_data
from nanogpt_tui.scoring import ProgressCurve, human_lines
from nanogpt_tui.sessions import model as M

OUTCOMES_SCHEMA_VERSION = 1
CONFIDENCE = 0.95
THRESHOLD_PERCENT = 10.0
POWER = 0.8
HUMAN_ALGORITHMIC_SHARE = 0.77  # the published analysis: share of human records that changed the algorithm
HUMAN_SHARE_TOLERANCE = 0.10  # "about 77%": within 10 points
PUBLISHED_SETUP = {"anchor": "2025-09-03_FA3", "target": "2026-01-19_BigramHashEmbedding", "budget_gpu_hours": 512.0}
# NanoGPT-Bench's published results (512 H100-hours, FA3 -> BigramHashEmbedding), matched by agent and strategy.
PUBLISHED = (
    {"label": "Autoresearch on Opus 4.6 Max", "agent": "claude-autoresearch", "strategy": "autoresearch",
     "percent": 9.3},
    {"label": "Codex on GPT-5.4 xhigh", "agent": "codex", "strategy": "default", "percent": 8.6},
    {"label": "Claude Code on Opus 4.6 Max", "agent": "claude", "strategy": "default", "percent": 8.2},
)
GROUPINGS: dict[str, Callable[[M.Session], str]] = {
    "strategy": lambda s: s.strategy,
    "agent": lambda s: s.agent,
    "group": lambda s: f"{s.agent} / {s.strategy}",
    "model": lambda s: s.agent_model or "(default model)",
}


@dataclass
class Outcome:
    """One finished session's numbers."""

    data: SessionData
    final_seconds_faster: float
    final_percent: float | None
    area_seconds: float  # seconds faster integrated over the budget's GPU-hours
    budget_gpu_hours: float

    @property
    def session(self) -> M.Session:
        return self.data.session

    @property
    def mean_percent_over_budget(self) -> float | None:
        if not self.data.gap_s or not self.budget_gpu_hours:
            return None
        return 100.0 * self.area_seconds / self.data.gap_s / self.budget_gpu_hours

    @property
    def mean_seconds_over_budget(self) -> float:
        return self.area_seconds / self.budget_gpu_hours if self.budget_gpu_hours else 0.0


@dataclass
class Outcomes:
    outcomes: list[Outcome] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"session", "reason"}
    problems: list[str] = field(default_factory=list)


def session_dirs(sessions_dir: Path) -> list[Path]:
    root = Path(sessions_dir)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder; pass the folder that holds the session folders (e.g. sessions/).")
    return [p for p in sorted(root.iterdir())
            if p.is_dir() and not p.name.startswith(".") and (p / L.SESSION_FILE).is_file()]


def _agent_wrote(session_dir: Path) -> bool:
    """Whether the session's agent wrote any event (a session killed while starting has none)."""
    events = session_dir / L.EVENTS_FILE
    try:
        return events.stat().st_size > 0
    except OSError:
        return False


def load_outcomes(sessions_dir: Path, timeline: Timeline | None, *, baselines_dir: Path | None = None,
                  now: dt.datetime | None = None, require_percent: bool = True) -> Outcomes:
    """Every finished session under `sessions_dir` with its outcome; the rest listed in `skipped`."""
    result = Outcomes()
    classifier = ClassifierCache()
    dirs = session_dirs(sessions_dir)
    for path in dirs:
        try:
            data = load_session_data(path, timeline, baselines_dir=baselines_dir, now=now, classifier=classifier)
        except UserError as err:
            result.problems.append(str(err))
            continue
        s = data.session
        result.problems.extend(data.problems)  # an unreadable verdict does not count: say so beside the numbers
        if s.status in M.ACTIVE:
            result.skipped.append({"session": s.id, "reason": f"still {s.status}: its budget has not ended"})
            continue
        if s.started_at is None:
            result.skipped.append({"session": s.id, "reason": f"{s.status} before it started"})
            continue
        if s.status in (M.KILLED, M.FAILED) and not data.verdicts and not _agent_wrote(path):
            result.skipped.append({"session": s.id, "reason": f"{s.status} before its agent ran (no events, no "
                                                              "verdicts), so it is no data point"})
            continue
        if require_percent and not data.gap_s:
            result.skipped.append({"session": s.id, "reason": _no_percent(s)})
            continue
        total = s.total_gpu_hours
        result.outcomes.append(Outcome(data=data, final_seconds_faster=data.final_seconds_faster,
                                       final_percent=data.final_percent, area_seconds=data.curve.area(total),
                                       budget_gpu_hours=total))
    if not dirs:
        result.problems.append(f"{sessions_dir} holds no session folders (folders with a session.json).")
    return result


# ------------------------------------------------------------------------------------------------ statistics

def describe(values: Sequence[float]) -> dict[str, Any]:
    import numpy as np

    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return {"n": 0, "values": [], "mean": None, "median": None, "sd": None, "min": None, "max": None}
    return {"n": n, "values": [round(float(v), 6) for v in x], "mean": round(float(x.mean()), 6),
            "median": round(float(np.median(x)), 6), "sd": round(float(x.std(ddof=1)), 6) if n >= 2 else None,
            "min": round(float(x.min()), 6), "max": round(float(x.max()), 6)}


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The two-sided t-interval of the mean (n >= 2); None for fewer values."""
    from scipy import stats

    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return (mean - half, mean + half)


def min_attainable_p(sizes: Sequence[int]) -> float:
    """The smallest two-sided p-value an exact rank test (Mann-Whitney for two groups, Kruskal-Wallis for more)
    can give with groups of these sizes, whatever the data: the groups perfectly separated."""
    sizes = [n for n in sizes if n > 0]
    total = sum(sizes)
    arrangements = math.factorial(total)
    for n in sizes:
        arrangements //= math.factorial(n)
    if len(sizes) < 2:
        return 1.0
    if len(sizes) == 2:
        return min(1.0, 2 / arrangements)
    # The fully separated arrangements in every group order; the extreme H is reached by some of them.
    best, count = -1.0, 0
    for order in set(permutations(sizes)):
        rank, h = 1, 0.0
        for n in order:
            r = sum(range(rank, rank + n))
            h += r * r / n
            rank += n
        if h > best + 1e-9:
            best, count = h, 0
        if abs(h - best) <= 1e-9:
            count += _orders_with_sizes(order, sizes)
    return min(1.0, count / arrangements)


def _orders_with_sizes(order: tuple[int, ...], sizes: Sequence[int]) -> int:
    """How many labelled group orders give this size sequence (groups of equal size can swap)."""
    from collections import Counter

    out = 1
    for count in Counter(sizes).values():
        out *= math.factorial(count)
    del order
    return out


def rank_test(groups: Sequence[Sequence[float]]) -> dict[str, Any]:
    """Mann-Whitney U (two groups) or Kruskal-Wallis (more), two-sided, on groups with at least one value."""
    from scipy import stats

    groups = [list(g) for g in groups if len(g)]
    sizes = [len(g) for g in groups]
    out: dict[str, Any] = {"test": None, "statistic": None, "p_value": None, "sizes": sizes,
                           "min_attainable_p": min_attainable_p(sizes) if len(groups) >= 2 else None}
    if len(groups) < 2 or sum(sizes) < 3:
        out["note"] = "fewer than two groups, or too few sessions, to test"
        return out
    flat = [v for g in groups for v in g]
    if max(flat) == min(flat):
        out.update(test="Mann-Whitney U" if len(groups) == 2 else "Kruskal-Wallis", statistic=None, p_value=1.0,
                   note="every session has the same value")
        return out
    if len(groups) == 2:
        r = stats.mannwhitneyu(groups[0], groups[1], alternative="two-sided", method="auto")
        exact = min(sizes) <= 8 and len(set(flat)) == len(flat)
        out.update(test="Mann-Whitney U", statistic=float(r.statistic), p_value=float(r.pvalue),
                   method="exact" if exact else "normal approximation: ties or large groups")
    else:
        r = stats.kruskal(*groups)
        out.update(test="Kruskal-Wallis", statistic=float(r.statistic), p_value=float(r.pvalue),
                   method="chi-square approximation")
    return out


def min_detectable_difference(groups: Sequence[Sequence[float]], alpha: float, power: float = POWER) -> dict | None:
    """The smallest difference between the two smallest groups a rank test would detect with `power`, at the
    observed (pooled) spread: the t-test's figure, widened by the rank test's asymptotic efficiency (3/pi)."""
    from scipy import stats

    sized = sorted((g for g in groups if len(g) >= 1), key=len)[:2]
    if len(sized) < 2:
        return None
    pooled_ss, df = 0.0, 0
    for g in groups:
        if len(g) >= 2:
            m = sum(g) / len(g)
            pooled_ss += sum((v - m) ** 2 for v in g)
            df += len(g) - 1
    if df < 1:
        return None
    sd = math.sqrt(pooled_ss / df)
    n1, n2 = len(sized[0]), len(sized[1])
    t_df = max(1, n1 + n2 - 2)
    factor = float(stats.t.ppf(1 - alpha / 2, t_df)) + float(stats.t.ppf(power, t_df))
    diff = factor * sd * math.sqrt(1 / n1 + 1 / n2) / math.sqrt(3 / math.pi)
    return {"pooled_sd": sd, "difference": diff, "sizes": [n1, n2], "power": power, "alpha": alpha}


def sessions_needed(alpha: float) -> int:
    """The fewest sessions per group (two equal groups) for which an exact Mann-Whitney test can reach alpha."""
    n = 1
    while min_attainable_p([n, n]) >= alpha and n < 50:
        n += 1
    return n


# ------------------------------------------------------------------------------------------------ curves

def mean_curve(curves: Sequence[ProgressCurve], until: float) -> tuple[list[float], list[float]]:
    """The mean of several step curves as one step line from 0 to `until`."""
    xs_all = sorted({0.0, *(p.gpu_hours for c in curves for p in c.steps if p.gpu_hours <= until)})
    xs, ys = [0.0], [sum(c.value_at(0.0) for c in curves) / len(curves)]
    for x in xs_all[1:]:
        value = sum(c.value_at(x) for c in curves) / len(curves)
        xs += [x, x]
        ys += [ys[-1], value]
    xs.append(max(until, xs[-1]))
    ys.append(ys[-1])
    return xs, ys


def outcomes_figure(outcomes: Sequence[Outcome], by: Callable[[M.Session], str], timeline: Timeline | None,
                    title: str) -> FigureSpec:
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(by(o.session), []).append(o)
    anchor, target = outcomes[0].session.anchor, outcomes[0].session.target
    gap = outcomes[0].data.gap_s
    series: list[Series] = []
    for name, members in groups.items():
        until = max(o.budget_gpu_hours for o in members)
        for o in members:
            xs, ys = o.data.curve.series(o.budget_gpu_hours)
            series.append(Series(label=o.session.id, xs=xs, ys=ys, group=name, faint=len(members) > 1,
                                 gap_s=o.data.gap_s))
        xs, ys = mean_curve([o.data.curve for o in members], until)
        label = f"{name} (n={len(members)}{', mean' if len(members) > 1 else ''})"
        series.append(Series(label=label, xs=xs, ys=ys, group=name, bold=len(members) > 1, gap_s=gap))
    lines = []
    if timeline is not None and gap and target and anchor in timeline and target in timeline:
        lines = [HumanLineSpec(h.label, h.seconds_faster, h.percent) for h in human_lines(timeline, anchor, target)]
    x_max = max(o.budget_gpu_hours for o in outcomes)
    return FigureSpec(title=title, series=series, human_lines=lines, gap_s=gap, anchor=anchor, x_max=x_max,
                      note="Thin lines: single sessions; thick: the group's mean curve." if any(
                          s.faint for s in series) else "")


# ------------------------------------------------------------------------------------------------ reproduce

def _no_percent(session: M.Session) -> str:
    return f"no % of human progress: {session.anchor} -> {session.target or '(no target)'} is not on the timeline"


def _finding(claim: str, holds: bool | None, detail: str, why_unchecked: str = "") -> dict[str, Any]:
    if holds is None:
        sentence = f"{claim}: not checked ({why_unchecked})"
    else:
        sentence = f"{claim}: {'true' if holds else 'false'}"
    return {"claim": claim, "holds": holds, "sentence": sentence, "detail": detail}


def pooled_change_hours(outcomes: Sequence[Outcome]) -> dict[str, float]:
    hours = {k: 0.0 for k in KINDS}
    for o in outcomes:
        for k, v in o.data.ledger.gpu_hours_by_kind().items():
            if k in hours:
                hours[k] += v
    return hours


def kinds_side_by_side(hours: dict[str, float], human: dict | None) -> list[dict[str, Any]]:
    """Both halves of the published finding in one table: per kind of change, the agents' share of the GPU-hours
    they spent on code changes, and the human records' share of records (classified against their predecessors).
    Humans' `mixed` and `none` records have no agent column (agents' hours are counted by the leading kind)."""
    changed = sum(hours.get(k, 0.0) for k in KINDS)
    of_records = ((human or {}).get("share") or {}).get("of_records") or {}
    by_label = ((human or {}).get("share") or {}).get("by_label") or {}
    rows = []
    for kind in (*KINDS, "mixed", "none"):
        agents = hours.get(kind, 0.0) / changed if kind in KINDS and changed > 0 else None
        rows.append({"kind": kind, "agents_gpu_hours": round(hours[kind], 6) if kind in KINDS else None,
                     "agents_share_of_gpu_hours": agents, "humans_records": by_label.get(kind),
                     "humans_share_of_records": of_records.get(kind)})
    return rows


def reproduce(result: Outcomes, *, threshold: float = THRESHOLD_PERCENT, human: dict | None = None,
              confidence: float = CONFIDENCE) -> dict[str, Any]:
    """The benchmark's table from session data, the published numbers beside it, and the findings checked.

    Sessions without a % of human progress are left out (with the reason) when some session has one; when none
    has (every session on an anchor off the human timeline, such as the smoke record's demo), the table is in
    seconds faster and the findings about % cannot be checked."""
    use_percent = any(o.final_percent is not None for o in result.outcomes)
    kept, skipped = [], list(result.skipped)
    for o in result.outcomes:
        if use_percent and o.final_percent is None:
            skipped.append({"session": o.session.id, "reason": _no_percent(o.session)})
        else:
            kept.append(o)
    groups: dict[tuple[str, str], list[Outcome]] = {}
    for o in kept:
        groups.setdefault((o.session.agent, o.session.strategy), []).append(o)
    rows = []
    for (agent, strategy), members in sorted(groups.items()):
        values = [o.final_percent for o in members if o.final_percent is not None]
        stats_ = describe(values)
        ci = mean_ci(values, confidence)
        seconds = [o.final_seconds_faster for o in members]
        stats_s = describe(seconds)
        ci_s = mean_ci(seconds, confidence)
        published = next((p for p in PUBLISHED if p["agent"] == agent and p["strategy"] == strategy), None)
        anchors = sorted({o.session.anchor for o in members})
        targets = sorted({o.session.target or "" for o in members})
        budgets = sorted({o.budget_gpu_hours for o in members})
        comparable = anchors == [PUBLISHED_SETUP["anchor"]] and targets == [PUBLISHED_SETUP["target"]]
        notes = []
        if published and not comparable:
            notes.append(f"published for {PUBLISHED_SETUP['anchor']} -> {PUBLISHED_SETUP['target']}; "
                         f"these sessions used {', '.join(anchors)} -> {', '.join(targets)}")
        if published and budgets != [PUBLISHED_SETUP["budget_gpu_hours"]]:
            notes.append(f"published at {PUBLISHED_SETUP['budget_gpu_hours']:g} GPU-hours; these sessions had "
                         f"{', '.join(f'{b:g}' for b in budgets)}")
        rows.append({
            "agent": agent, "strategy": strategy,
            "models": sorted({o.session.agent_model or "(default)" for o in members}),
            "n": len(members), "sessions": [o.session.id for o in members],
            "final_percent": stats_["values"], "mean_percent": stats_["mean"], "sd_percent": stats_["sd"],
            "ci_percent": None if ci is None else [round(ci[0], 6), round(ci[1], 6)],
            "final_seconds_faster": stats_s["values"], "mean_seconds_faster": stats_s["mean"],
            "ci_seconds_faster": None if ci_s is None else [round(ci_s[0], 6), round(ci_s[1], 6)],
            "ci_method": f"{int(confidence * 100)}% t-interval of the mean" if ci_s else "one session: no interval",
            "budgets_gpu_hours": budgets, "anchors": anchors, "targets": targets,
            "published": None if published is None else {"label": published["label"], "percent": published["percent"]},
            "difference_percent": None if published is None or stats_["mean"] is None
            else round(stats_["mean"] - published["percent"], 6),
            "published_inside_ci": None if published is None or ci is None else ci[0] <= published["percent"] <= ci[1],
            "notes": notes,
        })
    findings = []
    if rows and use_percent:
        top = max(rows, key=lambda r: r["mean_percent"])
        findings.append(_finding(
            f"no agent recovered more than {threshold:g}% of human progress", all(r["mean_percent"] <= threshold
                                                                               for r in rows),
            f"highest group mean {top['mean_percent']:.2f}% ({top['agent']} / {top['strategy']}, n={top['n']})"))
        best = max(kept, key=lambda o: o.final_percent or 0.0)
        findings.append(_finding(
            f"no single session recovered more than {threshold:g}% of human progress",
            all((o.final_percent or 0.0) <= threshold for o in kept),
            f"highest session {best.final_percent:.2f}% ({best.session.id})"))
    else:
        why = ("no finished sessions with a % of human progress" if not rows else
               "no session's anchor and target are on the human timeline, so no % of human progress exists")
        findings.append(_finding(f"no agent recovered more than {threshold:g}% of human progress", None, "", why))
    hours = pooled_change_hours(kept)
    changed = sum(hours.values())
    claim = "agents spent most of the compute that went into code changes on hyperparameter tuning"
    if changed > 0:
        share = {k: v / changed for k, v in hours.items()}
        findings.append(_finding(
            claim, share[HYPERPARAMETER] > 0.5,
            f"of {changed:.1f} GPU-hours spent on code changes: hyperparameter {100 * share[HYPERPARAMETER]:.0f}%, "
            f"algorithmic {100 * share[ALGORITHMIC]:.0f}%, systems {100 * share[SYSTEMS]:.0f}%"))
    else:
        findings.append(_finding(claim, None, "", "no experiments or submissions with code changes were found"))
    claim = f"about {100 * HUMAN_ALGORITHMIC_SHARE:.0f}% of human records introduced algorithmic changes"
    if human and human.get("share_algorithmic") is not None:
        share = human["share_algorithmic"]
        findings.append(_finding(
            claim, abs(share - HUMAN_ALGORITHMIC_SHARE) <= HUMAN_SHARE_TOLERANCE,
            f"measured {100 * share:.0f}% over {human['classified']} consecutive record pair(s) with code "
            f"({len(human['skipped'])} pair(s) skipped for missing code)"))
    else:
        findings.append(_finding(claim, None, "", "no pair of consecutive human records has its code in "
                                                  "human_baselines/; fetch or import them, see `nanogpt-tui "
                                                  "timeline-classify`"))
    return {
        "kinds_side_by_side": kinds_side_by_side(hours, human),
        "schema_version": OUTCOMES_SCHEMA_VERSION, "threshold_percent": threshold, "confidence": confidence,
        "unit": "% of human progress" if use_percent or not rows else "seconds faster",
        "groups": rows,
        "published": [{**p, "matched": any(r["agent"] == p["agent"] and r["strategy"] == p["strategy"]
                                           for r in rows)} for p in PUBLISHED],
        "published_setup": PUBLISHED_SETUP,
        "findings": findings,
        "change_gpu_hours": {k: round(v, 6) for k, v in hours.items()},
        "human_records": human,
        "skipped": skipped, "problems": result.problems,
    }


# ------------------------------------------------------------------------------------------------ compare

def compare(result: Outcomes, *, by: str = "strategy", alpha: float = 0.05) -> dict[str, Any]:
    """Per group (strategy by default): the distribution of final progress and of the curve's area, a rank test
    between groups with its p-value, and what the number of sessions can and cannot show."""
    if by not in GROUPINGS:
        raise UserError(f"--by must be one of {', '.join(GROUPINGS)}, not {by!r}.")
    key = GROUPINGS[by]
    # % of human progress where the sessions have one (those without are left out, with the reason); seconds
    # faster only when none has.
    use_percent = any(o.final_percent is not None for o in result.outcomes)
    unit = "% of human progress" if use_percent else "seconds faster"
    kept, skipped = [], list(result.skipped)
    for o in result.outcomes:
        if use_percent and o.final_percent is None:
            skipped.append({"session": o.session.id, "reason": _no_percent(o.session)})
        else:
            kept.append(o)
    groups: dict[str, list[Outcome]] = {}
    for o in kept:
        groups.setdefault(key(o.session), []).append(o)
    names = sorted(groups)

    def final(o: Outcome) -> float:
        return o.final_percent if use_percent else o.final_seconds_faster

    def area(o: Outcome) -> float:
        return o.mean_percent_over_budget if use_percent else o.mean_seconds_over_budget

    rows = []
    for name in names:
        members = groups[name]
        rows.append({
            "name": name, "n": len(members), "sessions": [o.session.id for o in members],
            "final": describe([final(o) for o in members]),
            "area": describe([area(o) for o in members]),
            "agents": sorted({o.session.agent for o in members}),
            "models": sorted({o.session.agent_model or "(default)" for o in members}),
            "budgets_gpu_hours": sorted({o.budget_gpu_hours for o in members}),
            "anchors": sorted({o.session.anchor for o in members}),
        })
    finals = [[final(o) for o in groups[n]] for n in names]
    areas = [[area(o) for o in groups[n]] for n in names]
    tests = {"final": rank_test(finals), "area": rank_test(areas)}
    for t in tests.values():
        t["significant"] = None if t["p_value"] is None else t["p_value"] < alpha
    mdd = min_detectable_difference(finals, alpha)
    statement = _honest_statement(by, names, groups, tests, mdd, alpha, unit)
    return {
        "schema_version": OUTCOMES_SCHEMA_VERSION, "by": by, "unit": unit, "alpha": alpha,
        "area_definition": ("progress integrated over GPU-hours up to the budget, divided by the budget: the mean "
                            f"{unit} over the budget (rewards getting there early)"),
        "groups": rows, "tests": tests, "min_detectable_difference": mdd, "statement": statement,
        "skipped": skipped, "problems": result.problems,
    }


def _honest_statement(by: str, names: list[str], groups: dict[str, list[Outcome]], tests: dict, mdd: dict | None,
                      alpha: float, unit: str) -> list[str]:
    points = "percentage points" if unit.startswith("%") else "seconds"
    noun = {"strategy": "strategies", "agent": "agents", "group": "agent/strategy groups", "model": "models"}[by]
    out: list[str] = []
    sizes = [len(groups[n]) for n in names]
    if len(names) < 2:
        out.append(f"Only one {by} ({names[0] if names else 'none'}) among the finished sessions: there is nothing "
                   "to compare.")
        return out
    if all(n == 1 for n in sizes):
        out.append(f"With 1 session per {by} no test is possible: one session per {by} cannot separate the {by} "
                   "from session-to-session luck. Run several sessions of each.")
        return out
    singles = [n for n in names if len(groups[n]) == 1]
    if singles:
        out.append(f"{', '.join(singles)} {'has' if len(singles) == 1 else 'have'} a single session, so "
                   f"{'its' if len(singles) == 1 else 'their'} spread is unknown.")
    t = tests["final"]
    test_name = t["test"] or ("Mann-Whitney U" if len(names) == 2 else "Kruskal-Wallis")
    min_p = t["min_attainable_p"]
    size_text = ", ".join(map(str, sizes[:-1])) + f" and {sizes[-1]}"
    if min_p is not None and min_p >= alpha:
        need = sessions_needed(alpha)
        out.append(f"With {size_text} sessions the smallest p-value an exact {test_name} test can give is "
                   f"{min_p:.3f}, so no difference, however large, can be significant at {alpha:g}; two groups need "
                   f"at least {need} sessions each.")
    elif min_p is not None:
        out.append(f"With {size_text} sessions an exact {test_name} test can reach p = {min_p:.3g} at best (the "
                   f"{noun} perfectly separated).")
    if mdd is not None and mdd["pooled_sd"] > 0:
        out.append(f"At the observed spread (pooled SD {mdd['pooled_sd']:.2f} {points}), only a difference of about "
                   f"{mdd['difference']:.2f} {points} or more in final progress would be detected "
                   f"{100 * mdd['power']:.0f}% of the time at {alpha:g}; smaller real differences would usually be "
                   "missed.")
    elif mdd is not None:
        out.append("Every session in a group has the same final value, so the spread cannot be estimated.")
    if t["p_value"] is not None:
        a = tests["area"]
        verdict = "significant" if t["p_value"] < alpha else "not significant"
        method = f" ({t['method']})" if t.get("method") else ""
        out.append(f"Observed: {test_name} p = {t['p_value']:.3g}{method} for final progress"
                   + (f" and p = {a['p_value']:.3g} for the area" if a["p_value"] is not None else "")
                   + f"; {verdict} at {alpha:g}.")
        if t["p_value"] >= alpha:
            out.append(f"A non-significant result does not show that the {noun} are equal, only that these sessions "
                       "cannot tell them apart.")
    # Confounds: what else differs between the groups (a model goes with its agent, so that is not one).
    implied = {"strategy": (), "agent": ("agent", "agent_model"), "group": ("agent", "agent_model"),
               "model": ("agent_model",)}[by]
    for attr, label in (("agent", "agents"), ("agent_model", "models"), ("anchor", "anchors")):
        if attr in implied:
            continue
        sets = {n: sorted({str(getattr(o.session, attr)) for o in groups[n]}) for n in names}
        if len({tuple(v) for v in sets.values()}) > 1:
            listing = "; ".join(f"{n}: {', '.join(v)}" for n, v in sets.items())
            out.append(f"The {noun} ran with different {label} ({listing}), so the comparison mixes the effect of "
                       f"the {label} with that of the {noun}.")
    budgets = {n: sorted({o.budget_gpu_hours for o in groups[n]}) for n in names}
    if len({tuple(v) for v in budgets.values()}) > 1:
        out.append("The groups had different budgets; the area is divided by each session's budget, the final "
                   "value is read at each session's own budget end.")
    return out


# ------------------------------------------------------------------------------------------------ a card

def change_summary(session_dir: Path, timeline: Timeline | None = None, *, baselines_dir: Path | None = None,
                   now: dt.datetime | None = None) -> dict[str, Any]:
    """A session's GPU-hours per kind of change and the shares, for the control room's card."""
    data = load_session_data(Path(session_dir), timeline, baselines_dir=baselines_dir, now=now)
    ledger = data.ledger
    shares = ledger.shares()
    return {"gpu_hours_by_kind": ledger.gpu_hours_by_kind(), "share_of_changes": shares["of_changes"],
            "share_of_used": shares["of_used"], "unattributed_gpu_hours": ledger.unattributed_gpu_hours,
            "items": len(ledger.items), "counts": ledger.counts_by_kind()}
