"""`nanogpt-tui submit` end to end: rules, judge (real SDK against a fake server), retiming, verdicts, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nanogpt_tui.cli import main
from nanogpt_tui.validator.verdict import load_verdicts
from tests.fakes.llm_server import FakeLLMServer, anthropic_tool_reply

# A minimal record: its "training" prints the speedrun's lines; each run may read its loss and time from env.
ANCHOR_CODE = '''\
import os
import sys
with open(sys.argv[0]) as f:
    code = f.read()
print(code)
print("=" * 100)
n = int(open(".count").read()) if os.path.exists(".count") else 0
open(".count", "w").write(str(n + 1))
loss = float(os.environ.get("FAKE_LOSS", "2.95")) + 0.001 * (n % 3)
time_ms = float(os.environ.get("FAKE_TIME_MS", "10000")) + 13 * (n % 4)
print(f"step:10/10 val_loss:{loss:.4f} train_time:{time_ms:.0f}ms step_avg:{time_ms / 10:.2f}ms")
'''
RUN_SH = "#!/usr/bin/env bash\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\npython3 train_gpt.py\n"


@pytest.fixture
def workspace(tmp_path, config_file, monkeypatch):
    """A session-like workspace: an anchor folder, submissions/, and the container environment."""
    anchor = tmp_path / "anchor"
    anchor.mkdir()
    (anchor / "train_gpt.py").write_text(ANCHOR_CODE)
    (anchor / "run.sh").write_text(RUN_SH)
    (anchor / "record.toml").write_text('name = "tiny"\nval_loss_target = 3.0\n')
    ws = tmp_path / "workspace"
    (ws / "submissions").mkdir(parents=True)
    (ws / "data").mkdir()
    monkeypatch.setenv("BENCHMARK_WORKSPACE", str(ws))
    monkeypatch.setenv("BENCHMARK_ANCHOR_DIR", str(anchor))
    monkeypatch.setenv("BENCHMARK_RUN_ID", "test-session")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL",
                "FAKE_LOSS", "FAKE_TIME_MS"):
        monkeypatch.delenv(key, raising=False)
    return ws


def submission(ws: Path, n: int, code: str = ANCHOR_CODE, run_sh: str = RUN_SH) -> Path:
    d = ws / "submissions" / f"submission_{n}"
    d.mkdir()
    (d / "train_gpt.py").write_text(code)
    (d / "run.sh").write_text(run_sh)
    return d


def verdict_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_baseline_then_a_faster_submission_is_a_new_best(workspace, capsys, monkeypatch):
    anchor = Path(str(workspace.parent / "anchor"))
    assert main(["submit", "--baseline", str(anchor), "--runs", "4", "--json"]) == 0
    base = verdict_json(capsys)
    assert base["kind"] == "baseline" and base["outcome"] == "baseline" and base["stats"]["n"] == 4
    # The anchor's own retiming is the reference, not progress: no speedup, no % of human progress.
    assert base["speedup"]["seconds_faster"] is None and base["speedup"]["percent_of_human_progress"] is None

    monkeypatch.setenv("FAKE_TIME_MS", "9000")
    sub = submission(workspace, 1)
    assert main(["submit", str(sub), "--runs", "4", "--judge", "none", "--json"]) == 0
    v = verdict_json(capsys)
    assert v["outcome"] == "validated" and v["counts"] and v["new_best"]
    assert v["judge"]["status"] == "skipped" and v["static"]["ok"] is True
    assert v["stats"]["faster"]["baseline"] == "anchor (retimed here)" and v["stats"]["faster"]["method"] == "welch"
    assert v["speedup"]["seconds_faster"] == pytest.approx(1.0, abs=0.05)
    assert v["speedup"]["basis"] == "anchor retimed on this hardware"
    assert v["stats"]["p_value"] < 0.01 and len(v["runs"]) == 4
    assert v["code_sha256"].keys() == {"train_gpt.py", "run.sh"}

    # A second submission no faster than the first counts but is not a new best (compared with submission_1).
    sub2 = submission(workspace, 2)
    assert main(["submit", str(sub2), "--runs", "4", "--judge", "none", "--json"]) == 0
    v2 = verdict_json(capsys)
    assert v2["counts"] and not v2["new_best"] and v2["stats"]["faster"]["baseline"] == "submission_1"
    verdicts, problems = load_verdicts(workspace / "verdicts")
    assert [v.kind for v in verdicts] == ["baseline", "submission", "submission"] and not problems
    assert (workspace / "verdicts" / v2["verdict_id"] / "run_01.log").is_file()


def test_a_static_violation_rejects_without_spending_runs(workspace, capsys):
    sub = submission(workspace, 1, run_sh=RUN_SH.replace("python3 train_gpt.py", "pip install flash-attn\npython3 train_gpt.py"))
    assert main(["submit", str(sub), "--runs", "3", "--judge", "none", "--json"]) == 1
    v = verdict_json(capsys)
    assert v["outcome"] == "rejected" and not v["counts"] and v["runs"] == []
    assert [x["rule"] for x in v["static"]["violations"]] == ["run-deps"]
    assert "static rule violation" in v["reasons"][0]


def test_no_key_means_not_validated_and_says_so(workspace, capsys):
    sub = submission(workspace, 1)
    assert main(["submit", str(sub), "--runs", "3", "--judge", "anthropic", "--json"]) == 1
    v = verdict_json(capsys)
    assert v["outcome"] == "not-validated" and v["judge"]["status"] == "unavailable"
    assert "ANTHROPIC_API_KEY" in v["reasons"][0] and v["runs"] == []


def test_the_judge_flagging_cheating_rejects(workspace, capsys, monkeypatch):
    sub = submission(workspace, 1)
    with FakeLLMServer() as server:
        server.reply(anthropic_tool_reply({"cheating": True, "confidence": 0.9,
                                           "reasons": [{"file": "train_gpt.py", "reason": "Caches the val loss."}],
                                           "summary": "The loss is read from a cache."}))
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-" "test-key-0123456789abcdefghij")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        assert main(["submit", str(sub), "--runs", "3", "--judge", "anthropic", "--json"]) == 1
    out = capsys.readouterr()
    v = json.loads(out.out)
    assert v["outcome"] == "rejected" and v["judge"]["cheating"] is True and v["judge"]["usage"]["input_tokens"] > 0
    assert "sk-ant-" "test-key" not in out.out + out.err
    assert "sk-ant-" "test-key" not in "".join(p.read_text() for p in (workspace / "verdicts").rglob("*.json"))


def test_the_judge_clearing_and_runs_validating(workspace, capsys, monkeypatch):
    sub = submission(workspace, 1)
    with FakeLLMServer() as server:
        server.reply(anthropic_tool_reply({"cheating": False, "confidence": 0.85, "reasons": [],
                                           "summary": "Same measurement as the anchor."}))
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-" "test-key-0123456789abcdefghij")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        assert main(["submit", str(sub), "--runs", "3", "--judge", "anthropic"]) == 0
    out = capsys.readouterr().out
    assert "judge: cleared" in out and "verdict: VALIDATED" in out and "run 3/3" in out


def test_a_crashing_run_fails_the_submission(workspace, capsys):
    sub = submission(workspace, 1, code=ANCHOR_CODE.replace("print(f\"step", "raise SystemExit(7)\nprint(f\"step"))
    assert main(["submit", str(sub), "--runs", "3", "--judge", "none", "--json"]) == 1
    v = verdict_json(capsys)
    assert v["outcome"] == "failed" and len(v["runs"]) == 1 and v["runs"][0]["status"] == "crashed"
    assert v["early_stop"]["stopped"] and "every run must finish" in v["reasons"][0]


def test_loss_above_target_is_not_significant(workspace, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_LOSS", "2.999")
    sub = submission(workspace, 1)
    assert main(["submit", str(sub), "--runs", "3", "--judge", "none", "--json"]) == 1
    v = verdict_json(capsys)
    assert v["outcome"] == "not-significant" and v["stats"]["p_value"] > 0.01


def test_bad_input(workspace, capsys, tmp_path):
    assert main(["submit", str(tmp_path / "nope"), "--judge", "none"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    empty = workspace / "submissions" / "submission_9"
    empty.mkdir()
    assert main(["submit", str(empty), "--judge", "none"]) == 2
    assert "must hold train_gpt.py and run.sh" in capsys.readouterr().err
    sub = submission(workspace, 1)
    assert main(["submit", str(sub), "--runs", "1", "--judge", "none"]) == 2
    assert "at least 2" in capsys.readouterr().err


def test_stats_cli_on_logs(tmp_path, capsys, config_file):
    from scipy import stats as sps

    losses = [3.2771, 3.2779, 3.2765, 3.2790]
    times = [98031, 98210, 97950, 98400]
    paths = []
    for i, (loss, t) in enumerate(zip(losses, times)):
        p = tmp_path / f"run{i}.txt"
        p.write_text("code = 1\n" + "=" * 100 + f"\nstep:1600/1600 val_loss:{loss:.4f} train_time:{t}ms step_avg:61ms\n")
        paths.append(str(p))
    assert main(["stats", "--json", *paths]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 4 and out["mean_train_time_ms"] == pytest.approx(sum(times) / 4)
    assert out["p_value"] == pytest.approx(sps.ttest_1samp(losses, 3.28, alternative="less").pvalue)
    bad = tmp_path / "bad.txt"
    bad.write_text("nothing\n")
    assert main(["stats", *paths, str(bad)]) == 2
    assert "did not finish" in capsys.readouterr().err


def test_submit_appends_its_events_to_the_session_stream(workspace, capsys, monkeypatch):
    events = workspace / "logs" / "events.jsonl"
    events.parent.mkdir(parents=True)
    monkeypatch.setenv("BENCHMARK_EVENTS_PATH", str(events))
    sub = submission(workspace, 1)
    assert main(["submit", str(sub), "--runs", "3", "--judge", "none", "--json"]) == 0
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["type"] for e in lines] == ["submission_started", "verdict"]
    assert lines[1]["outcome"] == "validated" and lines[1]["counts"] is True and lines[1]["nanogpt_tui_event"] == 1
