"""What a session is doing right now, in one line: the agent's last tool call or message (from its events file),
or the validator's progress ("submission_3: run 4/10, step 1200/1600", from `validator/progress.jsonl`), each
read incrementally. While the validator works on a request its progress is the activity: the agent waits in
`submit`, or is paused while the submission is retimed."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from nanogpt_tui.agents.events import Event, EventStream
from nanogpt_tui.contract import layout as L

ACTIVITY_CHARS = 160  # an activity is one line on a card or in a table cell


@dataclass(frozen=True)
class Activity:
    """The last thing a session did: `kind` (tool, message, thinking, submit, validator, verdict, error, note),
    its text (sanitised and masked, one line) and when (the event's own time, ISO 8601, or None)."""

    kind: str
    text: str
    at: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def progress_text(ev: Event) -> str:
    """`submission_3: run 4/10, step 1200/1600` (or the phase: `submission_3: judge`) from a progress event."""
    x = ev.extra
    parts = []
    if isinstance(x.get("run"), int):
        parts.append(f"run {x['run']}/{x['runs']}" if isinstance(x.get("runs"), int) else f"run {x['run']}")
    if isinstance(x.get("step"), int):
        parts.append(f"step {x['step']}/{x['steps']}" if isinstance(x.get("steps"), int) else f"step {x['step']}")
    if not parts and isinstance(x.get("phase"), str):
        parts.append(x["phase"])
    if ev.text:
        parts.append(ev.text)
    return f"{ev.submission or 'submission'}: " + ", ".join(parts) if parts else (ev.submission or "validating")


_KINDS = {"tool_call": "tool", "message": "message", "reasoning": "thinking", "submission_started": "submit",
          "progress": "validator", "verdict": "verdict", "error": "error"}


def activity_of(ev: Event, secrets: tuple[str, ...] = ()) -> Activity | None:
    """The activity an event stands for; None for events that say nothing about what the session is doing
    (usage, results, tool output, plain output, user turns, streaming deltas)."""
    if ev.partial or ev.type not in _KINDS or ev.extra.get("role") == "user":
        return None
    from nanogpt_tui.agents.render import event_detail, fold, mask_secrets, sanitize

    text = fold(mask_secrets(sanitize(event_detail(ev)), secrets), ACTIVITY_CHARS)
    if not text.strip():
        return None
    return Activity(_KINDS[ev.type], text, ev.ts)


class ActivityReader:
    """A session's latest activity, following its events file from where the last read stopped; events of the
    types in `ignore` say nothing here (a session's agent stream cannot speak for the validator's verdicts)."""

    def __init__(self, events_path: str | os.PathLike[str], secrets: tuple[str, ...] | None = None,
                 ignore: frozenset[str] = frozenset()) -> None:
        from nanogpt_tui.agents.render import env_secrets

        self.stream = EventStream(Path(events_path))
        self.secrets = tuple(env_secrets() if secrets is None else secrets)
        self.ignore = ignore
        self.latest: Activity | None = None

    def update(self) -> Activity | None:
        for ev in reversed(self.stream.read_new()):
            found = None if ev.type in self.ignore else activity_of(ev, self.secrets)
            if found is not None:
                self.latest = found
                break
        return self.latest


# The validator's line types (validator/protocol.py, `append_progress`) that end a request: no longer in flight.
_REQUEST_ENDS = ("verdict", "refused")


class ValidatorProgressReader:
    """The validator's latest progress for a session, following its `validator/progress.jsonl`.

    Each line becomes the event it stands for (`progress`: the phase or run and step; `verdict`; a refusal as an
    `error`), named by its submission, which the request's `received` line gives; `validating` says whether the
    last request is still in flight (no verdict or refusal yet)."""

    def __init__(self, progress_path: str | os.PathLike[str], secrets: tuple[str, ...] = ()) -> None:
        self.stream = EventStream(Path(progress_path), parser=self._parse)
        self.secrets = secrets
        self.latest: Activity | None = None
        self.validating = False
        self._names: dict[str, str] = {}  # request id -> the submission it asks for ("anchor" for a baseline)

    def _parse(self, text: str, _line_no: int) -> list[Event]:
        try:
            line = json.loads(text)
        except ValueError:
            return []
        if not isinstance(line, dict) or not isinstance(line.get("request_id"), str):
            return []
        rid, kind = line["request_id"], line.get("type")
        if kind == "received" and isinstance(line.get("submission"), str):
            self._names[rid] = line["submission"] if line.get("request_kind") != "baseline" else "anchor baseline"
        name = self._names.get(rid, rid)
        ts = line.get("ts") if isinstance(line.get("ts"), str) else None
        said = line.get("text") if isinstance(line.get("text"), str) else ""
        self.validating = kind not in _REQUEST_ENDS
        if kind == "verdict":
            outcome = line.get("outcome") if isinstance(line.get("outcome"), str) else "?"
            return [Event(type="verdict", ts=ts, source="nanogpt-tui", submission=name, outcome=outcome,
                          text=f"{name}: {outcome}")]
        if kind == "refused":
            return [Event(type="error", ts=ts, source="nanogpt-tui", text=f"{name}: {said}")]
        steps = {k: line[k] for k in ("run", "runs", "step", "steps") if isinstance(line.get(k), int)}
        if steps:
            return [Event(type="progress", ts=ts, source="nanogpt-tui", submission=name,
                          extra={"phase": "retiming", **steps})]
        return [Event(type="progress", ts=ts, source="nanogpt-tui", submission=name,
                      text=said if kind == "progress" else (said or kind))]

    def update(self) -> Activity | None:
        for ev in reversed(self.stream.read_new()):
            found = activity_of(ev, self.secrets)
            if found is not None:
                self.latest = found
                break
        return self.latest


def _moment(at: str | None) -> float:
    try:
        return datetime.fromisoformat(at).timestamp() if at else float("-inf")
    except ValueError:
        return float("-inf")


class SessionActivity:
    """A session's activity from both of its sources: the validator's progress while it validates, else whichever
    of the agent's last event and the validator's last line is newer. A verdict is only ever the validator's: the
    agent's events file lies in its workspace, where `submit` copies the verdict it was told (and where an agent
    could write any verdict it liked), so its verdict events are not activity."""

    def __init__(self, session_dir: str | os.PathLike[str], secrets: tuple[str, ...] | None = None) -> None:
        from nanogpt_tui.agents.render import env_secrets
        from nanogpt_tui.validator.protocol import PROGRESS_FILE

        d = Path(session_dir)
        secrets = tuple(env_secrets() if secrets is None else secrets)
        self.agent = ActivityReader(d / L.EVENTS_FILE, secrets, ignore=frozenset({"verdict"}))
        self.validator = ValidatorProgressReader(d / L.VALIDATOR / PROGRESS_FILE, secrets)

    def update(self) -> Activity | None:
        """Read what both files gained since the last call (OSError when one cannot be read)."""
        self.agent.update()
        self.validator.update()
        return self.latest

    @property
    def latest(self) -> Activity | None:
        agent, validator = self.agent.latest, self.validator.latest
        if validator is None or agent is None:
            return validator or agent
        if self.validator.validating:
            return validator
        return validator if _moment(validator.at) >= _moment(agent.at) else agent


def read_activity(session_dir: str | os.PathLike[str]) -> Activity | None:
    """A session's latest activity, read once (for the CLI)."""
    return SessionActivity(session_dir).update()
