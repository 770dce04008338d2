"""The control room's headless parts: session views, plot data, the log tail, log rendering, the watcher threads."""

from __future__ import annotations

import json
import threading
import time

import pytest

from nanogpt_tui.records import load_timeline
from nanogpt_tui.contract import layout as L
from nanogpt_tui.tui.data.dashboard import Dashboard
from nanogpt_tui.tui.data.diffs import submission_diff, submissions
from nanogpt_tui.tui.data.formatting import format_duration, record_short, short_id
from nanogpt_tui.tui.data.logrender import log_line_renderer
from nanogpt_tui.tui.data.logtail import LogTail
from nanogpt_tui.tui.data.plotdata import human_timeline_by_date, plot_data
from nanogpt_tui.tui.watch import LogFollower, SessionMonitor
from tests.tui.sessions_data import BIGRAM, FA3, NOW, add_log, build_fixed_sessions, make_session, write_config

# ------------------------------------------------------------------------------------------------ log tail


def test_the_tail_of_a_log_is_read_backwards_from_its_end(tmp_path):
    path = tmp_path / "container.log"
    path.write_text("".join(f"line {i}\n" for i in range(100_000)) + "half a li")
    tail = LogTail(path)
    assert tail.open(3) == ["line 99997", "line 99998", "line 99999"]
    assert tail.read_new() == ([], False)  # the writer is mid-line
    with open(path, "a") as handle:
        handle.write("ne\r\nnext\n")
    assert tail.read_new() == (["half a line", "next"], False)
    assert tail.read_older(2) == ["line 99995", "line 99996"]
    older = tail.read_older(10**6)
    assert len(older) == 99_995 and older[0] == "line 0" and tail.at_start
    assert tail.read_older(5) == []


def test_a_replaced_or_flooded_log_restarts_the_window(tmp_path):
    path = tmp_path / "container.log"
    path.write_text("a\nb\n")
    tail = LogTail(path, max_lag_bytes=1000)
    assert tail.open(10) == ["a", "b"]
    path.write_text("c\n")  # shrank: read again from its tail
    assert tail.read_new() == (["c"], True)
    with open(path, "a") as handle:
        handle.write("".join(f"flood {i}\n" for i in range(1000)))  # more than max_lag_bytes behind
    lines, restarted = tail.read_new(max_lines=50)
    assert restarted and lines[-1] == "flood 999" and len(lines) == 50


def test_missing_empty_and_huge_lines(tmp_path):
    assert LogTail(tmp_path / "none").open() == []
    (tmp_path / "empty").write_text("")
    assert LogTail(tmp_path / "empty").open() == []
    (tmp_path / "long").write_text("x" * 10_000 + "\n")
    [line] = LogTail(tmp_path / "long").open()
    assert line.startswith("x" * 100) and line.endswith("(+5904 chars)")


def test_a_follower_keeps_a_bounded_window_under_a_flood(tmp_path):
    path = tmp_path / "container.log"
    path.write_text("".join(f"old {i}\n" for i in range(5000)))
    batches = threading.Event()
    follower = LogFollower(path, log_line_renderer(secrets=()), batches.set, window=300, fallback_poll_s=0.05)
    follower.start()
    try:
        assert batches.wait(5)
        time.sleep(0.3)
        new, older, reset, at_start = follower.drain()
        shown = (older or []) + new
        assert reset and len(shown) == 300 and shown[-1].text == "old 4999" and not at_start
        with open(path, "a") as handle:
            for i in range(20_000):
                handle.write(f"flood {i}\n")
        follower.poke()
        deadline = time.monotonic() + 5
        last = None
        while time.monotonic() < deadline:
            new, _, reset, _ = follower.drain()
            assert len(new) <= 301  # never more than the window (plus a note that lines were skipped)
            if new:
                last = new[-1].text
            if last == "flood 19999":
                break
            time.sleep(0.05)
        assert last == "flood 19999"
    finally:
        follower.stop()


def test_a_follower_switches_files_without_mixing_them(tmp_path):
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text("".join(f"a {i}\n" for i in range(50)))
    second.write_text("".join(f"b {i}\n" for i in range(50)))
    batches = threading.Event()
    follower = LogFollower(first, log_line_renderer(secrets=()), batches.set, window=100, fallback_poll_s=0.05)
    follower.start()
    try:
        assert batches.wait(5)
        follower.switch(second)
        deadline, seen = time.monotonic() + 5, []
        while time.monotonic() < deadline and len(seen) < 50:
            new, older, reset, _ = follower.drain()
            seen = [x.text for x in (older or []) + new] if reset else seen + [x.text for x in new]
            time.sleep(0.05)
        assert seen == [f"b {i}" for i in range(50)]
    finally:
        follower.stop()


# ------------------------------------------------------------------------------------------ rendering


def test_log_lines_are_plain_text_sanitised_and_masked():
    render = log_line_renderer(secrets=("hunter2-secret-value",))
    claude = json.dumps({"type": "assistant", "message": {"id": "m1", "content": [
        {"type": "text", "text": "I will edit\nthe schedule"},
        {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "echo $ANTHROPIC_API_KEY"}}],
        "usage": {"input_tokens": 3, "output_tokens": 4}}})
    lines = render(claude)
    assert [x.kind for x in lines] == ["message", "tool_call"]  # per-message usage is hidden
    assert "I will edit ↵ the schedule" in lines[0].text
    [plain] = render("\x1b[1;31m[b]bold?[/b]\x1b[0m\x07 token=hunter2-secret-value sk-ant-" "api03-0123456789abcdef")
    assert plain.kind == "output"
    assert plain.text == "[b]bold?[/b] token=*** sk-ant-***"
    assert render("") == []


def test_sessions_logs_prints_the_log_as_the_log_pane_shows_it(tmp_path, baselines_dir, capsys, monkeypatch):
    from nanogpt_tui.cli import main
    from nanogpt_tui.cli.sessions_cmd import LOG_FILTER_NAMES
    from nanogpt_tui.tui.data.logrender import LOG_FILTERS

    assert LOG_FILTER_NAMES == tuple(LOG_FILTERS)
    root = tmp_path / "sessions"
    d = make_session(root, "s-logs", agent="claude", strategy="default", status="killed", ended_hours_ago=1)
    tool = json.dumps({"type": "assistant", "message": {"id": "m1", "content": [
        {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "nvidia-smi"}}]}})
    add_log(d, ["[runner] started", tool, "\x1b[31mstep:10/1600 val_loss:4.1\x1b[0m"])
    monkeypatch.setenv("NANOGPT_TUI_CONFIG", str(write_config(tmp_path, baselines_dir, root)))
    assert main(["sessions", "logs", "s-logs"]) == 0
    out = capsys.readouterr().out.splitlines()
    # The same lines, in the same words, as the Log pane: the tool call as an event line, escapes stripped.
    render = log_line_renderer()
    assert out == [x.text for raw in (d / L.CONTAINER_LOG).read_text().splitlines() for x in render(raw)]
    assert len(out) == 3 and "Bash" in out[1] and "nvidia-smi" in out[1] and out[2] == "step:10/1600 val_loss:4.1"
    assert main(["sessions", "logs", "s-logs", "--only", "tools"]) == 0
    assert capsys.readouterr().out.splitlines() == [out[1]]
    assert main(["sessions", "logs", "s-logs", "--tail", "1", "--follow"]) == 0  # an ended session: no wait
    assert capsys.readouterr().out.splitlines() == [out[2]]
    assert main(["sessions", "logs", "s-logs", "--raw", "--tail", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith('{"type": "assistant"')


# ---------------------------------------------------------------------------------------- session views


@pytest.fixture
def timeline(baselines_dir):
    return load_timeline(baselines_dir)


def test_session_views_from_fixed_folders(tmp_path, timeline):
    ids = build_fixed_sessions(tmp_path)
    dash = Dashboard(tmp_path, timeline)
    views = {v.id: v for v in dash.reload()}
    assert list(views) == ids and dash.problems == []
    a = views[ids[0]]
    assert a.best_seconds_faster == pytest.approx(5.88)
    assert a.best_percent == pytest.approx(100 * 5.88 / a.gap_s) and a.gap_s == pytest.approx(63.2, abs=0.05)
    # The curve: x = GPU-hours at each counted verdict's end (hours after start x 8 GPUs); not-significant skipped.
    assert [(round(p.gpu_hours, 3), round(p.seconds_faster, 2)) for p in a.curve.steps] == [(20.0, 2.1), (63.2, 5.88)]
    assert a.last_verdict.verdict.submission == "submission_3"
    assert a.usage.input_tokens == 3_650_000 and a.usage.cost_usd == pytest.approx(8.99)
    figures = a.budget_figures(NOW)
    assert figures["used"] == pytest.approx(76.0) and figures["burn"] == 8
    assert figures["seconds_left"] == pytest.approx((512 / 8 - 9.5) * 3600)
    c = views[ids[2]]
    assert c.budget_figures(NOW)["seconds_left"] is None and c.budget_figures(NOW)["burn"] == 0
    cells = a.verdicts[1].cells()
    assert cells["judge"] == "cleared" and cells["percent"] == "3.3%" and cells["significant"] == "yes"
    assert cells["session"] == "claude-default 18:00:00" and cells["mean"] == "161.760 ± 0.107"
    assert cells["p_faster"] != "-"
    rejected = views[ids[1]].verdicts[0].cells()
    assert rejected["judge"] == "flagged" and rejected["outcome"] == "rejected"
    # A submission that did not validate has a mean time but no speedup or %: those would mean nothing.
    assert rejected["mean"] != "-" and (rejected["speedup"], rejected["percent"]) == ("-", "-")
    baseline = next(r for v in views.values() for r in v.verdicts if r.verdict.kind == "baseline").cells()
    assert baseline["significant"] == "baseline" and (baseline["speedup"], baseline["p_faster"]) == ("-", "-")


def test_what_the_sandbox_refused_is_counted_on_the_card_and_named_in_the_detail(tmp_path, timeline):
    """The gateway's host-side record (refused requests, tunnels, names) is the session's sandbox events: counted
    on its card, the last one named in the detail; an unsandboxed session says so. What the agent writes into
    its own workspace counts for nothing."""
    from nanogpt_tui.sessions.egress_records import records_path
    from nanogpt_tui.sessions.model import read_session, save_session
    from nanogpt_tui.tui.widgets.card import card_lines

    ids = build_fixed_sessions(tmp_path)
    sandboxed, unsandboxed = ids[0], ids[1]
    session = read_session(tmp_path / unsandboxed)
    session.sandbox, session.agent = "off", "claude"
    save_session(tmp_path / unsandboxed, session)
    record = records_path(tmp_path, sandboxed, "gpu-box-1")
    record.parent.mkdir(parents=True)
    lines = [{"ts": "2026-03-01T12:00:0%dZ" % n, "type": "blocked", "session": sandboxed, "via": via,
              "destination": dest, "reason": "refused"}
             for n, (via, dest) in enumerate([("dns", "github.com"), ("proxy", "pypi.org:443"),
                                              ("gateway", "model-gateway:8080/elsewhere")])]
    lines.insert(1, {"ts": "2026-03-01T12:00:00Z", "type": "usage", "session": sandboxed, "input_tokens": 5})
    half = '{"type": "blocked", "via": "dns", "destination": "half a li'
    record.write_text("".join(json.dumps(line) + "\n" for line in lines) + half)
    # A forged record in the agent's workspace is not read.
    (tmp_path / sandboxed / L.WORKSPACE / "blocked.jsonl").write_text(json.dumps(lines[0]) + "\n")
    dash = Dashboard(tmp_path, timeline)
    views = {v.id: v for v in dash.reload()}
    a, b = views[sandboxed], views[unsandboxed]
    assert a.blocked == 3 and [x.via for x in a.recent_blocked] == ["dns", "proxy", "gateway"]
    assert " · 3 blocked" in card_lines(a, NOW, 120)[1].plain
    assert a.sandbox_text() == "sandboxed · 3 blocked (last: 12:00:02 gateway model-gateway:8080/elsewhere)"
    assert "blocked" not in card_lines(views[ids[2]], NOW, 120)[1].plain  # nothing refused: nothing said
    assert b.sandbox_text() == "not sandboxed" and " · not sandboxed" in card_lines(b, NOW, 120)[1].plain
    # The rest of the line arrives; a name with control characters is shown as plain text.
    with open(record, "a") as handle:
        handle.write('"}\n' + json.dumps({"ts": "2026-03-01T12:00:09Z", "type": "blocked", "via": "dns",
                                          "destination": "\x1b[31mevil\u202e.example"}) + "\n")
    a = {v.id: v for v in dash.reload([sandboxed])}[sandboxed]
    assert a.blocked == 5 and a.recent_blocked[-1].destination == "?[31mevil?.example"


def test_the_card_says_where_a_slurm_session_runs_as_the_cli_does(tmp_path, timeline):
    """The card, the detail and `sessions list` write a session's place with one formatter: the backend, the host
    or partition, then the job, its queue state and its node."""
    from nanogpt_tui.sessions.model import read_session, save_session
    from nanogpt_tui.tui.data.formatting import place_text
    from nanogpt_tui.tui.widgets.card import card_lines

    ids = build_fixed_sessions(tmp_path)
    session = read_session(tmp_path / ids[0])
    session.backend, session.host = "slurm", "gpu"
    session.facts = {"job": "4211", "queue": "PENDING (Resources)", "partition": "gpu"}
    save_session(tmp_path / ids[0], session)
    view = {v.id: v for v in Dashboard(tmp_path, timeline).reload()}[ids[0]]
    where = place_text("slurm", "gpu", view.session.facts)
    assert where == "slurm gpu · job 4211 · queue PENDING (Resources)"
    assert where in card_lines(view, NOW, 160)[1].plain


def test_a_quick_first_look_reads_session_json_only(tmp_path, timeline):
    ids = build_fixed_sessions(tmp_path)
    dash = Dashboard(tmp_path, timeline)
    quick = dash.reload(quick=True)
    assert [v.id for v in quick] == ids and not any(v.complete or v.verdicts for v in quick)
    full = dash.reload()
    assert all(v.complete for v in full) and full[0].best_seconds_faster == pytest.approx(5.88)


def test_unreadable_files_are_reported_and_the_rest_still_loads(tmp_path, timeline):
    ids = build_fixed_sessions(tmp_path)
    (tmp_path / ids[1] / L.SESSION_FILE).write_text("{not json")
    (tmp_path / ids[0] / L.VALIDATOR / "verdicts" / "broken.json").write_text("[]")
    dash = Dashboard(tmp_path, timeline)
    views = dash.reload()
    assert [v.id for v in views] == [ids[0], ids[2]]
    assert any("is not readable JSON" in p for p in dash.problems)
    assert any("broken.json: its seal does not match" in p for p in views[0].problems)


def test_plot_data_with_and_without_a_human_timeline(tmp_path, timeline):
    ids = build_fixed_sessions(tmp_path)
    make_session(tmp_path, "zz-smoke", agent="scripted", strategy="default", anchor="smoke", target=None,
                 backend="local", host="local", gpus=1, budget=0.1, started_hours_ago=0.05)
    views = Dashboard(tmp_path, timeline).reload()
    data = plot_data(views, FA3, BIGRAM, timeline, NOW)
    assert [s.label for s in data.series] == ["claude/default", "codex/default", "claude-autoresearch/autoresearch"]
    assert data.gap_s == pytest.approx(63.2, abs=0.05) and data.x_limit == 512 and data.x_max == pytest.approx(76.0)
    assert data.human[0].label == "#1 Sep 5 2025 · 1.2 s" and data.human[-1].percent == pytest.approx(100)
    assert data.title == "% of human progress · FA3 → BigramHashEmbedding (63.2 s)"  # gap 63.2192 s
    smoke = plot_data(views, "smoke", None, timeline, NOW)
    assert smoke.gap_s is None and smoke.human == [] and "no human timeline for this anchor" in smoke.title
    assert human_timeline_by_date(timeline, "smoke", None) == []
    dates = human_timeline_by_date(timeline, FA3, BIGRAM)
    assert dates[0][1] == 0 and dates[-1][1] == pytest.approx(63.2, abs=0.05) and ids


def test_submissions_and_their_diff_against_the_anchor(tmp_path):
    ids = build_fixed_sessions(tmp_path)
    d = tmp_path / ids[0]
    assert [p.name for p in submissions(d)] == ["submission_1", "submission_2", "submission_3"]
    diff = submission_diff(d, submissions(d)[0])
    assert "-num_iterations = 1600" in diff and "+num_iterations = 1575" in diff


def test_small_formatters():
    assert format_duration(None) == "-" and format_duration(59) == "59s" and format_duration(61) == "1m01s"
    assert format_duration(3 * 3600 + 120) == "3h02m" and format_duration(-90) == "overdue 1m30s"
    assert format_duration(2 * 86400 + 7200) == "2d02h"
    assert short_id("20261120T180000Z-claude-default") == "claude-default 18:00:00" and short_id("x") == "x"
    assert record_short("2025-09-03_FA3") == "FA3" and record_short("smoke") == "smoke"


# ------------------------------------------------------------------------------------------ the monitor


def test_the_monitor_reloads_changed_sessions_and_reports_growing_logs(tmp_path, timeline):
    ids = build_fixed_sessions(tmp_path)
    got: list[list] = []
    files: list[tuple[str, str]] = []
    updated = threading.Event()

    def on_views(views, problems):
        got.append(views)
        updated.set()

    monitor = SessionMonitor(Dashboard(tmp_path, timeline), on_views, lambda sid, what: files.append((sid, what)))
    monitor.start()
    try:
        assert updated.wait(5) and len(got[-1]) == 3
        time.sleep(0.5)  # the watch is set up
        updated.clear()
        data = json.loads((tmp_path / ids[1] / L.SESSION_FILE).read_text())
        data["status"], data["status_reason"] = "killed", "killed by the user"
        (tmp_path / ids[1] / L.SESSION_FILE).write_text(json.dumps(data))
        assert updated.wait(5)
        assert {v.id: v.session.status for v in got[-1]}[ids[1]] == "killed"
        add_log(tmp_path / ids[0], ["more"])
        deadline = time.monotonic() + 5
        while (ids[0], "log") not in files and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (ids[0], "log") in files
        updated.clear()
        make_session(tmp_path, "zz-new", agent="codex", strategy="default")  # a new session folder
        assert updated.wait(5)
        deadline = time.monotonic() + 5
        while len(got[-1]) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "zz-new" in [v.id for v in got[-1]]
        assert monitor.mode == "watchfiles"
    finally:
        monitor.stop()


def test_the_monitor_polls_a_shared_folder_when_told_and_says_so(tmp_path, timeline):
    ids = build_fixed_sessions(tmp_path)
    got: list[tuple[list, list]] = []
    updated = threading.Event()

    def on_views(views, problems):
        got.append((views, problems))
        updated.set()

    monitor = SessionMonitor(Dashboard(tmp_path, timeline), on_views, force_polling=True, poll_ms=200)
    monitor.start()
    try:
        assert updated.wait(5)
        assert any("Polling" in p and "poll_files" in p for p in got[0][1])  # said once, with the first views
        time.sleep(0.5)
        updated.clear()
        data = json.loads((tmp_path / ids[2] / L.SESSION_FILE).read_text())
        data["status"], data["status_reason"] = "killed", "killed by the user"
        (tmp_path / ids[2] / L.SESSION_FILE).write_text(json.dumps(data))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and {v.id: v.session.status for v in got[-1][0]}[ids[2]] != "killed":
            time.sleep(0.05)
        assert {v.id: v.session.status for v in got[-1][0]}[ids[2]] == "killed"
        assert monitor.mode == "watchfiles-polling"
    finally:
        monitor.stop()
