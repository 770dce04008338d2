"""How the control room writes durations, tokens, GPU-hours, moments, ids, shares and record names (pure functions)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from nanogpt_tui.sessions.model import Session, parse_iso


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


def format_share(value: float | None) -> str:
    """`62%` for 0.62, as the report writes shares; `-` when there is no share to give."""
    return "-" if value is None else f"{100 * value:.0f}%"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def record_short(name: str | None) -> str:
    """`FA3` for `2025-09-03_FA3`: record names without their date, for tight titles."""
    if not name:
        return "-"
    head, _, tail = name.partition("_")
    return tail if tail and re.fullmatch(r"\d{4}-\d{2}-\d{2}", head) else name


def short_label(session: Session) -> str:
    return f"{session.agent}/{session.strategy}"


PLACE_FACTS = ("job", "queue", "node")  # a backend's own facts that locate a session (Slurm: job id, queue state, node)


def place_text(backend: str | None, host: str | None, facts: Mapping[str, object]) -> str:
    """Where a session runs, as the card, the detail and `sessions list` say it: `slurm gpu · job 4211 · queue
    RUNNING · node n07`, `docker not placed yet` (the backend, the host, then the facts that locate it)."""
    where = " ".join(p for p in (backend, host or "not placed yet") if p)
    return " · ".join([where, *(f"{key} {facts[key]}" for key in PLACE_FACTS if facts.get(key))])
