"""The real Claude Code, Codex and claude-autoresearch, pinned and baked into the test image, for whole short sessions
on the smoke record in real containers, against our scripted model server (tests/fakes/model_server.py).

The three sessions start together (one module fixture) and run while the tests watch them. Each one plays a
research trajectory (tests/fakes/research_script.py) through the CLI's own tools: read train_gpt.py, edit it, copy
it into a submission, `submit` it, read the verdict and look at the next idea, then, resumed by the harness after
the CLI exits, start a long command that the test stops: the Claude session by its deadline in the middle of that
tool call, the Codex session by an extension and then a kill mid-turn. Before chosen steps the server plays faults
(429 with retry-after, 500, a stream cut mid-message, a hang past the client's time-out), which the CLIs must
survive. The sessions are sandboxed: each container is alone on its internal network with the model gateway, holds
a placeholder for the key, and reaches its own server only through the gateway, which puts the real key in (the
server checks it) and meters every answer. The servers listen on the host's side of the gateway's egress bridge
(made for this test's sessions folder), and fail the test on any request they did not expect. A session's tokens
and dollars are the gateway's meter, equal to what its server sent, whatever the agent writes into its events.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import docker
import pytest

from nanogpt_tui.agents.events import EventStream, event_line, summarize_usage
from nanogpt_tui.agents.pins import pins
from nanogpt_tui.config import load_config
from nanogpt_tui.telemetry.cost import session_cost, token_meter
from nanogpt_tui.contract import layout as L
from nanogpt_tui.contract.deadline import write_deadline
from nanogpt_tui.sessions.manager import LaunchRequest, SessionManager
from tests.conftest import smoke_baselines
from tests.fakes.sessions import FAST_RECORD
from tests.fakes.model_server import ANTHROPIC, OPENAI, Fault, ModelServer
from tests.fakes.research_script import NUM_ITERATIONS, Trajectory
from tests.integration.test_docker_backend import _daemon_problem, _daemon_url

pytestmark = [pytest.mark.docker, pytest.mark.real_cli, pytest.mark.timeout(1500)]
RUN_ID = uuid.uuid4().hex[:8]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "streams"
CLAUDE_RECORD = os.environ.get("NANOGPT_TUI_REAL_CLI_RECORD", "fast")
# Sandboxed: each session's CLI reaches its own server (its own script, its own key) through the host's one model
# gateway, which routes per session.
SANDBOX = "on"
PLACEHOLDER = "sk-placeholder-the-model-gateway-holds-the-key"
ANTHROPIC_KEY = "sk-ant-" "api03-REALCLI-never-in-a-file-0123456789abcdef"
OPENAI_KEY = "sk-proj-" "REALCLI-never-in-a-file-abcdefghijklmnop"
# Short client time-outs so that a hang costs seconds (Claude Code: API_TIMEOUT_MS; Codex: the provider's
# stream_idle_timeout_ms); no back-off between the quick CLI invocations of a test.
FAST_ENV = (("API_TIMEOUT_MS", "8000"), ("BENCHMARK_CODEX_STREAM_IDLE_TIMEOUT_MS", "8000"),
            ("BENCHMARK_MIN_INVOCATION_S", "0"), ("BENCHMARK_RESUME_BACKOFF_S", "1"))
FAULTS = {"edit": [Fault("status", 429, retry_after_s=1), Fault("status", 500)],
          "submit": [Fault("cut")],
          "verdict": [Fault("hang", seconds=20)]}


def wait_for(predicate, timeout_s: float, what: str, step: float = 1.0):
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


class Run:
    """One session of a real agent with its own model server and trajectory."""

    def __init__(self, agent: str, api: str, trajectory: Trajectory, host: str, key: str) -> None:
        self.agent, self.api, self.trajectory = agent, api, trajectory
        self.server = ModelServer(trajectory, host=host, api_key=key).start()
        self.session_id = ""
        self.started = 0.0

    @property
    def base_url(self) -> str:
        return self.server.url + ("/v1" if self.api == OPENAI else "")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    problem = _daemon_problem()
    if problem:
        pytest.skip(problem)
    from nanogpt_tui.backends.docker_backend import DockerBackend
    from nanogpt_tui.backends.testimage import build_test_image

    backend = DockerBackend(_daemon_url(), None, "local")
    t0 = time.monotonic()
    image = build_test_image(backend, progress=lambda line: print(f"[test image] {line}", flush=True)).ref
    print(f"test image ready in {time.monotonic() - t0:.1f} s")
    client = docker.DockerClient(base_url=_daemon_url())
    volume = f"ngt-agents-realcli-data-{RUN_ID}"
    client.volumes.create(volume, labels={"nanogpt-tui.test": RUN_ID})
    client.containers.run(image, ["python3", "-m", "nanogpt_tui", "data", "synth", "--out", "/data/fineweb10B"],
                          volumes={volume: {"bind": "/data", "mode": "rw"}}, remove=True)
    root = tmp_path_factory.mktemp("realcli")
    path = root / "nanogpt-tui.toml"
    header = (f'schema_version = 1\n[paths]\nbaselines_dir = "human_baselines"\nsessions_dir = "sessions"\n'
              f'[docker]\nimage = "{image}"\ndata_volume = "{volume}"\n[judge]\nprovider = "none"\n'
              f'[[hosts]]\nname = "local"\nurl = "{_daemon_url()}"\n')
    path.write_text(header)
    # The gateway's egress bridge, made for this sessions folder (its prefix) before the sessions start, so the
    # servers can listen on the host's side of it: a bridge of this test's own.
    from nanogpt_tui.backends.egress import Egress

    probe = SessionManager(load_config(path))
    egress = Egress(backend, image=image, state_dir=root / "sessions" / ".egress" / "local",
                    prefix=probe.egress_prefix)
    probe.close()
    bridge = egress._network(egress.egress_network, internal=False)
    host_ip = bridge.attrs["IPAM"]["Config"][0]["Gateway"]
    # The sessions work on the fast stand-in record (the smoke record's shape, simulated training): a submit's three
    # retimings take seconds. NANOGPT_TUI_REAL_CLI_RECORD=smoke puts the Claude Code session on the smoke record
    # (real torch training: three 150-step runs, minutes on a loaded 2-core machine).
    smoke = CLAUDE_RECORD == "smoke"
    all_runs = {
        "claude": Run("claude", ANTHROPIC, Trajectory(faults=FAULTS, new_iterations=150 if smoke else 1700), host_ip,
                      ANTHROPIC_KEY),
        "codex": Run("codex", OPENAI, Trajectory(faults=FAULTS, new_iterations=1700), host_ip, OPENAI_KEY),
        "claude-autoresearch": Run("claude-autoresearch", ANTHROPIC, Trajectory(new_iterations=1700), host_ip,
                                   ANTHROPIC_KEY),
    }
    anchors = {"claude": CLAUDE_RECORD, "codex": "fast", "claude-autoresearch": "fast"}
    # A Claude Code whose every request is refused (a wrong key): it exits within seconds, again and again.
    refused = Run("claude", ANTHROPIC, Trajectory(), host_ip, "sk-ant-" "the-key-this-server-expects")
    smoke_baselines(root / "human_baselines")
    shutil.copytree(FAST_RECORD, root / "human_baselines" / "fast")
    agents = "".join(f'[agents.{r.agent}]\nmodel = "{"gpt-5.5" if r.api == OPENAI else "claude-opus-4-6"}"\n'
                     f'effort = "high"\nbase_url = "{r.base_url}"\n' for r in all_runs.values())
    path.write_text(header + agents)
    mp = pytest.MonkeyPatch()
    mp.setenv("NANOGPT_TUI_CONFIG", str(path))
    mp.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    mp.setenv("OPENAI_API_KEY", OPENAI_KEY)
    for name in ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL"):
        mp.delenv(name, raising=False)
    manager = SessionManager(load_config(path))
    for run in all_runs.values():
        strategy = "autoresearch" if run.agent == "claude-autoresearch" else "default"
        # claude-autoresearch streams with partial messages (token deltas), the plain claude session without.
        extra = FAST_ENV + ((("BENCHMARK_CLAUDE_PARTIAL", "1"),) if run.agent == "claude-autoresearch" else ())
        session = manager.launch(LaunchRequest(agent=run.agent, strategy=strategy, anchor=anchors[run.agent],
                                               backend="docker",
                                               gpus=1, budget_gpu_hours=0.5, extra_env=extra, sandbox=SANDBOX))
        run.session_id, run.started = session.id, time.monotonic()
    session = manager.launch(LaunchRequest(
        agent="claude", anchor="fast", backend="docker", gpus=1, budget_gpu_hours=0.5, sandbox=SANDBOX,
        extra_env=FAST_ENV + (("ANTHROPIC_API_KEY", "not-the-right-key"), ("ANTHROPIC_BASE_URL", refused.server.url),
                              ("BENCHMARK_AGENT_BASE_URL", refused.server.url), ("BENCHMARK_MIN_INVOCATION_S", "30"),
                              # Claude Code retries even a 401 ten times (about 200 s) unless told otherwise.
                              ("CLAUDE_CODE_MAX_RETRIES", "0"))))
    refused.session_id, refused.started = session.id, time.monotonic()
    all_runs["refused"] = refused
    yield manager, all_runs
    for run in all_runs.values():
        s = manager.get(run.session_id)
        if s.status == "running":
            manager.kill(s.id)
        if s.handle:
            try:
                client.containers.get(s.handle).remove(force=True)
            except docker.errors.NotFound:
                pass
        run.server.stop()
    manager.close()
    mp.undo()
    egress.remove_all()
    client.volumes.get(volume).remove(force=True)
    backend.close()


def events_of(manager: SessionManager, run: Run):
    path = manager.session_dir(run.session_id) / L.EVENTS_FILE
    capture_stream(run, path)
    return EventStream(path).read_all()


def capture_stream(run: Run, path: Path) -> None:
    """With NANOGPT_TUI_CAPTURE_STREAMS=1, keep the session's stream as a parser fixture named with the CLI version
    (docs/agent-clis.md: bumping a pin)."""
    if os.environ.get("NANOGPT_TUI_CAPTURE_STREAMS") != "1":
        return
    cli = "codex" if run.api == OPENAI else "claude"
    kind = {"claude": "stream-json", "codex": "exec-json", "claude-autoresearch": "partial-messages"}[run.agent]
    dest = FIXTURES / f"{cli}-{pins()[cli].version}-{kind}.jsonl"
    dest.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                            if line.strip() != FAKE_USAGE))
    # What the server sent, for the parser tests to check the usage totals against (tests/unit/test_real_streams.py).
    dest.with_suffix(".server.json").write_text(json.dumps({
        "api": run.api,
        "sent": [[u.input_tokens, u.output_tokens, u.cache_read_input_tokens] for _api, u in run.server.sent_usage],
        "stopped_replies": [[u.input_tokens, u.output_tokens, u.cache_read_input_tokens]
                            for u in run.trajectory.long_phase_replies],
    }, indent=1) + "\n")


def wait_for_long_command(manager: SessionManager, run: Run) -> None:
    def started():
        session = manager.refresh(manager.get(run.session_id))
        assert session.status == "running", (session.status, session.status_reason, run.server.unexpected)
        assert not run.server.unexpected, run.server.unexpected
        return run.trajectory.long_command_started.is_set()

    wait_for(started, 900, f"the {run.agent} session to validate a submission and start its long command", 2.0)
    time.sleep(3)  # the CLI has the tool result request answered; its command is running now
    print(f"{run.agent}: trajectory reached its long command in {time.monotonic() - run.started:.0f} s")


def assert_validated_through_the_cli(manager: SessionManager, run: Run) -> None:
    d = manager.session_dir(run.session_id)
    # Verdicts are the validator's, in the session's validator/ folder (the agent only reads them).
    verdicts = [json.loads(p.read_text()) for p in (d / L.VALIDATOR / "verdicts").glob("*.json")]
    (verdict,) = [v for v in verdicts if v["kind"] == "submission"]
    assert verdict["outcome"] == "validated", verdict.get("reasons")
    assert "verdict: validated" in run.trajectory.verdict_text.lower()  # read from the CLI's tool result
    submitted = (d / L.WORKSPACE / "submissions" / "submission_1" / "train_gpt.py").read_text()
    assert NUM_ITERATIONS.search(submitted).group(1) == str(run.trajectory.new_iterations)
    steps = [s for i, s in enumerate(run.trajectory.steps_done) if i == 0 or s != run.trajectory.steps_done[i - 1]]
    assert steps[:5] == ["read", "edit", "submit", "verdict", "next_idea"], steps  # (Codex polls: verdict twice)


def assert_resumed(run: Run, evs) -> None:
    """The harness resumed the CLI's own session after it exited, with the strategy's resume prompt."""
    assert run.trajectory.invocations_seen >= 2
    assert run.trajectory.resume_prompts and "Continue" in run.trajectory.resume_prompts[0]
    starts = [e.session_id for e in evs if e.type == "session_start" and e.source in ("claude", "codex")]
    assert len(starts) >= 2 and len(set(starts)) == 1, starts


def assert_tools_paired(evs) -> None:
    calls = {e.call_id for e in evs if e.type == "tool_call" and not e.partial and e.call_id}
    results = [e for e in evs if e.type == "tool_result" and not e.partial]
    assert results and all(r.call_id in calls for r in results)


def assert_no_key_anywhere(manager: SessionManager, run: Run, key: str) -> None:
    d = manager.session_dir(run.session_id)
    for path in [*d.rglob("*"), *(manager.root / ".egress").rglob("*")]:  # the gateway's routes and records too
        if path.is_file() and not path.is_symlink():
            assert key.encode() not in path.read_bytes(), f"the API key is in {path}"
    shown = subprocess.run([sys.executable, "-m", "nanogpt_tui", "agents", "events", str(d / L.CONTAINER_LOG),
                            "--all", "--usage"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and key not in shown.stdout + shown.stderr
    assert "tool_call" in shown.stdout or "→" in shown.stdout or shown.stdout.count("\n") > 10


def expected_usage(run: Run, exclude_last: int = 0) -> dict[str, int]:
    """What the server sent, in our convention (input includes cache reads), leaving out the last requests of an
    invocation that never reported its own total."""
    sent = [u for _api, u in run.server.sent_usage]
    sent = sent[: len(sent) - exclude_last] if exclude_last else sent
    return {"input_tokens": sum(u.input_tokens + (u.cache_read_input_tokens if run.api == ANTHROPIC else 0)
                                for u in sent),
            "cached_input_tokens": sum(u.cache_read_input_tokens for u in sent),
            "output_tokens": sum(u.output_tokens for u in sent)}


FAKE_USAGE = event_line("usage", input_tokens=10**9, cached_input_tokens=0, output_tokens=10**9, cost_usd=0.0)


def write_fake_usage_from_inside(manager: SessionManager, run: Run) -> None:
    """What the agent can do: append made-up usage to its own event stream, from inside its container."""
    container = docker.DockerClient(base_url=_daemon_url()).containers.get(manager.get(run.session_id).handle)
    code, out = container.exec_run(["python3", "-c", "import sys; open('/workspace/logs/events.jsonl', 'a')"
                                    ".write(sys.argv[1] + '\\n')", FAKE_USAGE])
    assert code == 0, out


def cli_events(evs):
    """The events as the CLI and our runner wrote them (the line the test wrote as the agent left out)."""
    return [e for e in evs if not (e.type == "usage" and (e.usage or {}).get("input_tokens") == 10**9)]


def assert_the_key_is_the_gateways_only(manager: SessionManager, run: Run, key: str) -> None:
    """While the session runs: its container holds a placeholder (config and every process's environment), sits
    alone on its internal network with the gateway, and neither container's stored config holds the key."""
    client = docker.DockerClient(base_url=_daemon_url())
    session = manager.get(run.session_id)
    attrs = client.api.inspect_container(session.handle)
    env = attrs["Config"]["Env"]
    variable = "OPENAI_API_KEY" if run.api == OPENAI else "ANTHROPIC_API_KEY"
    assert f"{variable}={PLACEHOLDER}" in env and key not in json.dumps(attrs)
    assert list(attrs["NetworkSettings"]["Networks"]) == [f"{manager.egress_prefix}-net-{session.id}".lower()]
    assert key not in json.dumps(client.api.inspect_container(f"{manager.egress_prefix}-gateway"))
    code, out = client.containers.get(session.handle).exec_run(["sh", "-c", "cat /proc/[0-9]*/environ"])
    assert PLACEHOLDER.encode() in out and key.encode() not in out


def assert_metered_as_sent(manager: SessionManager, run: Run) -> None:
    """The session's tokens and dollars are the gateway's meter: what the server sent, every answer counted
    (retried faults, side requests and the invocation that was stopped included), whatever the agent wrote."""
    d = manager.session_dir(run.session_id)
    tokens = token_meter(d).read()
    assert tokens.metered and tokens.requests == len(run.server.sent_usage)
    want = expected_usage(run)
    assert (tokens.input_tokens, tokens.cached_input_tokens, tokens.output_tokens) == \
        (want["input_tokens"], want["cached_input_tokens"], want["output_tokens"])
    session = manager.get(run.session_id)
    assert manager.cost(session).agent_usd == session_cost(tokens, [], manager.config.prices,
                                                           session.agent_model).agent_usd
    print(f"{run.agent}: metered {tokens.requests} requests, {tokens.input_tokens} in / {tokens.output_tokens} out "
          f"({tokens.cached_input_tokens} cached): as sent")


def test_claude_code_validates_resumes_survives_faults_and_stops_at_the_deadline(runs):
    manager, all_runs = runs
    run = all_runs["claude"]
    wait_for_long_command(manager, run)
    session = manager.get(run.session_id)
    assert session.sandbox == SANDBOX
    assert_the_key_is_the_gateways_only(manager, run, ANTHROPIC_KEY)
    # The deadline passes while Claude's Bash tool runs the long command.
    write_deadline(manager.session_dir(session.id) / L.CONTROL, dt.datetime.now(dt.timezone.utc),
                   gpus=1, budget_gpu_hours=session.total_gpu_hours, grace_s=5)
    final = wait_for(lambda: (s := manager.refresh(manager.get(run.session_id))).status != "running" and s,
                     120, "the session to stop at its deadline")
    assert final.status == "out-of-budget", final.status_reason
    print(f"claude session: {time.monotonic() - run.started:.0f} s")
    assert not run.server.unexpected, run.server.unexpected
    assert_validated_through_the_cli(manager, run)
    evs = events_of(manager, run)
    assert_resumed(run, evs)
    assert_tools_paired(evs)
    # The long command was a tool call that never got its result: stopped in the middle of it.
    long_calls = [e for e in evs if e.type == "tool_call" and e.command and "time.sleep(600)" in e.command]
    assert long_calls and not [e for e in evs if e.type == "tool_result" and e.call_id == long_calls[-1].call_id]
    assert "the deadline has passed; stopping the agent" in \
        (manager.session_dir(run.session_id) / L.CONTAINER_LOG).read_text()
    # Every fault was played and survived: the trajectory went on past each.
    assert all(not faults for faults in run.trajectory._pending_faults.values())
    # Tokens: the completed invocations report their totals (result lines); the one stopped at the deadline
    # reports each response's input as sent and the output known when it began (its message_start).
    totals = summarize_usage(evs)
    stopped = run.trajectory.long_phase_replies
    want = expected_usage(run)
    assert totals.input_tokens == want["input_tokens"]
    assert totals.cached_input_tokens == want["cached_input_tokens"]
    assert totals.output_tokens == want["output_tokens"] - sum(u.output_tokens for u in stopped) + len(stopped)
    assert_metered_as_sent(manager, run)  # the stopped invocation's output too, which the CLI never reported
    assert_no_key_anywhere(manager, run, ANTHROPIC_KEY)


def test_codex_validates_resumes_survives_faults_and_is_extended_then_killed_mid_turn(runs):
    manager, all_runs = runs
    run = all_runs["codex"]
    wait_for_long_command(manager, run)
    assert_the_key_is_the_gateways_only(manager, run, OPENAI_KEY)
    before = manager.get(run.session_id)
    extended = manager.extend(run.session_id, gpu_hours=0.25)
    assert extended.total_gpu_hours == pytest.approx(before.total_gpu_hours + 0.25)
    log = manager.session_dir(run.session_id) / L.CONTAINER_LOG
    wait_for(lambda: manager.refresh(manager.get(run.session_id)) and "deadline moved to" in log.read_text(),
             60, "the runner to see the extension")
    killed = manager.kill(run.session_id)
    assert killed.status == "killed"
    # Once the ended session is released, the gateway forgets its route (and the key it held for it).
    routes = manager.egress_dir(killed.host) / "routes" / f"{killed.id}.json"
    wait_for(lambda: manager.refresh(manager.get(run.session_id)) and not routes.exists(), 60,
             "the gateway to forget the killed session's route")
    print(f"codex session: {time.monotonic() - run.started:.0f} s")
    client = docker.DockerClient(base_url=_daemon_url())
    try:  # stopped; the backend removes a finished container once its logs are copied
        assert client.containers.get(killed.handle).status == "exited"
    except docker.errors.NotFound:
        pass
    assert not run.server.unexpected, run.server.unexpected
    assert_validated_through_the_cli(manager, run)
    evs = events_of(manager, run)
    assert_resumed(run, evs)
    assert_tools_paired(evs)
    assert all(not faults for faults in run.trajectory._pending_faults.values())
    # The CLI reported the faults as it retried them (Codex's own "Reconnecting..." errors).
    assert any(e.type == "error" and "Reconnecting" in (e.text or "") for e in evs)
    # Tokens: Codex's turn totals are cumulative over the thread (restored on resume); our deltas add up to what
    # the server sent in the completed turns (the killed turn never reported its total).
    totals = summarize_usage(evs)
    want = expected_usage(run, exclude_last=len(run.trajectory.long_phase_replies))
    assert (totals.input_tokens, totals.cached_input_tokens, totals.output_tokens) == \
        (want["input_tokens"], want["cached_input_tokens"], want["output_tokens"])
    assert_metered_as_sent(manager, run)  # the killed turn's tokens too, which Codex never reported
    assert_no_key_anywhere(manager, run, OPENAI_KEY)


def test_claude_autoresearch_validates_on_its_own_branch_and_is_killed(runs):
    manager, all_runs = runs
    run = all_runs["claude-autoresearch"]
    wait_for_long_command(manager, run)
    assert_the_key_is_the_gateways_only(manager, run, ANTHROPIC_KEY)
    d = manager.session_dir(run.session_id)
    metered = token_meter(d).read()
    write_fake_usage_from_inside(manager, run)
    assert manager.kill(run.session_id).status == "killed"
    # What the agent wrote is in its events, and changes nothing metered: not the tokens, not the dollars.
    reported = summarize_usage(EventStream(d / L.EVENTS_FILE).read_all())
    assert reported.input_tokens >= 10**9 and reported.output_tokens >= 10**9
    again = token_meter(d).read()
    assert (again.input_tokens, again.cached_input_tokens, again.output_tokens, again.requests) == \
        (metered.input_tokens, metered.cached_input_tokens, metered.output_tokens, metered.requests)
    assert_metered_as_sent(manager, run)
    assert not run.server.unexpected, run.server.unexpected
    assert_validated_through_the_cli(manager, run)
    evs = cli_events(events_of(manager, run))
    assert_resumed(run, evs)
    assert_tools_paired(evs)
    # With partial messages the stream carries the token deltas too; they are shown, never counted twice.
    assert any(e.partial and e.type == "message" for e in evs)
    stopped = run.trajectory.long_phase_replies
    want = expected_usage(run)
    totals = summarize_usage(evs)
    assert (totals.input_tokens, totals.output_tokens) == \
        (want["input_tokens"], want["output_tokens"] - sum(u.output_tokens for u in stopped) + len(stopped))
    ws = manager.session_dir(run.session_id) / L.WORKSPACE
    assert (ws / "results.tsv").read_text().startswith("commit\tval_loss")
    head = (ws / ".git" / "HEAD").read_text().strip()
    assert head == f"ref: refs/heads/autoresearch/{run.session_id}"
    # The program's prompt reached the CLI as written.
    program = (manager.session_dir(run.session_id) / L.RUNNER / "strategy" / "program.md").read_text()
    first_line = next(line for line in program.splitlines() if line.strip())
    assert any(first_line in json.dumps(t.body) for t in run.server.turns[:3])
    assert_no_key_anywhere(manager, run, ANTHROPIC_KEY)


def test_a_cli_that_keeps_failing_fails_the_session_with_its_own_words(runs):
    manager, all_runs = runs
    run = all_runs["refused"]
    final = wait_for(lambda: (s := manager.refresh(manager.get(run.session_id))).status != "running" and s,
                     300, "the refused session to give up")
    print(f"refused session: {final.status} after {time.monotonic() - run.started:.0f} s: {final.status_reason}")
    assert final.status == "failed"
    assert "claude exited within 30s 4 times in a row" in final.status_reason
    assert len(run.server.requests) >= 4 and not run.server.turns  # every request refused before the script
    assert "401" in final.status_reason or "api key" in final.status_reason.lower()
    # The gateway sent the session's own (wrong) key to the session's own server, and metered nothing.
    assert token_meter(manager.session_dir(run.session_id)).read().requests == 0


def test_the_pinned_versions_ran(runs):
    manager, all_runs = runs
    agents = {name: [t.headers.get("user-agent", "") for t in r.server.turns] for name, r in all_runs.items()}
    assert any(f"claude-cli/{pins()['claude'].version}" in ua for ua in agents["claude"])
    assert any(f"claude-cli/{pins()['claude'].version}" in ua for ua in agents["claude-autoresearch"])
    assert any(f"codex_exec/{pins()['codex'].version}" in ua for ua in agents["codex"])


def test_codex_falls_back_to_http_when_the_websocket_upgrade_is_refused(tmp_path):
    """On this machine, no container: a provider that claims WebSocket support, and a model whose metadata
    prefers it, make Codex try the upgrade first; the server refuses it (405), as an HTTP-only gateway does."""
    from nanogpt_tui.agents.pins import host_executable
    from tests.fakes.model_server import Reply

    server = ModelServer(lambda turn: Reply(text="over HTTP"), api_key=OPENAI_KEY).start()
    try:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CODEX_HOME": str(tmp_path / "codex"),
               "CODEX_API_KEY": OPENAI_KEY}
        (tmp_path / "codex").mkdir()
        provider = [f"model_providers.gw.{k}={v}" for k, v in (
            ("name", '"gw"'), ("base_url", f'"{server.url}/v1"'), ("env_key", '"CODEX_API_KEY"'),
            ("wire_api", '"responses"'), ("supports_websockets", "true"))]
        args = [str(host_executable("codex")), "exec", "--json", "--skip-git-repo-check",
                "--dangerously-bypass-approvals-and-sandbox", "-c", 'model_provider="gw"', "-m", "gpt-6.2-sol",
                "-c", "check_for_update_on_startup=false", "-c", "analytics.enabled=false"]
        for item in provider:
            args += ["-c", item]
        started = time.monotonic()
        done = subprocess.run([*args, "--", "say hi"], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    assert "over HTTP" in done.stdout and "Falling back from WebSockets to HTTPS transport" in done.stdout
    attempts = server.websocket_attempts
    fallback_s = server.http_model_requests[0] - attempts[0]
    print(f"codex: {len(attempts)} WebSocket attempts refused with 405, HTTP after {fallback_s:.1f} s "
          f"(whole run {elapsed:.1f} s)")
    assert len(attempts) >= 2 and server.http_model_requests[0] > attempts[-1]
    assert not server.unexpected
