"""What a card, the table, the plot and the verdict table know about one session: `SessionView` and its parts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# How verdicts are read (moment, GPU-hours, % of human progress, the judge's word) is shared with the reports.
from nanogpt_tui.reports.conventions import finite_number, gap_for, gpu_hours_at, judge_label, verdict_percent
from nanogpt_tui.scoring import ProgressCurve, ProgressPoint
from nanogpt_tui.sessions import model as M
from nanogpt_tui.sessions.model import Session
from nanogpt_tui.telemetry.activity import Activity
from nanogpt_tui.telemetry.cost import AgentTokens, SessionCost
from nanogpt_tui.telemetry.gpu import GpuFigures
from nanogpt_tui.tui.data.formatting import plural, format_gpu_hours, format_share, format_tokens, format_utc, short_id

if TYPE_CHECKING:  # the validator imports scipy (a second of start-up): loaded when verdicts are first read
    from nanogpt_tui.validator.verdict import Verdict

__all__ = ["CHANGE_SHORT", "ChangeShares", "SessionView", "UsageSummary", "VerdictRow", "finite_number", "gap_for",
           "gpu_hours_at", "judge_label", "verdict_percent"]


@dataclass(frozen=True)
class VerdictRow:
    """One row of the verdict table, and the verdict itself for the detail view."""

    session_id: str
    verdict: Verdict
    percent: float | None  # % of human progress; None where the timeline cannot say (e.g. the smoke anchor)

    @property
    def time(self) -> str | None:
        return self.verdict.finished_at or self.verdict.started_at

    @property
    def p_value(self) -> float | None:
        return (self.verdict.stats or {}).get("p_value")

    @property
    def mean_s(self) -> float | None:
        ms = self.verdict.mean_train_time_ms
        return None if ms is None else ms / 1000

    @property
    def ci_half_s(self) -> float | None:
        ci = (self.verdict.stats or {}).get("ci95_train_time_ms")
        if not isinstance(ci, (list, tuple)) or len(ci) != 2 or None in ci:
            return None
        return (ci[1] - ci[0]) / 2000

    @property
    def seconds_faster(self) -> float | None:
        return finite_number((self.verdict.speedup or {}).get("seconds_faster"))

    @property
    def p_faster(self) -> float | None:
        """Welch's (or the one-sample) p-value that it is faster than the session's best so far or the anchor."""
        return finite_number(((self.verdict.stats or {}).get("faster") or {}).get("p_value"))

    @property
    def scored(self) -> bool:
        """Whether a speedup and a % belong in the row: only a submission that validated and counts (a rejected
        or failed one has a mean time, but no speedup that means anything)."""
        return self.verdict.kind != "baseline" and bool(self.verdict.counts)

    def cells(self) -> dict[str, str]:
        """Every column as plain text (the table styles them)."""
        v = self.verdict
        mean = "-" if self.mean_s is None else f"{self.mean_s:.3f}"
        if self.mean_s is not None and self.ci_half_s is not None:
            mean += f" ± {self.ci_half_s:.3f}"
        p_value = finite_number(self.p_value)
        return {
            "time": format_utc(self.time, seconds=False),
            "session": short_id(self.session_id),
            "submission": v.submission,
            "outcome": v.outcome,
            "judge": judge_label(v),
            "p": "-" if p_value is None else f"{p_value:.2g}",
            "mean": mean,
            "p_faster": "-" if self.p_faster is None or v.kind == "baseline" else f"{self.p_faster:.2g}",
            "speedup": "-" if self.seconds_faster is None or not self.scored else f"{self.seconds_faster:+.2f} s",
            "percent": "-" if self.percent is None or not self.scored else f"{self.percent:.1f}%",
            "significant": "baseline" if v.kind == "baseline" else ("yes" if v.significant else "no"),
        }


@dataclass
class UsageSummary:
    """The agent's tokens so far (from `telemetry.cost.token_meter`): metered by the model gateway for a sandboxed
    session, else what the agent reported; and the agent CLI's own cost claim."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None  # what the agent CLI reported (`total_cost_usd`): shown beside ours, never trusted
    cost_complete: bool = True
    metered: bool = False  # counted by the model gateway from the API's answers (the agent cannot change them)

    @classmethod
    def of(cls, tokens: AgentTokens) -> UsageSummary:
        return cls(tokens.input_tokens, tokens.cached_input_tokens, tokens.output_tokens, tokens.cli_cost_usd,
                   tokens.cli_cost_complete, tokens.metered)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def text(self) -> str:
        """`3.6M in · 90k out metered`, `3.6M in · 90k out` (what the agent reported), or `no tokens yet`."""
        if not self.total_tokens:
            return "no tokens yet" + (" (metered)" if self.metered else "")
        return f"{format_tokens(self.input_tokens)} in · {format_tokens(self.output_tokens)} out" + \
            (" metered" if self.metered else "")

# Short names of the kinds of change (`nanogpt_tui.classify.KINDS`, not imported here: it is slow to import).

CHANGE_SHORT = {"hyperparameter": "hp", "algorithmic": "algo", "systems": "sys"}


@dataclass(frozen=True)
class ChangeShares:
    """Where a session's GPU-hours went by kind of change (hyperparameter, algorithmic, systems): the report's
    change ledger (`nanogpt_tui.reports.ledger`) summarised, so the control room and the report agree."""

    gpu_hours: dict[str, float]  # per kind, `none` (no code change) included
    of_changes: dict[str, float | None]  # each kind's share of the GPU-hours spent on changes (the three kinds, in
    # the classifier's order: hyperparameter, algorithmic, systems)
    changes_gpu_hours: float  # GPU-hours of the experiments and submissions that changed code
    experiments: int
    submissions: int
    problems: tuple[str, ...] = ()  # what the ledger could not read (e.g. no anchor code to compare with)

    @classmethod
    def from_ledger(cls, ledger) -> ChangeShares:
        shares = ledger.shares()
        subs = sum(1 for item in ledger.items if item.source == "submission")
        return cls(gpu_hours=dict(ledger.gpu_hours_by_kind()), of_changes=dict(shares["of_changes"]),
                   changes_gpu_hours=shares["changes_gpu_hours"], experiments=len(ledger.items) - subs,
                   submissions=subs, problems=tuple(ledger.problems))

    def _found(self) -> str:
        return f"{plural(self.experiments, 'experiment')}, {plural(self.submissions, 'submission')}"

    def compact(self, short: bool = False) -> str:
        """`hp 62% · algo 30% · sys 8%` of the GPU-hours spent on changes; why not, when no change was classified
        (`short`: in a few words, for a narrow card)."""
        if self.changes_gpu_hours <= 0:
            if not self.experiments and not self.submissions:
                return "no changes tried yet" if short else "no experiments or submissions yet"
            return "no change classified" if short else f"no code change classified ({self._found()})"
        return " · ".join(f"{CHANGE_SHORT.get(k, k)} {format_share(share)}" for k, share in self.of_changes.items())

    def detail(self, used_gpu_hours: float) -> str:
        """Each kind's GPU-hours and share of changes, and the part of the GPU-hours used that went to changes."""
        if self.changes_gpu_hours <= 0:
            return self.compact() + (f" · {self.problems[0]}" if self.problems else "")
        kinds = " · ".join(f"{k} {format_gpu_hours(self.gpu_hours[k]) if self.gpu_hours.get(k) else '0'} "
                           f"({format_share(share)})" for k, share in self.of_changes.items())
        used = max(used_gpu_hours, self.changes_gpu_hours)
        return (f"{kinds} · {format_gpu_hours(self.changes_gpu_hours)} of {format_gpu_hours(used)} used on changes "
                f"({format_share(self.changes_gpu_hours / used)}) · {self._found()}")


@dataclass
class SessionView:
    """Everything a card, the plot and the verdict table need about one session."""

    session: Session
    verdicts: list[VerdictRow] = field(default_factory=list)
    usage: UsageSummary = field(default_factory=UsageSummary)
    gap_s: float | None = None
    problems: list[str] = field(default_factory=list)
    complete: bool = True  # False for the first, quick look (session.json only; verdicts and usage follow)
    changes: ChangeShares | None = None  # None until the session's change ledger has been built
    activity: Activity | None = None  # the last tool call, message or validator progress (None: nothing yet)
    cost: SessionCost | None = None  # dollars at the price table's rates (None until verdicts and usage are read)
    gpu: GpuFigures | None = None  # from gpu.jsonl (None: no sample yet)
    # What the sandbox refused (the gateway's host-side record): how many, and the last few (oldest first).
    blocked: int = 0
    recent_blocked: tuple = ()

    @property
    def id(self) -> str:
        return self.session.id

    def sandbox_text(self) -> str:
        """"not sandboxed", or "sandboxed · 3 blocked" (the last refusal named)."""
        if not self.session.sandboxed:
            return "not sandboxed"
        text = f"sandboxed · {self.blocked} blocked"
        if self.recent_blocked:
            text += f" (last: {self.recent_blocked[-1].text()})"
        return text

    @property
    def curve(self) -> ProgressCurve:
        points = []
        for row in self.verdicts:
            if row.verdict.counts and row.verdict.kind != "baseline" and row.seconds_faster is not None:
                hours = gpu_hours_at(self.session, row.time)
                if hours is not None:
                    points.append(ProgressPoint(hours, row.seconds_faster))
        return ProgressCurve(points)

    @property
    def best_seconds_faster(self) -> float | None:
        curve = self.curve
        return curve.final if curve.steps else None

    @property
    def validated(self) -> int:
        """Submissions that count (valid, significant, comparable), measured speedup or not."""
        return sum(1 for r in self.verdicts if r.verdict.counts and r.verdict.kind != "baseline")

    @property
    def best_percent(self) -> float | None:
        best = self.best_seconds_faster
        if best is None or not self.gap_s:
            return None
        return 100.0 * best / self.gap_s

    @property
    def last_verdict(self) -> VerdictRow | None:
        submissions = [r for r in self.verdicts if r.verdict.kind != "baseline"] or self.verdicts
        return submissions[-1] if submissions else None

    def budget_figures(self, now: dt.datetime) -> dict[str, Any]:
        budget = self.session.budget()
        used = budget.used_gpu_hours(now)
        running = self.session.status == M.RUNNING
        return {
            "used": used, "total": budget.gpu_hours, "fraction": min(1.0, used / budget.gpu_hours) if budget.gpu_hours
            else 0.0, "seconds_left": budget.seconds_left(now) if self.session.started_at and
            self.session.status in M.ACTIVE else None, "burn": budget.burn_rate if running else 0.0,
        }
