"""The agent harnesses' entry scripts, run for real against stand-in `claude` / `codex` executables.

The stand-ins (tests/fakes/bin/) print recorded streams and log the arguments, stdin and which keys they
saw; the session deadline lives in a real control/deadline.json, which a stand-in moves into the past after
a given call, so the number of invocations is exact. (tests/integration/test_real_cli.py runs the real CLIs.)

Harnesses refuse to run as root, so when the tests run as root the harness runs as `nobody` (setpriv) in a
world-readable folder, with the system Python and this checkout on PYTHONPATH (the harness helpers need only
the standard library).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import shutil
import tempfile

import pytest

from nanogpt_tui.agents.catalog import copy_harness, get_agent
from nanogpt_tui.agents.events import EventStream, summarize_usage
from nanogpt_tui.agents.parsers import parse_log_line
from nanogpt_tui.agents.strategy import BUILTIN_DIR, load_strategy

REPO = Path(__file__).resolve().parents[2]
FAKE_BIN = REPO / "tests" / "fakes" / "bin"
STREAMS = REPO / "tests" / "fixtures" / "streams"
ANTHROPIC_KEY = "sk-ant-" "api03-TESTKEY-must-never-be-printed-0123456789abcdef"
OPENAI_KEY = "sk-proj-" "TESTKEY-must-never-be-printed-abcdefghijklmnop"
AZURE_KEY = "0123456789abcdef0123456789abcdef"


NOBODY = 65534
AS_NOBODY = os.geteuid() == 0
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def session() -> dict:
    """A session laid out as the container contract says, with paths on the host."""
    tmp_path = Path(tempfile.mkdtemp(prefix="ngt-agents-harness-"))
    tmp_path.chmod(0o755)
    yield from _session(tmp_path)
    shutil.rmtree(tmp_path, ignore_errors=True)


def _session(tmp_path: Path):
    ws = tmp_path / "workspace"
    for sub in ("experiments", "submissions", "verdicts", "logs", "home"):
        (ws / sub).mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    runner = tmp_path / "runner"
    control = tmp_path / "control"
    control.mkdir()
    (control / "deadline.json").write_text(json.dumps({
        "deadline": "2099-01-01T00:00:00Z", "deadline_epoch": time.time() + 600, "gpus": 8}))
    env = {
        "PATH": f"{FAKE_BIN}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "PYTHONPATH": str(REPO),
        "HOME": str(ws / "home"),
        "LANG": "C.UTF-8",
        "BENCHMARK_PYTHON": SYSTEM_PYTHON,
        "BENCHMARK_WORKSPACE": str(ws),
        "BENCHMARK_RUN_ID": "20261127T051200Z-test",
        "BENCHMARK_SESSION_HOURS": "64",
        "BENCHMARK_SUBMISSION_DIR": str(ws / "submissions"),
        "BENCHMARK_EVENTS_PATH": str(ws / "logs" / "events.jsonl"),
        "BENCHMARK_LOG_DIR": str(ws / "logs"),
        "BENCHMARK_TRACE_DIR": str(ws / "logs" / "traces"),
        "BENCHMARK_RUNNER_DIR": str(runner),
        "BENCHMARK_CONTROL_DIR": str(control),
        "BENCHMARK_ANCHOR": "2025-09-03_FA3",
        "BENCHMARK_TARGET": "2026-01-19_BigramHashEmbedding",
        "BENCHMARK_RESUME_BACKOFF_S": "0",
        "BENCHMARK_MIN_INVOCATION_S": "0",
        "FAKE_CLI_LOG": str(tmp_path / "cli_calls.jsonl"),
    }
    yield {"tmp": tmp_path, "ws": ws, "runner": runner, "control": control, "env": env}


def start(session: dict, agent: str, strategy: str, **env: str) -> subprocess.CompletedProcess:
    from nanogpt_tui.agents.catalog import copy_strategy

    copy_harness(get_agent(agent), session["runner"] / "agent")
    copy_strategy(BUILTIN_DIR / strategy, session["runner"] / "strategy")
    full_env = {**session["env"], "BENCHMARK_AGENT": agent, "BENCHMARK_STRATEGY": strategy, **env}
    command = ["bash", str(session["runner"] / "agent" / "run.sh")]
    if AS_NOBODY:
        for path in [session["tmp"], *session["tmp"].rglob("*")]:
            os.lchown(path, NOBODY, NOBODY)
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    return subprocess.run(command, cwd=session["ws"], env=full_env, capture_output=True, text=True, timeout=120)


def calls(session: dict) -> list[dict]:
    path = Path(session["env"]["FAKE_CLI_LOG"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def events(session: dict):
    return EventStream(session["ws"] / "logs" / "events.jsonl").read_all()


def assert_no_key_leaked(session: dict, proc: subprocess.CompletedProcess, *keys: str) -> None:
    texts = [proc.stdout, proc.stderr, Path(session["env"]["FAKE_CLI_LOG"]).read_text(),
             (session["ws"] / "logs" / "events.jsonl").read_text()]
    texts += [p.read_text(errors="replace") for p in (session["ws"] / "logs").rglob("*") if p.is_file()]
    for key in keys:
        assert all(key not in t for t in texts), "an API key was written out"


def test_claude_resumes_its_session_until_the_deadline(session):
    proc = start(session, "claude", "default", ANTHROPIC_API_KEY=ANTHROPIC_KEY, FAKE_EXPIRE_AFTER="3",
                 FAKE_STREAM=str(STREAMS / "claude_invocation.jsonl"),
                 BENCHMARK_AGENT_MODEL="claude-opus-4-6", BENCHMARK_AGENT_EFFORT="high")
    assert proc.returncode == 0, proc.stderr
    seen = calls(session)
    assert [c["n"] for c in seen] == [1, 2, 3]  # the third call moved the deadline: no fourth

    first = seen[0]["argv"]
    assert first[0] == "-p"
    assert first[first.index("--output-format") + 1] == "stream-json"
    assert "--verbose" in first and "--dangerously-skip-permissions" in first
    tools = first.index("--disallowedTools")
    assert first[tools + 1:tools + 3] == ["WebFetch", "WebSearch"]
    assert first[first.index("--model") + 1] == "claude-opus-4-6"
    assert first[first.index("--effort") + 1] == "high"
    assert "--resume" not in first and "--include-partial-messages" not in first
    # Each resume names the session id the previous invocation's stream reported.
    assert seen[1]["argv"][-2:] == ["--resume", "sess-1"]
    assert seen[2]["argv"][-2:] == ["--resume", "sess-2"]
    # The prompt goes on stdin, composed from the strategy with the session's values filled in.
    assert "Your task: make the NanoGPT speedrun faster" in seen[0]["stdin"]
    assert "`2025-09-03_FA3`" in seen[0]["stdin"] and "{{anchor}}" not in seen[0]["stdin"]
    assert seen[1]["stdin"].startswith("Continue the work") and seen[2]["stdin"] == seen[1]["stdin"]
    assert all(c["cwd"] == str(session["ws"]) for c in seen)
    assert seen[0]["keys_set"]["ANTHROPIC_API_KEY"]

    evs = events(session)
    starts = [e for e in evs if e.type == "session_start" and e.source == "claude"]
    assert [e.session_id for e in starts] == ["sess-1", "sess-2", "sess-3"]
    assert sum(e.type == "result" for e in evs) == 3
    notes = [e.text for e in evs if e.type == "status"]
    assert notes[0].startswith("invocation 1: first prompt")
    assert notes[1].startswith("invocation 2: resuming sess-1")
    assert "deadline reached after 3 invocation(s)" in notes[-1]
    totals = summarize_usage(evs)
    assert totals.invocations == 3 and totals.cost_usd == pytest.approx(3 * 0.0312)
    # The raw stream also reaches stdout (the container log), line for line.
    stdout_events = [e for line in proc.stdout.splitlines() for e in parse_log_line(line)]
    assert sum(e.type == "result" for e in stdout_events) == 3
    assert_no_key_leaked(session, proc, ANTHROPIC_KEY)


def test_claude_with_partial_messages_and_the_tool_time_out_above_the_longest_submit(session):
    proc = start(session, "claude", "default", ANTHROPIC_API_KEY=ANTHROPIC_KEY, FAKE_EXPIRE_AFTER="1",
                 FAKE_STREAM=str(STREAMS / "claude_invocation.jsonl"), BENCHMARK_CLAUDE_PARTIAL="1",
                 BENCHMARK_TOOL_TIMEOUT_S="37200")
    assert proc.returncode == 0, proc.stderr
    (only,) = calls(session)
    assert "--effort" not in only["argv"] and "--model" not in only["argv"]
    assert "--include-partial-messages" in only["argv"]
    assert only["env"]["BASH_DEFAULT_TIMEOUT_MS"] == only["env"]["BASH_MAX_TIMEOUT_MS"] == "37200000"
    assert only["env"]["DISABLE_AUTOUPDATER"] == "1"


def test_claude_retries_the_first_prompt_when_no_session_started(session):
    proc = start(session, "claude", "default", ANTHROPIC_API_KEY=ANTHROPIC_KEY, FAKE_EXIT_CODES="1,1,0",
                 FAKE_EXPIRE_AFTER="3", FAKE_STREAM=str(STREAMS / "claude_invocation.jsonl"))
    assert proc.returncode == 0, proc.stderr
    seen = calls(session)
    assert len(seen) == 3
    assert all("--resume" not in c["argv"] for c in seen)  # nothing to resume yet
    assert sum("claude exited with status 1" in (e.text or "") for e in events(session)) == 2


def test_codex_resumes_its_thread_until_the_deadline(session):
    proc = start(session, "codex", "default", OPENAI_API_KEY=OPENAI_KEY, FAKE_EXPIRE_AFTER="2",
                 FAKE_STREAM=str(STREAMS / "codex_invocation.jsonl"),
                 BENCHMARK_AGENT_MODEL="gpt-5.4", BENCHMARK_AGENT_EFFORT="xhigh")
    assert proc.returncode == 0, proc.stderr
    seen = calls(session)
    assert len(seen) == 2
    first, second = seen[0]["argv"], seen[1]["argv"]
    assert first[:2] == ["exec", "--json"]
    assert "--dangerously-bypass-approvals-and-sandbox" in first and "--skip-git-repo-check" in first
    assert first[first.index("--model") + 1] == "gpt-5.4"
    configs = [first[i + 1] for i, a in enumerate(first) if a == "-c"]
    assert 'web_search="disabled"' in configs and 'model_reasoning_effort="xhigh"' in configs
    assert first[-2] == "--"  # the prompt, as an argument, after `--` (a leading `-` stays text)
    assert first[-1].startswith("# Your task: make the NanoGPT speedrun faster")
    assert "resume" not in first
    # `codex exec [flags] resume <thread id> -- <prompt>`: the flags stay before `resume`.
    assert second[:len(first) - 2] == first[:-2]
    assert second[len(first) - 2:len(first) + 1] == ["resume", "thread-1", "--"]
    assert second[-1].startswith("Continue the work")
    assert seen[0]["stdin"] == ""  # stdin is /dev/null
    # `codex exec` reads CODEX_API_KEY; the harness passes OPENAI_API_KEY on under that name.
    assert seen[0]["keys_set"]["CODEX_API_KEY"] and seen[0]["keys_set"]["OPENAI_API_KEY"]
    evs = events(session)
    assert [e.session_id for e in evs if e.type == "session_start"] == ["thread-1", "thread-1"]
    assert summarize_usage(evs).input_tokens == 18211  # cumulative per thread: the same total twice
    assert_no_key_leaked(session, proc, OPENAI_KEY)


def test_codex_with_azure_settings(session):
    proc = start(session, "codex", "default", AZURE_OPENAI_API_KEY=AZURE_KEY, FAKE_EXPIRE_AFTER="1",
                 AZURE_OPENAI_ENDPOINT="https://bench.openai.azure.com/", OPENAI_API_VERSION="2025-04-01-preview",
                 FAKE_STREAM=str(STREAMS / "codex_invocation.jsonl"), BENCHMARK_AGENT_MODEL="gpt-5-deploy")
    assert proc.returncode == 0, proc.stderr
    (only,) = calls(session)
    configs = [only["argv"][i + 1] for i, a in enumerate(only["argv"]) if a == "-c"]
    assert 'model_provider="azure"' in configs
    assert 'model_providers.azure.base_url="https://bench.openai.azure.com/openai"' in configs
    assert 'model_providers.azure.env_key="AZURE_OPENAI_API_KEY"' in configs
    assert 'model_providers.azure.query_params={api-version="2025-04-01-preview"}' in configs
    assert not only["keys_set"]["CODEX_API_KEY"] and only["keys_set"]["AZURE_OPENAI_API_KEY"]
    assert all(AZURE_KEY not in a for a in only["argv"])
    assert_no_key_leaked(session, proc, AZURE_KEY)


def test_no_invocation_once_the_deadline_has_passed(session):
    (session["control"] / "deadline.json").write_text(json.dumps({"deadline_epoch": time.time() - 5}))
    proc = start(session, "claude", "default", ANTHROPIC_API_KEY=ANTHROPIC_KEY,
                 FAKE_STREAM=str(STREAMS / "claude_invocation.jsonl"))
    assert proc.returncode == 0 and calls(session) == []


def test_a_missing_deadline_stops_the_harness_with_a_clear_message(session):
    (session["control"] / "deadline.json").unlink()
    proc = start(session, "codex", "default", OPENAI_API_KEY=OPENAI_KEY,
                 FAKE_STREAM=str(STREAMS / "codex_invocation.jsonl"))
    assert proc.returncode == 2 and calls(session) == []
    assert "deadline.json does not exist" in proc.stderr
    assert any(e.type == "error" and "deadline" in e.text for e in events(session))


def test_claude_autoresearch_prepares_its_branch_and_results_log(session):
    ws = session["ws"]
    (ws / "train_gpt.py").write_text("print('train')\n")
    subprocess.run(["git", "-C", str(ws), "-c", "user.name=t", "-c", "user.email=t@t", "add", "train_gpt.py"],
                   check=True)
    subprocess.run(["git", "-C", str(ws), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "anchor"],
                   check=True)
    proc = start(session, "claude-autoresearch", "autoresearch", ANTHROPIC_API_KEY=ANTHROPIC_KEY,
                 FAKE_EXPIRE_AFTER="2", FAKE_STREAM=str(STREAMS / "claude_invocation.jsonl"))
    assert proc.returncode == 0, proc.stderr
    branch = subprocess.run(["git", "-c", "safe.directory=*", "-C", str(ws), "rev-parse", "--abbrev-ref", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    assert branch == "autoresearch/20261127T051200Z-test"
    assert (ws / "results.tsv").read_text() == "commit\tval_loss\ttrain_time_ms\tstatus\tdescription\n"
    status = subprocess.run(["git", "-c", "safe.directory=*", "-C", str(ws), "status", "--porcelain"], capture_output=True, text=True,
                            check=True).stdout
    assert "results.tsv" not in status  # kept out of git
    seen = calls(session)
    assert len(seen) == 2 and seen[1]["argv"][-2:] == ["--resume", "sess-1"]
    assert "# The research program" in seen[0]["stdin"] and "autoresearch/20261127T051200Z-test" in seen[0]["stdin"]
    assert seen[1]["stdin"].startswith("Continue the research loop")


def test_replay_agent_re_emits_its_sample(session):
    proc = start(session, "replay", "default", BENCHMARK_REPLAY_SPEED="1000")
    assert proc.returncode == 0, proc.stderr
    sample = (get_agent("replay").harness_dir / "sample_claude.jsonl").read_text().splitlines()
    written = (session["ws"] / "logs" / "events.jsonl").read_text().splitlines()
    assert written == [line for line in sample if line.strip()]
    assert proc.stdout.splitlines() == written
    evs = events(session)
    assert {e.source for e in evs} == {"claude"} and not any(e.malformed for e in evs)


def test_every_built_in_strategy_fits_the_harness_prompts(session):
    for name in ("default", "autoresearch"):
        strategy = load_strategy(BUILTIN_DIR / name, builtin=True)
        assert strategy.compose("first", {}).strip() and strategy.compose("resume", {}).strip()
