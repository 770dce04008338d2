"""A session's transcript: its events grouped into the agent's turns (messages, reasoning, tool calls with their
outputs, errors, submissions and verdicts in place, tokens and cost per turn), for the control room's Events tab
and `nanogpt-tui sessions transcript`. Built on the one event model (`nanogpt_tui.agents.events`), never on a
CLI's own JSON; Textual-free.

A turn is one response of the model and what it led to. A new turn starts when a Claude response with another
message id begins (its lines carry the id on their usage), when the previous turn was closed by its usage or its
invocation's result (Codex reports usage at the end of each turn; every CLI ends an invocation with a result), or
when the agent speaks or acts again after tool outputs came back. Tool outputs join their call by call id. Tokens
per turn: a Claude response repeats its usage on each of its lines, so the last one counts; other usage adds up.
Cost is what the CLI reported (its own `total_cost_usd`), where it did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

from nanogpt_tui.agents.events import USAGE_KEYS, Event, EventStream

SCHEMA_VERSION = 1
AGENT_OUTPUT = ("message", "reasoning", "tool_call", "error")
# The kinds of a transcript item, in the words the export uses.
ITEM_KINDS = ("user", "message", "reasoning", "tool", "error", "submission", "verdict", "status", "start", "other")


@dataclass
class ToolCall:
    name: str
    command: str | None = None
    file: str | None = None
    input: str | None = None  # the call's other inputs, as the parser kept them (JSON text)
    output: str | None = None  # None until its result arrives
    ok: bool | None = None
    call_id: str | None = None


@dataclass
class Item:
    kind: str
    ts: str | None = None
    line: int | None = None  # line of the events file
    text: str | None = None
    tool: ToolCall | None = None
    submission: str | None = None
    outcome: str | None = None
    verdict_path: str | None = None


@dataclass
class Turn:
    index: int
    started_at: str | None = None
    line: int | None = None
    items: list[Item] = field(default_factory=list)
    usage: dict[str, int] | None = None
    cost_usd: float | None = None
    message_id: str | None = None
    closed: bool = False

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [i.tool for i in self.items if i.tool is not None]

    def has_output_since_act(self) -> bool:
        """Whether a tool output came back after the agent's last words or call in this turn."""
        for item in reversed(self.items):
            if item.kind == "tool" and item.tool is not None and item.tool.output is not None:
                return True
            if item.kind in ("message", "reasoning", "error"):
                return False
        return False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("closed")
        data.pop("message_id")
        return data


@dataclass
class Transcript:
    turns: list[Turn]
    events: int
    malformed: int = 0

    def to_dict(self, session_id: str | None = None) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "session": session_id, "events": self.events,
                "malformed_lines": self.malformed, "turns": [t.to_dict() for t in self.turns]}

    def find_verdict(self, submission: str) -> tuple[int, int] | None:
        """(turn index, item index) of the last verdict for `submission`, else of its submission item."""
        for kind in ("verdict", "submission"):
            for t in reversed(self.turns):
                for i in range(len(t.items) - 1, -1, -1):
                    item = t.items[i]
                    if item.kind == kind and item.submission == submission:
                        return t.index, i
        return None


def _usage_of(ev: Event) -> dict[str, int] | None:
    if not ev.usage:
        return None
    return {k: int(ev.usage.get(k) or 0) for k in USAGE_KEYS}


def _add(a: dict[str, int] | None, b: dict[str, int]) -> dict[str, int]:
    return {k: (a or {}).get(k, 0) + b.get(k, 0) for k in USAGE_KEYS}


def build_transcript(events: Iterable[Event]) -> Transcript:
    turns: list[Turn] = []
    calls: dict[str, ToolCall] = {}
    count = malformed = 0

    def current() -> Turn:
        if not turns:
            turns.append(Turn(index=1))
        return turns[-1]

    def new_turn(ev: Event, message_id: str | None = None) -> Turn:
        last = turns[-1] if turns else None
        if last is not None and not last.items and last.usage is None:
            last.message_id = message_id or last.message_id
            return last  # an empty turn (opened by a usage line) takes these events
        turns.append(Turn(index=len(turns) + 1, started_at=ev.ts, line=ev.line_no, message_id=message_id))
        return turns[-1]

    def place(turn: Turn, item: Item) -> None:
        if turn.started_at is None:
            turn.started_at, turn.line = item.ts, item.line
        turn.items.append(item)

    ordered = list(events)
    for _, group in groupby(ordered, key=lambda e: e.line_no if e.line_no is not None else id(e)):
        group = [e for e in group if not e.partial]
        if not group:
            continue
        per_message = next((e for e in group if e.type == "usage" and (e.extra or {}).get("per_message")), None)
        message_id = (per_message.extra or {}).get("message_id") if per_message else None
        if any(e.type in AGENT_OUTPUT for e in group) or message_id:
            turn = turns[-1] if turns else None
            if turn is None:
                turn = new_turn(group[0], message_id)
            elif message_id and turn.message_id and message_id != turn.message_id:
                turn = new_turn(group[0], message_id)
            elif message_id and turn.message_id is None and turn.items and (turn.closed or turn.has_output_since_act()):
                turn = new_turn(group[0], message_id)
            elif not message_id and (turn.closed or (turn.message_id is None and turn.has_output_since_act())):
                turn = new_turn(group[0])
            elif message_id and turn.message_id is None:
                turn.message_id = message_id
        for ev in group:
            count += 1
            malformed += int(ev.malformed)
            turn = current()
            if ev.type == "usage":
                usage = _usage_of(ev)
                if usage is not None:
                    turn.usage = usage if per_message is ev or (ev.extra or {}).get("per_message") else \
                        _add(turn.usage, usage)
                if ev.cost_usd is not None:
                    turn.cost_usd = (turn.cost_usd or 0.0) + ev.cost_usd
                if not (ev.extra or {}).get("per_message"):
                    turn.closed = True  # Codex (and our own tools) report usage when a turn ends
            elif ev.type == "result":
                if ev.cost_usd is not None:
                    turn.cost_usd = ev.cost_usd if turn.cost_usd is None else turn.cost_usd
                if turn.usage is None and _usage_of(ev):
                    turn.usage = _usage_of(ev)
                if ev.text:
                    place(turn, Item("status", ev.ts, ev.line_no, text=f"invocation ended: {ev.text}"))
                turn.closed = True
            elif ev.type == "tool_call":
                call = ToolCall(name=ev.tool or "tool", command=ev.command, file=ev.file, input=ev.text,
                                call_id=ev.call_id)
                if ev.call_id:
                    calls[ev.call_id] = call
                place(turn, Item("tool", ev.ts, ev.line_no, tool=call))
            elif ev.type == "tool_result":
                call = calls.get(ev.call_id or "")
                if call is not None and call.output is None:
                    call.output, call.ok = ev.text or "", ev.ok
                else:  # an output whose call we never saw: shown where it came
                    orphan = ToolCall(name="(output)", output=ev.text or "", ok=ev.ok, call_id=ev.call_id)
                    place(turn, Item("tool", ev.ts, ev.line_no, tool=orphan))
            elif ev.type == "message":
                role_user = (ev.extra or {}).get("role") == "user"
                if role_user and turn.items:
                    turn = new_turn(ev)
                place(turn, Item("user" if role_user else "message", ev.ts, ev.line_no, text=ev.text))
            elif ev.type in ("reasoning", "error"):
                place(turn, Item(ev.type, ev.ts, ev.line_no, text=ev.text))
            elif ev.type == "submission_started":
                place(turn, Item("submission", ev.ts, ev.line_no, text=ev.text, submission=ev.submission))
            elif ev.type == "verdict":
                place(turn, Item("verdict", ev.ts, ev.line_no, text=ev.text, submission=ev.submission,
                                 outcome=ev.outcome, verdict_path=(ev.extra or {}).get("verdict_path")))
            elif ev.type == "session_start":
                place(new_turn(ev) if turn.items else turn, Item("start", ev.ts, ev.line_no, text=ev.text))
            elif ev.type == "status":
                place(turn, Item("status", ev.ts, ev.line_no, text=ev.text))
            elif ev.type == "unknown" and ev.malformed:
                place(turn, Item("other", ev.ts, ev.line_no, text=ev.text))
    for i, t in enumerate(turns, start=1):
        t.index = i
    return Transcript(turns=[t for t in turns if t.items or t.usage], events=count, malformed=malformed)


def read_transcript(events_path: Path) -> Transcript:
    """The transcript of an events file (an absent file: no turns)."""
    stream = EventStream(events_path)
    events: list[Event] = []
    while True:
        batch = stream.read_new(final=True)
        if not batch:
            break
        events.extend(batch)
    return build_transcript(events)
