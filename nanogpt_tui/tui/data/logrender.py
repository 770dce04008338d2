"""How one raw log line or event becomes display lines: readable, stripped of escape sequences, keys masked; and
the filters the log views cycle through. The control room and `sessions logs` both show a log through these."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple


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
    "submissions": ("submission_started", "progress", "verdict"),
    "errors": ("error",),
    "usage": ("usage", "result"),
    "output": ("output", "status", "session_start", "unknown"),
}
