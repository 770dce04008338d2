"""The one event model for what agents do, our own JSONL event lines, usage totals, and an incremental reader.

Every agent's stream (Claude Code's stream-json, Codex's `exec --json`, and the lines our own tools
write) becomes a list of `Event`s (see `nanogpt_tui.agents.parsers`). Our own tools (the scripted agent,
`submit`, the harnesses) write one JSON object per line to `$BENCHMARK_EVENTS_PATH`:

    {"nanogpt_tui_event": 1, "type": "verdict", "ts": "2026-11-27T05:12:00Z", "submission": "submission_3", ...}

Types (the fields each carries besides `nanogpt_tui_event`, `type`, `ts`):

    session_start       agent?, session_id?, text?
    message             text                          what the agent said
    reasoning           text                          what it thought (summaries, where the CLI shows them)
    tool_call           tool, command?, file?, call_id?, text?
    tool_result         call_id?, ok, text
    submission_started  submission
    verdict             submission, outcome, verdict_path, counts, mean_train_time_ms?, p_value?
    error               text
    usage               input_tokens, cached_input_tokens, output_tokens, cost_usd?
    result              text?, usage, cost_usd, duration_s   (the end of one agent invocation)
    status              text                          harness notes (invocation N, resuming, backing off)
    progress            submission, phase, run?, runs?, step?, steps?, text?
                                                      the validator's progress through a submission (phase:
                                                      rules, judge, retiming; run 4 of 10 at step 1200/1600)

Parsed events may also have the types `unknown` (an event type we do not know, or a line that is not a
JSON object: kept, with `malformed` set for the latter) and `output` (a plain text line of a container
log). Token counts follow one convention whatever the CLI: `input_tokens` counts every input token,
cached or not; `cached_input_tokens` is the part read from a prompt cache (see `summarize_usage`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from nanogpt_tui.follow import MAX_LINE_BYTES, LineFollower

FORMAT_KEY = "nanogpt_tui_event"
FORMAT_VERSION = 1

EVENT_TYPES = ("session_start", "message", "reasoning", "tool_call", "tool_result", "submission_started",
               "verdict", "error", "usage", "result", "status", "progress")
PARSED_ONLY_TYPES = ("unknown", "output")
SOURCES = ("claude", "codex", "nanogpt-tui", "unknown")

# Fields our own event lines may carry, per type (beyond nanogpt_tui_event, type, ts).
OWN_FIELDS: dict[str, tuple[str, ...]] = {
    "session_start": ("agent", "session_id", "text"),
    "message": ("text",),
    "reasoning": ("text",),
    "tool_call": ("tool", "command", "file", "call_id", "text"),
    "tool_result": ("call_id", "ok", "text"),
    "submission_started": ("submission", "text"),
    "verdict": ("submission", "outcome", "verdict_path", "counts", "mean_train_time_ms", "p_value", "text"),
    "error": ("text",),
    "usage": ("input_tokens", "cached_input_tokens", "output_tokens", "cost_usd"),
    "result": ("text", "usage", "cost_usd", "duration_s", "ok"),
    "status": ("text",),
    "progress": ("submission", "phase", "run", "runs", "step", "steps", "text"),
}
USAGE_KEYS = ("input_tokens", "cached_input_tokens", "output_tokens")


@dataclass
class Event:
    """One thing an agent did or reported, whatever CLI it came from."""

    type: str
    ts: str | None = None
    source: str = "unknown"
    text: str | None = None
    tool: str | None = None
    command: str | None = None
    file: str | None = None
    call_id: str | None = None
    ok: bool | None = None
    submission: str | None = None
    outcome: str | None = None
    usage: dict[str, int] | None = None
    cost_usd: float | None = None
    raw_type: str | None = None
    malformed: bool = False
    line_no: int | None = None
    session_id: str | None = None  # Claude's session id or Codex's thread id, where the line names it
    partial: bool = False  # a streaming delta (Claude --include-partial-messages, Codex item.updated)
    duration_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_line(type: str, *, ts: str | None = None, **fields: Any) -> str:
    """Our own event as one JSON line (with its newline). Unknown types or fields are a programming error."""
    if type not in OWN_FIELDS:
        raise ValueError(f"unknown event type {type!r}")
    unknown = set(fields) - set(OWN_FIELDS[type])
    if unknown:
        raise ValueError(f"event type {type!r} has no field(s) {sorted(unknown)}")
    obj: dict[str, Any] = {FORMAT_KEY: FORMAT_VERSION, "type": type, "ts": ts or utc_now_iso()}
    obj.update({k: v for k, v in fields.items() if v is not None})
    return json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n"


def append_line(path: str | os.PathLike[str], line: bytes) -> None:
    """Append one whole line with a single write to a file opened O_APPEND.

    Several writers share the events file (the agent's stream relay, `submit`); one write(2) per line
    on an O_APPEND descriptor keeps their lines whole instead of interleaving pieces of them.
    """
    if not line.endswith(b"\n"):
        line += b"\n"
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(line)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)


def append_event(path: str | os.PathLike[str], type: str, **fields: Any) -> str:
    """Append one of our own events to the events file; returns the line written."""
    line = event_line(type, **fields)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    append_line(path, line.encode("utf-8"))
    return line


# ---------------------------------------------------------------------------------------------- usage totals

@dataclass
class UsageTotals:
    """Tokens and cost over a stream. `cost_usd` is None when no event reported a cost; `cost_complete` is
    False when some tokens were spent by an invocation that reported no cost (Codex never does; a Claude
    invocation stopped before its final `result` line does not)."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cost_usd: float | None = None
    cost_complete: bool = True
    invocations: int = 0

    def add(self, usage: dict[str, int] | None) -> None:
        if not usage:
            return
        self.input_tokens += int(usage.get("input_tokens", 0) or 0)
        self.cached_input_tokens += int(usage.get("cached_input_tokens", 0) or 0)
        self.output_tokens += int(usage.get("output_tokens", 0) or 0)
        self.cache_creation_input_tokens += int(usage.get("cache_creation_input_tokens", 0) or 0)

    def add_cost(self, cost: float | None) -> None:
        if cost is None or not math.isfinite(cost):
            return
        self.cost_usd = (self.cost_usd or 0.0) + float(cost)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_tokens": self.total_tokens}


def _has_tokens(usage: dict[str, int] | None) -> bool:
    return bool(usage) and any(int(usage.get(k, 0) or 0) for k in (*USAGE_KEYS, "cache_creation_input_tokens"))


def _sum_usage(usages: Iterable[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for u in usages:
        for k, v in u.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = out.get(k, 0) + int(v)
    return out


class _Invocation:
    """What one agent invocation reported: per-message usage (deduplicated), loose usage lines (summed as they come:
    only their sum is counted), its result."""

    def __init__(self) -> None:
        self.by_message: dict[str, dict[str, int]] = {}
        self.loose: dict[str, int] | None = None
        self.loose_cost: float | None = None
        self.result: Event | None = None

    def empty(self) -> bool:
        return not self.by_message and self.loose is None and self.result is None


def summarize_usage(events: Iterable[Event]) -> UsageTotals:
    """Token and cost totals of a stream, counting every token once.

    What is counted, and why:

    - Claude Code: each `assistant` line carries the usage of the API response it belongs to, and the
      lines of one response (text, then each tool_use) repeat the same usage under the same message id;
      the final `result` line of an invocation carries that invocation's cumulative usage and
      `total_cost_usd`, and each invocation (each `--resume`) reports its own. So an invocation that
      ended with a `result` counts its result only; one that was stopped before it (at the deadline)
      counts its per-message usage, once per message id (the largest output count where they differ),
      and has no cost. Invocations are delimited by `session_start` (the `system`/`init` line) and
      `result` lines.
    - Codex: `turn.completed` usage is the thread's running total (it is restored when a thread is
      resumed), so only its growth since the previous report for the same thread is added; a report
      smaller than the previous one (a CLI that restarts its count in a new process) is added whole.
    - Our own lines: `usage` lines are increments; a `result` line's usage replaces the increments of
      its invocation, as for Claude.

    Partial (streaming) events are never counted.
    """
    summary = UsageSummary()
    for ev in events:
        summary.add(ev)
    return summary.totals


class UsageSummary:
    """`summarize_usage`, one event at a time: what a live stream has spent so far, in memory that does not grow
    with the stream (an invocation that ended is folded into the totals; the open one keeps one entry per message
    id, and the sum of its loose usage lines), so a session's events need not be kept to count them."""

    def __init__(self) -> None:
        self._totals = UsageTotals()
        self._inv = _Invocation()
        self._cumulative_last: dict[tuple[str, str | None], dict[str, int]] = {}
        self._current_session: dict[str, str | None] = {}

    @property
    def totals(self) -> UsageTotals:
        """The totals so far, the open invocation counted as if it ended now (it is not closed)."""
        out = replace(self._totals)
        _count(out, self._inv)
        return out

    def _flush(self) -> None:
        _count(self._totals, self._inv)
        self._inv = _Invocation()

    def add(self, ev: Event) -> None:
        totals, inv = self._totals, self._inv
        if ev.partial:
            return
        if ev.type == "session_start":
            self._flush()
            self._current_session[ev.source] = ev.session_id
        elif ev.type == "usage" and ev.usage is not None:
            if ev.extra.get("cumulative"):
                key = (ev.source, ev.session_id or self._current_session.get(ev.source))
                prev = self._cumulative_last.get(key)
                now = {k: int(ev.usage.get(k, 0) or 0) for k in USAGE_KEYS}
                if prev is not None and all(now[k] >= prev[k] for k in USAGE_KEYS):
                    totals.add({k: now[k] - prev[k] for k in USAGE_KEYS})
                else:
                    totals.add(now)
                self._cumulative_last[key] = now
                if _has_tokens(now) and ev.cost_usd is None:
                    totals.cost_complete = False
                totals.add_cost(ev.cost_usd)
                totals.invocations += 1  # one report per Codex turn, i.e. per `codex exec` invocation
            else:
                message_id = ev.extra.get("message_id")
                if isinstance(message_id, str) and message_id:
                    old = inv.by_message.get(message_id)
                    if old is None or int(ev.usage.get("output_tokens", 0) or 0) >= int(old.get("output_tokens", 0)):
                        inv.by_message[message_id] = dict(ev.usage)
                else:
                    inv.loose = _sum_usage([inv.loose or {}, ev.usage])
                    if ev.cost_usd is not None:
                        inv.loose_cost = (inv.loose_cost or 0.0) + ev.cost_usd
        elif ev.type == "result":
            inv.result = ev
            self._flush()


def _count(totals: UsageTotals, inv: _Invocation) -> None:
    """Add what invocation `inv` spent to `totals`."""
    if inv.empty():
        return
    totals.invocations += 1
    if inv.result is not None and (inv.result.usage is not None or inv.result.cost_usd is not None):
        totals.add(inv.result.usage)
        if inv.result.cost_usd is not None:
            totals.add_cost(inv.result.cost_usd)
        elif _has_tokens(inv.result.usage):
            totals.cost_complete = False
    else:
        spent = _sum_usage([*inv.by_message.values(), *([inv.loose] if inv.loose is not None else [])])
        totals.add(spent)
        if inv.loose_cost is not None:
            totals.add_cost(inv.loose_cost)
        if inv.by_message or (_has_tokens(spent) and inv.loose_cost is None):
            totals.cost_complete = False


# --------------------------------------------------------------------------------------- incremental reading

class EventStream:
    """Reads an events file (or any JSONL log) incrementally from a byte offset, for live tails: the events of the
    lines `nanogpt_tui.follow.LineFollower` returns (a partial last line waits for its newline unless `final=True`;
    a shrunk or replaced file is read again, with `restarted` set; an over-long line becomes one malformed event).
    """

    def __init__(self, path: str | os.PathLike[str], *, offset: int = 0, line_no: int = 0,
                 parser: Callable[[str, int], list[Event]] | None = None,
                 max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.lines = LineFollower(path, offset=offset, line_no=line_no, max_line_bytes=max_line_bytes)
        self._parser = parser

    @property
    def path(self) -> Path:
        return self.lines.path

    @property
    def offset(self) -> int:
        return self.lines.offset

    @property
    def line_no(self) -> int:
        return self.lines.line_no

    @property
    def restarted(self) -> bool:
        """The last read found the file shrunk or replaced and began again: events read before are void."""
        return self.lines.restarted

    def _parse(self, text: str, line_no: int) -> list[Event]:
        if self._parser is None:
            from nanogpt_tui.agents.parsers import parse_line
            self._parser = parse_line
        return self._parser(text, line_no)

    def read_new(self, *, final: bool = False) -> list[Event]:
        events: list[Event] = []
        for line in self.lines.read_new(final=final):
            if line.too_long:
                events.append(Event(type="unknown", malformed=True, line_no=line.no,
                                    text=f"(a line longer than {self.lines.max_line_bytes} bytes was skipped)"))
            else:
                events.extend(self._parse(line.text, line.no))
        return events

    def read_all(self) -> list[Event]:
        """Every event from the current offset to the end, including a last line without its newline."""
        return self.read_new(final=True)
