"""Real session folders with fixed contents (session.json, verdicts, events, container.log), for snapshots and
Pilot tests; and real local-backend sessions running the ticker harness."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

from nanogpt_tui.agents.events import event_line
from nanogpt_tui.contract import layout as L
from nanogpt_tui.sessions import model as M
from nanogpt_tui.sessions.model import Extension, Session, iso, save_session
from nanogpt_tui.validator.retime import RunOutcome
from nanogpt_tui.validator.verdict import Verdict
from tests.fakes.validator import publish_verdict

NOW = dt.datetime(2026, 11, 21, 4, 0, 0, tzinfo=dt.timezone.utc)
FA3, BIGRAM = "2025-09-03_FA3", "2026-01-19_BigramHashEmbedding"
FA3_MS = 163_860.0
ANCHOR_CODE = "import torch\n\nnum_iterations = 1600\nlr = 0.05\n\nprint('train')\n"
TICKER = Path(__file__).resolve().parents[1] / "fakes" / "harnesses" / "ticker"


def fixed_clock() -> dt.datetime:
    return NOW


def at(hours_before_now: float) -> dt.datetime:
    return NOW - dt.timedelta(hours=hours_before_now)


def make_session(root: Path, sid: str, *, agent: str, strategy: str, anchor: str = FA3, target: str | None = BIGRAM,
                 backend: str = "docker", host: str = "gpu-box-1", gpus: int = 8, gpu_ids: list[int] | None = None,
                 budget: float = 512.0, started_hours_ago: float = 10.0, status: str = M.RUNNING,
                 ended_hours_ago: float | None = None, reason: str | None = None) -> Path:
    """Lay a session out on disk the way SessionManager.create does (without git), with fixed times."""
    d = root / sid
    ws = d / L.WORKSPACE
    for sub in L.WORKSPACE_DIRS:
        (ws / sub).mkdir(parents=True, exist_ok=True)
    (d / L.RUNNER / "anchor").mkdir(parents=True, exist_ok=True)
    (d / L.RUNNER / "anchor" / "train_gpt.py").write_text(ANCHOR_CODE)
    (d / L.CONTROL).mkdir(exist_ok=True)
    (ws / "logs" / L.EVENTS_FILE).touch()
    if not (d / L.EVENTS_FILE).is_symlink():
        (d / L.EVENTS_FILE).symlink_to(Path(L.WORKSPACE) / "logs" / L.EVENTS_FILE)
    (d / L.CONTAINER_LOG).touch()
    started = at(started_hours_ago)
    session = Session(id=sid, agent=agent, strategy=strategy, strategy_hash="ab12cd34ef56" * 5, anchor=anchor,
                      target=target, backend=backend, host=host, image="nanogpt-bench:latest" if backend == "docker"
                      else None, gpus=gpus, budget_gpu_hours=budget, created_at=iso(started - dt.timedelta(minutes=1)),
                      gpu_ids=list(gpu_ids or []))
    session.transitions.append(M.Transition(at=session.created_at, status=M.PENDING, reason="created"))
    session.started_at = iso(started)
    session.deadline = iso(session.budget().deadline)
    session.transition(M.RUNNING, f"started on {host}", at=started)
    if status != M.RUNNING:
        session.transition(status, reason or status, at=at(ended_hours_ago or 0.0))
    save_session(d, session)
    return d


def add_extension(d: Path, gpu_hours: float) -> None:
    data = json.loads((d / L.SESSION_FILE).read_text())
    session = Session.from_dict(data)
    session.extensions.append(Extension(at=iso(NOW), gpu_hours=gpu_hours, reason="test"))
    session.deadline = iso(session.budget().deadline)
    save_session(d, session)


def add_verdict(d: Path, n: int, *, hours_after_start: float, outcome: str, mean_ms: float, p: float | None,
                judge: str = "answered", cheating: bool = False, runs: int = 10, gap_s: float | None = 63.2,
                kind: str = "submission", reasons: list[str] | None = None) -> None:
    data = json.loads((d / L.SESSION_FILE).read_text())
    started = M.parse_iso(data["started_at"])
    finished = started + dt.timedelta(hours=hours_after_start)
    begun = finished - dt.timedelta(minutes=40)
    name = "baseline" if kind == "baseline" else f"submission_{n}"
    counts = outcome == "validated"
    faster_s = (FA3_MS - mean_ms) / 1000
    run_list = [RunOutcome(index=i + 1, status="ok", exit_code=0, wall_s=190.0 + i, log=f"run_{i + 1:02d}.log",
                           val_loss=3.2771 + 0.0004 * (i % 3), train_time_ms=mean_ms + 40 * ((i % 5) - 2),
                           final_step=1600, total_steps=1600) for i in range(runs)]
    if outcome == "failed":
        run_list[-1] = RunOutcome(index=runs, status="crashed", exit_code=1, wall_s=12.0, log=f"run_{runs:02d}.log",
                                  error="RuntimeError: CUDA out of memory")
    verdict = Verdict(
        submission=name, submission_dir=f"/workspace/submissions/{name}", verdict_id=f"{name}__{n:02d}",
        kind=kind, session_id=d.name, anchor=data["anchor"], target=data["target"], started_at=iso(begun),
        finished_at=iso(finished), runs=run_list, runs_requested=runs,
        static={"skipped": "baseline"} if kind == "baseline" else {"ok": judge != "rules", "violations": [] if
                                                                   judge != "rules" else [
            {"rule": "val-tokens", "file": "train_gpt.py", "line": 412, "message": "val_tokens changed"}]},
        judge={"status": "skipped" if kind == "baseline" else ("answered" if judge == "rules" else judge),
               "provider": "anthropic", "model": "claude-opus-4-6", "cheating": cheating, "confidence": 0.9,
               "summary": "The change only retunes the learning-rate schedule." if not cheating else
               "The change shortens validation.", "reasons": [{"file": "train_gpt.py",
                                                               "reason": "Learning rate warm-down shortened."}]},
        stats={"n": runs, "n_failed": 1 if outcome == "failed" else 0, "val_loss_target": 3.28, "p_value": p,
               "mean_val_loss": 3.2775, "mean_train_time_ms": mean_ms, "std_train_time_ms": 150.0,
               "ci95_train_time_ms": [mean_ms - 107.0, mean_ms + 107.0], "cv_train_time": 0.0009,
               "faster": {"baseline": "anchor (retimed here)", "difference_ms": FA3_MS - mean_ms, "p_value": 0.0004,
                          "method": "welch", "min_detectable_ms": 210.0, "significant": counts}},
        speedup={"seconds_faster": faster_s, "basis": "anchor retimed here", "anchor_time_ms": FA3_MS,
                 "gap_s": gap_s, "percent_of_human_progress": None if gap_s is None else 100 * faster_s / gap_s},
        gpus=data["gpus"], gpu_seconds=runs * 190.0 * data["gpus"], outcome=outcome,
        valid=outcome not in ("rejected", "not-validated"), significant=outcome in ("validated", "baseline"),
        comparable=outcome != "rejected", new_best=counts, reasons=reasons or [],
    )
    sub = d / L.WORKSPACE / "submissions" / name
    if kind != "baseline":
        sub.mkdir(parents=True, exist_ok=True)
        (sub / "train_gpt.py").write_text(ANCHOR_CODE.replace("1600", str(1600 - 25 * n)).replace("0.05", "0.06"))
    publish_verdict(d, verdict, source=sub if kind != "baseline" else None)


def add_events(d: Path, usages: list[tuple[int, int, float]], texts: list[str] = ()) -> None:
    started = M.parse_iso(json.loads((d / L.SESSION_FILE).read_text())["started_at"])
    lines = []
    for i, (tokens_in, tokens_out, cost) in enumerate(usages):
        ts = iso(started + dt.timedelta(minutes=10 * i + 1))
        lines.append(event_line("session_start", ts=ts, agent="claude", text=f"invocation {i + 1}"))
        for text in texts:
            lines.append(event_line("message", ts=ts, text=text))
        lines.append(event_line("tool_call", ts=ts, tool="Bash", command="bash run.sh"))
        lines.append(event_line("result", ts=ts, text="done", usage={"input_tokens": tokens_in, "output_tokens":
                                                                      tokens_out, "cached_input_tokens": 0},
                                cost_usd=cost, duration_s=600.0))
    with open(d / L.WORKSPACE / "logs" / L.EVENTS_FILE, "a") as handle:
        handle.write("".join(lines))


# Experiments of known kinds, each from the previous one: (folder, kind, status, wall seconds, code).
LR_CODE = ANCHOR_CODE.replace("0.05", "0.04")
ZLOSS_CODE = LR_CODE.replace("print('train')\n", "def loss_fn(logits, target):\n    return torch.nn.functional."
                             "cross_entropy(logits, target) + 1e-4 * logits.logsumexp(-1).pow(2).mean()\n\n"
                             "print('train')\n")
COMPILE_CODE = ZLOSS_CODE.replace("print('train')\n", "model = torch.compile(model, dynamic=False)\nprint('train')\n")
EXPERIMENTS = (("01_lr", "hyperparameter", "keep", 3600, LR_CODE),
               ("02_zloss", "algorithmic", "keep", 1800, ZLOSS_CODE),
               ("03_compile", "systems", "discard", 900, COMPILE_CODE))


def add_experiments(d: Path, experiments=EXPERIMENTS) -> None:
    """Experiment folders and a results.tsv recording each one's wall time, so its GPU-hours are known exactly
    (wall time x the session's GPUs)."""
    started = M.parse_iso(json.loads((d / L.SESSION_FILE).read_text())["started_at"])
    root = d / L.WORKSPACE / "experiments"
    rows = ["experiment\tstatus\twall_s\tfinished_at\tkind\tdescription"]
    for i, (name, kind, status, wall_s, code) in enumerate(experiments):
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "train_gpt.py").write_text(code)
        rows.append(f"{name}\t{status}\t{wall_s}\t{iso(started + dt.timedelta(hours=1 + i))}\t{kind}\t"
                    f"try {name.split('_', 1)[1]}")
    (root / "results.tsv").write_text("\n".join(rows) + "\n")


def add_log(d: Path, lines: list[str]) -> None:
    with open(d / L.CONTAINER_LOG, "a") as handle:
        handle.write("".join(line + "\n" for line in lines))


def build_fixed_sessions(root: Path) -> list[str]:
    """Three sessions on the FA3 -> BigramHashEmbedding pair, in the shapes a real run takes."""
    a = make_session(root, "20261120T180000Z-claude-default", agent="claude", strategy="default",
                     gpu_ids=list(range(8)), started_hours_ago=9.5)
    add_verdict(a, 0, hours_after_start=0.8, outcome="baseline", mean_ms=FA3_MS, p=0.0001, kind="baseline")
    add_verdict(a, 1, hours_after_start=2.5, outcome="validated", mean_ms=161_760.0, p=0.0008)
    add_verdict(a, 2, hours_after_start=5.0, outcome="not-significant", mean_ms=160_900.0, p=0.04)
    add_verdict(a, 3, hours_after_start=7.9, outcome="validated", mean_ms=157_980.0, p=0.0006)
    add_experiments(a)  # GPU-hours: hp 8 + 3 submissions x 40 min x 8 GPUs = 24, algo 4, systems 2
    add_events(a, [(1_250_000, 42_000, 3.12), (2_400_000, 61_000, 5.87)])
    add_log(a, ["[runner 18:00:01] starting the agent; deadline 2026-11-23T02:00:00+00:00 (230400 s left)",
                json.dumps({"type": "system", "subtype": "init", "session_id": "s-1", "model": "claude-opus-4-6",
                            "tools": ["Bash", "Edit"]}),
                json.dumps({"type": "assistant", "message": {"id": "m1", "content": [
                    {"type": "text", "text": "Let me time the anchor first."},
                    {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "bash run.sh"}}]}}),
                "step:1600/1600 val_loss:3.2771 train_time:163801ms step_avg:102.38ms",
                "\x1b[31mcolour codes and a key sk-ant-" "api03-abcdefghijklmnop are cleaned\x1b[0m",
                "[bold red]markup is shown as text[/bold red]"])
    b = make_session(root, "20261120T180100Z-codex-default", agent="codex", strategy="default",
                     host="gpu-box-2", gpu_ids=list(range(8)), started_hours_ago=9.0)
    add_verdict(b, 1, hours_after_start=3.0, outcome="rejected", mean_ms=150_000.0, p=0.0005, cheating=True,
                reasons=["The judge found the change incomparable: validation was shortened."])
    add_verdict(b, 2, hours_after_start=6.0, outcome="validated", mean_ms=160_700.0, p=0.002)
    add_events(b, [(900_000, 30_000, 0.0)])
    add_log(b, ["[runner 18:01:02] starting the agent", json.dumps({"type": "thread.started", "thread_id": "th-1"})])
    c = make_session(root, "20261120T180200Z-claude-autoresearch-autoresearch", agent="claude-autoresearch",
                     strategy="autoresearch", gpus=4, gpu_ids=[0, 1, 2, 3], host="gpu-box-3", budget=32.0,
                     started_hours_ago=9.0, status=M.OUT_OF_BUDGET, ended_hours_ago=1.0,
                     reason="the deadline passed; the watchdog stopped the agent")
    add_verdict(c, 1, hours_after_start=4.0, outcome="validated", mean_ms=159_860.0, p=0.001)
    add_verdict(c, 2, hours_after_start=7.5, outcome="failed", mean_ms=158_000.0, p=None)
    add_events(c, [(3_100_000, 90_000, 9.40)])
    add_log(c, ["[runner 18:02:00] the deadline has passed; stopping the agent"])
    return [a.name, b.name, c.name]


def write_config(tmp_path: Path, baselines_dir: Path, sessions_dir: Path, data_dir: Path | None = None) -> Path:
    path = tmp_path / "nanogpt-tui.toml"
    text = ("schema_version = 1\n[paths]\n"
            f'baselines_dir = "{baselines_dir}"\nsessions_dir = "{sessions_dir}"\n')
    if data_dir is not None:
        text += f'data_dir = "{data_dir}"\n'
    # gpu-box-2 never answers: a closed port on loopback (tests send nothing to any other address, not even to
    # show that nothing answers there).
    text += ('[[hosts]]\nname = "gpu-box-1"\nurl = "unix:///var/run/docker.sock"\n'
             '[[hosts]]\nname = "gpu-box-2"\nurl = "tcp://127.0.0.1:1"\n')
    path.write_text(text)
    return path


def make_ticker_session(manager, sid: str, *, seconds: float = 120.0, env: dict[str, str] | None = None) -> Session:
    """A real local-backend session running the ticker harness, started through SessionManager.start."""
    root = manager.root
    d = make_session(root, sid, agent="ticker", strategy="none", anchor="smoke", target=None, backend="local",
                     host="local", gpus=1, budget=seconds / 3600, started_hours_ago=0.0)
    shutil.copytree(TICKER, d / L.RUNNER / "agent", dirs_exist_ok=True)
    data = json.loads((d / L.SESSION_FILE).read_text())
    session = Session.from_dict(data)
    session.started_at = session.deadline = session.finished_at = None
    session.transitions = [M.Transition(at=session.created_at, status=M.PENDING, reason="created")]
    session.status, session.status_reason = M.PENDING, "created"
    session.config = {"extra_env": dict(env or {})}
    save_session(d, session)
    return manager.start(session)


# Twelve sessions' final % of human progress (FA3 -> BigramHashEmbedding, 63.2 s), as a fleet shows them: most
# agents at a few percent, two identical runs (their lines coincide), one session with nothing validated yet.
FLEET_PERCENTS = (9.3, 8.6, 8.2, 6.0, 5.1, 5.1, 4.0, 3.3, 2.2, 1.5, 0.8, None)
FLEET_AGENTS = ("claude", "codex", "claude-autoresearch")


def build_fleet_sessions(root: Path) -> list[str]:
    """Twelve sessions on one anchor/target pair, for the plot's fitted axis, its legend and overlapping lines."""
    ids = []
    for i, percent in enumerate(FLEET_PERCENTS):
        agent = FLEET_AGENTS[i % len(FLEET_AGENTS)]
        strategy = "autoresearch" if agent == "claude-autoresearch" else "default"
        d = make_session(root, f"20261120T18{i:02d}00Z-{agent}-{strategy}", agent=agent, strategy=strategy,
                         host=f"gpu-box-{i % 4 + 1}", gpu_ids=list(range(8)), started_hours_ago=9.5)
        if percent is not None:
            # Identical percentages get identical submissions at identical times: the same line.
            hours = 2.0 + (percent % 3)
            add_verdict(d, 1, hours_after_start=hours, outcome="validated", mean_ms=FA3_MS - percent * 632.192 / 2,
                        p=0.001)
            add_verdict(d, 2, hours_after_start=hours + 2.5, outcome="validated",
                        mean_ms=FA3_MS - percent * 632.192, p=0.001)
        add_log(d, ["[runner 18:00:01] starting the agent"])
        ids.append(d.name)


FLEET_PAIRS = (("claude", "default"), ("codex", "default"), ("claude-autoresearch", "autoresearch"),
                ("claude", "autoresearch"))
FLEET_HOSTS = ("gpu-box-1", "gpu-box-2", "gpu-box-3")
FLEET_ACTIVITY = (
    ("tool_call", {"tool": "Bash", "command": "torchrun --nproc_per_node=8 train_gpt.py"}),
    ("message", {"text": "The warm-down looks too short; trying 0.45 of the steps."}),
    ("progress", {"submission": "submission_3", "phase": "retiming", "run": 4, "runs": 10, "step": 1200,
                  "steps": 1600}),
    ("tool_call", {"tool": "Edit", "file": "train_gpt.py"}),
)


def gpu_line(at: dt.datetime, gpus: int, util: float, power: float) -> str:
    """One gpu.jsonl line in the sampler's format, for `gpus` GPUs at `util` %."""
    return json.dumps({"schema_version": 1, "ts": iso(at), "source": "nvml", "gpus": [
        {"index": i, "util_pct": util, "mem_used_mib": 61_000.0 if util > 5 else 600.0, "mem_total_mib": 143_771.0,
         "power_w": power} for i in range(gpus)]}) + "\n"


def build_fleet(root: Path, n: int = 24) -> list[str]:
    """`n` sessions of a fleet: four agent/strategy pairs over three hosts, some ended or failed, each with a
    verdict or two, usage, a last activity and GPU samples (one session's GPUs idle for 20 minutes)."""
    ids = []
    for i in range(n):
        agent, strategy = FLEET_PAIRS[i % len(FLEET_PAIRS)]
        status = M.RUNNING if i % 6 not in (4, 5) else (M.OUT_OF_BUDGET if i % 6 == 4 else M.FAILED)
        sid = f"20261120T{18 + i // 60:02d}{i % 60:02d}00Z-{agent}-{strategy}"
        d = make_session(root, sid, agent=agent, strategy=strategy, host=FLEET_HOSTS[i % 3], gpus=8,
                         gpu_ids=list(range(8)), budget=512.0 if i % 5 else 96.0, started_hours_ago=10.0 - i * 0.1,
                         status=status, ended_hours_ago=0.5 if status != M.RUNNING else None,
                         reason=None if status == M.RUNNING else ("crashed" if status == M.FAILED else "deadline"))
        if i % 3 != 2:
            add_verdict(d, 1, hours_after_start=2.0, outcome="validated", mean_ms=FA3_MS - 400 * (i % 7 + 1),
                        p=0.001)
        if i % 4 == 1:
            add_verdict(d, 2, hours_after_start=4.0, outcome="rejected", mean_ms=150_000.0, p=0.0005, cheating=True)
        add_events(d, [(200_000 * (i % 9 + 1), 9_000 * (i % 5 + 1), 0.5 * (i % 9 + 1))])
        kind, fields = FLEET_ACTIVITY[i % len(FLEET_ACTIVITY)]
        with open(d / L.WORKSPACE / "logs" / L.EVENTS_FILE, "a") as handle:
            handle.write(event_line(kind, ts=iso(NOW - dt.timedelta(seconds=30 + i)), **fields))
        if status == M.RUNNING:
            util = 0.0 if i == 3 else 60.0 + (i * 7) % 40
            lines = [gpu_line(NOW - dt.timedelta(seconds=5 * k), 8, util if k < 240 else 90.0, 120.0 + 5 * util)
                     for k in range(250, -1, -1)]
            (d / L.GPU_FILE).write_text("".join(lines))
        add_log(d, [f"[runner] session {i} started", "step:1200/1600 val_loss:3.3012 train_time:98000ms"])
        ids.append(sid)
    return ids
