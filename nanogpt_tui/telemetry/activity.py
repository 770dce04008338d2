"""What a session is doing right now, in one line: the agent's last tool call or message, or the validator's
progress ("submission_3: run 4/10, step 1200/1600"), read incrementally from its events file."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from nanogpt_tui.agents.events import Event, EventStream

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
    """A session's latest activity, following its events file from where the last read stopped."""

    def __init__(self, events_path: str | os.PathLike[str], secrets: tuple[str, ...] | None = None) -> None:
        from nanogpt_tui.agents.render import env_secrets

        self.stream = EventStream(Path(events_path))
        self.secrets = tuple(env_secrets() if secrets is None else secrets)
        self.latest: Activity | None = None

    def update(self) -> Activity | None:
        for ev in reversed(self.stream.read_new()):
            found = activity_of(ev, self.secrets)
            if found is not None:
                self.latest = found
                break
        return self.latest


def read_activity(events_path: str | os.PathLike[str]) -> Activity | None:
    """The latest activity in an events file, read once (for the CLI)."""
    return ActivityReader(events_path).update()
