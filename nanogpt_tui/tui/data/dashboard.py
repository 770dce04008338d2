"""Session views for every session of a sessions folder, kept between reloads: events read incrementally, verdicts
re-read when their folder changes, and each session's change ledger rebuilt only when its files change."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from nanogpt_tui.errors import UserError
from nanogpt_tui.pricing import DEFAULT_PRICES, Price
from nanogpt_tui.records import Timeline
from nanogpt_tui.reports.conventions import gap_for, verdict_percent
from nanogpt_tui.contract import layout as L
from nanogpt_tui.sessions import model as M
from nanogpt_tui.sessions.model import Session, load_session
from nanogpt_tui.telemetry.activity import SessionActivity
from nanogpt_tui.telemetry.cost import SessionTokenMeter, judge_tokens, session_cost, token_meter
from nanogpt_tui.telemetry.gpu import GpuFigures, GpuHistory
from nanogpt_tui.tui.data.views import ChangeShares, SessionView, UsageSummary, VerdictRow

# A busy agent writes events every second: a session's change ledger is rebuilt for them at most this often (new
# verdicts, experiment or submission folders, results.tsv rows and commits rebuild it at once).
CHANGES_REFRESH_S = 10.0


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
                 clock: Callable[[], dt.datetime] | None = None, changes_refresh_s: float = CHANGES_REFRESH_S,
                 prices: Mapping[str, Price] | None = None, agent_models: Mapping[str, str] | None = None) -> None:
        self.root = Path(root)
        self.timeline = timeline
        self.baselines_dir = Path(baselines_dir) if baselines_dir else None
        self.clock = clock or M.utc_now
        self.changes_refresh_s = changes_refresh_s
        self.prices = dict(DEFAULT_PRICES if prices is None else prices)
        self.agent_models = dict(agent_models or {})  # agent -> the model the config hands its CLI
        self._usage: dict[str, SessionTokenMeter] = {}
        self._activity: dict[str, SessionActivity] = {}
        self._gpu: dict[str, GpuHistory] = {}
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
        from nanogpt_tui.validator.protocol import trusted_verdicts, verdicts_stamp

        stamp = verdicts_stamp(self.root / session.id)
        cached = self._verdicts.get(session.id)
        if cached is not None and cached[0] == stamp:
            return cached[1], cached[2]
        # Only the validator's sealed verdicts whose code matches the frozen submission; the rest is flagged.
        trusted = trusted_verdicts(self.root / session.id)
        verdicts, problems = trusted.verdicts, trusted.all_messages
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
        meter = self._usage.get(session_id)
        if meter is None:
            meter = self._usage[session_id] = token_meter(self.root / session_id)
        activity = self._activity.get(session_id)
        if activity is None:
            activity = self._activity[session_id] = SessionActivity(self.root / session_id)
        try:
            tokens = meter.read()  # the gateway's record too, once for the metered tokens and the refusals
            activity.update()
        except OSError as err:
            tokens, problems = meter.tokens, [*problems, f"{session_id}: its events or sandbox record are "
                                                         f"unreadable ({err})"]
        gateway = meter.gateway
        gpu = self._gpu.get(session_id)
        if gpu is None:
            gpu = self._gpu[session_id] = GpuHistory(self.root / session_id / L.GPU_FILE)
        try:
            gpu.update()
        except OSError as err:
            problems = [*problems, f"{session_id}: gpu.jsonl unreadable ({err})"]
        cost = session_cost(tokens, judge_tokens(r.verdict for r in rows), self.prices,
                            session.agent_model or self.agent_models.get(session.agent))
        view = SessionView(session=session, verdicts=rows, usage=UsageSummary.of(tokens), gap_s=gap,
                           problems=problems, changes=self._changes_for(session), activity=activity.latest,
                           cost=cost, gpu=GpuFigures.of(gpu, self.clock().timestamp()) if gpu.samples else None,
                           blocked=gateway.blocked_count if gateway else 0,
                           recent_blocked=tuple(gateway.recent[-5:]) if gateway else ())
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
            self._activity.pop(gone, None)
            self._gpu.pop(gone, None)
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
                except Exception as err:  # noqa: BLE001  one session's files must never stop the others' updates
                    self._views.pop(sid, None)
                    problems.append(f"{sid}: its files could not be read ({type(err).__name__}: {err}); the next "
                                    "change to them retries.")
        self.problems = problems
        return self.views()

    def views(self) -> list[SessionView]:
        return sorted(self._views.values(), key=lambda v: (v.session.created_at, v.id))
