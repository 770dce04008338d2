"""The event model: parsing Claude Code and Codex streams and our own lines, usage totals, rendering,
incremental reading, the harness helpers (deadline, relay) and the replay agent."""

from __future__ import annotations

import io
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from nanogpt_tui.agents.control import main as control_main
from nanogpt_tui.agents.control import relay, seconds_left, session_id_of
from nanogpt_tui.agents.events import (Event, EventStream, append_event, event_line, summarize_usage)
from nanogpt_tui.agents.parsers import parse_line, parse_log_line
from nanogpt_tui.agents.render import fold, mask_secrets, render_event, render_events, sanitize
from nanogpt_tui.agents.replay import line_time, replay, replay_delays
from nanogpt_tui.errors import UserError

STREAMS = Path(__file__).resolve().parents[1] / "fixtures" / "streams"


def parse_file(name: str) -> list[Event]:
    return EventStream(STREAMS / name).read_all()


# ---------------------------------------------------------------------------------------------- Claude Code

@pytest.fixture(scope="module")
def claude() -> list[Event]:
    return parse_file("claude_stream.jsonl")


def test_claude_init_and_sessions(claude):
    starts = [e for e in claude if e.type == "session_start"]
    assert [e.session_id for e in starts] == ["3f8a2c1e-7b4d-4e2a-9c61-0d5e8f1a2b3c",
                                               "a91c7e55-2d3b-4f08-b6e4-77c2d1e0f9aa",
                                               "c0ffee00-1234-4abc-8def-0123456789ab"]
    assert starts[0].extra["model"] == "claude-opus-4-6" and "Bash" in starts[0].extra["tools"]
    assert starts[0].raw_type == "system/init" and starts[0].source == "claude"


def test_claude_messages_reasoning_and_tool_calls(claude):
    complete = [e for e in claude if not e.partial and e.type != "usage"]
    assert complete[1].type == "reasoning" and complete[1].text.startswith("I should look at the training script")
    assert complete[2].type == "message" and complete[2].text.startswith("I'll start by looking")
    bash = next(e for e in complete if e.type == "tool_call")
    assert (bash.tool, bash.command, bash.call_id) == (
        "Bash", "nvidia-smi --query-gpu=name,memory.total --format=csv", "toolu_01A1b2C3d4E5f6G7h8J9k0Lm")
    read = next(e for e in complete if e.tool == "Read")
    assert read.file == "/workspace/train_gpt.py" and read.command is None
    grep = next(e for e in complete if e.tool == "Grep")
    assert "val_tokens|warmup_steps" in grep.text  # the pattern, shown beside the file
    edit = next(e for e in complete if e.tool == "Edit")
    assert edit.file == "/workspace/train_gpt.py"


def test_claude_tool_results(claude):
    results = [e for e in claude if e.type == "tool_result"]
    assert results[0].call_id == "toolu_01A1b2C3d4E5f6G7h8J9k0Lm" and results[0].ok is True
    assert results[0].text.count("NVIDIA H100") == 8
    assert results[1].text.startswith("     1\timport os")  # content given as a list of text blocks
    assert results[2].ok is False and "does not exist" in results[2].text


def test_claude_result_lines(claude):
    done = [e for e in claude if e.type == "result"]
    assert len(done) == 2
    assert done[0].ok is True and done[0].cost_usd == pytest.approx(0.4213)
    assert done[0].duration_s == pytest.approx(48.213) and done[0].extra["num_turns"] == 7
    # Anthropic's input_tokens excludes the cache; ours includes it.
    assert done[0].usage == {"input_tokens": 17 + 11554 + 85412, "cached_input_tokens": 85412,
                             "output_tokens": 1712, "cache_creation_input_tokens": 11554}
    assert done[1].ok is False and done[1].raw_type == "result/error_max_turns"
    assert done[1].text == "error_max_turns"


def test_claude_partial_message_deltas(claude):
    partial = [e for e in claude if e.partial]
    assert "".join(e.text for e in partial if e.type == "message") == "Let me check the timing run."
    assert "".join(e.text for e in partial if e.type == "reasoning") == "The run finished; check its final line."
    tool_json = "".join(e.text or "" for e in partial if e.type == "tool_call")
    assert json.loads(tool_json) == {"command": "tail -n 3 experiments/steps1660/run.log"}
    start = next(e for e in partial if e.type == "tool_call" and e.tool)
    assert (start.tool, start.call_id) == ("Bash", "toolu_01Tail000000000000000004")
    assert all(e.source == "claude" for e in partial)


def test_claude_malformed_and_unknown_lines_are_kept_and_flagged(claude):
    broken = [e for e in claude if e.malformed]
    assert len(broken) == 1 and broken[0].line_no == 14 and broken[0].text.startswith('{"type":"assistant"')
    unknown = [e for e in claude if e.type == "unknown" and not e.malformed]
    assert [e.raw_type for e in unknown] == ["rate_limit_event"]
    # Parsing went on after both.
    assert claude[-1].type == "usage" and claude[-1].line_no == 40


def test_claude_compaction_is_a_status_note(claude):
    note = next(e for e in claude if e.raw_type == "system/compact_boundary")
    assert note.type == "status" and "pre_tokens" in note.text


def test_claude_usage_counts_each_invocation_once(claude):
    totals = summarize_usage(claude)
    # Invocations 1 and 2 end with a result line (counted alone); invocation 3 was stopped before its
    # result, so its per-message usage counts, once per message id, with the largest output count.
    assert totals.invocations == 3
    assert totals.input_tokens == 96983 + 31205 + (2 + 300 + 30000)
    assert totals.cached_input_tokens == 85412 + 31200 + 30000
    assert totals.output_tokens == 1712 + 64 + 120
    assert totals.cost_usd == pytest.approx(0.4213 + 0.0871)
    assert totals.cost_complete is False  # the third invocation reported no cost


def test_an_assistant_line_may_give_several_events():
    line = json.dumps({"type": "assistant", "session_id": "s", "message": {
        "id": "msg_1", "content": [{"type": "text", "text": "Running it."},
                                   {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}}],
        "usage": {"input_tokens": 1, "output_tokens": 2}}})
    kinds = [e.type for e in parse_line(line, 7)]
    assert kinds == ["message", "tool_call", "usage"]
    assert all(e.line_no == 7 for e in parse_line(line, 7))


# ------------------------------------------------------------------------------------------------- Codex

@pytest.fixture(scope="module")
def codex() -> list[Event]:
    return parse_file("codex_stream.jsonl")


def test_codex_thread_and_commands(codex):
    assert codex[0].type == "session_start" and codex[0].session_id == "0199a213-81c0-7800-8aa1-bbab2a035a53"
    calls = [e for e in codex if e.type == "tool_call" and e.tool == "shell"]
    assert calls[0].command == "bash -lc 'grep -n \"training_time_ms\" train_gpt.py'" and calls[0].call_id == "item_1"
    results = [e for e in codex if e.type == "tool_result" and e.command]
    assert results[0].ok is True and "training_time_ms += 1000" in results[0].text
    assert results[1].ok is False and results[1].extra["exit_code"] == 1


def test_codex_messages_reasoning_plans_and_patches(codex):
    reasoning = next(e for e in codex if e.type == "reasoning")
    assert reasoning.text.startswith("**Inspecting the training loop**")
    plans = [e for e in codex if e.raw_type and e.raw_type.endswith("/todo_list")]
    assert [e.partial for e in plans] == [True, True] and "[x] Measure the anchor once" in plans[1].text
    patch = next(e for e in codex if e.tool == "apply_patch")
    assert patch.file == "/workspace/train_gpt.py" and "add /workspace/NOTES.md" in patch.text
    messages = [e.text for e in codex if e.type == "message"]
    assert messages[-1].startswith("Submitted submission_1")


def test_codex_failures_errors_and_web_search(codex):
    mcp = next(e for e in codex if e.type == "tool_result" and e.tool == "docs.search")
    assert mcp.ok is False and mcp.text == "server docs is not connected"
    assert any(e.type == "tool_call" and e.tool == "web_search" and e.text == "modded-nanogpt record 2025"
               for e in codex)
    errors = [e.text for e in codex if e.type == "error"]
    assert errors == ["command timed out after 600s", "stream disconnected before completion: rate limit exceeded",
                      "exceeded retry limit, last status: 429 Too Many Requests"]


def test_codex_unknown_and_malformed_lines(codex):
    assert [e.line_no for e in codex if e.malformed] == [19]
    unknown = [e.raw_type for e in codex if e.type == "unknown" and not e.malformed]
    assert unknown == ["item.completed/collab_tool_call", "thread.compacted"]


def test_codex_usage_is_a_running_total_per_thread(codex):
    usage = [e for e in codex if e.type == "usage"]
    assert usage[0].usage == {"input_tokens": 24763, "cached_input_tokens": 24448, "output_tokens": 1122}
    totals = summarize_usage(codex)
    assert (totals.input_tokens, totals.cached_input_tokens, totals.output_tokens) == (61870, 55296, 2481)
    assert totals.cost_usd is None and totals.cost_complete is False


def test_codex_usage_restarting_in_a_new_process_is_added_whole():
    lines = ['{"type":"thread.started","thread_id":"t"}',
             '{"type":"turn.completed","usage":{"input_tokens":1000,"cached_input_tokens":0,"output_tokens":10}}',
             '{"type":"thread.started","thread_id":"t"}',
             '{"type":"turn.completed","usage":{"input_tokens":400,"cached_input_tokens":0,"output_tokens":5}}']
    totals = summarize_usage([e for i, ln in enumerate(lines) for e in parse_line(ln, i)])
    assert (totals.input_tokens, totals.output_tokens) == (1400, 15)


def test_early_codex_item_type_field():
    line = '{"type":"item.completed","item":{"id":"item_3","item_type":"assistant_message","text":"Done."}}'
    (ev,) = parse_line(line)
    assert ev.type == "message" and ev.text == "Done." and ev.source == "codex"


# ------------------------------------------------------------------------------------------------- ours

def test_our_own_lines_round_trip(tmp_path):
    path = tmp_path / "events.jsonl"
    append_event(path, "submission_started", submission="submission_2")
    append_event(path, "verdict", submission="submission_2", outcome="validated", verdict_path="/v.json",
                 counts=True, mean_train_time_ms=158200.0, p_value=0.0004)
    append_event(path, "usage", input_tokens=10, cached_input_tokens=0, output_tokens=5, cost_usd=0.01)
    append_event(path, "result", text="done", usage={"input_tokens": 10, "cached_input_tokens": 0,
                                                     "output_tokens": 5}, cost_usd=0.01, duration_s=3.5)
    started, verdict, usage, result = EventStream(path).read_all()
    assert started.type == "submission_started" and started.submission == "submission_2"
    assert started.source == "nanogpt-tui" and started.ts.endswith("Z")
    assert verdict.ok is True and verdict.outcome == "validated" and verdict.extra["p_value"] == 0.0004
    assert "submission_2: validated, mean train_time 158.200 s" in verdict.text
    assert usage.usage["output_tokens"] == 5 and result.duration_s == 3.5
    # The result's usage replaces the increments of its invocation.
    totals = summarize_usage([started, verdict, usage, result])
    assert (totals.input_tokens, totals.cost_usd, totals.cost_complete) == (10, 0.01, True)


def test_event_line_refuses_unknown_types_and_fields():
    assert json.loads(event_line("error", text="x"))["nanogpt_tui_event"] == 1
    with pytest.raises(ValueError):
        event_line("cheat", text="x")
    with pytest.raises(ValueError):
        event_line("error", message="x")


def test_lines_that_are_not_events():
    assert parse_line("   \n") == []
    (ev,) = parse_line("Traceback (most recent call last):", 3)
    assert ev.type == "unknown" and ev.malformed and ev.line_no == 3
    (ev,) = parse_line("[1, 2, 3]")
    assert ev.malformed
    (ev,) = parse_line('{"no_type": true}')
    assert ev.type == "unknown" and not ev.malformed
    # A known type with an impossible shape is flagged, not fatal.
    (ev,) = parse_line('{"type":"assistant","message":"oops"}')
    assert ev.type == "unknown" and ev.malformed and ev.raw_type == "assistant"
    (ev,) = parse_log_line("  warning: something printed by a tool\n", 9)
    assert ev.type == "output" and not ev.malformed


# ----------------------------------------------------------------------------------------------- render

def test_render_one_line_per_event(claude, codex):
    lines = render_events(claude) + render_events(codex)
    assert all("\n" not in ln and "\x1b" not in ln for ln in lines)
    assert "claude tool    Bash $ nvidia-smi --query-gpu=name,memory.total --format=csv" in lines
    assert any(ln.startswith("claude done    ok 48s in 96,983 (85,412 cached) out 1,712 $0.4213") for ln in lines)
    assert "codex  out     FAILED (exit 1) torch.distributed.elastic.multiprocessing.errors.ChildFailedError:  ↵ " \
           "train_gpt.py FAILED" in lines
    # Streaming deltas and Claude's per-message usage are hidden by default.
    assert len(render_events(claude)) < len(render_events(claude, partial=True, per_message_usage=True))


def test_render_strips_escapes_masks_keys_and_folds():
    ev = Event(type="tool_result", source="claude", ok=True,
               text="\x1b[31mred\x1b[0m \x1b]0;title\x07ok\r\nexport ANTHROPIC_API_KEY=sk-ant-"
                    "api03-abcdefghijklmnop "
                    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload sk-proj-" "abcdefghijklmnopqrstuv\x07 "
                    + "x" * 500)
    line = render_event(ev, max_chars=160, secrets=())
    assert "\x1b" not in line and "\x07" not in line and "\r" not in line
    assert "red ok ↵ export" in line
    assert "sk-ant-api03" not in line and "abcdefghijklmnop" not in line and "eyJhbGci" not in line
    assert "ANTHROPIC_API_KEY=***" in line and "Bearer ***" in line
    assert line.endswith("chars)") and "(+" in line
    assert fold("abc", 5) == "abc" and fold("abcdefgh", 3) == "abc … (+5 chars)"


def test_mask_secrets_also_masks_known_values():
    assert mask_secrets("key is 0123456789abcdef0123", ["0123456789abcdef0123"]) == "key is ***"
    assert mask_secrets("x-api-key: abcdef123456") == "x-api-key: ***"
    assert sanitize("a\tb\x00c\x9b31md") == "a bcd"


def test_render_our_verdict_with_time():
    (ev,) = parse_line(event_line("verdict", ts="2026-11-27T05:12:03.000Z", submission="submission_1",
                                  outcome="not-significant", counts=False, verdict_path="/v.json"))
    assert render_event(ev, secrets=()) == "05:12:03 bench  verdict submission_1: not-significant"


# ------------------------------------------------------------------------------------------ EventStream

def test_event_stream_reads_incrementally_and_waits_for_a_partial_line(tmp_path):
    path = tmp_path / "events.jsonl"
    stream = EventStream(path)
    assert stream.read_new() == []  # no file yet
    path.write_bytes(b'{"type":"thread.started","thread_id":"t"}\n{"type":"turn.sta')
    first = stream.read_new()
    assert [e.type for e in first] == ["session_start"] and stream.line_no == 1
    assert stream.read_new() == []  # still mid-line
    with path.open("ab") as handle:
        handle.write(b'rted"}\n')
    (ev,) = stream.read_new()
    assert ev.type == "status" and ev.line_no == 2
    offset = stream.offset
    resumed = EventStream(path, offset=offset, line_no=2)  # a reader that restarts from a saved offset
    with path.open("ab") as handle:
        handle.write(b'{"type":"error","message":"boom"}')
    assert resumed.read_new() == []
    (err,) = resumed.read_new(final=True)
    assert err.type == "error" and err.line_no == 3


def test_event_stream_restarts_when_the_file_shrinks(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"type":"turn.started"}\n' * 3)
    stream = EventStream(path)
    assert len(stream.read_new()) == 3
    path.write_text('{"type":"error","message":"new file"}\n')
    (ev,) = stream.read_new()
    assert ev.text == "new file" and ev.line_no == 1


def test_event_stream_skips_an_over_long_line(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"type":"turn.started"}\n' + b"x" * 5000 + b'\n{"type":"turn.started"}\n')
    events = EventStream(path, max_line_bytes=1024).read_new()
    assert [e.type for e in events] == ["status", "unknown", "status"]
    assert events[1].malformed and "skipped" in events[1].text and events[2].line_no == 3


# ------------------------------------------------------------------------------------- harness helpers

def test_seconds_left_reads_the_deadline(tmp_path):
    epoch = 1_800_000_000.0  # a moment in 2027: the reader refuses epochs outside the years 2000 to 2200
    (tmp_path / "deadline.json").write_text(json.dumps({"deadline_epoch": epoch}))
    assert seconds_left(tmp_path, now=epoch - 99.5) == 99
    assert seconds_left(tmp_path, now=epoch + 0.5) == -1
    (tmp_path / "deadline.json").write_text(json.dumps({"deadline": "2026-11-27T06:00:00Z"}))
    expected = datetime(2026, 11, 27, 6, 0, tzinfo=timezone.utc).timestamp()
    assert seconds_left(tmp_path, now=expected - 5.5) == 5


@pytest.mark.parametrize("content", [None, "{not json", '["a"]', '{"deadline": "tomorrow"}',
                                     '{"deadline": "2026-11-27T06:00:00"}'])
def test_seconds_left_fails_clearly(tmp_path, content, capsys, monkeypatch):
    if content is not None:
        (tmp_path / "deadline.json").write_text(content)
    with pytest.raises(UserError):
        seconds_left(tmp_path)
    monkeypatch.setenv("BENCHMARK_CONTROL_DIR", str(tmp_path))
    assert control_main(["seconds-left"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "deadline.json" in err


def test_relay_copies_lines_whole_and_remembers_the_session(tmp_path):
    source = io.BytesIO(b'{"type":"system","subtype":"init","session_id":"abc"}\n'
                        b'{"type":"assistant","message":{"content":[]},"session_id":"zzz"}\n'
                        b'{"type":"result","subtype":"success","session_id":"def"}')
    sink = io.BytesIO()
    events = tmp_path / "logs" / "events.jsonl"
    events.parent.mkdir()
    events.write_text('{"nanogpt_tui_event":1,"type":"status","text":"before"}\n')
    session = tmp_path / "sid"
    assert relay(source, sink, str(events), session) == 3
    lines = events.read_text().splitlines()
    assert len(lines) == 4 and lines[-1].endswith('"def"}')
    assert sink.getvalue().decode().splitlines() == lines[1:]
    assert session.read_text() == "def\n"
    assert session_id_of(b'{"type":"thread.started","thread_id":"th-1"}') == "th-1"
    assert session_id_of(b'{"type":"assistant","session_id":"x"}') is None


def test_control_event_command_appends_our_line(tmp_path, capsys):
    events = tmp_path / "events.jsonl"
    assert control_main(["event", "status", "--text", "invocation 2", "--events", str(events)]) == 0
    (ev,) = EventStream(events).read_all()
    assert ev.type == "status" and ev.text == "invocation 2"
    assert json.loads(capsys.readouterr().out)["type"] == "status"


# ------------------------------------------------------------------------------------------------ replay

def test_replay_timing_from_timestamps_and_gaps():
    lines = [b'{"type":"turn.started","timestamp":"2026-11-20T09:00:00Z"}\n',
             b'{"type":"turn.started"}\n',
             b'{"type":"turn.started","ts":"2026-11-20T09:00:10.5Z"}\n',
             b'{"type":"turn.started","timestamp":1795770000}\n']
    assert line_time(lines[3]) == 1795770000.0
    assert replay_delays(lines, gap=0.25, max_gap=60) == [0.0, 0.25, 10.5, 60]


def test_replay_writes_lines_with_the_speed_up_and_stops_at_the_deadline(tmp_path):
    lines = [json.dumps({"type": "turn.started", "timestamp": f"2026-11-20T09:00:{s:02d}Z"}).encode() + b"\n"
             for s in (0, 4, 8, 12)]
    waits: list[float] = []
    now = [1000.0]

    def sleep(s: float) -> None:
        waits.append(s)
        now[0] += s

    sink = io.BytesIO()
    events = tmp_path / "events.jsonl"
    written = replay(lines, speed=4, events_path=str(events), sink=sink, sleep=sleep, clock=lambda: now[0],
                     deadline=lambda: 1002.5)
    # Lines at 0, 4, 8, 12 s played 4x faster: 0, 1, 2, 3 s; the fourth would land after the deadline.
    assert written == 3 and waits == [1.0, 1.0, 0.5] and now[0] == 1002.5
    assert events.read_bytes() == b"".join(lines[:3]) == sink.getvalue()
    with pytest.raises(UserError):
        replay(lines, speed=0)


def test_bundled_replay_sample_is_a_clean_claude_stream():
    from nanogpt_tui.agents.catalog import get_agent

    sample = get_agent("replay").harness_dir / "sample_claude.jsonl"
    events = EventStream(sample).read_all()
    assert not any(e.malformed or e.type == "unknown" for e in events)
    assert {"session_start", "tool_call", "tool_result", "result"} <= {e.type for e in events}
    assert all(line_time(ln.encode()) for ln in sample.read_text().splitlines())
    assert summarize_usage(events).cost_usd == pytest.approx(0.6841)


def test_append_line_is_one_write_per_line(tmp_path):
    path = tmp_path / "e.jsonl"
    pids = []
    for n in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                for i in range(200):
                    append_event(path, "status", text=f"{n}-{i}-" + "y" * 3000)
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    events = EventStream(path).read_all()
    assert len(events) == 800 and not any(e.malformed for e in events)
    assert time.time() > 0


def test_no_line_shape_stops_the_parser():
    """Fields of any JSON type in any place: every line still gives events, rendered and counted."""
    import random

    samples = []
    for name in ("claude_stream.jsonl", "codex_stream.jsonl"):
        for line in (STREAMS / name).read_text().splitlines():
            try:
                samples.append(json.loads(line))
            except ValueError:
                pass
    odd = [None, 1, -5, "x", [], {}, [1, "a", {}], {"type": "text"}, True, 1e308, float("nan"), "\x1b[2J"]
    rng = random.Random(7)

    def mutate(obj):
        if isinstance(obj, dict):
            return {k: (rng.choice(odd) if rng.random() < 0.15 else mutate(v)) for k, v in obj.items()
                    if rng.random() > 0.05}
        if isinstance(obj, list):
            return [mutate(x) for x in obj]
        return obj

    events = []
    for _ in range(2000):
        events += parse_line(json.dumps(mutate(rng.choice(samples))), 1)
    assert len(events) >= 2000
    assert all(isinstance(e.text, (str, type(None))) for e in events)
    assert all("\x1b" not in ln for ln in render_events(events, partial=True, per_message_usage=True))
    summarize_usage(events)
