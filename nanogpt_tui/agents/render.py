"""One readable line per event: what container.log readers and the control room show.

Lines are plain text: escape and control sequences from the agent's output are removed (a tool's
output may carry colour codes or cursor movement that would corrupt a terminal), anything that looks
like an API key is masked, newlines are shown as `↵`, and long payloads are folded to a prefix with a
`(+N chars)` marker.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping

from nanogpt_tui.agents.events import Event
from nanogpt_tui.contract.env import is_secret_name
from nanogpt_tui.textsafe import neutralize

DEFAULT_MAX_CHARS = 240

LABELS = {
    "session_start": "start", "message": "say", "reasoning": "think", "tool_call": "tool",
    "tool_result": "out", "submission_started": "submit", "verdict": "verdict", "error": "ERROR",
    "usage": "usage", "result": "done", "status": "note", "progress": "submit", "unknown": "?", "output": "",
}
SOURCE_TAGS = {"claude": "claude", "codex": "codex", "nanogpt-tui": "bench", "unknown": "-"}

# ESC-introduced sequences: CSI (colours, cursor moves), OSC (titles, hyperlinks; BEL or ST ended),
# and the two-character forms; then any C0/C1 control character that is left.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SECRET_PATTERNS = (
    (re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}"), "sk-ant-***"),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{12,}"), "sk-***"),
    (re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/=\-]{8,}"), "Bearer ***"),
    (re.compile(r"(?i)\b([A-Z0-9_]*(?:API_KEY|_TOKEN|SECRET)|api-key|x-api-key)(\s*[=:]\s*)(['\"]?)[^\s'\"]{6,}\3"),
     r"\1\2\3***\3"),
)
# Every pattern above needs one of these in the text: one scan for them spares most lines the four (a flooded
# log is rendered at thousands of lines a second, in a thread that shares the interpreter with the screen).
_MAYBE_SECRET = re.compile(r"sk-|bearer|api_key|_token|secret|api-key", re.IGNORECASE)


def env_secrets(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Values of key-like variables in the environment (masked wherever they appear verbatim)."""
    environ = os.environ if environ is None else environ
    return tuple(sorted({v for k, v in environ.items() if is_secret_name(k) and len(v) >= 8},
                        key=len, reverse=True))


# Any run of at least this many characters of a secret's value is masked (a key cut in two by a line break, or
# printed without its prefix, is still a key); a shorter value is masked only whole.
SECRET_PIECE_CHARS = 12


@functools.lru_cache(maxsize=64)
def _pieces(value: str) -> re.Pattern[str] | None:
    """A pattern finding any SECRET_PIECE_CHARS-long piece of `value` (each match is then grown to the longest
    piece of the value there)."""
    k = min(SECRET_PIECE_CHARS, len(value))
    if k < 8:
        return None
    grams = sorted({value[i:i + k] for i in range(len(value) - k + 1)})
    return re.compile("|".join(map(re.escape, grams)))


def _mask_value(text: str, value: str) -> str:
    pattern = _pieces(value)
    if pattern is None:
        return text.replace(value, "***") if value else text
    out, last, pos = [], 0, 0
    while (m := pattern.search(text, pos)) is not None:
        start, end = m.start(), m.end()
        while end < len(text) and text[start:end + 1] in value:
            end += 1
        out += [text[last:start], "***"]
        last = pos = end
    return "".join(out) + text[last:] if out else text


def mask_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every long piece of a known secret's value, and anything shaped like a key, masked."""
    for value in secrets:
        text = _mask_value(text, value)
    if _MAYBE_SECRET.search(text) is None:
        return text
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text


def sanitize(text: str) -> str:
    """Plain one-line text: escape sequences and control characters out, invisible and direction-changing
    characters shown as marks, newlines as ↵, tabs as spaces."""
    if "\x1b" in text or "\x9b" in text:  # every escape sequence starts with one of the two
        text = _ESCAPES.sub("", text)
    text = text.replace("\r\n", "\n").replace("\t", " ")
    text = text.replace("\n", " ↵ ")
    return neutralize(_CONTROLS.sub("", text)).strip()


def sanitize_lines(text: str) -> list[str]:
    """The lines of a multi-line text (a tool's output, a long message, a diff), each plain as `sanitize` makes a
    line, with its indentation kept (a tab as 4 spaces): `sanitize` joins lines with ↵ and trims, which is right for
    one line of a list and wrong for text read line by line."""
    lines = []
    for line in _ESCAPES.sub("", text).replace("\r\n", "\n").split("\n"):
        head = line[:len(line) - len(line.lstrip(" \t"))].replace("\t", "    ")
        body = sanitize(line)
        lines.append(head + body if body else "")
    return lines


def fold(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars].rstrip()} … (+{len(text) - max_chars} chars)"


def _tokens(n: int) -> str:
    return f"{n:,}"


def usage_text(usage: Mapping[str, int] | None, cost_usd: float | None = None) -> str:
    if not usage and cost_usd is None:
        return ""
    usage = usage or {}
    parts = [f"in {_tokens(int(usage.get('input_tokens', 0)))}"]
    if usage.get("cached_input_tokens"):
        parts[-1] += f" ({_tokens(int(usage['cached_input_tokens']))} cached)"
    parts.append(f"out {_tokens(int(usage.get('output_tokens', 0)))}")
    if cost_usd is not None:
        parts.append(f"${cost_usd:.4f}")
    return " ".join(parts)


def event_detail(ev: Event) -> str:
    """What an event says, without its time, source or label (not yet sanitised, masked or folded)."""
    t = ev.type
    if t == "tool_call":
        what = ev.tool or "tool"
        if ev.command:
            return f"{what} $ {ev.command}"
        if ev.tool == "apply_patch" and ev.text:
            return f"{what} {ev.text}"
        if ev.file:
            return f"{what} {ev.file}" + (f" {ev.text}" if ev.text else "")
        return f"{what} {ev.text}" if ev.text else what
    if t == "tool_result":
        state = "ok" if ev.ok else ("FAILED" if ev.ok is False else "…")
        code = ev.extra.get("exit_code")
        if code not in (None, 0):
            state += f" (exit {code})"
        body = ev.text or ""
        return f"{state} {body}".strip()
    if t == "usage":
        return usage_text(ev.usage, ev.cost_usd)
    if t == "result":
        state = "ok" if ev.ok is not False else "FAILED"
        bits = [state]
        if ev.duration_s is not None:
            bits.append(f"{ev.duration_s:.0f}s")
        spent = usage_text(ev.usage, ev.cost_usd)
        if spent:
            bits.append(spent)
        head = " ".join(bits)
        return f"{head} | {ev.text}" if ev.text else head
    if t == "session_start":
        text = ev.text or "session started"
        if ev.session_id and ev.session_id not in text:
            text += f" (session {ev.session_id})"
        return text
    if t == "submission_started":
        return f"{ev.submission}" + (f" {ev.text}" if ev.text else "")
    if t == "verdict":
        return ev.text or f"{ev.submission}: {ev.outcome}"
    if t == "progress":
        from nanogpt_tui.telemetry.activity import progress_text

        return progress_text(ev)
    if t == "unknown":
        label = ev.raw_type or ("malformed line" if ev.malformed else "event")
        return f"{label}: {ev.text or ''}".rstrip(": ")
    return ev.text or ""


def render_event(ev: Event, *, max_chars: int = DEFAULT_MAX_CHARS, secrets: Iterable[str] | None = None,
                 show_time: bool = True) -> str:
    """One line: `[HH:MM:SS] source label detail`, sanitised, masked and folded."""
    secrets = env_secrets() if secrets is None else tuple(secrets)
    detail = fold(mask_secrets(sanitize(event_detail(ev)), secrets), max_chars)
    if ev.type == "output":
        return detail
    label = LABELS.get(ev.type, ev.type)
    if ev.malformed:
        label = "?!"
    head = f"{SOURCE_TAGS.get(ev.source, ev.source):<6} {label:<7}"
    if show_time and ev.ts and len(ev.ts) >= 19:
        head = f"{ev.ts[11:19]} {head}"
    return f"{head} {detail}".rstrip()


def is_shown(ev: Event, *, partial: bool = False, per_message_usage: bool = False) -> bool:
    """Whether the default view shows an event. Streaming deltas repeat what the complete message says,
    and Claude's per-message usage repeats on every line of a response, so both are hidden by default."""
    if ev.partial and not partial:
        return False
    if ev.type == "usage" and ev.extra.get("per_message") and not per_message_usage:
        return False
    return True


def render_events(events: Iterable[Event], *, max_chars: int = DEFAULT_MAX_CHARS, partial: bool = False,
                  per_message_usage: bool = False) -> list[str]:
    secrets = env_secrets()
    return [render_event(ev, max_chars=max_chars, secrets=secrets) for ev in events
            if is_shown(ev, partial=partial, per_message_usage=per_message_usage)]
