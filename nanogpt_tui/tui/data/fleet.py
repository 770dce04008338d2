"""Many sessions at once: the table's columns (text and sort key per session), the sort and filter that the
table and the cards share, the CSV export of what is shown, and where sort and filter are kept between runs."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from nanogpt_tui.sessions import model as M
from nanogpt_tui.telemetry.activity import Activity
from nanogpt_tui.tui.data.formatting import format_duration, format_gpu_hours, record_short
from nanogpt_tui.tui.data.views import SessionView


@dataclass(frozen=True)
class Column:
    """One column of the session table: its key, title, width in cells (the last columns give way first on a
    narrow screen: `keep` orders which stay), how a session's cell reads, and how sessions sort by it."""

    key: str
    title: str
    width: int
    text: Callable[[SessionView, dt.datetime], str]
    sort: Callable[[SessionView, dt.datetime], object]  # None: unknown (sorts last, whatever the direction)
    keep: int  # lower stays longer when the screen is narrow
    right: bool = False  # numbers are right-aligned


_ID = re.compile(r"^\d{4}(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-")


def started_id(session_id: str) -> str:
    """`11-20 18:00:00` for `20261120T180000Z-claude-default` (agent and strategy have their own columns); other
    ids as they are."""
    m = _ID.match(session_id)
    return f"{m.group(1)}-{m.group(2)} {m.group(3)}:{m.group(4)}:{m.group(5)}" if m else session_id


def _budget(v: SessionView, now: dt.datetime) -> dict:
    return v.budget_figures(now)


def _left(v: SessionView, now: dt.datetime) -> str:
    seconds = _budget(v, now)["seconds_left"]
    if seconds is None:
        return "ended" if v.session.status in M.FINAL else "-"
    return format_duration(seconds) if seconds >= 0 else "overdue"


def _best(v: SessionView, _now) -> str:
    best = v.best_seconds_faster
    if best is None:
        return "-"
    pct = v.best_percent
    return f"{best:+.2f}s" + (f" {pct:.1f}%" if pct is not None else "")


def _verdict(v: SessionView, _now) -> str:
    last = v.last_verdict
    if last is None:
        return "-"
    number = last.verdict.submission.rsplit("_", 1)[-1]
    return f"#{number} {last.verdict.outcome}"


_SUBMISSION = re.compile(r"^submission_(\d+)\b")


def _activity(v: SessionView, _now) -> str:
    """The last activity's text (its kind is the cell's colour); a submission named `#3` as in the last-verdict
    column, so that the validator's `run 4/10, step 1200/1600` has room in the table."""
    a: Activity | None = v.activity
    return "-" if a is None else _SUBMISSION.sub(r"#\1", a.text)


def _gpu(v: SessionView, _now) -> str:
    if v.gpu is None or v.gpu.latest is None or v.gpu.latest.util_pct is None:
        return "-"
    return f"{v.gpu.latest.util_pct:.0f}%" + (" idle" if v.gpu.idle_s >= 60 else "")


def _cost(v: SessionView, _now) -> str:
    return "-" if v.cost is None or v.cost.total_usd is None else f"${v.cost.total_usd:,.2f}"


COLUMNS: tuple[Column, ...] = (
    Column("id", "session", 14, lambda v, _: started_id(v.id), lambda v, _: (v.session.created_at, v.id), 0),
    Column("agent", "agent", 10, lambda v, _: v.session.agent, lambda v, _: v.session.agent, 1),
    Column("strategy", "strategy", 9, lambda v, _: v.session.strategy, lambda v, _: v.session.strategy, 8),
    Column("anchor", "anchor", 8, lambda v, _: record_short(v.session.anchor), lambda v, _: v.session.anchor, 12),
    Column("host", "host", 9, lambda v, _: v.session.host or "-", lambda v, _: v.session.host or "", 10),
    Column("status", "status", 13, lambda v, _: v.session.status, lambda v, _: M.STATUSES.index(v.session.status)
           if v.session.status in M.STATUSES else 99, 2),
    Column("gpu_hours", "GPU-h used", 10, lambda v, now: f"{format_gpu_hours(_budget(v, now)['used'])}/"
           f"{format_gpu_hours(_budget(v, now)['total'])}", lambda v, now: _budget(v, now)["fraction"], 7,
           right=True),
    Column("left", "left", 7, _left, lambda v, now: _budget(v, now)["seconds_left"], 9, right=True),
    Column("best", "best  %human", 13, _best, lambda v, _: v.best_seconds_faster, 3, right=True),
    Column("verdict", "last verdict", 12, _verdict, lambda v, _: v.last_verdict.time if v.last_verdict else None,
           11),
    Column("activity", "activity", 0, _activity, lambda v, _: v.activity.at if v.activity else None, 6),
    # GPU utilisation before GPU-hours: an idle session (`0% idle`) is what a fleet's table must show at 100 columns.
    Column("gpu", "GPU", 7, _gpu, lambda v, _: v.gpu.latest.util_pct if v.gpu and v.gpu.latest else None, 5,
           right=True),
    Column("cost", "cost", 9, _cost, lambda v, _: v.cost.total_usd if v.cost else None, 4, right=True),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)
BY_KEY = {c.key: c for c in COLUMNS}
# The activity column takes the room the others leave, at least this much: with it, every column fits at 160 cells
# and session, agent, status, best, GPU, cost and activity at 100.
ACTIVITY_MIN = 24

# Status filters, in the order the key cycles through them.
STATUS_FILTERS: dict[str, tuple[str, ...] | None] = {
    "all": None, "live": M.ACTIVE, "running": (M.RUNNING,), "ended": M.FINAL, "failed": (M.FAILED, M.KILLED),
}
# What a filter term matches, and the field names a term may name (`agent:codex`).
FILTER_FIELDS = ("agent", "strategy", "status", "host", "anchor", "id")


def _field(v: SessionView, name: str) -> str:
    s = v.session
    return {"agent": s.agent, "strategy": s.strategy, "status": s.status, "host": s.host or "",
            "anchor": s.anchor or "", "id": s.id}[name].lower()


@dataclass(frozen=True)
class FleetQuery:
    """Which sessions are shown and in what order, on the cards and in the table alike."""

    sort: str = "id"  # a column key
    reverse: bool = False
    text: str = ""  # words that must each match agent, strategy, status, host, anchor or id (`field:word` for one)
    status: str = "all"  # a STATUS_FILTERS key
    host: str | None = None  # only this host's sessions

    def matches(self, v: SessionView) -> bool:
        wanted = STATUS_FILTERS.get(self.status)
        if wanted is not None and v.session.status not in wanted:
            return False
        if self.host is not None and v.session.host != self.host:
            return False
        for term in self.text.lower().split():
            name, sep, word = term.partition(":")
            if sep and name in FILTER_FIELDS:
                if word not in _field(v, name):
                    return False
            elif not any(term in _field(v, f) for f in FILTER_FIELDS):
                return False
        return True

    def apply(self, views: Iterable[SessionView], now: dt.datetime) -> list[SessionView]:
        """The views that match, sorted by the sort column (ties: oldest first); unknown values sort last."""
        shown = [v for v in views if self.matches(v)]
        column = BY_KEY.get(self.sort, COLUMNS[0])
        shown.sort(key=lambda v: (v.session.created_at, v.id))
        keyed = [(column.sort(v, now), v) for v in shown]
        known = [kv for kv in keyed if kv[0] is not None]
        known.sort(key=lambda kv: kv[0], reverse=self.reverse)  # stable: ties stay oldest first
        return [v for _, v in known] + [v for key, v in keyed if key is None]

    def next_sort(self) -> FleetQuery:
        keys = list(COLUMN_KEYS)
        return replace(self, sort=keys[(keys.index(self.sort) + 1) % len(keys)] if self.sort in keys else keys[0])

    def next_status(self) -> FleetQuery:
        names = list(STATUS_FILTERS)
        return replace(self, status=names[(names.index(self.status) + 1) % len(names)]
                       if self.status in names else names[0])

    def describe(self) -> str:
        """`sorted by cost ↓ · live · "codex"`: what the title says about the query."""
        parts = [f"by {BY_KEY[self.sort].title if self.sort in BY_KEY else self.sort} {'↓' if self.reverse else '↑'}"]
        if self.status != "all":
            parts.append(self.status)
        if self.host is not None:
            parts.append(f"host {self.host}")
        if self.text:
            parts.append(f'"{self.text}"')
        return " · ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> FleetQuery:
        """A query from saved state; whatever is not a valid value falls back to the default."""
        if not isinstance(data, dict):
            return cls()
        d = cls()
        return cls(sort=data.get("sort") if data.get("sort") in COLUMN_KEYS else d.sort,
                   reverse=data.get("reverse") is True,
                   text=data.get("text")[:200] if isinstance(data.get("text"), str) else d.text,
                   status=data.get("status") if data.get("status") in STATUS_FILTERS else d.status,
                   host=data.get("host") if isinstance(data.get("host"), str) else None)


# ------------------------------------------------------------------------------------------------- state

STATE_SCHEMA_VERSION = 1


def state_file() -> Path:
    """Where the control room keeps its view between runs: $XDG_STATE_HOME/nanogpt-tui/control-room.json."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "nanogpt-tui" / "control-room.json"


@dataclass
class ViewState:
    """What the control room remembers per sessions folder: the query and whether the table was shown."""

    query: FleetQuery = field(default_factory=FleetQuery)
    table: bool = False


def load_view_state(sessions_dir: Path, path: Path | None = None) -> ViewState:
    """The saved view for `sessions_dir` (defaults when there is none or the file is not ours)."""
    try:
        data = json.loads((path or state_file()).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ViewState()
    entry = data.get("sessions_dirs", {}).get(str(Path(sessions_dir).resolve())) if isinstance(data, dict) and \
        isinstance(data.get("sessions_dirs"), dict) else None
    if not isinstance(entry, dict):
        return ViewState()
    return ViewState(FleetQuery.from_dict(entry.get("query")), entry.get("table") is True)


def save_view_state(sessions_dir: Path, state: ViewState, path: Path | None = None) -> None:
    """Remember the view for `sessions_dir` (atomically; other folders' entries are kept)."""
    from nanogpt_tui.fsutil import atomic_write_json

    path = path or state_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict) or not isinstance(data.get("sessions_dirs"), dict):
        data = {"schema_version": STATE_SCHEMA_VERSION, "sessions_dirs": {}}
    data["sessions_dirs"][str(Path(sessions_dir).resolve())] = {"query": state.query.to_dict(),
                                                                 "table": state.table}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, data)


# --------------------------------------------------------------------------------------------------- CSV

def table_csv(views: Iterable[SessionView], now: dt.datetime) -> str:
    """The table as CSV: one row per session in the order shown, full ids and raw numbers beside the text."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "agent", "strategy", "anchor", "target", "host", "status", "gpus", "gpu_hours_used",
                     "gpu_hours_budget", "seconds_left", "best_seconds_faster", "percent_of_human_progress",
                     "last_verdict", "activity_kind", "activity", "activity_at", "gpu_util_pct", "cost_usd",
                     "agent_cost_usd", "judge_cost_usd", "agent_cli_reported_cost_usd"])
    for v in views:
        s, b = v.session, v.budget_figures(now)
        last = v.last_verdict
        latest = v.gpu.latest if v.gpu else None
        cost = v.cost
        writer.writerow([
            s.id, s.agent, s.strategy, s.anchor, s.target or "", s.host or "", s.status, s.gpus,
            f"{b['used']:.4f}", f"{b['total']:g}", "" if b["seconds_left"] is None else f"{b['seconds_left']:.0f}",
            _csv_num(v.best_seconds_faster), _csv_num(v.best_percent),
            f"{last.verdict.submission} {last.verdict.outcome}" if last else "",
            v.activity.kind if v.activity else "", _csv_text(v.activity.text) if v.activity else "",
            (v.activity.at or "") if v.activity else "",
            _csv_num(latest.util_pct if latest else None),
            _csv_num(cost.total_usd if cost else None), _csv_num(cost.agent_usd if cost else None),
            _csv_num(cost.judge_usd if cost else None), _csv_num(v.usage.cost_usd)])
    return out.getvalue()


def _csv_num(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


def _csv_text(text: str) -> str:
    # A spreadsheet runs a cell starting with = + - @ as a formula: agent text is never a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def export_table_csv(views: Iterable[SessionView], now: dt.datetime, folder: Path) -> Path:
    """Write the table as `sessions-<UTC time>.csv` in `folder`; returns the file."""
    from nanogpt_tui.fsutil import atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"sessions-{now.astimezone(dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.csv"
    atomic_write_text(path, table_csv(views, now))
    return path
