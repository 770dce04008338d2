"""Retiming with canned run scripts: finished runs, crashes, missing lines, timeouts, early stops, secrets."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from pathlib import Path

import pytest

from nanogpt_tui.contract.deadline import write_deadline
from nanogpt_tui.validator.retime import SessionClock, retime, visible_gpu_count
from nanogpt_tui.validator.verdict import Verdict, read_verdict, write_verdict

# Each run bumps a counter in its working folder, so a script can behave differently per run.
PRELUDE = 'n=$(( $(cat .count 2>/dev/null || echo 0) + 1 )); echo $n > .count\n'


def candidate(tmp_path: Path, body: str) -> Path:
    d = tmp_path / "submission_1"
    d.mkdir()
    (d / "train_gpt.py").write_text("print('code')\n")
    (d / "run.sh").write_text("set -e\n" + PRELUDE + body)
    return d


def do_retime(tmp_path, cand, runs=3, timeout_s=30.0, env=None, data_dir=None):
    lines = []
    result = retime(cand, runs=runs, work_dir=tmp_path / "work", logs_dir=tmp_path / "logs", data_dir=data_dir,
                    val_loss_target=3.28, p_value_threshold=0.01, timeout_s=timeout_s,
                    env=env or {"PATH": "/usr/bin:/bin"}, on_progress=lines.append)
    return result, lines


def test_three_good_runs(tmp_path):
    cand = candidate(tmp_path, 'echo "code"; echo "' + "=" * 100 + '"\n'
                               'echo "step:10/10 val_loss:3.27$n train_time:100${n}ms step_avg:10ms"\n')
    result, lines = do_retime(tmp_path, cand)
    assert [r.status for r in result.runs] == ["ok"] * 3 and not result.stopped_early
    assert [r.val_loss for r in result.runs] == [3.271, 3.272, 3.273]
    assert [r.train_time_ms for r in result.runs] == [1001.0, 1002.0, 1003.0]
    assert lines[0].startswith("run 1/3: val_loss 3.2710  train_time 1.001 s")
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["run_01.log", "run_02.log", "run_03.log"]
    # The submission folder is untouched (runs happen in a scratch copy, removed afterwards).
    assert not (cand / ".count").exists() and not (tmp_path / "work").exists()


def test_a_crash_is_reported_and_stops_the_rest(tmp_path):
    cand = candidate(tmp_path, 'if [ $n -eq 2 ]; then echo "CUDA error: out of memory"; exit 3; fi\n'
                               'echo "step:10/10 val_loss:3.2700 train_time:1000ms step_avg:10ms"\n')
    result, lines = do_retime(tmp_path, cand, runs=5)
    assert [r.status for r in result.runs] == ["ok", "crashed"]
    assert result.runs[1].exit_code == 3 and result.stopped_early
    assert "run 2 exited with status 3" in result.stop_reason and "remaining 3 run(s) were skipped" in result.stop_reason
    assert "FAILED (crashed)" in lines[1]
    assert "out of memory" in (tmp_path / "logs" / "run_02.log").read_text()


def test_a_run_without_a_final_line_is_a_failure(tmp_path):
    cand = candidate(tmp_path, 'echo "step:5/10 val_loss:3.5000 train_time:500ms step_avg:100ms"\n')
    result, _ = do_retime(tmp_path, cand, runs=2)
    assert result.runs[0].status == "no-final-line" and result.runs[0].exit_code == 0
    assert result.runs[0].error == "run 1 stopped at step 5 of 10"


def test_a_run_past_its_limit_is_stopped(tmp_path):
    cand = candidate(tmp_path, "sleep 30\n")
    result, _ = do_retime(tmp_path, cand, runs=2, timeout_s=1.0)
    assert result.runs[0].status == "timeout" and result.runs[0].wall_s < 15
    assert "passed its 1 s limit" in result.runs[0].error


def set_deadline(control: Path, seconds_from_now: float) -> None:
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds_from_now)
    write_deadline(control, when, gpus=1, budget_gpu_hours=1.0)


def test_the_sessions_deadline_cuts_the_retiming(tmp_path):
    # The agent (and its watchdog) is paused while the validator retimes: the retiming itself ends before the
    # deadline, cutting the run under way and skipping the rest.
    control = tmp_path / "control"
    set_deadline(control, 4.0)
    cand = candidate(tmp_path, 'sleep 20\necho "step:10/10 val_loss:3.2700 train_time:1000ms step_avg:10ms"\n')
    started = time.monotonic()
    result = retime(cand, runs=3, work_dir=tmp_path / "work", logs_dir=tmp_path / "logs", data_dir=None,
                    val_loss_target=3.28, p_value_threshold=0.01, timeout_s=60.0, env={"PATH": "/usr/bin:/bin"},
                    clock=SessionClock(control, margin_s=1.0))
    elapsed = time.monotonic() - started
    assert 2.0 < elapsed < 8.0
    assert [r.status for r in result.runs] == ["timeout"]
    assert "stopped at the session's deadline" in result.runs[0].error
    assert result.stopped_early and "remaining 2 run(s) were skipped" in result.stop_reason


def test_a_deadline_already_past_skips_every_run_and_an_extend_during_the_retiming_counts(tmp_path):
    control = tmp_path / "control"
    set_deadline(control, -10.0)
    cand = candidate(tmp_path, 'sleep 3\necho "step:10/10 val_loss:3.27$n train_time:1000ms step_avg:10ms"\n')
    result = retime(cand, runs=2, work_dir=tmp_path / "work", logs_dir=tmp_path / "logs", data_dir=None,
                    val_loss_target=3.28, p_value_threshold=0.5, timeout_s=60.0, env={"PATH": "/usr/bin:/bin"},
                    clock=SessionClock(control, margin_s=1.0))
    assert result.runs == [] and "deadline came after 0 of 2 run(s)" in result.stop_reason
    # A deadline 2.5 s away would cut the first run; the user extends it while the run goes on.
    set_deadline(control, 2.5)
    extender = threading.Timer(0.5, set_deadline, (control, 120.0))
    extender.start()
    try:
        result = retime(cand, runs=2, work_dir=tmp_path / "work2", logs_dir=tmp_path / "logs2", data_dir=None,
                        val_loss_target=3.28, p_value_threshold=0.5, timeout_s=60.0, env={"PATH": "/usr/bin:/bin"},
                        clock=SessionClock(control, margin_s=1.0))
    finally:
        extender.join()
    assert [r.status for r in result.runs] == ["ok", "ok"], result.stop_reason


def test_hopeless_runs_stop_early_with_the_reason(tmp_path):
    cand = candidate(tmp_path, 'echo "step:10/10 val_loss:3.40$n train_time:1000ms step_avg:10ms"\n')
    result, _ = do_retime(tmp_path, cand, runs=10)
    assert result.stopped_early and len(result.runs) < 10
    assert "even the most favourable val_loss values" in result.stop_reason


def test_secrets_never_reach_candidate_code(tmp_path):
    cand = candidate(tmp_path, 'echo "key=${ANTHROPIC_API_KEY:-none} ${OPENAI_API_KEY:-none} $HOME"\n'
                               'echo "step:10/10 val_loss:3.2700 train_time:1000ms step_avg:10ms"\n')
    env = {"PATH": "/usr/bin:/bin", "HOME": "/home/agent", "ANTHROPIC_API_KEY": "sk-ant-" "secret-value",
           "OPENAI_API_KEY": "sk-" "openai-secret"}
    do_retime(tmp_path, cand, runs=2, env=env)
    log = (tmp_path / "logs" / "run_01.log").read_text()
    assert "secret" not in log and "key=none none /home/agent" in log


def test_data_is_linked_in(tmp_path):
    data = tmp_path / "shared-data"
    (data / "fineweb10B").mkdir(parents=True)
    (data / "fineweb10B" / "fineweb_val_000000.bin").write_bytes(b"x")
    cand = candidate(tmp_path, 'test -f data/fineweb10B/fineweb_val_000000.bin\n'
                               'echo "step:10/10 val_loss:3.2700 train_time:1000ms step_avg:10ms"\n')
    result, _ = do_retime(tmp_path, cand, runs=2, data_dir=data)
    assert all(r.ok for r in result.runs)


def test_visible_gpu_count():
    assert visible_gpu_count({"CUDA_VISIBLE_DEVICES": "0,1,2,3"}) == 4
    assert visible_gpu_count({"NVIDIA_VISIBLE_DEVICES": "2,5"}) == 2
    assert visible_gpu_count({"CUDA_VISIBLE_DEVICES": ""}) == 0


def test_verdict_json_round_trip(tmp_path):
    cand = candidate(tmp_path, 'echo "step:10/10 val_loss:3.27$n train_time:100${n}ms step_avg:10ms"\n')
    result, _ = do_retime(tmp_path, cand, runs=2)
    verdict = Verdict(submission="submission_1", submission_dir=str(cand), verdict_id="submission_1__x",
                      kind="submission", session_id="s1", anchor="smoke", target=None, started_at="2026-11-27T00:00Z",
                      runs=result.runs, runs_requested=2, stats={"p_value": float("nan"), "n": 2},
                      outcome="validated", valid=True, significant=True, comparable=True)
    path = write_verdict(tmp_path / "verdicts", verdict)
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1 and data["stats"]["p_value"] is None and data["counts"] is True
    again = read_verdict(path)
    assert again.runs == verdict.runs and again.outcome == "validated" and again.counts
    assert again.to_dict() == data


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not readable JSON"),
        ('{"schema_version": 99}', "has a bad field: `schema_version` is 99; this version reads 1"),
        ('{"schema_version": 1, "submission": "s"}', "has a bad field: `submission_dir` is missing"),
        ("[1, 2]", "has a bad field: `(top level)` is list, not a JSON object"),
    ],
)
def test_malformed_verdicts_are_clear_errors(tmp_path, content, message):
    from nanogpt_tui.errors import UserError

    path = tmp_path / "v.json"
    path.write_text(content)
    with pytest.raises(UserError, match=re.escape(message)):
        read_verdict(path)
