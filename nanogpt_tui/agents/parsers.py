"""Parsers: Claude Code's stream-json, Codex's `exec --json` and our own event lines, into `Event`s.

The format is detected per line, so one file may mix them (an events file holds the agent CLI's lines
and the lines `submit` writes). Nothing here raises on input: a line that is not a JSON object becomes
an `unknown` event flagged `malformed`; a JSON object of a type we do not know becomes an `unknown` event
that keeps its type in `raw_type`.

Formats followed, from these pages (checked 2026-11):

- Claude Code: the CLI reference (https://code.claude.com/docs/en/cli-reference, formerly
  https://docs.anthropic.com/en/docs/claude-code/cli-reference), headless mode / the Agent SDK's CLI
  (https://code.claude.com/docs/en/headless, formerly .../claude-code/sdk/sdk-headless), and cost tracking
  (https://docs.claude.com/en/docs/agent-sdk/cost-tracking: lines of one response share an id and usage;
  the result line carries the invocation's cumulative usage and total_cost_usd).
- Codex: non-interactive mode (https://developers.openai.com/codex/noninteractive, and the same text in
  https://github.com/openai/codex/blob/main/docs/exec.md: event and item types, sample output, `resume`).

What each format looks like:

- Claude Code, `claude -p --output-format stream-json --verbose [--include-partial-messages]`: lines of
  type `system` (subtype `init` with `session_id`, `model`, `tools`, `cwd`; other subtypes such as
  `compact_boundary` or `api_retry`), `assistant` (`message` is an Anthropic Messages API message:
  `id`, `content` blocks `text` / `thinking` / `redacted_thinking` / `tool_use`, `usage`), `user`
  (`message.content` with `tool_result` blocks), `stream_event` (with partial messages: the raw API
  stream event, e.g. `content_block_delta` with `text_delta` / `thinking_delta` / `input_json_delta`),
  and `result` (subtype `success` or `error_*`, `is_error`, `result`, `session_id`, `total_cost_usd`,
  `usage`, `num_turns`, `duration_ms`).
- Codex, `codex exec --json`: `thread.started` (`thread_id`), `turn.started`, `turn.completed`
  (`usage`: `input_tokens`, `cached_input_tokens`, `output_tokens`), `turn.failed` (`error.message`),
  `error` (`message`), and `item.started` / `item.updated` / `item.completed` whose `item` has a `type`
  of `agent_message`, `reasoning`, `command_execution`, `file_change`, `mcp_tool_call`, `web_search`,
  `todo_list` or `error`.
- Ours: objects with `"nanogpt_tui_event": 1` (see `nanogpt_tui.agents.events`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from nanogpt_tui.agents.events import EVENT_TYPES, FORMAT_KEY, Event

CLAUDE_TYPES = frozenset({"system", "assistant", "user", "result", "stream_event", "tool_progress"})
CODEX_TYPES = frozenset({"thread.started", "turn.started", "turn.completed", "turn.failed", "error",
                         "item.started", "item.updated", "item.completed"})
MAX_TEXT = 64 * 1024  # text kept per event; the raw line stays in the file

# Claude Code tool inputs that name the file a tool works on, and the shell command of its Bash tool.
_FILE_KEYS = ("file_path", "notebook_path", "path")
_COMMAND_TOOLS = {"Bash": "command", "BashOutput": "bash_id", "KillShell": "shell_id"}


def parse_line(line: str, line_no: int | None = None) -> list[Event]:
    """The events of one line of an events file (empty for a blank line)."""
    stripped = line.strip()
    if not stripped:
        return []
    try:
        obj = json.loads(stripped)
    except (ValueError, RecursionError):
        obj = None
    if not isinstance(obj, dict):
        return [Event(type="unknown", malformed=True, text=_clip(stripped), line_no=line_no)]
    try:
        events = _dispatch(obj)
    except Exception as err:  # noqa: BLE001 - any shape a line can take must not stop the stream
        # A known type with an unexpected shape: keep the line, flag it with what went wrong.
        raw_type = obj.get("type") if isinstance(obj.get("type"), str) else None
        events = [Event(type="unknown", malformed=True, raw_type=raw_type, source=_guess_source(obj),
                        text=_clip(f"unreadable {raw_type or 'event'} ({type(err).__name__}): {stripped}"))]
    for ev in events:
        ev.line_no = line_no
        _normalize(ev)
    return events


_STR_FIELDS = ("text", "tool", "command", "file", "call_id", "submission", "outcome", "raw_type", "session_id",
               "ts")


def _normalize(ev: Event) -> None:
    """Whatever odd values a line held, an event's fields have their declared types."""
    for name in _STR_FIELDS:
        value = getattr(ev, name)
        if value is not None and not isinstance(value, str):
            setattr(ev, name, _clip(_str(value)))
    if ev.ok is not None and not isinstance(ev.ok, bool):
        ev.ok = None
    if ev.cost_usd is not None and not isinstance(ev.cost_usd, float):
        ev.cost_usd = _float(ev.cost_usd)


def parse_log_line(line: str, line_no: int | None = None) -> list[Event]:
    """Like `parse_line`, for container logs: a line that is not JSON is plain `output`, not malformed."""
    stripped = line.rstrip("\r\n")
    if not stripped.strip():
        return []
    if not stripped.lstrip().startswith("{"):
        return [Event(type="output", text=_clip(stripped), line_no=line_no)]
    return parse_line(stripped, line_no)


def _guess_source(obj: dict[str, Any]) -> str:
    if FORMAT_KEY in obj:
        return "nanogpt-tui"
    t = obj.get("type")
    if not isinstance(t, str):
        return "unknown"
    if t in CLAUDE_TYPES:
        return "claude"
    if t in CODEX_TYPES or (isinstance(t, str) and "." in t):
        return "codex"
    return "unknown"


def _dispatch(obj: dict[str, Any]) -> list[Event]:
    source = _guess_source(obj)
    if source == "nanogpt-tui":
        return _own(obj)
    if source == "claude":
        return _claude(obj)
    if source == "codex":
        return _codex(obj)
    raw_type = obj.get("type") if isinstance(obj.get("type"), str) else None
    return [Event(type="unknown", raw_type=raw_type, text=_clip(json.dumps(obj, ensure_ascii=False)))]


# ------------------------------------------------------------------------------------------------ helpers

def _clip(text: str | None, limit: int = MAX_TEXT) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[:limit]


def _str(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _int(value: Any) -> int:
    """A token count: a finite, non-negative whole number, else 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0
    return max(0, int(value))


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def claude_usage(raw: Any) -> dict[str, int] | None:
    """Anthropic usage -> ours. Anthropic's `input_tokens` excludes cache reads and writes; ours includes them."""
    if not isinstance(raw, dict):
        return None
    uncached = _int(raw.get("input_tokens"))
    created = _int(raw.get("cache_creation_input_tokens"))
    read = _int(raw.get("cache_read_input_tokens"))
    usage = {"input_tokens": uncached + created + read, "cached_input_tokens": read,
             "output_tokens": _int(raw.get("output_tokens"))}
    if created:
        usage["cache_creation_input_tokens"] = created
    return usage


def openai_usage(raw: Any) -> dict[str, int] | None:
    """Codex/OpenAI usage -> ours (already the same convention: input includes the cached part)."""
    if not isinstance(raw, dict):
        return None
    return {"input_tokens": _int(raw.get("input_tokens")),
            "cached_input_tokens": _int(raw.get("cached_input_tokens")),
            "output_tokens": _int(raw.get("output_tokens"))}


def _content_text(content: Any) -> str:
    """The text of a tool_result's content: a string, or a list of blocks of which the text ones count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict):
                if block.get("type") == "text":
                    parts.append(str(block.get("text", "")))
                elif block.get("type") == "image":
                    parts.append("[image]")
            elif isinstance(block, str):
                parts.append(block)
        return "\n".join(parts)
    return "" if content is None else json.dumps(content, ensure_ascii=False)


# -------------------------------------------------------------------------------------------------- Claude

def _claude(obj: dict[str, Any]) -> list[Event]:
    t = obj["type"]
    session = obj.get("session_id") if isinstance(obj.get("session_id"), str) else None
    base = {"source": "claude", "raw_type": t, "session_id": session}
    if obj.get("parent_tool_use_id"):
        base["extra"] = {"parent_tool_use_id": obj["parent_tool_use_id"]}  # inside a subagent (Task tool)
    if t == "system":
        subtype = obj.get("subtype")
        if subtype == "init":
            tools = obj.get("tools") if isinstance(obj.get("tools"), list) else []
            model = obj.get("model")
            summary = f"model {model}" if model else "session started"
            summary += f", {len(tools)} tools"
            if obj.get("permissionMode"):
                summary += f", permissions {obj['permissionMode']}"
            return [Event(type="session_start", text=summary, raw_type="system/init", source="claude",
                          session_id=session,
                          extra={"model": model, "tools": tools, "cwd": obj.get("cwd"),
                                 "claude_code_version": obj.get("claude_code_version")})]
        base = {**base, "raw_type": f"system/{subtype}"}
        if subtype == "api_retry":
            # Claude Code 2.1: a failed API request it retries by itself (429, 5xx, a cut or stalled stream).
            status = obj.get("error_status")
            delay = _float(obj.get("retry_delay_ms"))
            text = (f"API request failed ({status or 'no status'}, {_str(obj.get('error')) or 'error'}); retry "
                    f"{obj.get('attempt')}/{obj.get('max_retries')}"
                    + (f" in {delay / 1000:.1f} s" if delay is not None else ""))
            return [Event(type="status", text=_clip(text), **base,
                          extra={**base.get("extra", {}), "retry": True, "error_status": status})]
        if subtype == "task_started":
            return [Event(type="status", text=_clip(f"tool running: {_str(obj.get('description')) or 'a task'}"),
                          call_id=_str(obj.get("tool_use_id")), **base)]
        if subtype == "thinking_tokens":  # a running estimate while the model thinks
            return [Event(type="status", partial=True, text=f"thinking: ~{_int(obj.get('estimated_tokens'))} tokens",
                          **base)]
        detail = {k: v for k, v in obj.items() if k not in ("type", "subtype", "session_id", "uuid")}
        text = f"{subtype or 'system'}" + (f": {json.dumps(detail, ensure_ascii=False)}" if detail else "")
        kind = "error" if subtype in ("api_error",) else "status"
        return [Event(type=kind, text=_clip(text), **base)]
    if t == "tool_progress":  # a heartbeat every 30 s while a tool runs
        seconds = _float(obj.get("elapsed_time_seconds"))
        return [Event(type="status", partial=True, call_id=_str(obj.get("parent_tool_use_id")),
                      text=f"{_str(obj.get('tool_name')) or 'tool'} running for {seconds or 0:.0f} s", **base)]
    if t == "assistant":
        return _claude_assistant(obj, base)
    if t == "user":
        return _claude_user(obj, base)
    if t == "stream_event":
        return _claude_stream_event(obj, base)
    # result
    subtype = obj.get("subtype") or ""
    is_error = bool(obj.get("is_error")) or subtype.startswith("error")
    text = obj.get("result")
    if not isinstance(text, str):
        text = None
    if is_error and not text:
        errors = obj.get("errors")
        text = "; ".join(map(str, errors)) if isinstance(errors, list) and errors else subtype or "error"
    duration_ms = _float(obj.get("duration_ms"))
    return [Event(type="result", text=_clip(text), ok=not is_error, usage=claude_usage(obj.get("usage")),
                  cost_usd=_float(obj.get("total_cost_usd")),
                  duration_s=duration_ms / 1000.0 if duration_ms is not None else None,
                  **{**base, "raw_type": f"result/{subtype}" if subtype else "result",
                     "extra": {**base.get("extra", {}), "num_turns": obj.get("num_turns"), "subtype": subtype,
                               **({"model_usage": _model_usage(obj["modelUsage"])}
                                  if isinstance(obj.get("modelUsage"), dict) else {})}})]


def _model_usage(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Claude Code's per-model usage of an invocation (`modelUsage`) in our convention, with its cost."""
    out = {}
    for model, u in raw.items():
        if not isinstance(u, dict):
            continue
        usage = claude_usage({"input_tokens": u.get("inputTokens"), "output_tokens": u.get("outputTokens"),
                              "cache_read_input_tokens": u.get("cacheReadInputTokens"),
                              "cache_creation_input_tokens": u.get("cacheCreationInputTokens")}) or {}
        out[str(model)] = {**usage, "cost_usd": _float(u.get("costUSD"))}
    return out


def _claude_assistant(obj: dict[str, Any], base: dict[str, Any]) -> list[Event]:
    message = obj.get("message")
    if not isinstance(message, dict):
        raise ValueError("assistant line without a message")
    events: list[Event] = []
    for block in message.get("content") or []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            events.append(Event(type="message", text=_clip(str(block.get("text", ""))), **base))
        elif kind == "thinking":
            events.append(Event(type="reasoning", text=_clip(str(block.get("thinking", ""))), **base))
        elif kind == "redacted_thinking":
            events.append(Event(type="reasoning", text="(redacted thinking)", **base))
        elif kind in ("tool_use", "server_tool_use"):
            events.append(_claude_tool_call(block, base))
        else:
            events.append(Event(type="unknown", text=_clip(json.dumps(block, ensure_ascii=False)),
                                **{**base, "raw_type": f"assistant/{kind}"}))
    if obj.get("error"):  # an API error the CLI surfaced as an assistant line (e.g. authentication_failed)
        events.append(Event(type="error", text=_clip(_str(obj.get("error"))), **base))
    usage = claude_usage(message.get("usage"))
    if usage is not None:
        extra = dict(base.get("extra") or {})
        extra["message_id"] = message.get("id") if isinstance(message.get("id"), str) else None
        extra["per_message"] = True  # repeated on every line of the same response; see summarize_usage
        events.append(Event(type="usage", usage=usage, **{**base, "extra": extra}))
    return events


def _claude_tool_call(block: dict[str, Any], base: dict[str, Any]) -> Event:
    name = str(block.get("name") or "tool")
    tool_input = block.get("input") if isinstance(block.get("input"), dict) else {}
    command = None
    if name in _COMMAND_TOOLS:
        command = _str(tool_input.get(_COMMAND_TOOLS[name]))
    file = next((str(tool_input[k]) for k in _FILE_KEYS if isinstance(tool_input.get(k), str)), None)
    # What the line shows besides the command and the file: the other inputs (a pattern, a limit).
    hidden = {"command", "description"} if command is not None else set()
    if file is not None:
        hidden |= {k for k in _FILE_KEYS if tool_input.get(k) == file}
    shown = {k: v for k, v in tool_input.items() if k not in hidden}
    if name in ("Edit", "MultiEdit", "Write", "NotebookEdit"):
        # Edits are long: keep what was touched, not the text of the change.
        shown = {k: (f"({len(v)} chars)" if isinstance(v, str) and len(v) > 200 else v)
                 for k, v in shown.items()}
    text = json.dumps(shown, ensure_ascii=False) if shown else None
    return Event(type="tool_call", tool=name, command=command, file=file,
                 call_id=block.get("id") if isinstance(block.get("id"), str) else None,
                 text=_clip(text), **base)


def _claude_user(obj: dict[str, Any], base: dict[str, Any]) -> list[Event]:
    message = obj.get("message")
    if not isinstance(message, dict):
        raise ValueError("user line without a message")
    content = message.get("content")
    if isinstance(content, str):
        return [Event(type="message", text=_clip(content), **{**base, "extra": {"role": "user"}})]
    events = []
    for block in content or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_result":
            events.append(Event(type="tool_result", call_id=block.get("tool_use_id"),
                                ok=not bool(block.get("is_error")),
                                text=_clip(_content_text(block.get("content"))), **base))
        elif block.get("type") == "text":
            events.append(Event(type="message", text=_clip(str(block.get("text", ""))),
                                **{**base, "extra": {"role": "user"}}))
    return events


def _claude_stream_event(obj: dict[str, Any], base: dict[str, Any]) -> list[Event]:
    event = obj.get("event")
    if not isinstance(event, dict):
        raise ValueError("stream_event without an event")
    kind = event.get("type")
    raw = f"stream_event/{kind}"
    common = {**base, "raw_type": raw, "partial": True}
    if kind == "content_block_delta":
        delta = event.get("delta") if isinstance(event.get("delta"), dict) else {}
        dtype = delta.get("type")
        raw = f"stream_event/{dtype}"
        common["raw_type"] = raw
        if dtype == "text_delta":
            return [Event(type="message", text=str(delta.get("text", "")), **common)]
        if dtype == "thinking_delta":
            return [Event(type="reasoning", text=str(delta.get("thinking", "")), **common)]
        if dtype == "input_json_delta":
            return [Event(type="tool_call", text=str(delta.get("partial_json", "")), **common)]
        return [Event(type="status", text=dtype, **common)]
    if kind == "content_block_start":
        block = event.get("content_block") if isinstance(event.get("content_block"), dict) else {}
        if block.get("type") == "tool_use":
            return [Event(type="tool_call", tool=block.get("name"), call_id=block.get("id"), **common)]
        return [Event(type="status", text=f"{block.get('type', 'block')} started", **common)]
    if kind == "error":
        err = event.get("error") if isinstance(event.get("error"), dict) else {}
        return [Event(type="error", text=_str(err.get("message") or err), **{**common, "partial": False})]
    return [Event(type="status", text=kind, **common)]


# --------------------------------------------------------------------------------------------------- Codex

def _codex(obj: dict[str, Any]) -> list[Event]:
    t = obj["type"]
    base = {"source": "codex", "raw_type": t}
    if t == "thread.started":
        thread = obj.get("thread_id") if isinstance(obj.get("thread_id"), str) else None
        return [Event(type="session_start", session_id=thread, text=f"thread {thread}", **base)]
    if t == "turn.started":
        return [Event(type="status", text="turn started", **base)]
    if t == "turn.completed":
        return [Event(type="usage", usage=openai_usage(obj.get("usage")) or {}, **base,
                      extra={"cumulative": True})]
    if t == "turn.failed":
        err = obj.get("error")
        text = err.get("message") if isinstance(err, dict) else err
        return [Event(type="error", text=_clip(_str(text) or "turn failed"), **base)]
    if t == "error":
        return [Event(type="error", text=_clip(_str(obj.get("message")) or "error"), **base)]
    if t in ("item.started", "item.updated", "item.completed"):
        item = obj.get("item")
        if not isinstance(item, dict):
            raise ValueError("item event without an item")
        return _codex_item(t.split(".", 1)[1], item, base)
    return [Event(type="unknown", text=_clip(json.dumps(obj, ensure_ascii=False)), **base)]


def _codex_item(phase: str, item: dict[str, Any], base: dict[str, Any]) -> list[Event]:
    # Early Codex releases named the field `item_type` (and `assistant_message`); accept both.
    kind = item.get("type") or item.get("item_type")
    if kind == "assistant_message":
        kind = "agent_message"
    item_id = item.get("id") if isinstance(item.get("id"), str) else None
    base = {**base, "raw_type": f"{base['raw_type']}/{kind}"}
    done = phase == "completed"
    if kind in ("agent_message", "reasoning"):
        etype = "message" if kind == "agent_message" else "reasoning"
        return [Event(type=etype, text=_clip(_str(item.get("text")) or ""), partial=not done, **base)]
    if kind == "command_execution":
        command = _str(item.get("command"))
        if phase == "started":
            return [Event(type="tool_call", tool="shell", command=command, call_id=item_id, **base)]
        output = _str(item.get("aggregated_output")) or ""
        exit_code = item.get("exit_code")
        if not done:
            return [Event(type="tool_result", call_id=item_id, command=command, text=_clip(output),
                          partial=True, **base)]
        status = item.get("status")
        ok = status == "completed" and (exit_code in (0, None))
        return [Event(type="tool_result", call_id=item_id, command=command, ok=ok, text=_clip(output), **base,
                      extra={"exit_code": exit_code, "status": status})]
    if kind == "file_change":
        changes = item.get("changes") if isinstance(item.get("changes"), list) else []
        paths = [f"{c.get('kind', 'update')} {c.get('path')}" for c in changes if isinstance(c, dict)]
        first = next((str(c.get("path")) for c in changes if isinstance(c, dict) and c.get("path")), None)
        call = Event(type="tool_call", tool="apply_patch", file=first, call_id=item_id,
                     text=", ".join(paths) or None, partial=not done, **base)
        if not done:
            return [call]
        return [call, Event(type="tool_result", call_id=item_id, ok=item.get("status") == "completed",
                            text=f"patch {item.get('status')}", **base)]
    if kind == "mcp_tool_call":
        tool = ".".join(str(x) for x in (item.get("server"), item.get("tool")) if x)
        if phase == "started":
            return [Event(type="tool_call", tool=tool or "mcp", call_id=item_id,
                          text=_clip(_str(item.get("arguments"))), **base)]
        error = item.get("error")
        result = item.get("result")
        text = _str(error.get("message") if isinstance(error, dict) else error) if error else _str(result)
        return [Event(type="tool_result", call_id=item_id, tool=tool or "mcp",
                      ok=item.get("status") == "completed" and not error, text=_clip(text),
                      partial=not done, **base)]
    if kind == "web_search":
        return [Event(type="tool_call", tool="web_search", call_id=item_id, text=_clip(_str(item.get("query"))),
                      partial=phase == "updated", **base)]
    if kind == "todo_list":
        todos = item.get("items") if isinstance(item.get("items"), list) else []
        plan = "; ".join(f"[{'x' if t.get('completed') else ' '}] {t.get('text')}" for t in todos
                         if isinstance(t, dict))
        return [Event(type="status", text=_clip(f"plan: {plan}" if plan else "plan updated"),
                      partial=not done, **base)]
    if kind == "error":
        return [Event(type="error", text=_clip(_str(item.get("message")) or "error"), **base)]
    return [Event(type="unknown", text=_clip(json.dumps(item, ensure_ascii=False)), partial=not done, **base)]


# ----------------------------------------------------------------------------------------------------- ours

_OWN_MAPPED = frozenset({FORMAT_KEY, "type", "ts", "text", "tool", "command", "file", "call_id", "ok", "submission",
                         "outcome", "cost_usd", "session_id", "duration_s", "input_tokens", "cached_input_tokens",
                         "output_tokens", "usage"})

def _own(obj: dict[str, Any]) -> list[Event]:
    t = obj.get("type") if isinstance(obj.get("type"), str) else None
    ts = obj.get("ts") if isinstance(obj.get("ts"), str) else None
    base = {"source": "nanogpt-tui", "raw_type": t if isinstance(t, str) else None, "ts": ts}
    if t not in EVENT_TYPES:
        return [Event(type="unknown", text=_clip(json.dumps(obj, ensure_ascii=False)), **base)]
    ok = obj.get("ok")
    if t == "verdict":
        ok = obj.get("counts") if isinstance(obj.get("counts"), bool) else None
    usage = None
    if t == "usage":
        usage = {k: _int(obj.get(k)) for k in ("input_tokens", "cached_input_tokens", "output_tokens")}
    elif t == "result" and isinstance(obj.get("usage"), dict):
        usage = openai_usage(obj["usage"])
    # Everything the Event has no field for (verdict_path, counts, p_value, kind, new_best, agent, ...).
    extra = {k: v for k, v in obj.items() if k not in _OWN_MAPPED}
    text = _str(obj.get("text"))
    if t == "verdict" and text is None:
        parts = [f"{obj.get('submission')}: {obj.get('outcome')}"]
        if _float(obj.get("mean_train_time_ms")) is not None:
            parts.append(f"mean train_time {obj['mean_train_time_ms'] / 1000:.3f} s")
        if _float(obj.get("p_value")) is not None:
            parts.append(f"p={obj['p_value']:.3g}")
        text = ", ".join(parts)
    return [Event(type=t, text=_clip(text), tool=_str(obj.get("tool")), command=_str(obj.get("command")),
                  file=_str(obj.get("file")), call_id=_str(obj.get("call_id")),
                  ok=ok if isinstance(ok, bool) else None, submission=_str(obj.get("submission")),
                  outcome=_str(obj.get("outcome")), usage=usage, cost_usd=_float(obj.get("cost_usd")),
                  session_id=_str(obj.get("session_id")), duration_s=_float(obj.get("duration_s")),
                  extra=extra, **base)]
