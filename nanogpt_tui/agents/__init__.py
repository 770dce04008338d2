"""Agents: harnesses, prompting strategies, the one event model and the parsers of each agent CLI's stream.

Headless: nothing here imports Textual, Docker, torch or an LLM SDK. The modules:

    events      the event model (`Event`, event types, our own JSONL event lines, usage totals, `EventStream`)
    parsers     Claude Code stream-json, Codex `exec --json` and our own lines -> `Event`s (`parse_line`)
    render      one readable, sanitised line per event (for container.log readers and the control room)
    strategy    prompting strategies: a folder of prompt files plus `strategy.toml`; composition and hashing
    catalog     the agents nanogpt-tui can run: harness folder, what each needs, which strategies it supports
    control     helpers the bash harnesses call: seconds left before the deadline, the stream relay
    replay      re-emit a recorded stream with its original timing (the `replay` agent)
"""

from __future__ import annotations

__all__ = ["Event", "EventStream", "parse_line", "render_event", "summarize_usage"]


def __getattr__(name: str):
    # Lazy, so `import nanogpt_tui.agents` stays cheap for the CLI.
    if name in ("Event", "EventStream", "summarize_usage"):
        from nanogpt_tui.agents import events
        return getattr(events, name)
    if name == "parse_line":
        from nanogpt_tui.agents.parsers import parse_line
        return parse_line
    if name == "render_event":
        from nanogpt_tui.agents.render import render_event
        return render_event
    raise AttributeError(name)
