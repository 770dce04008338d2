"""Transcripts from the event model: turns of the real CLIs' recorded streams and of our own event lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanogpt_tui.agents.events import event_line
from nanogpt_tui.tui.data.transcript import read_transcript

STREAMS = Path(__file__).resolve().parents[1] / "fixtures" / "streams"


def test_claude_stream_turns_are_its_responses_with_tool_outputs_joined():
    t = read_transcript(STREAMS / "claude_stream.jsonl")
    assert len(t.turns) == 5 and t.events > 30
    first = t.turns[0]
    assert [i.kind for i in first.items] == ["start", "reasoning", "message", "tool"]
    bash = first.items[-1].tool
    assert bash.name == "Bash" and bash.command.startswith("nvidia-smi") and "H100" in bash.output and bash.ok
    # A response repeats its usage on each line: the last counts, not the sum.
    assert first.usage == {"input_tokens": 23509, "cached_input_tokens": 13994, "output_tokens": 187}
    # Two tool calls of one response stay in one turn; the invocation's result brings the CLI's cost.
    assert [c.name for c in t.turns[1].tool_calls] == ["Read", "Grep"]
    assert t.turns[2].cost_usd == pytest.approx(0.4213)
    # The stream ends while the submit command still runs: its call has no output yet (not a made-up one).
    last = t.turns[-1].tool_calls[-1]
    assert last.command.startswith("nanogpt-tui submit") and last.output is None and last.ok is None


def test_codex_turns_close_on_their_usage():
    t = read_transcript(STREAMS / "codex_stream.jsonl")
    with_usage = [turn for turn in t.turns if turn.usage]
    assert [u.usage["output_tokens"] for u in with_usage] == [1122, 2481]
    assert any(i.kind == "error" for turn in t.turns for i in turn.items)
    patch = next(c for turn in t.turns for c in turn.tool_calls if c.name == "apply_patch")
    assert patch.output is not None


def test_own_events_place_submissions_and_verdicts_and_find_them(tmp_path):
    lines = [
        event_line("session_start", agent="scripted", ts="2026-12-03T10:00:00Z"),
        event_line("reasoning", text="150 steps should keep val_loss under 2.0", ts="2026-12-03T10:00:01Z"),
        event_line("tool_call", tool="bash", command="bash run.sh", call_id="c1", ts="2026-12-03T10:00:02Z"),
        event_line("tool_result", call_id="c1", ok=True, text="step:150/150 val_loss:1.9788", ts="2026-12-03T10:00:30Z"),
        event_line("message", text="Kept: submitting it.", ts="2026-12-03T10:00:31Z"),
        event_line("submission_started", submission="submission_1", ts="2026-12-03T10:00:32Z"),
        event_line("verdict", submission="submission_1", outcome="validated", verdict_path="v.json", counts=True,
                   ts="2026-12-03T10:02:00Z"),
        event_line("usage", input_tokens=0, cached_input_tokens=0, output_tokens=0, cost_usd=0.0),
        event_line("error", text="the next experiment crashed", ts="2026-12-03T10:03:00Z"),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(lines) + "not json\n")
    t = read_transcript(path)
    # The agent spoke again after its tool's output came back: a second turn; the usage line closed it.
    assert [[i.kind for i in turn.items] for turn in t.turns] == [
        ["start", "reasoning", "tool"], ["message", "submission", "verdict"], ["error", "other"]]
    assert t.turns[1].cost_usd == 0.0 and t.malformed == 1
    verdict_at = t.find_verdict("submission_1")
    assert verdict_at == (2, 2) and t.turns[1].items[2].verdict_path == "v.json"
    assert t.find_verdict("submission_9") is None
    exported = t.to_dict("s1")
    assert exported["session"] == "s1" and [turn["index"] for turn in exported["turns"]] == [1, 2, 3]
    assert exported["turns"][0]["items"][2]["tool"]["output"] == "step:150/150 val_loss:1.9788"
    assert read_transcript(tmp_path / "missing.jsonl").turns == []
