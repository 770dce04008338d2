"""The one token meter: a sandboxed session's tokens and dollars are the model gateway's records (written where the
agent cannot write), priced per model the API named; the agent writing usage into its own events changes nothing
metered; a session that ran without the gateway falls back to its events and says so. The control room's view,
the report and the manager's cost all read the same meter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanogpt_tui.agents.events import event_line
from nanogpt_tui.contract import layout as L
from nanogpt_tui.pricing import DEFAULT_PRICES, tokens_cost_usd
from nanogpt_tui.reports.session import usage_section
from nanogpt_tui.sessions.model import load_session, save_session
from nanogpt_tui.telemetry.cost import GATEWAY, EVENTS, session_cost, token_meter
from nanogpt_tui.tui.data.dashboard import Dashboard
from tests.tui.sessions_data import make_session

HOST = "gpu-box-1"


def gateway_line(model: str | None, tokens_in: int, cached: int, tokens_out: int, **extra) -> str:
    return json.dumps({"ts": "2026-12-03T10:00:00.000Z", "type": "usage", "session": "s", "route": "anthropic",
                       "model": model, "status": 200, "input_tokens": tokens_in, "cached_input_tokens": cached,
                       "output_tokens": tokens_out, "cache_creation_input_tokens": 0, **extra}) + "\n"


def metered_session(tmp_path: Path, lines: list[str]) -> Path:
    d = make_session(tmp_path, "s", agent="claude", strategy="default", host=HOST)
    meter = L.gateway_records(tmp_path, HOST, "s")
    meter.parent.mkdir(parents=True)
    meter.write_text("".join(lines))
    return d


def fake_usage_in_events(d: Path) -> None:
    """What an agent can do: write any usage it likes into its own event stream (the workspace is its own)."""
    with open(d / L.WORKSPACE / "logs" / L.EVENTS_FILE, "a") as handle:
        handle.write(json.dumps({"type": "system", "subtype": "init", "session_id": "x", "model": "claude-haiku-4-5"})
                     + "\n")
        handle.write(json.dumps({"type": "result", "subtype": "success", "total_cost_usd": 0.01, "usage": {
            "input_tokens": 1, "output_tokens": 1}}) + "\n")
        handle.write(event_line("usage", input_tokens=10**12, cached_input_tokens=0, output_tokens=10**12,
                                cost_usd=0.0) + "\n")


def test_a_sandboxed_sessions_tokens_are_the_gateways_and_the_agent_cannot_change_them(tmp_path):
    d = metered_session(tmp_path, [gateway_line("claude-opus-4-6", 12_000, 9_000, 400),
                                   gateway_line("claude-opus-4-6", 13_000, 12_000, 600),
                                   gateway_line("claude-haiku-4-5", 500, 0, 20)])
    meter = token_meter(d)
    before = meter.read()
    assert before.source == GATEWAY and before.requests == 3
    assert (before.input_tokens, before.cached_input_tokens, before.output_tokens) == (25_500, 21_000, 1_020)
    assert before.model == "claude-opus-4-6"  # the model most of the tokens went to
    # Dollars per model at each model's rates (the haiku side request at haiku's).
    opus, haiku = DEFAULT_PRICES["claude-opus-4-6"], DEFAULT_PRICES["claude-haiku-4-5"]
    want = tokens_cost_usd(opus, 25_000, 21_000, 1_000) + tokens_cost_usd(haiku, 500, 0, 20)
    cost = session_cost(before, [], DEFAULT_PRICES)
    assert cost.agent_usd == pytest.approx(want) and not cost.unpriced
    assert cost.to_dict()["agent_tokens_metered"] is True  # `sessions list --json` and reports say so

    fake_usage_in_events(d)
    after = meter.read()  # the same meter read on, as the control room does
    fresh = token_meter(d).read()  # and a fresh one, as a report does
    for tokens in (after, fresh):
        assert (tokens.input_tokens, tokens.cached_input_tokens, tokens.output_tokens, tokens.model) == \
            (before.input_tokens, before.cached_input_tokens, before.output_tokens, before.model)
        assert session_cost(tokens, [], DEFAULT_PRICES).agent_usd == pytest.approx(want)
        assert tokens.cli_cost_usd == pytest.approx(0.01)  # the CLI's claim is carried beside, never used

    # The control room's card and detail, the report and the manager read the same figures.
    view = Dashboard(tmp_path).load("s")
    assert view.usage.metered and (view.usage.input_tokens, view.usage.output_tokens) == (25_500, 1_020)
    assert view.usage.text() == "26k in · 1.0k out metered"
    assert view.cost.agent_usd == pytest.approx(want)
    fresh_meter = token_meter(d)
    fresh_meter.read()
    section = usage_section(fresh_meter)
    assert section["metered"] and section["input_tokens"] == 25_500 and section["requests"] == 3
    assert section["agent_reported"]["output_tokens"] > 10**12  # shown for comparison only
    assert [m["model"] for m in section["by_model"]] == ["claude-opus-4-6", "claude-haiku-4-5"]


def test_the_meter_reads_whole_lines_only_and_skips_what_is_not_usage(tmp_path):
    d = metered_session(tmp_path, [gateway_line("gpt-5.4", 100, 0, 10),
                                   json.dumps({"type": "blocked", "via": "dns", "destination": "x"}) + "\n",
                                   gateway_line("gpt-5.4", -5, 0, 10), gateway_line("gpt-5.4", True, 0, 10),
                                   "not json\n"])
    meter = token_meter(d)
    assert (meter.read().input_tokens, meter.tokens.requests) == (100, 1)
    path = L.gateway_records(tmp_path, HOST, "s")
    line = gateway_line("gpt-5.4", 7, 0, 1)
    with open(path, "a") as handle:
        handle.write(line[:20])  # the gateway is writing this line
    assert meter.read().input_tokens == 100
    with open(path, "a") as handle:
        handle.write(line[20:])
    assert meter.read().input_tokens == 107


def test_a_session_without_the_gateway_counts_its_events_and_says_so(tmp_path):
    d = make_session(tmp_path, "s", agent="claude", strategy="default", backend="local", host="local")
    session = load_session(d)
    session.sandbox = "off"
    save_session(d, session)
    fake_usage_in_events(d)
    tokens = token_meter(d).read()
    assert tokens.source == EVENTS and not tokens.metered and tokens.output_tokens > 10**12
    view = Dashboard(tmp_path).load("s")
    assert not view.usage.metered and "metered" not in view.usage.text()
    meter = token_meter(d)
    meter.read()
    assert usage_section(meter)["metered"] is False


def test_a_pending_session_finds_its_meter_once_it_is_placed(tmp_path):
    d = make_session(tmp_path, "s", agent="codex", strategy="default", host="")
    meter = token_meter(d)
    assert meter.read().source == EVENTS and meter.tokens.total_tokens == 0
    session = load_session(d)
    session.host = HOST
    save_session(d, session)
    path = L.gateway_records(tmp_path, HOST, "s")
    path.parent.mkdir(parents=True)
    path.write_text(gateway_line("gpt-5.4", 40, 0, 2))
    assert meter.read().source == GATEWAY and meter.tokens.total_tokens == 42


def test_an_events_file_replaced_under_the_meter_is_counted_again_not_added(tmp_path):
    d = make_session(tmp_path, "s", agent="claude", strategy="default", backend="local", host="local")
    session = load_session(d)
    session.sandbox = "off"
    save_session(d, session)
    events = d / L.WORKSPACE / "logs" / L.EVENTS_FILE
    events.write_text(event_line("usage", input_tokens=500, cached_input_tokens=0, output_tokens=50))
    meter = token_meter(d)
    assert meter.read().input_tokens == 500
    events.write_text(event_line("usage", input_tokens=30, cached_input_tokens=0, output_tokens=3))  # cut, rewritten
    assert (meter.read().input_tokens, meter.tokens.output_tokens) == (30, 3)


def test_session_json_is_parsed_again_only_when_it_changes(tmp_path):
    """Until the gateway's record exists the meter looks for it on every read, but parses session.json only when its
    size or mtime changed: a file rewritten behind the same stamp is not read again."""
    import os

    d = make_session(tmp_path, "s", agent="codex", strategy="default", host=HOST)
    meter = token_meter(d)
    assert meter.read().source == EVENTS  # placed, but the gateway has no record of it yet
    session_file = d / L.SESSION_FILE
    st = session_file.stat()
    session_file.write_bytes(b"x" * st.st_size)  # not JSON, behind the same size and mtime
    os.utime(session_file, ns=(st.st_atime_ns, st.st_mtime_ns))
    path = L.gateway_records(tmp_path, HOST, "s")
    path.parent.mkdir(parents=True)
    path.write_text(gateway_line("gpt-5.4", 40, 0, 2))
    assert meter.read().source == GATEWAY and meter.tokens.total_tokens == 42  # the host parsed before


def test_the_control_room_reads_the_gateway_record_once_a_reload(tmp_path, monkeypatch):
    """The card's refusals and the metered tokens come from one read of the gateway's record."""
    from nanogpt_tui.follow import LineFollower

    blocked = {"type": "blocked", "ts": "2026-12-03T10:00:01Z", "via": "dns", "destination": "pypi.org",
               "reason": "not allowed"}
    metered_session(tmp_path, [gateway_line("gpt-5.4", 100, 0, 10), json.dumps(blocked) + "\n"])
    record = L.gateway_records(tmp_path, HOST, "s")
    reads: list = []
    real = LineFollower.read_new

    def counted(self, **kw):
        reads.append(self.path)
        return real(self, **kw)

    monkeypatch.setattr(LineFollower, "read_new", counted)
    dash = Dashboard(tmp_path)
    for _ in range(2):
        reads.clear()
        view = dash.reload()[0]
        assert (view.blocked, view.usage.input_tokens) == (1, 100) and view.usage.metered
        assert reads.count(record) == 1


def test_a_session_folder_without_its_events_link_is_read_by_one_rule(tmp_path):
    """The meter, and with it the report's usage, finds the events in the workspace where the folder's link is
    missing (a folder copied without its links): one rule, so the tokens and the reported figures agree."""
    d = make_session(tmp_path, "s", agent="claude", strategy="default", backend="local", host="local")
    session = load_session(d)
    session.sandbox = "off"
    save_session(d, session)
    (d / L.EVENTS_FILE).unlink()
    (d / L.WORKSPACE / "logs" / L.EVENTS_FILE).write_text(
        event_line("usage", input_tokens=70, cached_input_tokens=0, output_tokens=7))
    meter = token_meter(d)
    assert meter.read().input_tokens == 70
    assert usage_section(meter)["input_tokens"] == 70
    (d / L.WORKSPACE / "logs" / L.EVENTS_FILE).unlink()
    nothing = token_meter(d)
    assert nothing.read().total_tokens == 0 and usage_section(nothing) is None  # no events file: no section


def unmetered_events(tmp_path: Path) -> Path:
    d = make_session(tmp_path, "s", agent="claude", strategy="default", backend="local", host="local")
    session = load_session(d)
    session.sandbox = "off"
    save_session(d, session)
    return d / L.WORKSPACE / "logs" / L.EVENTS_FILE


def mixed_stream(k: int) -> list[str]:
    """Lines of a busy agent's `k`th turn: a Claude invocation whose message lines repeat their usage, one of ours
    without a message id, a Codex thread's running total, and (every third turn) the invocation's result."""
    lines = [json.dumps({"type": "system", "subtype": "init", "session_id": f"c{k}", "model": "claude-opus-4-6"})]
    for part in range(2):  # one response, two lines, the same usage (the second with the larger output count)
        lines.append(json.dumps({"type": "assistant", "message": {
            "id": f"msg_{k}", "content": [{"type": "text", "text": "x"}],
            "usage": {"input_tokens": 100 + k, "output_tokens": 10 + part}}}))
    lines.append(event_line("usage", input_tokens=7, cached_input_tokens=2, output_tokens=1, cost_usd=0.001))
    lines.append(json.dumps({"type": "turn.completed", "usage": {"input_tokens": 1000 * (k + 1),
                                                                 "cached_input_tokens": 0,
                                                                 "output_tokens": 50 * (k + 1)}}))
    if k % 3 == 2:
        lines.append(json.dumps({"type": "result", "subtype": "success", "total_cost_usd": 0.5,
                                 "usage": {"input_tokens": 300, "output_tokens": 30}}))
    return lines


def test_the_events_meter_counts_as_it_reads_the_same_as_summing_the_whole_file(tmp_path):
    from nanogpt_tui.agents.events import EventStream, summarize_usage

    events = unmetered_events(tmp_path)
    meter = token_meter(events.parents[2])
    for k in range(12):  # a read after each turn: the open invocation is counted as it stands, then carried on
        with open(events, "a") as handle:
            handle.write("\n".join(mixed_stream(k)) + "\n")
        got = meter.read()
        whole = summarize_usage(EventStream(events).read_all())
        assert meter.events.totals == whole
        assert (got.input_tokens, got.output_tokens, got.cli_cost_usd, got.cli_cost_complete) == \
            (whole.input_tokens, whole.output_tokens, whole.cost_usd, whole.cost_complete)
    assert whole.invocations > 12 and got.model == "claude-opus-4-6"


def test_the_events_meter_keeps_no_event_so_its_memory_does_not_grow_with_the_stream(tmp_path):
    """A busy agent's usage line a second for days: the meter's memory after 6,000 more lines is what it was
    (it kept every event before: tens of MB per session over a day, and a sum over all of them each read)."""
    import gc
    import tracemalloc

    events = unmetered_events(tmp_path)
    meter = token_meter(events.parents[2])

    def feed(n: int) -> None:
        for chunk in range(n // 500):
            with open(events, "a") as handle:
                handle.write("".join(event_line("usage", input_tokens=1000, cached_input_tokens=10,
                                                output_tokens=50, cost_usd=0.01) + "\n" for _ in range(500)))
            meter.read()

    feed(1000)  # the meter's own structures exist
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        feed(6000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert meter.tokens.input_tokens == 7000 * 1000 and meter.tokens.cli_cost_usd == pytest.approx(70.0)
    assert grown < 20_000, grown  # kept events: about 6,000 x 500 bytes
