"""What the control room shows, computed from session folders: headless (no Textual), shared by the TUI and tests.

Three parts:

- session views: a `Session` with its verdicts (as table rows), token usage, progress curve and the share of
  its GPU-hours per kind of change, read from `sessions/<id>/` (`Dashboard` keeps readers between reloads so
  events files are read incrementally, and rebuilds a session's change ledger only when its files change);
- plot data: each session's best seconds faster over GPU-hours, and the human record lines between the
  anchor and the target (none for an anchor outside the human timeline, such as `smoke`);
- `LogTail`: a bounded window on the end of a growing log, read by byte offset, that opens a 1 GB file by
  seeking backwards from its end and reads older lines on demand.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from nanogpt_tui.errors import UserError
from nanogpt_tui.records import Timeline
# How verdicts are read (moment, GPU-hours, % of human progress, the judge's word) is shared with the reports.
from nanogpt_tui.reports.conventions import finite_number, gap_for, gpu_hours_at, judge_label, verdict_percent
from nanogpt_tui.scoring import HumanLine, ProgressCurve, ProgressPoint, human_lines
from nanogpt_tui.sessions import layout as L
from nanogpt_tui.sessions import model as M
from nanogpt_tui.sessions.model import Session, load_session, parse_iso

if TYPE_CHECKING:  # the validator imports scipy (a second of start-up): loaded when verdicts are first read
    from nanogpt_tui.validator.verdict import Verdict

LOG_WINDOW_LINES = 5_000  # lines a live log view keeps in memory; older ones are read from disk on demand
MAX_LINE_CHARS = 4_096  # a longer line is clipped for display (the file keeps it whole)
# Usage events kept per session (text dropped); a session that spends millions of turns keeps only the last.
USAGE_EVENTS_KEPT = 200_000
# A busy agent writes events every second: a session's change ledger is rebuilt for them at most this often (new
# verdicts, experiment or submission folders, results.tsv rows and commits rebuild it at once).
CHANGES_REFRESH_S = 10.0


# ----------------------------------------------------------------------------------------------- formatting

def format_duration(seconds: float | None) -> str:
    """`1h02m`, `12m05s`, `45s`; `-` when unknown; negative durations read `overdue 3m10s`."""
    if seconds is None:
        return "-"
    if seconds < 0:
        return f"overdue {format_duration(-seconds)}"
    s = int(seconds)
    if s >= 86_400:
        return f"{s // 86_400}d{s % 86_400 // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def time_left_text(seconds: float | None) -> str:
    """`3m10s left`, or `1m19s past the deadline` (a session the watchdog is still stopping)."""
    if seconds is None:
        return "-"
    if seconds < 0:
        return f"{format_duration(-seconds)} past the deadline"
    return f"{format_duration(seconds)} left"


def format_tokens(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)


def format_gpu_hours(h: float) -> str:
    if h >= 100:
        return f"{h:.0f}"
    if h >= 10:
        return f"{h:.1f}"
    if h >= 0.1:
        return f"{h:.2f}"
    return f"{h:.3f}"


def format_utc(iso_text: str | None, seconds: bool = True) -> str:
    """`Nov 27 05:12:03` in UTC (the files' own clock), `-` when unknown."""
    moment = parse_iso(iso_text) if iso_text else None
    if moment is None:
        return "-"
    return moment.astimezone(dt.timezone.utc).strftime("%b %d %H:%M:%S" if seconds else "%b %d %H:%M")


_ID = re.compile(r"^\d{8}T(\d{2})(\d{2})(\d{2})Z-(.+)$")


def short_id(session_id: str) -> str:
    """`claude-default 18:00:00` for `20261120T180000Z-claude-default` (ids SessionManager makes); others as is."""
    m = _ID.match(session_id)
    return f"{m.group(4)} {m.group(1)}:{m.group(2)}:{m.group(3)}" if m else session_id


# ----------------------------------------------------------------------------------------------- verdicts

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

    def cells(self) -> dict[str, str]:
        """Every column as plain text (the table styles them)."""
        v = self.verdict
        mean = "-" if self.mean_s is None else f"{self.mean_s:.3f}"
        if self.mean_s is not None and self.ci_half_s is not None:
            mean += f" ± {self.ci_half_s:.3f}"
        return {
            "time": format_utc(self.time, seconds=False),
            "session": short_id(self.session_id),
            "submission": v.submission,
            "outcome": v.outcome,
            "judge": judge_label(v),
            "p": "-" if self.p_value is None else f"{self.p_value:.2g}",
            "mean": mean,
            "speedup": "-" if self.seconds_faster is None else f"{self.seconds_faster:+.2f} s",
            "percent": "-" if self.percent is None else f"{self.percent:.1f}%",
            "significant": "yes" if v.significant else "no",
        }


# -------------------------------------------------------------------------------------------- session view

@dataclass
class UsageSummary:
    """Tokens and cost of a session so far (from its events file)."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    cost_complete: bool = True

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def text(self) -> str:
        if not self.total_tokens and self.cost_usd is None:
            return "no tokens yet"
        cost = "cost -" if self.cost_usd is None else f"${self.cost_usd:.2f}" + ("" if self.cost_complete else "+")
        return f"{format_tokens(self.input_tokens)} in · {format_tokens(self.output_tokens)} out · {cost}"


# Short names of the kinds of change (`nanogpt_tui.classify.KINDS`, not imported here: it is slow to import).
CHANGE_SHORT = {"hyperparameter": "hp", "algorithmic": "algo", "systems": "sys"}


def format_share(value: float | None) -> str:
    """`62%` for 0.62, as the report writes shares; `-` when there is no share to give."""
    return "-" if value is None else f"{100 * value:.0f}%"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


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
        return f"{_plural(self.experiments, 'experiment')}, {_plural(self.submissions, 'submission')}"

    def compact(self) -> str:
        """`hp 62% · algo 30% · sys 8%` of the GPU-hours spent on changes; why not, when no change was classified."""
        if self.changes_gpu_hours <= 0:
            if not self.experiments and not self.submissions:
                return "no experiments or submissions yet"
            return f"no code change classified ({self._found()})"
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

    @property
    def id(self) -> str:
        return self.session.id

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


class _UsageReader:
    """Reads a session's events file incrementally and keeps only what usage totals need."""

    KEEP = ("session_start", "usage", "result")

    def __init__(self, path: Path) -> None:
        from nanogpt_tui.agents.events import EventStream

        self.stream = EventStream(path)
        self.events: list = []
        self.summary = UsageSummary()

    def update(self) -> UsageSummary:
        from nanogpt_tui.agents.events import summarize_usage

        fresh = [ev for ev in self.stream.read_new() if ev.type in self.KEEP and not ev.partial]
        if not fresh and self.events:
            return self.summary
        for ev in fresh:
            ev.text, ev.extra = None, {k: v for k, v in ev.extra.items() if k in ("message_id", "cumulative")}
        self.events.extend(fresh)
        del self.events[:-USAGE_EVENTS_KEPT]
        totals = summarize_usage(self.events)
        self.summary = UsageSummary(totals.input_tokens, totals.cached_input_tokens, totals.output_tokens,
                                    totals.cost_usd, totals.cost_complete)
        return self.summary


@dataclass
class _ChangesEntry:
    """A session's change shares and what they were built from."""

    files: tuple  # the stamp of the files the ledger reads (but the events file)
    events: tuple[int, int] | None  # the events file's (size, mtime)
    built_at: float  # time.monotonic() of the build
    shares: ChangeShares | None
    # Experiment folders change in place (a run's files are written after its folder appears), so a ledger built
    # from them follows the events file; one built from commits changes only with new commits.
    follows_events: bool = True


def _stat_key(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


class Dashboard:
    """Session views for every session under a sessions folder, reloaded on demand (never from the UI thread).

    Each session's change shares come from its change ledger (experiments and submissions classified against
    their parents), which `refresh_changes()` rebuilds only for sessions whose files changed since the last
    build: new verdicts, experiment or submission folders, results.tsv rows, commits, or, at most every
    `changes_refresh_s`, its events file. Views carry the last shares until then, so nothing on the way to the
    screen ever waits for a ledger.
    """

    def __init__(self, root: Path, timeline: Timeline | None = None, *, baselines_dir: Path | None = None,
                 clock: Callable[[], dt.datetime] | None = None, changes_refresh_s: float = CHANGES_REFRESH_S
                 ) -> None:
        self.root = Path(root)
        self.timeline = timeline
        self.baselines_dir = Path(baselines_dir) if baselines_dir else None
        self.clock = clock or M.utc_now
        self.changes_refresh_s = changes_refresh_s
        self._usage: dict[str, _UsageReader] = {}
        self._verdicts: dict[str, tuple[tuple, list[VerdictRow], list[str]]] = {}
        self._views: dict[str, SessionView] = {}
        self._changes: dict[str, _ChangesEntry] = {}
        self._classifier = None  # the ledger's ClassifierCache, made on the first build
        self.problems: list[str] = []

    def session_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if not p.name.startswith(".") and (p / L.SESSION_FILE).is_file())

    def _verdict_rows(self, session: Session, gap: float | None) -> tuple[list[VerdictRow], list[str]]:
        folder = self.root / session.id / L.WORKSPACE / "verdicts"
        try:
            stamp = tuple(sorted((e.name, e.stat().st_mtime_ns) for e in os.scandir(folder)
                                 if e.name.endswith(".json")))
        except FileNotFoundError:
            stamp = ()
        cached = self._verdicts.get(session.id)
        if cached is not None and cached[0] == stamp:
            return cached[1], cached[2]
        from nanogpt_tui.validator.verdict import load_verdicts

        verdicts, problems = load_verdicts(folder)
        rows = [VerdictRow(session.id, v, verdict_percent(v, gap)) for v in verdicts]
        self._verdicts[session.id] = (stamp, rows, problems)
        return rows, problems

    def _changes_files(self, session: Session) -> tuple:
        """A cheap stamp of what the change ledger reads besides the events file (a few stats, no listing)."""
        d = self.root / session.id
        ws = d / L.WORKSPACE
        paths = (ws / "experiments", ws / "experiments" / "results.tsv", ws / "results.tsv", ws / "submissions",
                 ws / ".git" / "logs" / "HEAD", d / L.RUNNER / "anchor")
        verdicts = self._verdicts.get(session.id)
        return (session.started_at, session.finished_at, session.gpus, session.anchor,
                verdicts[0] if verdicts else (), *(_stat_key(p) for p in paths))

    def _changes_for(self, session: Session) -> ChangeShares | None:
        """The session's last built change shares (None before the first build)."""
        entry = self._changes.get(session.id)
        return entry.shares if entry is not None else None

    def changes_due(self, session_id: str) -> bool:
        """Whether the session's change ledger must be (re)built: never built, its files changed, or its events
        changed and the last build is older than `changes_refresh_s`."""
        view = self._views.get(session_id)
        if view is None or not view.complete:
            return False
        entry = self._changes.get(session_id)
        if entry is None or entry.files != self._changes_files(view.session):
            return True
        return (entry.follows_events and entry.events != _stat_key(self.root / session_id / L.EVENTS_FILE)
                and time.monotonic() - entry.built_at >= self.changes_refresh_s)

    def refresh_changes(self, session_ids: Iterable[str] | None = None) -> list[str]:
        """Rebuild the change shares of the sessions that are due (all loaded ones when None); returns the ids
        whose shares changed (their views are replaced, so the caller can hand `views()` on)."""
        from nanogpt_tui.reports.ledger import ClassifierCache, build_ledger

        if self._classifier is None:
            self._classifier = ClassifierCache()  # classifications of code already seen are not redone
        changed = []
        for sid in list(self._views) if session_ids is None else list(session_ids):
            if not self.changes_due(sid):
                continue
            view = self._views[sid]
            files = self._changes_files(view.session)
            events = _stat_key(self.root / sid / L.EVENTS_FILE)
            follows_events = True
            try:
                ledger = build_ledger(self.root / sid, view.session, [r.verdict for r in view.verdicts],
                                      baselines_dir=self.baselines_dir, now=self.clock(), classifier=self._classifier)
                shares = ChangeShares.from_ledger(ledger)
                follows_events = not any("commit" in source for source in ledger.sources)
            except Exception as err:  # noqa: BLE001  a session's ledger must not stop the others' updates
                self.problems.append(f"{sid}: its GPU-hours per kind of change could not be worked out "
                                     f"({type(err).__name__}: {err}); the next change to its files retries.")
                shares = None
            self._changes[sid] = _ChangesEntry(files, events, time.monotonic(), shares, follows_events)
            if shares != view.changes:
                self._views[sid] = replace(view, changes=shares)
                changed.append(sid)
        return changed

    def load(self, session_id: str, quick: bool = False) -> SessionView:
        session = load_session(self.root / session_id)
        if quick:
            view = SessionView(session=session, gap_s=gap_for(self.timeline, session.anchor, session.target),
                               complete=False)
            self._views[session_id] = view
            return view
        gap = gap_for(self.timeline, session.anchor, session.target)
        rows, problems = self._verdict_rows(session, gap)
        reader = self._usage.get(session_id)
        if reader is None:
            reader = self._usage[session_id] = _UsageReader(self.root / session_id / L.EVENTS_FILE)
        try:
            usage = reader.update()
        except OSError as err:
            usage, problems = reader.summary, [*problems, f"{session_id}: events file unreadable ({err})"]
        view = SessionView(session=session, verdicts=rows, usage=usage, gap_s=gap, problems=problems,
                           changes=self._changes_for(session))
        self._views[session_id] = view
        return view

    def reload(self, session_ids: Iterable[str] | None = None, quick: bool = False) -> list[SessionView]:
        """Re-read the given sessions (all when None) and return every view, oldest first. `quick` reads only
        session.json (a first look while verdicts and events, slower to read, are still to come). Change shares
        are the last built (`refresh_changes()` brings them up to date)."""
        present = self.session_ids()
        for gone in set(self._views) - set(present):
            self._views.pop(gone, None)
            self._usage.pop(gone, None)
            self._verdicts.pop(gone, None)
            self._changes.pop(gone, None)
        wanted = set(present) if session_ids is None else set(session_ids) | (set(present) - set(self._views))
        problems = []
        for sid in present:
            if sid in wanted or sid not in self._views:
                try:
                    self.load(sid, quick=quick)
                except UserError as err:
                    self._views.pop(sid, None)
                    problems.append(str(err))
        self.problems = problems
        return self.views()

    def views(self) -> list[SessionView]:
        return sorted(self._views.values(), key=lambda v: (v.session.created_at, v.id))


# ---------------------------------------------------------------------------------------------- plot data

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

    def key(self, resolution: int = 200) -> tuple:
        """Equal keys draw the same figure at `resolution` steps across the x axis (lines that grew by less
        than a step since the last drawing need no new one)."""
        step = (self.x_limit or 1.0) / resolution
        return (self.title, self.x_limit, tuple((s.label, tuple(s.ys), int(s.xs[-1] / step) if s.xs else 0)
                                               for s in self.series))


def record_short(name: str | None) -> str:
    """`FA3` for `2025-09-03_FA3`: record names without their date, for tight titles."""
    if not name:
        return "-"
    head, _, tail = name.partition("_")
    return tail if tail and re.fullmatch(r"\d{4}-\d{2}-\d{2}", head) else name


def short_label(session: Session) -> str:
    return f"{session.agent}/{session.strategy}"


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
                    x_max=x_max, x_limit=max(budget, x_max))


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


# ------------------------------------------------------------------------------------------------ log tail

class LogTail:
    """A window on the end of a growing text file, read by byte offset.

    `open()` returns the last lines by reading backwards from the end in blocks (a 1 GB file opens in
    milliseconds); `read_new()` returns complete lines appended since; `read_older()` reads lines before the
    window's start; `read_around(offset)` moves the window's start to lines around a line found by
    `search_log`. A file that shrank or was replaced is read again from its tail. When the writer gets
    more than `max_lag_bytes` ahead, the lines in between are skipped with one note, so a flood cannot make
    the reader fall ever further behind. After each read, `offsets` holds the byte offset of each line it
    returned.
    """

    BLOCK = 64 * 1024

    def __init__(self, path: str | os.PathLike[str], *, max_lag_bytes: int = 8 * 1024 * 1024) -> None:
        self.path = Path(path)
        self.start = 0  # byte offset of the first line handed out
        self.offset = 0  # byte offset after the last complete line handed out
        self.max_lag_bytes = max_lag_bytes
        self.offsets: list[int] = []  # where each line the last read returned begins
        self._inode: int | None = None

    @staticmethod
    def _decode(raw: bytes) -> str:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        return text if len(text) <= MAX_LINE_CHARS else text[:MAX_LINE_CHARS] + f" … (+{len(text) - MAX_LINE_CHARS} chars)"

    def _lines_before(self, handle, end: int, n: int) -> tuple[int, list[bytes]]:
        """The last `n` complete lines before byte `end` (which sits at a line start) and where the first begins."""
        if end <= 0 or n <= 0:
            self.offsets = []
            return end, []
        pos, buf = end, b""
        while pos > 0 and buf.count(b"\n") <= n:
            step = min(self.BLOCK, pos)
            pos -= step
            handle.seek(pos)
            buf = handle.read(step) + buf
        lines = buf.split(b"\n")
        if buf.endswith(b"\n"):
            lines.pop()
        if pos > 0:
            lines.pop(0)  # a partial line: the block boundary cut it
        lines = lines[-n:]
        start = end - sum(len(x) + 1 for x in lines)
        self._set_offsets(start, lines)
        return start, lines

    def _set_offsets(self, start: int, lines: list[bytes]) -> None:
        offsets, pos = [], start
        for line in lines:
            offsets.append(pos)
            pos += len(line) + 1
        self.offsets = offsets

    def open(self, n: int = LOG_WINDOW_LINES) -> list[str]:
        """The last `n` complete lines; later `read_new()` calls continue from there."""
        try:
            with open(self.path, "rb") as handle:
                st = os.fstat(handle.fileno())
                self._inode = st.st_ino
                size = st.st_size
                end = self._complete_end(handle, size)
                self.start, lines = self._lines_before(handle, end, n)
                self.offset = end
                return [self._decode(x) for x in lines]
        except FileNotFoundError:
            self.start = self.offset = 0
            self.offsets = []
            return []

    def _complete_end(self, handle, size: int) -> int:
        """The offset just after the last newline at or before `size` (a writer may be mid-line)."""
        pos = size
        while pos > 0:
            step = min(self.BLOCK, pos)
            handle.seek(pos - step)
            chunk = handle.read(step)
            i = chunk.rfind(b"\n")
            if i >= 0:
                return pos - step + i + 1
            pos -= step
        return 0

    def read_new(self, max_lines: int = LOG_WINDOW_LINES) -> tuple[list[str], bool]:
        """Lines appended since the last call, and whether the window restarted (file replaced, or too far
        behind: then the lines are the new tail and the caller should drop what it holds)."""
        self.offsets = []
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return [], False
        if (self._inode is not None and st.st_ino != self._inode) or st.st_size < self.offset:
            return self.open(max_lines), True
        if st.st_size - self.offset > self.max_lag_bytes:
            return self.open(max_lines), True
        if st.st_size == self.offset:
            return [], False
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(st.st_size - self.offset)
        end = data.rfind(b"\n")
        if end < 0:
            return [], False
        chunk = data[: end + 1]
        first = self.offset
        self.offset += len(chunk)
        lines = chunk.split(b"\n")[:-1]
        restarted = len(lines) > max_lines
        if restarted:
            first = self.offset - sum(len(x) + 1 for x in lines[-max_lines:])
            lines = lines[-max_lines:]
        self._set_offsets(first, lines)
        return [self._decode(x) for x in lines], restarted

    def read_older(self, n: int) -> list[str]:
        """Up to `n` lines before the window's first line (empty at the start of the file)."""
        self.offsets = []
        if self.start <= 0:
            return []
        try:
            with open(self.path, "rb") as handle:
                self.start, lines = self._lines_before(handle, self.start, n)
        except FileNotFoundError:
            return []
        return [self._decode(x) for x in lines]

    def read_around(self, offset: int, before: int, after: int) -> list[str]:
        """`before` lines before the line starting at byte `offset`, that line, and up to `after` - 1 lines after
        it; the window's start moves there (`read_older()` goes on from it). `read_new()` is not affected: it
        still continues from the end."""
        self.offsets = []
        try:
            with open(self.path, "rb") as handle:
                start, older = self._lines_before(handle, offset, before)
                handle.seek(offset)
                newer: list[bytes] = []
                buf = b""
                while len(newer) < after:
                    block = handle.read(self.BLOCK)
                    if not block:
                        break  # the last line has no newline yet: a writer is mid-line
                    buf += block
                    *complete, buf = buf.split(b"\n")
                    newer.extend(complete)
                newer = newer[:after]
        except FileNotFoundError:
            return []
        self.start = start
        lines = older + newer
        self._set_offsets(start, lines)
        return [self._decode(x) for x in lines]

    @property
    def at_start(self) -> bool:
        return self.start <= 0

    def position(self) -> tuple[int, int, int | None]:
        """(start, offset, inode): where the window stands, to `resume` a tail on the same file later."""
        return self.start, self.offset, self._inode

    def resume(self, position: tuple[int, int, int | None], max_lag_bytes: int) -> bool:
        """Stand at a `position` taken earlier, if the file is still the same one and has grown by at most
        `max_lag_bytes` since (then `read_new()` returns what was appended meanwhile); False otherwise."""
        start, offset, inode = position
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        if inode is None or st.st_ino != inode or st.st_size < offset or st.st_size - offset > max_lag_bytes:
            return False
        self.start, self.offset, self._inode = start, offset, inode
        return True


# ------------------------------------------------------------------------------------------ log search

SEARCH_CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class LogMatch:
    """A display line `search_log` found: where its raw line begins in the file, and the line's text."""

    offset: int
    text: str
    wrapped: bool = False  # found below the starting point (the search went on from the end of the file)


def _lines_backwards(handle, lo: int, hi: int, chunk_bytes: int = SEARCH_CHUNK_BYTES):
    """(offset, raw line) of the complete lines between byte `lo` (a line start) and byte `hi` (a line start, or
    the end of the last complete line), the last first, read in chunks of `chunk_bytes`."""
    pos, carry = hi, b""
    while pos > lo:
        step = min(chunk_bytes, pos - lo)
        pos -= step
        handle.seek(pos)
        data = handle.read(step) + carry  # ends at a line boundary: right before what was handed out already
        parts = data.split(b"\n")
        parts.pop()  # empty: data ends with a newline
        carry = b""
        if pos > lo:
            carry = parts.pop(0) + b"\n"  # cut by the chunk's start: completed by the next chunk
        end = pos + len(data)
        for line in reversed(parts):
            end -= len(line) + 1
            yield end, line


def search_log(path: str | os.PathLike[str], needle: str, render: Callable[[str], list[LogLine]], *, before: int,
               after: int | None = None, kinds: tuple[str, ...] | None = None,
               cancelled: Callable[[], bool] | None = None, progress: Callable[[float], None] | None = None,
               chunk_bytes: int = SEARCH_CHUNK_BYTES) -> LogMatch | None:
    """The nearest display line above byte `before` that contains `needle` (case-insensitive), searching the
    file upwards from there; when there is none and `after` is given (the start of the last line the caller
    holds), the last one below it, searching up from the end of the file (wrapping around). Lines are matched
    as they are shown: rendered by `render` (so masked keys are never found by their value) and of the event
    types in `kinds` (None: all). Runs for as long as the file takes (call it off the UI thread); `cancelled`
    is asked between lines, and `progress` hears the share of the file searched. None when nothing matched."""
    want = needle.lower()
    if not want:
        return None
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        regions = [(0, min(before, size), False)]
        if after is not None and after < size:
            handle.seek(0)
            regions.append((after, LogTail(path)._complete_end(handle, size), True))
        total = sum(hi - lo for lo, hi, _ in regions) or 1
        done = 0
        for lo, hi, wrapped in regions:
            for n, (offset, raw) in enumerate(_lines_backwards(handle, lo, hi, chunk_bytes)):
                if n % 1000 == 0:
                    if cancelled is not None and cancelled():
                        return None
                    if progress is not None:
                        progress((done + hi - offset) / total)
                if wrapped and offset <= after:
                    break  # the caller's own last line: everything below it was searched
                for line in reversed(render(LogTail._decode(raw))):
                    if (kinds is None or line.kind in kinds) and want in line.text.lower():
                        return LogMatch(offset, line.text, wrapped)
            done += hi - lo
    return None


# ------------------------------------------------------------------------------------- rendering log lines

class LogLine(NamedTuple):
    """One displayed line: its event type (for the filter), its plain, sanitised, masked text, and where the raw
    line it came from begins in the file (-1 when it came from no file). A named tuple: log views hold tens of
    thousands, and a tuple is half the objects of a dataclass for the cycle collector to walk."""

    kind: str
    text: str
    offset: int = -1


def log_line_renderer(secrets: Iterable[str] | None = None, max_chars: int = 1_000
                      ) -> Callable[[str], list[LogLine]]:
    """A function turning one raw container.log line into display lines: agent JSON becomes readable event
    lines, everything is stripped of escape sequences and has key-like strings masked."""
    from nanogpt_tui.agents.parsers import parse_log_line
    from nanogpt_tui.agents.render import env_secrets, is_shown, render_event

    known = tuple(env_secrets() if secrets is None else secrets)

    def render(raw: str) -> list[LogLine]:
        out = []
        for ev in parse_log_line(raw):
            if is_shown(ev):
                out.append(LogLine(ev.type, render_event(ev, max_chars=max_chars, secrets=known)))
        return out

    return render


def event_renderer(secrets: Iterable[str] | None = None, max_chars: int = 1_000):
    """A function turning one parsed `Event` into a display line (or None when hidden by default)."""
    from nanogpt_tui.agents.render import env_secrets, is_shown, render_event

    known = tuple(env_secrets() if secrets is None else secrets)

    def render(ev) -> LogLine | None:
        if not is_shown(ev):
            return None
        return LogLine(ev.type, render_event(ev, max_chars=max_chars, secrets=known))

    return render


# Filters offered by the log views, in the order `t` cycles through them.
LOG_FILTERS: dict[str, tuple[str, ...] | None] = {
    "all": None,
    "agent": ("message", "reasoning"),
    "tools": ("tool_call", "tool_result"),
    "submissions": ("submission_started", "verdict"),
    "errors": ("error",),
    "usage": ("usage", "result"),
    "output": ("output", "status", "session_start", "unknown"),
}


# ---------------------------------------------------------------------------------- submissions and diffs

def submissions(session_dir: Path) -> list[Path]:
    """The session's submission folders, in numeric order."""
    folder = Path(session_dir) / L.WORKSPACE / "submissions"
    if not folder.is_dir():
        return []

    def key(p: Path) -> tuple[int, str]:
        tail = p.name.rsplit("_", 1)[-1]
        return (int(tail) if tail.isdigit() else 1 << 30, p.name)

    return sorted((p for p in folder.iterdir() if p.is_dir()), key=key)


def submission_diff(session_dir: Path, submission: Path, max_lines: int = 20_000) -> list[str]:
    """A unified diff of a submission's code files against the anchor the session started from."""
    import difflib

    anchor = Path(session_dir) / L.RUNNER / "anchor"
    names = sorted({p.name for d in (anchor, submission) if d.is_dir() for p in d.iterdir()
                    if p.is_file() and p.suffix in (".py", ".sh", ".toml")})
    out: list[str] = []
    for name in names:
        a, b = anchor / name, submission / name

        def read(p: Path) -> list[str]:
            try:
                return p.read_text(encoding="utf-8", errors="replace").splitlines()
            except FileNotFoundError:
                return []

        out.extend(difflib.unified_diff(read(a), read(b), f"anchor/{name}", f"{submission.name}/{name}",
                                        lineterm=""))
        if len(out) > max_lines:
            out = out[:max_lines] + [f"… diff clipped at {max_lines} lines"]
            break
    return out or ["(no difference from the anchor)"]
