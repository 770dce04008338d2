"""The fleet's data, headless: prices and dollars, live activity, GPU samples, the table's sort and filter, the CSV,
the remembered view, alerts, and the CLI's view of the config (DOCKER_HOST, --sessions-dir)."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from pathlib import Path
import json

import pytest

from nanogpt_tui.agents.events import Event, event_line
from nanogpt_tui.config import AlertsConfig, default_hosts, parse_config
from nanogpt_tui.errors import UserError
from nanogpt_tui.pricing import DEFAULT_PRICES, Price, parse_price, price_for, tokens_cost_usd
from nanogpt_tui.telemetry.activity import ActivityReader, SessionActivity, activity_of
from nanogpt_tui.telemetry.cost import AgentTokens, JudgeTokens, agent_tokens, judge_tokens, session_cost
from nanogpt_tui.telemetry.gpu import GpuFigures, GpuHistory, GpuReading, GpuSample, parse_sample, sparkline
from nanogpt_tui.tui.data.alerts import AlertWatch
from nanogpt_tui.tui.data.dashboard import Dashboard
from nanogpt_tui.tui.data.fleet import (COLUMN_KEYS, FleetQuery, ViewState, load_view_state, save_view_state,
                                        table_csv)
from tests.tui.sessions_data import NOW, add_verdict, build_fixed_sessions, gpu_line, make_session



# ------------------------------------------------------------------------------------------------ prices

def test_prices_per_model_and_their_dated_snapshots():
    assert price_for(DEFAULT_PRICES, "claude-opus-4-6") == Price(5.0, 0.5, 25.0)
    assert price_for(DEFAULT_PRICES, "claude-haiku-4-5-20251001") == DEFAULT_PRICES["claude-haiku-4-5"]
    assert price_for(DEFAULT_PRICES, "gpt-5.4-mini") == Price(0.75, 0.075, 4.5)  # its own entry, not gpt-5.4's
    assert price_for(DEFAULT_PRICES, "llama-3") is None and price_for(DEFAULT_PRICES, None) is None
    # 1M input of which 400k cached, 100k output at Opus 4.6: 0.6 x 5 + 0.4 x 0.5 + 0.1 x 25
    assert tokens_cost_usd(DEFAULT_PRICES["claude-opus-4-6"], 1_000_000, 400_000, 100_000) == pytest.approx(5.7)
    assert parse_price({"input": 1, "output": 2}) == Price(1.0, 1.0, 2.0)
    assert parse_price({"input": -1, "output": 2}) is None and parse_price({"input": 1}) is None


def test_a_config_price_table_replaces_and_adds_models(tmp_path):
    config = parse_config({"prices": {"claude-opus-4-6": {"input": 4, "cached_input": 0.4, "output": 20},
                                      "my-model": {"input": 1, "output": 3}}}, tmp_path / "c.toml")
    assert config.prices["claude-opus-4-6"] == Price(4.0, 0.4, 20.0)
    assert config.prices["my-model"] == Price(1.0, 1.0, 3.0) and "gpt-5.4" in config.prices
    with pytest.raises(UserError, match="must be a table with input, output"):
        parse_config({"prices": {"x": {"input": "cheap"}}}, tmp_path / "c.toml")


def test_session_cost_prices_agent_and_judge_and_keeps_the_cli_claim_apart():
    tokens = AgentTokens(2_000_000, 1_000_000, 50_000, model=None, cli_cost_usd=99.0)
    judges = [JudgeTokens("claude-opus-4-6", 100_000, 0, 2_000), JudgeTokens("mystery-judge", 10, 0, 10)]
    cost = session_cost(tokens, judges, DEFAULT_PRICES, default_model="gpt-5.4")
    assert cost.agent_model == "gpt-5.4"
    assert cost.agent_usd == pytest.approx(1.0 * 2.5 + 1.0 * 0.25 + 0.05 * 15.0)
    assert cost.judge_usd == pytest.approx(0.1 * 5 + 0.002 * 25)
    assert cost.total_usd == pytest.approx(cost.agent_usd + cost.judge_usd)
    assert cost.cli_usd == 99.0 and cost.total_usd != 99.0  # the CLI's claim is shown beside, never used
    assert cost.unpriced == ("mystery-judge",)
    assert "CLI says $99.00" in cost.text() and "no price for mystery-judge" in cost.text()
    unknown = session_cost(AgentTokens(10, 0, 10, model="llama"), [], DEFAULT_PRICES)
    assert unknown.agent_usd is None and unknown.total_usd is None and unknown.compact() == "$-"


def test_agent_tokens_come_from_the_one_meter_with_the_model_the_stream_names(tmp_path):
    d = make_session(tmp_path, "s", agent="claude", strategy="default")
    init = json.dumps({"type": "system", "subtype": "init", "session_id": "x", "model": "claude-sonnet-4-6"})
    result = json.dumps({"type": "result", "subtype": "success", "total_cost_usd": 1.23, "usage": {
        "input_tokens": 1000, "cache_read_input_tokens": 9000, "output_tokens": 500}})
    (d / "workspace" / "logs" / "events.jsonl").write_text(init + "\n" + result + "\n")
    tokens = agent_tokens(d)
    assert tokens.model == "claude-sonnet-4-6" and tokens.cli_cost_usd == pytest.approx(1.23)
    assert tokens.input_tokens == 10_000 and tokens.cached_input_tokens == 9000 and tokens.output_tokens == 500
    add_verdict(d, 1, hours_after_start=1.0, outcome="validated", mean_ms=160_000.0, p=0.001)
    from nanogpt_tui.validator.verdict import load_verdicts

    verdicts, _ = load_verdicts(d / "workspace" / "verdicts")
    assert judge_tokens(verdicts) == []  # the fixture's judge reports no usage: nothing to price


# ------------------------------------------------------------------------------------------------ activity

def test_activity_is_the_last_tool_call_message_or_validator_progress(tmp_path):
    assert activity_of(Event(type="tool_call", tool="Bash", command="nvidia-smi", ts="t")).text == "Bash $ nvidia-smi"
    assert activity_of(Event(type="usage", usage={"input_tokens": 1})) is None
    assert activity_of(Event(type="message", text="hi", extra={"role": "user"})) is None
    assert activity_of(Event(type="message", text="x", partial=True)) is None
    masked = activity_of(Event(type="message", text="key sk-ant-" "api03-abcdefghijklmnopqrstuvwxyz\x1b[2J"))
    assert "abcdefghijklmnop" not in masked.text and "\x1b" not in masked.text
    path = tmp_path / "events.jsonl"
    path.write_text(event_line("tool_call", ts="2026-11-21T03:59:00Z", tool="Edit", file="train_gpt.py"))
    reader = ActivityReader(path, secrets=())
    assert reader.update().kind == "tool" and reader.update().text == "Edit train_gpt.py"
    with open(path, "a") as handle:
        handle.write(event_line("progress", ts="2026-11-21T03:59:30Z", submission="submission_3", phase="retiming",
                                run=4, runs=10, step=1200, steps=1600))
        handle.write(event_line("usage", input_tokens=5, output_tokens=1))  # says nothing about what it does
    latest = reader.update()
    assert (latest.kind, latest.text, latest.at) == ("validator", "submission_3: run 4/10, step 1200/1600",
                                                     "2026-11-21T03:59:30Z")
    assert latest.to_dict() == {"kind": "validator", "text": "submission_3: run 4/10, step 1200/1600",
                                "at": "2026-11-21T03:59:30Z"}



def test_a_sessions_verdict_activity_is_the_validators_never_the_agents_copy(tmp_path):
    """`submit` copies the verdict it was told into the agent's events file, after the validator wrote it, and an
    agent can write any verdict line there: neither becomes the session's activity, however new."""
    from nanogpt_tui.contract import layout as L
    from nanogpt_tui.validator.protocol import PROGRESS_FILE, append_progress

    (tmp_path / L.VALIDATOR).mkdir(parents=True)
    events = tmp_path / L.EVENTS_FILE
    events.parent.mkdir(parents=True, exist_ok=True)
    append_progress(tmp_path / L.VALIDATOR, "req-1", "received", "request req-1 received: submission submission_1",
                    submission="submission_1", request_kind="submission")
    append_progress(tmp_path / L.VALIDATOR, "req-1", "verdict", "verdict: NOT-SIGNIFICANT (submission_1)",
                    outcome="not-significant", counts=False)
    assert (tmp_path / L.VALIDATOR / PROGRESS_FILE).is_file()
    events.write_text(event_line("verdict", ts="2999-01-01T00:00:00Z", submission="submission_1",
                                 outcome="not-significant", text="submission_1: NOT-SIGNIFICANT, mean 1.5 s")
                      + event_line("verdict", ts="2999-01-01T00:00:01Z", submission="submission_9",
                                   outcome="validated", text="submission_9: VALIDATED, 0.5 s"))
    activity = SessionActivity(tmp_path, secrets=()).update()
    assert (activity.kind, activity.text) == ("verdict", "submission_1: not-significant")
    with open(events, "a") as handle:  # the agent's own doings after the verdict still are its activity
        handle.write(event_line("tool_call", ts="2999-01-01T00:00:02Z", tool="Bash", command="ls"))
    assert SessionActivity(tmp_path, secrets=()).update().text == "Bash $ ls"


# ------------------------------------------------------------------------------------------------ GPU samples

def trace() -> list[str]:
    """A sampler's lines for one GPU: 15 s idle, 30 s under load (97%), 15 s idle, one a second."""
    start = NOW - dt.timedelta(seconds=60)
    return [gpu_line(start + dt.timedelta(seconds=k), 1, 97.0 if 15 <= k < 45 else 0.0,
                     650.0 if 15 <= k < 45 else 75.0).rstrip("\n") for k in range(60)]


def test_gpu_sample_lines_round_trip_and_bad_values_are_dropped():
    sample = GpuSample(1_764_000_000.0, (GpuReading(0, 97.0, 40_000.0, 81_559.0, 650.5),
                                         GpuReading(1, 3.0, 500.0, 81_559.0, None)), "nvml")
    back = parse_sample(sample.to_line())
    assert back == sample and back.util_pct == 50.0 and back.power_w == 650.5 and not back.idle
    weird = json.loads(sample.to_line())
    weird["gpus"][0]["util_pct"] = -5
    assert parse_sample(json.dumps(weird)).gpus[0].util_pct is None
    assert parse_sample('{"schema_version": 2, "ts": "2026-01-01T00:00:00Z", "gpus": []}') is None
    assert sparkline([0, 50, 100, None], 4) == "▁▅█ "


def test_gpu_samples_read_back_with_busy_and_idle_stretches(tmp_path):
    lines = trace()
    samples = [parse_sample(x) for x in lines]
    assert all(s is not None for s in samples) and len(samples) >= 30
    busy = [s for s in samples if not s.idle]
    assert busy and max(s.util_pct for s in busy) >= 90 and samples[0].idle and samples[-1].idle
    path = tmp_path / "gpu.jsonl"
    path.write_text("\n".join(lines[:10]) + "\n" + '{"torn": ' + "\n")
    history = GpuHistory(path)
    assert history.update() and len(history.samples) == 10 and history.rejected == 1
    with open(path, "a") as handle:
        handle.write("\n".join(lines[10:]) + "\n")
    assert history.update() and len(history.samples) == len(lines)
    last_busy = max(s.at for s in busy)
    assert history.idle_for_s(samples[-1].at) == pytest.approx(samples[-1].at - min(
        s.at for s in samples if s.at > last_busy), abs=0.01)
    figures = GpuFigures.of(history, samples[-1].at)
    assert figures.latest.power_w is not None and "mem 0%" in figures.compact() and figures.mean_util_pct > 0
    assert len(sparkline(list(figures.util_history), 20)) == 20


# ------------------------------------------------------------------------------------------------ the table

@pytest.fixture
def views(tmp_path):
    build_fixed_sessions(tmp_path)
    make_session(tmp_path, "20261120T190000Z-codex-autoresearch", agent="codex", strategy="autoresearch",
                 host="gpu-box-2", status="failed", started_hours_ago=5.0, ended_hours_ago=2.0, reason="crashed")
    return Dashboard(tmp_path, clock=lambda: NOW, agent_models={"claude": "claude-opus-4-6", "codex": "gpt-5.4"}
                     ).reload()


def test_sort_by_any_column_with_unknowns_last_and_reverse(views):
    by = {key: FleetQuery(sort=key).apply(views, NOW) for key in COLUMN_KEYS}
    assert [v.session.agent for v in by["agent"]] == ["claude", "claude-autoresearch", "codex", "codex"]
    best = [v.best_seconds_faster for v in by["best"]]
    assert best[:3] == sorted(best[:3]) and best[3] is None  # no verdict: last
    reverse = FleetQuery(sort="best", reverse=True).apply(views, NOW)
    assert [v.best_seconds_faster for v in reverse][:3] == sorted(best[:3], reverse=True)
    assert reverse[-1].best_seconds_faster is None  # still last
    costs = [v.cost.total_usd for v in by["cost"]]
    assert costs[:3] == sorted(costs[:3]) and costs[3] is None  # claude-autoresearch's model has no price here
    q = FleetQuery()
    for _ in COLUMN_KEYS:
        q = q.next_sort()
    assert q.sort == "id"  # s cycles through every column and back


def test_filter_by_words_fields_and_status(views):
    def ids(q):
        return [v.session.agent + "/" + v.session.strategy for v in q.apply(views, NOW)]

    assert ids(FleetQuery(text="codex")) == ["codex/default", "codex/autoresearch"]
    assert ids(FleetQuery(text="agent:codex strategy:auto")) == ["codex/autoresearch"]
    assert ids(FleetQuery(text="gpu-box-3")) == ["claude-autoresearch/autoresearch"]
    assert ids(FleetQuery(text="FA3 running")) == ["claude/default", "codex/default"]
    assert ids(FleetQuery(status="live")) == ["claude/default", "codex/default"]
    assert ids(FleetQuery(status="failed")) == ["codex/autoresearch"]
    assert ids(FleetQuery(status="ended")) == ["claude-autoresearch/autoresearch", "codex/autoresearch"]
    assert ids(FleetQuery(host="gpu-box-2", status="live")) == ["codex/default"]
    assert ids(FleetQuery(text="nothing-like-this")) == []


def test_the_view_survives_a_restart_and_a_bad_state_file_loses_nothing(tmp_path):
    state = tmp_path / "state.json"
    sessions = tmp_path / "sessions"
    assert load_view_state(sessions, state) == ViewState()
    save_view_state(sessions, ViewState(FleetQuery(sort="cost", reverse=True, text="codex", status="live"), True),
                    state)
    save_view_state(tmp_path / "other", ViewState(FleetQuery(sort="agent")), state)
    back = load_view_state(sessions, state)
    assert back.table and back.query == FleetQuery(sort="cost", reverse=True, text="codex", status="live")
    assert load_view_state(tmp_path / "other", state).query.sort == "agent"
    state.write_text("{not json")
    assert load_view_state(sessions, state) == ViewState()
    assert FleetQuery.from_dict({"sort": "nope", "status": 3, "reverse": "yes"}) == FleetQuery()


def test_the_table_exports_as_csv_in_the_order_shown(views):
    shown = FleetQuery(sort="cost", reverse=True).apply(views, NOW)
    rows = list(csv.DictReader(io.StringIO(table_csv(shown, NOW))))
    assert [r["id"] for r in rows] == [v.id for v in shown]
    top = rows[0]
    assert float(top["cost_usd"]) == pytest.approx(shown[0].cost.total_usd, rel=1e-5)
    assert float(top["agent_cli_reported_cost_usd"]) == pytest.approx(shown[0].usage.cost_usd)
    assert top["activity_kind"] == "tool" and top["status"] == "running"
    assert rows[-1]["cost_usd"] == ""  # no price for its model: unknown, last
    assert {r["id"]: r["best_seconds_faster"] for r in rows}["20261120T190000Z-codex-autoresearch"] == ""


# ------------------------------------------------------------------------------------------------ alerts

def test_alerts_say_each_thing_once_and_nothing_about_what_was_there(tmp_path):
    d = make_session(tmp_path, "s1", agent="claude", strategy="default", budget=100.0, started_hours_ago=10.0,
                     gpus=8)  # 80 of 100 GPU-hours used
    watch = AlertWatch(AlertsConfig(budget_fraction=0.9, idle_gpu_minutes=1))
    dash = Dashboard(tmp_path, clock=lambda: NOW)
    add_verdict(d, 1, hours_after_start=2.0, outcome="validated", mean_ms=160_000.0, p=0.001)
    assert watch.check(dash.reload(), NOW) == []  # the first look learns what is there
    add_verdict(d, 2, hours_after_start=9.0, outcome="not-significant", mean_ms=161_000.0, p=0.2)
    [alert] = watch.check(dash.reload(), NOW)
    assert alert.kind == "verdict" and "submission_2 not-significant" in alert.text
    later = NOW + dt.timedelta(hours=1.5)  # 92 of 100
    [alert] = watch.check(Dashboard(tmp_path, clock=lambda: later).reload(), later)
    assert alert.kind == "budget" and "92% of its GPU-hour budget" in alert.text
    assert watch.check(Dashboard(tmp_path, clock=lambda: later).reload(), later) == []
    lines = trace()
    (d / "gpu.jsonl").write_text("\n".join(lines) + "\n")
    end = parse_sample(lines[-1]).at
    view = dataclasses.replace(Dashboard(tmp_path, clock=lambda: dt.datetime.fromtimestamp(end + 60, dt.timezone.utc)
                                         ).reload()[0])
    idle = watch.check([view], later)
    assert [a.kind for a in idle] == ["idle-gpu"] and "idle for" in idle[0].text
    assert watch.check([view], later) == []  # said once per idle stretch


# ------------------------------------------------------------------------------------------------ the CLI's config

def test_docker_host_is_the_pool_when_the_config_names_no_hosts(tmp_path, monkeypatch):
    assert default_hosts({}) == default_hosts({"DOCKER_HOST": ""})
    assert default_hosts({})[0].url == "unix:///var/run/docker.sock"
    [host] = default_hosts({"DOCKER_HOST": "tcp://gpu-node-7:2376", "DOCKER_TLS_VERIFY": "1",
                            "DOCKER_CERT_PATH": "/certs"})
    assert host.name == "gpu-node-7" and host.url == "tcp://gpu-node-7:2376"
    assert host.tls.ca_cert == "/certs/ca.pem" and host.tls.client_key == "/certs/key.pem"
    assert default_hosts({"DOCKER_HOST": "ssh://bench@node2"})[0].name == "node2"
    with pytest.raises(UserError, match="DOCKER_HOST='http://x' is not a Docker endpoint"):
        default_hosts({"DOCKER_HOST": "http://x"})
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock")
    assert parse_config({}, tmp_path / "c.toml").hosts[0].url == "unix:///run/user/1000/docker.sock"
    named = parse_config({"hosts": [{"name": "a", "url": "tcp://a:2376"}]}, tmp_path / "c.toml")
    assert [h.name for h in named.hosts] == ["a"]  # named hosts win over DOCKER_HOST


def test_sessions_dir_flag_replaces_the_configs_folder(tmp_path, monkeypatch, capsys):
    from nanogpt_tui.cli import main

    monkeypatch.setenv("NANOGPT_TUI_CONFIG", str(tmp_path / "missing.toml"))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    (tmp_path / "nanogpt-tui.toml").write_text("schema_version = 1\n")
    monkeypatch.setenv("NANOGPT_TUI_CONFIG", str(tmp_path / "nanogpt-tui.toml"))
    demo = tmp_path / "elsewhere" / "demo"
    make_session(demo, "20261120T180000Z-scripted-default", agent="scripted", strategy="default", backend="local",
                 host="local", status="exited", ended_hours_ago=1.0)
    assert main(["--sessions-dir", str(demo), "sessions", "list", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["id"] == "20261120T180000Z-scripted-default" and "cost_usd" in row and "activity" in row
    (tmp_path / "a-file").write_text("")
    assert main(["--sessions-dir", str(tmp_path / "a-file"), "sessions", "list"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_samples_recorded_on_an_h200_read_back_idle_busy_idle():
    lines = (Path(__file__).resolve().parents[1] / "fixtures" / "gpu" / "h200_samples.jsonl").read_text().splitlines()
    samples = [parse_sample(x) for x in lines]
    assert len(samples) == 60 and all(s is not None and s.source == "nvml" for s in samples)
    busy = [s for s in samples if not s.idle]
    assert 25 <= len(busy) <= 32 and max(s.util_pct for s in busy) == 100.0
    assert samples[0].idle and samples[-1].idle and min(s.power_w for s in busy) > max(s.power_w for s in samples[:10])
    history = GpuHistory(Path(__file__).resolve().parents[1] / "fixtures" / "gpu" / "h200_samples.jsonl")
    assert history.update() and history.rejected == 0
    idle_s = history.idle_for_s(samples[-1].at)
    assert 10 <= idle_s <= 16  # the last stretch: about 14 s at or below 5%
    assert GpuFigures.of(history, samples[-1].at).compact().startswith("0% · mem ")


def test_a_sessions_place_is_one_text_with_the_backends_facts_that_locate_it():
    from nanogpt_tui.tui.data.formatting import place_text

    facts = {"job": "4211", "state": "RUNNING", "queue": "RUNNING", "node": "n07", "partition": "gpu"}
    assert place_text("slurm", "gpu", facts) == "slurm gpu · job 4211 · queue RUNNING · node n07"
    assert place_text("docker", None, {}) == "docker not placed yet"
    assert place_text(None, "gpu-box-1", {"job": ""}) == "gpu-box-1"  # an empty fact is left out
