"""The scripted agent: its plan edits, and a real local session on the smoke record that submits, discards and stops."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nanogpt_tui.agents import scripted
from nanogpt_tui.agents.scripted import Experiment, PlanError, apply_edit, plan_from_dict
from nanogpt_tui.code_edits import EditError, replace_exactly_once, set_hyperparameters

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "human_baselines" / "smoke"
HARNESS = REPO / "nanogpt_tui" / "agents" / "harnesses" / "scripted"
EVENT_TYPES = {"session_start", "message", "reasoning", "tool_call", "tool_result", "submission_started", "verdict",
               "error", "usage", "result"}

HYPER = '''\
from dataclasses import dataclass

@dataclass
class Hyperparameters:
    train_batch_size = 16 * 128  # tokens per step
    num_iterations = 200  # fixed, never stop on time or loss
    lr: float = 0.01
    name = "anchor"  # café: a non-ASCII comment before nothing that matters
    use_thing = False

num_iterations = 999  # not a field: must stay
'''


# ---------------------------------------------------------------------------------------------- the edits

def test_set_replaces_only_the_value_of_each_field():
    new, changes = set_hyperparameters(HYPER, {"num_iterations": 150, "lr": 0.003, "train_batch_size": 1024,
                                               "name": "x", "use_thing": True})
    assert "    num_iterations = 150  # fixed, never stop on time or loss\n" in new
    assert "    lr: float = 0.003\n" in new
    assert "    train_batch_size = 1024  # tokens per step\n" in new
    assert "    name = 'x'  # café" in new and "    use_thing = True\n" in new
    assert "num_iterations = 999  # not a field: must stay" in new
    assert changes[0] == "train_batch_size: 16 * 128 -> 1024 (line 5)"
    assert "num_iterations: 200 -> 150 (line 6)" in changes
    # Only those lines changed.
    assert sum(a != b for a, b in zip(HYPER.splitlines(), new.splitlines())) == 5


def test_set_an_unknown_field_fails_cleanly():
    with pytest.raises(EditError, match="has no field 'steps'.*num_iterations"):
        set_hyperparameters(HYPER, {"steps": 10})
    with pytest.raises(EditError, match="no class Hyperparameters"):
        set_hyperparameters("x = 1\n", {"lr": 1.0})


def test_replace_must_match_exactly_once():
    assert replace_exactly_once("a = 1\nb = 2\n", "b = 2", "b = 3") == "a = 1\nb = 3\n"
    with pytest.raises(EditError, match="occurs 0 times"):
        replace_exactly_once("a = 1\n", "b = 2", "b = 3")
    with pytest.raises(EditError, match="occurs 2 times"):
        replace_exactly_once("a = 1\na = 1\n", "a = 1", "a = 2")


def test_apply_edit_replaces_then_sets_and_refuses_code_that_does_not_parse():
    exp = Experiment(name="e", kind="algorithmic", set={"num_iterations": 150},
                     replace=(("    use_thing = False\n", "    use_thing = True\n"),))
    new, changes = apply_edit(HYPER, exp)
    assert "use_thing = True" in new and "num_iterations = 150" in new and len(changes) == 2
    broken = Experiment(name="b", kind="algorithmic", replace=(("lr: float = 0.01", "lr: float = ("),))
    with pytest.raises(EditError, match="does not parse"):
        apply_edit(HYPER, broken)


def test_a_crash_is_summarised_by_its_exception():
    output = ("step:1/150 train_time:5ms\n[rank0]: Traceback (most recent call last):\n"
              "[rank0]: TypeError: lerp_() received an invalid combination of arguments\n"
              "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n")
    assert scripted.crash_summary(output) == "TypeError: lerp_() received an invalid combination of arguments"
    assert scripted.crash_summary("Killed\n") == "Killed"


def test_plan_validation_names_the_problem():
    good = {"experiment": [{"name": "a", "kind": "hyperparameter", "set": {"lr": 0.1}}]}
    assert plan_from_dict(good).experiments[0].set == {"lr": 0.1}
    cases = [
        ({"experiment": [{"name": "a", "kind": "magic", "set": {"lr": 0.1}}]}, "kind must be one of"),
        ({"experiment": [{"name": "a", "kind": "hyperparameter"}]}, "changes nothing"),
        ({"experiment": [{"name": "a b", "kind": "hyperparameter", "set": {"lr": 1}}]}, "needs a name"),
        ({"experiment": [{"name": "a", "kind": "algorithmic", "replace": {"old": "", "new": "x"}}]}, "non-empty"),
        ({"experiment": [good["experiment"][0], good["experiment"][0]]}, "is taken"),
        ({**good, "runs": 1}, "at least 2"),
    ]
    for data, message in cases:
        with pytest.raises(PlanError, match=message):
            plan_from_dict(data)


def test_the_default_plan_makes_legitimate_candidates_of_the_smoke_record(tmp_path):
    """Applied one after another (each experiment starts from the previous best), every candidate of the default
    plan passes the static rules against the smoke record: the scripted agent only makes legitimate submissions."""
    from nanogpt_tui.validator.rules import check_rules

    plan = scripted.load_plan(scripted.DEFAULT_PLAN)
    assert [e.kind for e in plan.experiments] == ["hyperparameter", "hyperparameter", "algorithmic"]
    source = (SMOKE / "train_gpt.py").read_text(encoding="utf-8")
    kept = source
    for experiment in plan.experiments:
        candidate = tmp_path / experiment.name
        candidate.mkdir()
        code, _ = apply_edit(kept, experiment)
        (candidate / "train_gpt.py").write_text(code, encoding="utf-8")
        shutil.copy(SMOKE / "run.sh", candidate / "run.sh")
        report = check_rules(SMOKE, candidate)
        assert report.ok, (experiment.name, report.to_dict())
        if experiment.name != "halve-steps":  # the one the plan expects to discard
            kept = code



def test_the_demo_plan_makes_legitimate_candidates_of_the_demo_anchor(tmp_path):
    """The demo's plan (harnesses/scripted/demo.toml) on the demo's anchor, one of our own smoke records written from
    our_records.toml: every candidate passes the static rules, and a bare plan name names the harness's own plan."""
    from nanogpt_tui.demo import DEMO_ANCHOR, DEMO_PLAN
    from nanogpt_tui.records import ensure_record_code, load_timeline
    from nanogpt_tui.validator.rules import check_rules
    from tests.conftest import smoke_baselines

    baselines = smoke_baselines(tmp_path / "baselines")
    anchor, _ = ensure_record_code(load_timeline(baselines), DEMO_ANCHOR, baselines)
    path = scripted.resolve_plan_path(None, {"BENCHMARK_SCRIPTED_PLAN": DEMO_PLAN}, tmp_path / "harness")
    assert path == tmp_path / "harness" / DEMO_PLAN
    plan = scripted.load_plan(scripted.DEFAULT_PLAN.parent / DEMO_PLAN)
    kept = (anchor / "train_gpt.py").read_text(encoding="utf-8")
    for experiment in plan.experiments:
        candidate = tmp_path / experiment.name
        candidate.mkdir()
        code, _ = apply_edit(kept, experiment)
        (candidate / "train_gpt.py").write_text(code, encoding="utf-8")
        shutil.copy(anchor / "run.sh", candidate / "run.sh")
        report = check_rules(anchor, candidate)
        assert report.ok, (experiment.name, report.to_dict())
        if experiment.name == "one-block":  # the one the plan keeps first
            kept = code


# ------------------------------------------------------------------------------------------- a real session

def _session(tmp_path: Path, plan_text: str, deadline_in_s: float) -> tuple[Path, dict[str, str]]:
    """A workspace laid out the way a session makes it, and the contract's environment for it."""
    from nanogpt_tui.shards import synthesize

    ws, runner, control = tmp_path / "workspace", tmp_path / "runner", tmp_path / "control"
    for d in (ws, runner / "anchor", control):
        d.mkdir(parents=True)
    for name in ("train_gpt.py", "run.sh", "record.toml"):
        shutil.copy(SMOKE / name, ws / name)
        shutil.copy(SMOKE / name, runner / "anchor" / name)
    shutil.copytree(HARNESS, runner / "agent")
    for d in ("experiments", "submissions", "verdicts", "logs", "home"):
        (ws / d).mkdir()
    (ws / ".gitignore").write_text("/data\n/logs/\n/verdicts/.work/\n__pycache__/\n")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=ws, check=True)
    subprocess.run(["git", "add", "-A"], cwd=ws, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "anchor: smoke"], cwd=ws, check=True)
    synthesize(ws / "data" / "fineweb10B")
    write_deadline(control, time.time() + deadline_in_s)
    plan = tmp_path / "plan.toml"
    plan.write_text(plan_text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not any(s in k for s in ("API_KEY", "_TOKEN", "SECRET"))}
    env.pop("SEED", None)
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # python3 and torchrun
        "BENCHMARK_WORKSPACE": str(ws), "BENCHMARK_RUN_ID": "test-scripted", "BENCHMARK_AGENT": "scripted",
        "BENCHMARK_SUBMISSION_DIR": str(ws / "submissions"), "BENCHMARK_EVENTS_PATH": str(ws / "logs" / "events.jsonl"),
        "BENCHMARK_LOG_DIR": str(ws / "logs"), "BENCHMARK_TRACE_DIR": str(ws / "logs" / "traces"),
        "BENCHMARK_RUNNER_DIR": str(runner), "BENCHMARK_CONTROL_DIR": str(control),
        "BENCHMARK_ANCHOR": "smoke", "BENCHMARK_ANCHOR_DIR": str(runner / "anchor"), "HOME": str(ws / "home"),
        "BENCHMARK_SCRIPTED_PLAN": str(plan), "PYTHONPATH": str(REPO),
    })
    return ws, env


def write_deadline(control: Path, epoch: float) -> None:
    import datetime as dt

    stamp = dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds")
    tmp = control / ".deadline.json.tmp"
    tmp.write_text(json.dumps({"deadline": stamp.replace("+00:00", "Z"), "deadline_epoch": epoch, "grace_s": 30}))
    os.replace(tmp, control / "deadline.json")  # atomically, as the host does


def _start(ws: Path, env: dict[str, str]) -> subprocess.Popen:
    # Its own process group, as the session runner starts it.
    return subprocess.Popen(["bash", str(Path(env["BENCHMARK_RUNNER_DIR"]) / "agent" / "run.sh")], cwd=ws, env=env,
                            stdout=open(ws.parent / "agent.out", "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _events(ws: Path) -> list[dict]:
    path = ws / "logs" / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _processes_under(folder: Path) -> list[str]:
    """Processes still running with their working directory inside `folder` (leftover runs)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cwd = os.readlink(proc / "cwd")
            except OSError:
                continue
            if cwd.startswith(str(folder)):
                found.append(f"{proc.name} {cwd}")
    return found


def _output(ws: Path) -> str:
    return (ws.parent / "agent.out").read_text(encoding="utf-8", errors="replace")[-4000:]


def _session_plan() -> str:
    """One discard (misses the target), one crash (a half-done edit), one keep (MLP-only blocks, fewer steps: fast
    to retime), and one experiment the deadline cuts short. The default plan's own drop-attention edit is reused."""
    default = scripted.load_plan(scripted.DEFAULT_PLAN)
    [(old, new)] = next(e for e in default.experiments if e.name == "drop-attention").replace
    return f'''\
name = "test"
description = "A short plan for the end-to-end test."
runs = 5
run_timeout_s = 240
baseline = false

[[experiment]]
name = "halve-steps"
kind = "hyperparameter"
set = {{ num_iterations = 100 }}

[[experiment]]
name = "attention-off"
kind = "algorithmic"
why = "Skip attention in the forward pass only (its weights stay, get no gradient, and the optimizer trips)."
replace = {{ old = "        x = x + self.attn(norm(x))\\n", new = "" }}

[[experiment]]
name = "mlp-only"
kind = "algorithmic"
why = "The data is order-1 Markov: attention has nothing to find. Drop it, and take 150 steps."
set = {{ num_iterations = 150 }}
replace = {{ old = {json.dumps(old)}, new = {json.dumps(new)} }}

[[experiment]]
name = "never-finishes"
kind = "hyperparameter"
set = {{ lr = 0.02 }}
'''


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_scripted_agent_submits_discards_and_stops_at_the_deadline(tmp_path):
    ws, env = _session(tmp_path, _session_plan(), deadline_in_s=600)
    env["BENCHMARK_SCRIPTED_RUNS"] = "3"  # overrides the plan's 5
    started = time.monotonic()
    proc = _start(ws, env)
    try:
        # Wait for the first verdict, then move the deadline to just ahead, as `extend` (backwards) would:
        # the agent must re-read it and stop by itself in the middle of its third experiment.
        verdict_path = None
        while verdict_path is None:
            assert proc.poll() is None, _output(ws)
            assert time.monotonic() - started < 360, "no verdict after 6 minutes:\n" + _output(ws)
            verdicts = [e for e in _events(ws) if e["type"] == "verdict"]
            verdict_path = verdicts[0]["verdict_path"] if verdicts else None
            time.sleep(0.5)
        time.sleep(2)  # the third experiment's run is under way
        deadline = time.time() + 3
        write_deadline(Path(env["BENCHMARK_CONTROL_DIR"]), deadline)
        code = proc.wait(timeout=60)
        stopped_after_s = time.time() - deadline
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    total_s = time.monotonic() - started
    print(f"session took {total_s:.0f} s; stopped {stopped_after_s:.1f} s after the deadline")
    assert code == 0, _output(ws)
    assert 0 <= stopped_after_s < 12, _output(ws)
    assert not _processes_under(ws), _processes_under(ws)

    # A validated submission of the kept experiment, retimed the number of times the environment asked for.
    verdict = json.loads(Path(verdict_path).read_text())
    assert verdict["outcome"] == "validated", verdict["reasons"]
    assert verdict["submission"] == "submission_1" and verdict["runs_requested"] == 3
    assert verdict["static"]["ok"] is True and verdict["judge"]["status"] == "skipped"
    sub = ws / "submissions" / "submission_1"
    assert "num_iterations = 150" in (sub / "train_gpt.py").read_text()
    assert "self.attn(norm(x))" not in (sub / "train_gpt.py").read_text()

    # results.tsv: the discard and the keep; nothing for the experiment the deadline cut short.
    lines = (ws / "experiments" / "results.tsv").read_text().splitlines()
    assert lines[0].split("\t") == list(scripted.RESULTS_HEADER)
    rows = [dict(zip(scripted.RESULTS_HEADER, line.split("\t"))) for line in lines[1:]]
    assert [(r["experiment"], r["kind"], r["status"], r["parent"]) for r in rows] == [
        ("01_halve-steps", "hyperparameter", "discard", "anchor"),
        ("02_attention-off", "algorithmic", "crash", "anchor"),
        ("03_mlp-only", "algorithmic", "keep", "anchor")]
    assert float(rows[0]["val_loss"]) >= 2.0 > float(rows[2]["val_loss"])
    assert float(rows[2]["wall_s"]) > float(rows[2]["train_time_ms"]) / 1000
    assert "TypeError" in rows[1]["description"]  # the exception that ended the run, not torchrun's wrapper
    assert scripted.read_results(ws / "experiments" / "results.tsv")[2].train_time_ms == float(rows[2]["train_time_ms"])
    assert (ws / "experiments" / "04_never-finishes" / "train_gpt.py").exists()

    # The kept experiment is committed in the workspace repository, by the agent.
    log = subprocess.run(["git", "log", "--format=%an|%s", "--name-only"], cwd=ws, capture_output=True,
                         text=True, check=True).stdout
    assert "scripted-agent|keep 03_mlp-only; promote it to submission_1" in log
    assert "experiments/03_mlp-only/train_gpt.py" in log and "submissions/submission_1/train_gpt.py" in log

    # The events: our event model, one JSON object per line, in a sensible order, ending at the deadline.
    events = _events(ws)
    assert all(e["nanogpt_tui_event"] == 1 and e["type"] in EVENT_TYPES and e["ts"].endswith("Z") for e in events)
    types = [e["type"] for e in events]
    assert types[0] == "session_start" and events[0]["agent"] == "scripted"
    assert types[-2:] == ["usage", "result"] and events[-1]["text"].startswith("stopped at the deadline")
    assert events[-2]["input_tokens"] == 0 and events[-2]["cost_usd"] == 0.0
    assert types.count("verdict") == 1 and types.count("submission_started") == 1  # submit's own not doubled
    calls = {e["call_id"]: e for e in events if e["type"] == "tool_call"}
    results = [e for e in events if e["type"] == "tool_result"]
    assert {e["tool"] for e in calls.values()} == {"bash", "edit"}
    assert all(r["call_id"] in calls for r in results)
    assert any(e["type"] == "message" and e["text"].startswith("DISCARD halve-steps") for e in events)
    assert any(e["type"] == "message" and e["text"].startswith("KEEP mlp-only") for e in events)
    v = next(e for e in events if e["type"] == "verdict")
    assert v["outcome"] == "validated" and v["counts"] is True and v["p_value"] < 0.01
    assert v["mean_train_time_ms"] == pytest.approx(verdict["stats"]["mean_train_time_ms"])

    # ... and they render readably through the control room's renderer.
    parsers = pytest.importorskip("nanogpt_tui.agents.parsers")
    render = pytest.importorskip("nanogpt_tui.agents.render")
    lines = [render.render_event(ev) for n, raw in enumerate(
        (ws / "logs" / "events.jsonl").read_text().splitlines(), 1) for ev in parsers.parse_line(raw, n)]
    assert len(lines) == len(events) and all(line and "\n" not in line for line in lines)
    text = "\n".join(lines)
    print(text)
    assert "bench  verdict submission_1: VALIDATED" in text
    assert "bench  tool    edit experiments/01_halve-steps/train_gpt.py" in text
    assert "bench  done    ok" in text and "stopped at the deadline" in text


@pytest.mark.slow
def test_scripted_agent_stops_promptly_on_sigint_mid_run(tmp_path):
    """The watchdog's stop: SIGINT to the agent's process group while a training run is going."""
    plan = ('name = "one"\nbaseline = true\n[[experiment]]\nname = "a"\nkind = "hyperparameter"\n'
            'set = { num_iterations = 150 }\n')
    ws, env = _session(tmp_path, plan, deadline_in_s=600)
    proc = _start(ws, env)
    try:
        started = time.monotonic()
        # The baseline is `submit --baseline`, whose retiming runs are the training processes to stop.
        while not any(e["type"] == "tool_call" and "submit --baseline" in (e.get("command") or "") for e in _events(ws)):
            assert proc.poll() is None and time.monotonic() - started < 60, _output(ws)
            time.sleep(0.2)
        time.sleep(4)  # submit, torchrun and the training process are up
        assert _processes_under(ws)
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 0 and took < 10, (took, _output(ws))
    assert not _processes_under(ws), _processes_under(ws)
    events = _events(ws)
    assert events[-1]["type"] == "result" and events[-1]["text"] == "stopped by SIGINT"
    assert not (ws / "experiments" / "results.tsv").exists()  # the interrupted baseline is no result


def test_a_bad_plan_is_one_clear_error_in_the_stream(tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "train_gpt.py").write_text("print('hi')\n")
    plan = tmp_path / "plan.toml"
    plan.write_text('[[experiment]]\nname = "a"\nkind = "guess"\nset = { lr = 1 }\n')
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv("BENCHMARK_WORKSPACE", str(ws))
    monkeypatch.setenv("BENCHMARK_EVENTS_PATH", str(events))
    assert scripted.main(["--plan", str(plan)]) == 2
    [event] = [json.loads(line) for line in events.read_text().splitlines()]
    assert event["type"] == "error" and "kind must be one of hyperparameter, algorithmic" in event["text"]


def test_results_rows_read_back_as_written(tmp_path):
    path = tmp_path / "results.tsv"
    scripted.append_result(path, scripted.ResultRow("01_a", "hyperparameter", 2.01234, 10638.4, "discard",
                                                    "val_loss\tmisses\nthe target", 25.34, "anchor"))
    scripted.append_result(path, scripted.ResultRow("02_b", "algorithmic", None, None, "crash", "edit failed"))
    a, b = scripted.read_results(path)
    assert (a.val_loss, a.train_time_ms, a.wall_s, a.description) == (2.0123, 10638.0, 25.3, "val_loss misses the target")
    assert (b.experiment, b.val_loss, b.status, b.parent) == ("02_b", None, "crash", "anchor")
    assert path.read_text().splitlines()[0] == "\t".join(scripted.RESULTS_HEADER)
