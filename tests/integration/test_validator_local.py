"""The submit protocol end to end on the local backend (a separate validator process; not tamper-proof there, but
the same protocol the Docker backend runs): the agent's `submit` asks, blocks and prints the verdict; the validator
freezes, pauses the agent around the retiming, streams progress and writes sealed verdicts; the control room and
the report take the best score only from those, never from a verdict the agent wrote into its workspace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nanogpt_tui.config import load_config
from nanogpt_tui.tui.data.dashboard import Dashboard
from nanogpt_tui.reports.session import load_session_data
from nanogpt_tui.contract import layout as L
from nanogpt_tui.contract.env import ENV_REPLAY_LOOP, ENV_REPLAY_SPEED
from nanogpt_tui.sessions import validation
from nanogpt_tui.sessions.manager import LaunchRequest, SessionManager
from nanogpt_tui.telemetry.activity import read_activity
from nanogpt_tui.validator import protocol as P
from tests.conftest import REPO
from tests.unit.test_verdict_protocol import FORGED

pytestmark = [pytest.mark.timeout(300)]

REPLAY_ENV = ((ENV_REPLAY_SPEED, "50"), (ENV_REPLAY_LOOP, "1"))


def local_manager(tmp_path: Path, monkeypatch) -> SessionManager:
    """A sessions folder of the test's own, the smoke record as anchor, no judge."""
    (tmp_path / "human_baselines").mkdir()
    shutil.copy(REPO / "human_baselines" / "records.tsv", tmp_path / "human_baselines" / "records.tsv")
    shutil.copytree(REPO / "human_baselines" / "smoke", tmp_path / "human_baselines" / "smoke",
                    ignore=shutil.ignore_patterns("data", "logs"))
    config_path = tmp_path / "nanogpt-tui.toml"
    config_path.write_text('schema_version = 1\n[paths]\nbaselines_dir = "human_baselines"\nsessions_dir = '
                           '"sessions"\n[judge]\nprovider = "none"\n')
    monkeypatch.setenv("NANOGPT_TUI_CONFIG", str(config_path))
    return SessionManager(load_config(config_path))


def verdict_outcome(vdir: Path, response: dict) -> str:
    return json.loads((vdir / P.VERDICTS / response["verdict_file"]).read_text())["outcome"]


def test_submit_is_a_request_answered_by_the_validator_apart_from_the_agent(tmp_path, monkeypatch):
    manager = local_manager(tmp_path, monkeypatch)
    # A live session (a replayed agent stream) whose agent submits, as an agent does, from inside: the contract's
    # environment, a folder under submissions/, `submit` on the command line.
    session = manager.launch(LaunchRequest(agent="replay", anchor="smoke", backend="local", gpus=1,
                                           budget_gpu_hours=300 / 3600, extra_env=REPLAY_ENV))
    d = manager.session_dir(session.id)
    sub = d / L.WORKSPACE / "submissions" / "submission_1"
    sub.mkdir(parents=True)
    for name in ("run.sh", "train_gpt.py"):
        text = (d / L.RUNNER / "anchor" / name).read_text()
        (sub / name).write_text(text.replace("num_iterations = 200", "num_iterations = 40"))
    env = {**os.environ, **manager._launch_spec(manager.get(session.id), manager.backend(session.backend)).env}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    done = subprocess.run([sys.executable, "-m", "nanogpt_tui", "submit", "submissions/submission_1", "--runs", "2",
                           "--judge", "anthropic"], cwd=d / L.WORKSPACE, env=env, capture_output=True, text=True,
                          timeout=300)
    out = done.stdout + done.stderr
    assert "submitted submission_1 to the validator" in out and "note: --judge is set by the validator" in out
    assert "run 1/2:" in out  # the validator's progress, printed as it came
    vdir = d / L.VALIDATOR
    responses = vdir / P.RESPONSES
    [response] = [json.loads(p.read_text()) for p in responses.glob("*.json")]
    assert response["status"] == "verdict" and response["verdict_file"]
    verdict_path = vdir / P.VERDICTS / response["verdict_file"]
    assert f"verdict written to {verdict_path}" in out and done.returncode == response["exit_code"]
    assert verdict_path.is_file() and (vdir / P.VERDICTS / (response["verdict_file"] + P.SEAL_SUFFIX)).is_file()
    # Nothing was written where the agent can write verdicts.
    assert not list((d / L.WORKSPACE / "verdicts").glob("*.json"))
    # The validator streamed its progress, paused the agent only around the retiming, and said so.
    events = [json.loads(line) for line in (vdir / P.PROGRESS_FILE).read_text().splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "received" and kinds[1] == "frozen" and kinds[-1] == "verdict"
    assert kinds.index("paused") < kinds.index("resumed")
    texts = [e["text"] for e in events]
    assert any(t.startswith("run 1/2:") for t in texts)
    # The control room's and `sessions list`'s activity: the validator's last word on the submission.
    activity = read_activity(d)
    assert activity.kind == "verdict" and activity.text == f"submission_1: {verdict_outcome(vdir, response)}"
    # The judge came from the session's config (none), not from the agent's --judge.
    verdict = json.loads(verdict_path.read_text())
    assert verdict["judge"]["status"] == "skipped" and verdict["request_id"] == response["request_id"]

    # The agent forges the verdict in its workspace: ignored and flagged by the control room and report.
    (d / L.WORKSPACE / "verdicts" / "submission_1__forged.json").write_text(json.dumps(FORGED))
    trusted = P.trusted_verdicts(d)
    assert [v.verdict_id for v in trusted.verdicts] == [verdict_path.stem]
    view = Dashboard(manager.root).load(session.id)
    assert [r.verdict.verdict_id for r in view.verdicts] == [verdict_path.stem]
    data = load_session_data(d, None)
    assert [v.verdict_id for v in data.verdicts] == [verdict_path.stem]
    assert any("verdict-like file in the workspace" in p for p in data.problems)
    assert data.final_seconds_faster != 50
    manager.kill(session.id)
    manager.close()


def _tree_pids(pid: int) -> set[int]:
    from nanogpt_tui import procgroup

    return {pid, *procgroup.descendants(pid)}


def test_killing_a_session_mid_retiming_stops_its_validator_and_the_training_run(tmp_path, monkeypatch):
    manager = local_manager(tmp_path, monkeypatch)
    session = manager.launch(LaunchRequest(agent="replay", anchor="smoke", backend="local", gpus=1,
                                           budget_gpu_hours=600 / 3600, extra_env=REPLAY_ENV))
    d = manager.session_dir(session.id)
    sub = d / L.WORKSPACE / "submissions" / "slow"
    sub.mkdir(parents=True)
    # A training run that outlives the test unless the kill stops it.
    (sub / "run.sh").write_text((d / L.RUNNER / "anchor" / "run.sh").read_text())
    code = (d / L.RUNNER / "anchor" / "train_gpt.py").read_text()
    assert "num_iterations = 200" in code
    (sub / "train_gpt.py").write_text(code.replace("num_iterations = 200", "num_iterations = 2000000"))
    env = {**os.environ, **manager._launch_spec(manager.get(session.id), manager.backend(session.backend)).env}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    submit = subprocess.Popen([sys.executable, "-m", "nanogpt_tui", "submit", "submissions/slow", "--runs", "2"],
                              cwd=d / L.WORKSPACE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        progress = d / L.VALIDATOR / P.PROGRESS_FILE
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if progress.is_file() and '"type": "paused"' in progress.read_text():
                break
            time.sleep(0.2)
        else:
            pytest.fail("the validator never paused the agent for the retiming")
        service = json.loads((d / L.VALIDATOR / P.SERVICE_FILE).read_text())
        assert service.get("serving") is True and not validation.service_starting(d)  # it serves (past its start)
        while time.monotonic() < deadline:  # the worker starts the training run
            tree = _tree_pids(int(service["pid"]))
            if any("train_gpt.py" in _cmdline(pid) for pid in tree):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"no training run under the validator: {[_cmdline(p) for p in tree]}")
        assert manager.kill(session.id).status == "killed"
        left = {pid for pid in tree if _alive(pid)}
        assert not left, [_cmdline(p) for p in left]
        assert not validation.service_alive(d)
    finally:
        submit.kill()
        submit.wait()
        manager.close()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
