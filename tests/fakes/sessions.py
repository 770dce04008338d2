"""Generators of realistic session folders with known outcomes, for the report, reproduce and compare tests.

Everything is written in the product's real formats: `session.json` through `Session`/`save_session`, verdicts
through `Verdict` and the validator's own freeze and seal (`tests/fakes/validator.py`) (with run logs that print nvidia-smi and PyTorch lines the way records do),
experiment folders holding real code (the anchor fixture with realistic edits of each kind), a results.tsv in
the scripted agent's columns, the agent's event stream in its CLI's own JSON (Claude stream-json or Codex JSON),
the runner's copy of the anchor, and a redacted `inspect.json`. File times are set to the moments they stand for
(GPU-hours / GPUs after the session's start), so the cost rule and the curve see a real session's timeline.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from nanogpt_tui.contract import layout as L
from nanogpt_tui.contract.env import contract_env
from nanogpt_tui.sessions import model as M
from nanogpt_tui.sessions.model import Extension, Session, iso, save_session
from nanogpt_tui.validator.retime import RunOutcome
from nanogpt_tui.validator.stats import loss_p_value, summarize_times
from nanogpt_tui.validator.verdict import Verdict
from tests.fakes.validator import publish_verdict

REPO = Path(__file__).resolve().parents[2]
ANCHOR_FIXTURE = REPO / "tests" / "fixtures" / "rules" / "anchor"
KERNELS_FIXTURE = REPO / "tests" / "fixtures" / "rules" / "refactor" / "triton_kernels.py"
FA3 = "2025-09-03_FA3"
TARGET = "2026-01-19_BigramHashEmbedding"
GAP_S = 63.2192  # BigramHashEmbedding vs FA3, re-timed on the same hardware (records.tsv)
ANCHOR_TIME_S = 163.86  # FA3's official record time: the submit pipeline's basis without a baseline retiming
T0 = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
MODELS = {"claude": "claude-opus-4-6", "claude-autoresearch": "claude-opus-4-6", "codex": "gpt-5.4",
          "scripted": None}
EFFORTS = {"claude": "max", "claude-autoresearch": "max", "codex": "xhigh", "scripted": None}
NVIDIA_SMI = """Running Python 3.12.7 (main, Oct  1 2025, 08:00:00) [GCC 13.2.0]
Running PyTorch 2.9.0.dev20250713+cu126 compiled for CUDA 12.6
Wed Oct  1 10:00:00 2026
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 560.35.03              Driver Version: 560.35.03      CUDA Version: 12.6     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
|=========================================+========================+======================|
""" + "".join(f"|   {i}  NVIDIA H100 80GB HBM3          On  |   00000000:{i:02X}:00.0 Off |                    0 |\n"
              for i in range(8)) + "+" + "-" * 89 + "+\n"


def percent_to_seconds(percent: float) -> float:
    return percent * GAP_S / 100.0


# ------------------------------------------------------------------------------------------------ code edits

def _sub(code: str, old: str, new: str) -> str:
    assert code.count(old) == 1, f"the edit's text occurs {code.count(old)} times: {old[:60]!r}"
    return code.replace(old, new)


def edit_steps(code: str, steps: int = 1700) -> str:
    return _sub(code, "num_iterations: int = 1750", f"num_iterations: int = {steps}")


def edit_lr(code: str) -> str:
    return _sub(code, "lr=0.008, betas=(0.8, 0.95)", "lr=0.01, betas=(0.85, 0.95)")


def edit_cooldown(code: str) -> str:
    return _sub(code, "cooldown_frac: float = 0.45", "cooldown_frac: float = 0.55")


def edit_gelu(code: str) -> str:
    return _sub(code, "return self.proj(F.relu(self.fc(x)).square())", "return self.proj(F.gelu(self.fc(x)))")


def edit_zloss(code: str) -> str:
    return _sub(code, '        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets, reduction="sum" if '
                      'self.training else "mean")',
                '        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets, reduction="sum" if '
                'self.training else "mean")\n        return loss + 1e-4 * logits.logsumexp(-1).square().mean()')


def edit_async_allreduce(code: str) -> str:
    return _sub(code, "                dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)\n",
                "                handle = dist.all_reduce(p.grad, op=dist.ReduceOp.AVG, async_op=True)\n"
                "                handle.wait()\n")


def edit_bf16_logits(code: str) -> str:
    return _sub(code, "logits = 30 * torch.sigmoid(self.lm_head(norm(x)).float() / 7.5)",
                "logits = 30 * torch.sigmoid(self.lm_head(norm(x)) / 7.5)")


def edit_gelu_and_steps(code: str) -> str:
    """A mixed change: a new activation plus retuned steps (labelled algorithmic, mixed)."""
    return edit_steps(edit_gelu(code), 1720)


EDITS = {"steps": edit_steps, "lr": edit_lr, "cooldown": edit_cooldown, "gelu": edit_gelu, "zloss": edit_zloss,
         "async-allreduce": edit_async_allreduce, "bf16-logits": edit_bf16_logits,
         "gelu+steps": edit_gelu_and_steps, "none": lambda code: code}
EDIT_KINDS = {"steps": "hyperparameter", "lr": "hyperparameter", "cooldown": "hyperparameter",
              "gelu": "algorithmic", "zloss": "algorithmic", "async-allreduce": "systems",
              "bf16-logits": "systems", "gelu+steps": "algorithmic", "none": "none"}


def anchor_files() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(ANCHOR_FIXTURE.iterdir()) if p.suffix in (".py", ".sh")}


# ------------------------------------------------------------------------------------------------ specs

@dataclass
class FakeSubmission:
    at_gpu_hours: float  # when its verdict finished
    seconds_faster: float
    outcome: str = "validated"  # validated | rejected | not-significant
    retime_gpu_hours: float = 2.5  # 10 runs of ~2 minutes on 8 GPUs
    edits: tuple[str, ...] = ("steps",)  # applied to the anchor's code for the submission folder
    judge_summary: str = "Fewer steps; validation, timing and data are untouched."


@dataclass
class FakeExperiment:
    name: str
    edit: str  # a key of EDITS, applied to its parent's code
    end_gpu_hours: float  # when its run ended (its folder's last modification)
    status: str = "keep"  # keep | discard | crash


@dataclass
class FakeSession:
    agent: str
    strategy: str
    submissions: list[FakeSubmission] = field(default_factory=list)
    experiments: list[FakeExperiment] = field(default_factory=list)
    budget_gpu_hours: float = 512.0
    gpus: int = 8
    used_gpu_hours: float | None = None  # default: the whole budget (out of budget)
    status: str = M.OUT_OF_BUDGET
    extensions: list[tuple[float, float, str]] = field(default_factory=list)  # (at GPU-h, GPU-h added, reason)
    anchor: str = FA3
    target: str | None = TARGET
    invocations: int = 2  # agent invocations in the event stream (each with known usage)
    started: dt.datetime = T0
    session_id: str | None = None


@dataclass
class Written:
    """What was written, with the numbers a test expects back."""

    path: Path
    session: Session
    final_seconds_faster: float
    final_percent: float
    usage: dict
    gpu_hours_by_kind: dict[str, float]


def _at(spec: FakeSession, gpu_hours: float) -> dt.datetime:
    return spec.started + dt.timedelta(hours=gpu_hours / spec.gpus)


def _touch(path: Path, when: dt.datetime) -> None:
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp), follow_symlinks=False)


def _write_code(folder: Path, files: dict[str, str], when: dt.datetime) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
        _touch(folder / name, when)


def _verdict(spec: FakeSession, session_id: str, index: int, sub: FakeSubmission, workspace: Path) -> Verdict:
    name = f"submission_{index}"
    finished = _at(spec, sub.at_gpu_hours)
    started = _at(spec, max(0.0, sub.at_gpu_hours - sub.retime_gpu_hours))
    mean_ms = (ANCHOR_TIME_S - sub.seconds_faster) * 1000
    offsets = [-135, -105, -75, -45, -15, 15, 45, 75, 105, 135]
    times = [mean_ms + o for o in offsets]
    significant = sub.outcome != "not-significant"
    losses = [(3.2762 if significant else 3.2799) + o * 1e-5 for o in offsets]
    verdict_id = f"{name}__{finished.strftime('%Y%m%dT%H%M%S%fZ')}"
    runs = [RunOutcome(index=i + 1, status="ok", exit_code=0, wall_s=round(t / 1000 + 95, 3),
                       log=f"run_{i + 1:02d}.log", val_loss=loss, train_time_ms=t, final_step=1750, total_steps=1750)
            for i, (t, loss) in enumerate(zip(times, losses))]
    summary = summarize_times(times)
    p_value = loss_p_value(losses, 3.28)
    rejected = sub.outcome == "rejected"
    # Off the human timeline (the smoke anchor) submit knows no gap, so it gives no % of progress.
    gap = GAP_S if spec.anchor == FA3 and spec.target == TARGET else None
    verdict = Verdict(
        submission=name, submission_dir=str(workspace / "submissions" / name), verdict_id=verdict_id,
        kind="submission", session_id=session_id, anchor=spec.anchor, target=spec.target,
        started_at=iso(started), finished_at=iso(finished),
        code_sha256={"train_gpt.py": hashlib.sha256(name.encode()).hexdigest()},
        static={"ok": True, "violations": []},
        judge={"status": "answered", "provider": "anthropic", "model": "claude-opus-4-6", "cheating": rejected,
               "confidence": 0.9, "reasons": [], "summary": sub.judge_summary if not rejected else
               "The change shortens validation, so the measurement is not comparable.",
               "usage": {"input_tokens": 40000, "output_tokens": 900, "cached_input_tokens": 0}, "attempts": 1},
        runs=runs if not rejected else [], runs_requested=10,
        stats={"n": 10 if not rejected else 0, "n_failed": 0, "val_loss_target": 3.28, "p_value_threshold": 0.01,
               "p_value": p_value if not rejected else None,
               "mean_val_loss": sum(losses) / len(losses) if not rejected else None,
               "mean_train_time_ms": summary.mean_ms if not rejected else None,
               "std_train_time_ms": summary.std_ms if not rejected else None,
               "ci95_train_time_ms": list(summary.ci95_ms) if not rejected else [None, None]},
        speedup={"basis": "anchor's official record time", "anchor_time_ms": ANCHOR_TIME_S * 1000,
                 "seconds_faster": sub.seconds_faster if not rejected else None, "gap_s": gap,
                 "percent_of_human_progress": 100 * sub.seconds_faster / gap if gap and not rejected else None},
        gpus=spec.gpus, gpu_seconds=sub.retime_gpu_hours * 3600 if not rejected else 0.0,
        outcome=sub.outcome, valid=not rejected, significant=significant and not rejected,
        comparable=not rejected, new_best=False,
        reasons=[] if sub.outcome == "validated" else (
            ["The judge found the change breaks the rules or is incomparable."] if rejected else
            ["Mean val_loss 3.2799 is not significantly below 3.28."]))
    return verdict


def _events(spec: FakeSession) -> tuple[list[str], dict]:
    lines: list[str] = []
    if spec.agent == "codex":
        thread = "0199a1b2-c3d4-7e5f-8a9b-codexthread01"
        total = {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0}
        for i in range(spec.invocations):
            total = {"input_tokens": 1_500_000 * (i + 1), "cached_input_tokens": 1_200_000 * (i + 1),
                     "output_tokens": 30_000 * (i + 1)}
            lines.append(json.dumps({"type": "thread.started", "thread_id": thread}))
            lines.append(json.dumps({"type": "turn.started"}))
            lines.append(json.dumps({"type": "item.completed", "item": {"id": f"item_{i}", "type": "agent_message",
                                                                         "text": "Trying fewer steps."}}))
            lines.append(json.dumps({"type": "turn.completed", "usage": total}))
        return lines, {**total, "cost_usd": None}
    if spec.agent == "scripted":
        return lines, {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0, "cost_usd": None}
    totals = {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
    for i in range(spec.invocations):
        sid = f"5d0c9a7e-3f21-4b8e-a6d4-2c9e1f7b8a{i:02d}"
        lines.append(json.dumps({"type": "system", "subtype": "init", "session_id": sid, "model": "claude-opus-4-6",
                                 "tools": ["Bash", "Read", "Edit"], "cwd": "/workspace"}))
        usage = {"input_tokens": 2_000, "cache_creation_input_tokens": 100_000, "cache_read_input_tokens": 900_000,
                 "output_tokens": 25_000}
        lines.append(json.dumps({"type": "result", "subtype": "success", "is_error": False, "session_id": sid,
                                 "result": "Continuing the experiments.", "total_cost_usd": 12.5, "usage": usage,
                                 "num_turns": 40, "duration_ms": 3_600_000}))
        totals["input_tokens"] += 2_000 + 100_000 + 900_000
        totals["cached_input_tokens"] += 900_000
        totals["output_tokens"] += 25_000
        totals["cost_usd"] += 12.5
    return lines, totals


def write_session(root: Path, spec: FakeSession) -> Written:
    """Write one session folder under `root` following `spec`; returns the numbers a test should read back."""
    used = spec.budget_gpu_hours + sum(e[1] for e in spec.extensions) if spec.used_gpu_hours is None \
        else spec.used_gpu_hours
    session_id = spec.session_id or f"{spec.started.strftime('%Y%m%dT%H%M%SZ')}-{spec.agent}-{spec.strategy}"
    d = Path(root) / session_id
    workspace = d / L.WORKSPACE
    for sub in L.WORKSPACE_DIRS:
        (workspace / sub).mkdir(parents=True, exist_ok=True)
    anchor = anchor_files()
    _write_code(workspace, anchor, spec.started)
    _write_code(d / L.RUNNER / "anchor", anchor, spec.started)
    (d / L.CONTROL).mkdir(parents=True, exist_ok=True)
    (d / L.CONTAINER_LOG).write_text("[runner] starting the agent\n")
    (d / L.INSPECT_FILE).write_text(json.dumps({
        "Id": hashlib.sha256(session_id.encode()).hexdigest(),
        "Image": "sha256:" + hashlib.sha256(b"nanogpt-bench:latest").hexdigest(),
        "Config": {"Image": "nanogpt-bench:latest", "Env": ["ANTHROPIC_API_KEY=<redacted>"]}}))

    # Experiments: each from the latest kept code (or the anchor), the scripted agent's results.tsv columns.
    hours_by_kind = {"hyperparameter": 0.0, "algorithmic": 0.0, "systems": 0.0, "none": 0.0}
    base = dict(anchor)
    results = ["experiment\tkind\tval_loss\ttrain_time_ms\tstatus\tdescription"]
    stamps = sorted([e.end_gpu_hours for e in spec.experiments])
    retimings = [(s.at_gpu_hours - s.retime_gpu_hours, s.at_gpu_hours) for s in spec.submissions]
    for i, exp in enumerate(spec.experiments):
        code = {**base, "train_gpt.py": EDITS[exp.edit](base["train_gpt.py"])}
        folder = workspace / "experiments" / f"{i:02d}_{exp.name}"
        end = _at(spec, exp.end_gpu_hours)
        _write_code(folder, code, end - dt.timedelta(minutes=1))
        (folder / "run.log").write_text(NVIDIA_SMI + "step:1750/1750 val_loss:3.2771 train_time:160000ms "
                                                     "step_avg:91.43ms\n")
        _touch(folder / "run.log", end)
        results.append(f"{folder.name}\t{EDIT_KINDS[exp.edit]}\t3.2771\t160000\t{exp.status}\t{exp.name}")
        # The cost rule: since the previous stamp (experiment end or retiming end) up to this end.
        before = [s for s in stamps if s < exp.end_gpu_hours] + [b for a, b in retimings if b <= exp.end_gpu_hours]
        since = max([0.0, *before])
        hours_by_kind[EDIT_KINDS[exp.edit]] += exp.end_gpu_hours - since
        if exp.status == "keep":
            base = code
    if spec.experiments:
        (workspace / "experiments" / "results.tsv").write_text("\n".join(results) + "\n")

    verdicts = []
    for index, sub in enumerate(spec.submissions, start=1):
        code = dict(anchor)
        for name in sub.edits:
            code["train_gpt.py"] = EDITS[name](code["train_gpt.py"])
        _write_code(workspace / "submissions" / f"submission_{index}", code,
                    _at(spec, max(0.0, sub.at_gpu_hours - sub.retime_gpu_hours)))
        verdict = _verdict(spec, session_id, index, sub, workspace)
        publish_verdict(workspace.parent, verdict, source=workspace / "submissions" / f"submission_{index}")
        if verdict.runs:
            log = workspace.parent / L.VALIDATOR / "verdicts" / verdict.verdict_id / "run_01.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(anchor["train_gpt.py"] + "=" * 100 + "\n" + NVIDIA_SMI
                           + f"step:1750/1750 val_loss:{verdict.runs[0].val_loss:.4f} "
                             f"train_time:{verdict.runs[0].train_time_ms:.0f}ms step_avg:93.00ms\n")
        verdicts.append(verdict)

    lines, usage = _events(spec)
    events = workspace / "logs" / L.EVENTS_FILE
    events.write_text("".join(line + "\n" for line in lines))
    (d / L.EVENTS_FILE).symlink_to(Path(L.WORKSPACE) / "logs" / L.EVENTS_FILE)

    session = Session(
        id=session_id, agent=spec.agent, strategy=spec.strategy,
        strategy_hash=hashlib.sha256(spec.strategy.encode()).hexdigest(), anchor=spec.anchor, target=spec.target,
        backend="docker", host="gpu-box-1", image="nanogpt-bench:latest", gpus=spec.gpus,
        budget_gpu_hours=spec.budget_gpu_hours, created_at=iso(spec.started - dt.timedelta(minutes=2)),
        gpu_ids=list(range(spec.gpus)), agent_model=MODELS.get(spec.agent), agent_effort=EFFORTS.get(spec.agent),
        config={"benchmark": {"anchor": spec.anchor, "target": spec.target, "budget_gpu_hours": spec.budget_gpu_hours,
                              "gpus_per_session": spec.gpus, "val_loss_target": 3.28},
                "validation": {"runs": 10, "p_value_threshold": 0.01}, "judge": {"provider": "anthropic"}})
    session.transition(M.PENDING, "created", spec.started - dt.timedelta(minutes=2))
    session.started_at = iso(spec.started)
    session.transition(M.RUNNING, "started on gpu-box-1 with GPUs 0,1,2,3,4,5,6,7", spec.started)
    for at, hours, reason in spec.extensions:
        session.extensions.append(Extension(at=iso(_at(spec, at)), gpu_hours=hours, reason=reason))
    session.deadline = iso(session.budget().deadline)
    end = _at(spec, used)
    if spec.status in M.FINAL:
        reason = {M.OUT_OF_BUDGET: "the deadline passed; the watchdog stopped the agent",
                  M.EXITED: "the agent finished", M.KILLED: "killed by the user",
                  M.FAILED: "the session ended (agent-failed, exit status 1)"}[spec.status]
        session.transition(spec.status, reason, end)
        session.exit_code = 3 if spec.status == M.OUT_OF_BUDGET else 0
    save_session(d, session)

    total = session.total_gpu_hours
    counted = [s.seconds_faster for s in spec.submissions if s.outcome == "validated" and s.at_gpu_hours <= total]
    final = max([0.0, *counted])
    return Written(path=d, session=session, final_seconds_faster=final, final_percent=100 * final / GAP_S,
                   usage=usage, gpu_hours_by_kind=hours_by_kind)


# ------------------------------------------------------------------------------------------------ folders

def group_sessions(agent: str, strategy: str, finals_percent: list[float], *, day: int = 0) -> list[FakeSession]:
    """Sessions of one agent and strategy whose final % of progress are the given values: each climbs in two
    validated steps, with a rejected faster attempt and a validated one after the budget that must not count."""
    out = []
    for i, pct in enumerate(finals_percent):
        final = percent_to_seconds(pct)
        out.append(FakeSession(
            agent=agent, strategy=strategy, started=T0 + dt.timedelta(days=day, hours=i),
            submissions=[
                FakeSubmission(at_gpu_hours=60.0 + 10 * i, seconds_faster=round(final * 0.4, 6)),
                FakeSubmission(at_gpu_hours=180.0, seconds_faster=final * 1.5, outcome="rejected", edits=("lr",),
                               retime_gpu_hours=0.05),
                FakeSubmission(at_gpu_hours=300.0 + 5 * i, seconds_faster=final, edits=("steps", "lr")),
                FakeSubmission(at_gpu_hours=330.0, seconds_faster=final * 0.7, edits=("cooldown",)),
                FakeSubmission(at_gpu_hours=515.0, seconds_faster=final * 1.3, edits=("steps", "cooldown")),
            ],
            experiments=[FakeExperiment("more-steps", "steps", 20.0), FakeExperiment("adam-lr", "lr", 45.0),
                         FakeExperiment("gelu", "gelu", 120.0, status="discard"),
                         FakeExperiment("async-allreduce", "async-allreduce", 150.0, status="discard"),
                         FakeExperiment("cooldown", "cooldown", 250.0)]))
    return out


PUBLISHED_LIKE = {  # (agent, strategy) -> final % per session, means near the published 9.3 / 8.6 / 8.2
    ("claude-autoresearch", "autoresearch"): [9.0, 9.5, 9.4],
    ("codex", "default"): [8.0, 9.0, 8.8],
    ("claude", "default"): [7.5, 8.2, 8.9],
}


def write_sessions_folder(root: Path, groups: dict[tuple[str, str], list[float]] | None = None, *,
                          extra: list[FakeSession] = ()) -> list[Written]:
    """A folder of sessions with known outcomes: by default three per published agent, all under 10%."""
    written = []
    for day, ((agent, strategy), finals) in enumerate((groups or PUBLISHED_LIKE).items()):
        for spec in group_sessions(agent, strategy, finals, day=day):
            written.append(write_session(root, spec))
    for spec in extra:
        written.append(write_session(root, spec))
    return written


def copy_tree(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, symlinks=True)


# ------------------------------------------------------------------------------------------------ a real agent

FAST_RECORD = REPO / "tests" / "fakes" / "records" / "fast"


def run_scripted_session(root: Path, *, config_path: Path, record: Path = FAST_RECORD, plan: Path | None = None,
                         gpus: int = 8, budget_gpu_hours: float = 1.0, runs: int = 3,
                         session_id: str = "20261127T000000Z-scripted-default", timeout_s: float = 240) -> Path:
    """A session produced by the real scripted agent: the session folder laid out as the session manager lays it
    out (workspace git repo with the anchor's code, runner/anchor, control/, events.jsonl link), the agent run
    as the harness runs it (`python -m nanogpt_tui.agents.scripted` with the contract's environment), its
    submissions validated by the real `submit --judge none`, and the session marked as ended when it exits."""
    import subprocess
    import sys

    d = Path(root) / session_id
    workspace = d / L.WORKSPACE
    for sub in L.WORKSPACE_DIRS:
        (workspace / sub).mkdir(parents=True, exist_ok=True)
    (workspace / "data").mkdir()
    code = [p for p in sorted(record.iterdir()) if p.suffix in (".py", ".sh")]
    (d / L.RUNNER / "anchor").mkdir(parents=True)
    for p in code:
        shutil.copy2(p, workspace / p.name)
        shutil.copy2(p, d / L.RUNNER / "anchor" / p.name)
    (workspace / ".gitignore").write_text("/data\n/logs/\n/verdicts/.work/\n__pycache__/\n")
    git = ["git", "-c", "user.name=nanogpt-tui", "-c", "user.email=nanogpt-tui@localhost"]
    if shutil.which("git"):
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", f"anchor: {FA3}"]):
            subprocess.run([*git, *args], cwd=workspace, check=True, capture_output=True)
    (d / L.CONTROL).mkdir()
    (d / L.CONTAINER_LOG).touch()
    (workspace / "logs" / L.EVENTS_FILE).touch()
    (d / L.EVENTS_FILE).symlink_to(Path(L.WORKSPACE) / "logs" / L.EVENTS_FILE)
    now = dt.datetime.now(dt.timezone.utc)
    session = Session(id=session_id, agent="scripted", strategy="default", strategy_hash="0" * 64, anchor=FA3,
                      target=TARGET, backend="local", host="local", image=None, gpus=gpus,
                      budget_gpu_hours=budget_gpu_hours, created_at=iso(now),
                      config={"benchmark": {"anchor": FA3, "target": TARGET}, "extra_env": {},
                              "judge": {"provider": "none", "model": "none"}})
    session.transition(M.PENDING, "created", now)
    session.started_at = iso(now)
    session.deadline = iso(session.budget().deadline)
    session.transition(M.RUNNING, "started on local", now)
    save_session(d, session)
    contract = contract_env(workspace=str(workspace), runner=str(d / L.RUNNER), control=str(d / L.CONTROL),
                              run_id=session_id, agent="scripted", strategy="default",
                              session_hours=budget_gpu_hours / gpus, anchor=FA3, target=TARGET,
                              validator=str(d / L.VALIDATOR))
    env = {**os.environ, **contract, "NANOGPT_TUI_CONFIG": str(config_path), "BENCHMARK_SCRIPTED_RUNS": str(runs)}
    # The validator apart from the agent answers its submits, as for every session the manager starts.
    (d / L.VALIDATOR).mkdir()
    validator = subprocess.Popen([sys.executable, "-m", "nanogpt_tui", "--config", str(config_path), "validator",
                                  "serve", str(d)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env={k: v for k, v in os.environ.items() if not k.startswith("BENCHMARK_")})
    try:
        done = subprocess.run([sys.executable, "-m", "nanogpt_tui.agents.scripted", "--plan",
                               str(plan or record / "plan.toml")], cwd=workspace, env=env, capture_output=True,
                              text=True, timeout=timeout_s)
    finally:
        session.transition(M.EXITED, "the agent finished")
        save_session(d, session)  # the validator stops once the session has ended and nothing is left
        try:
            validator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            validator.kill()
            validator.wait()
    (d / L.CONTAINER_LOG).write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise AssertionError(f"the scripted agent failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                             f"{done.stderr[-3000:]}")
    session.exit_code = 0
    save_session(d, session)
    return d


def write_autoresearch_history(written: Written, commits: list[tuple[str, str, float, str]]) -> dict[str, str]:
    """Turn a written session's workspace into what the Autoresearch harness leaves: a git repository whose first
    commit is the anchor, one commit per experiment (`git commit -am`, dated at the experiment's start), discarded
    ones reset away (`git reset --hard HEAD~1`, the commit object stays), and `results.tsv` in the workspace with
    `commit val_loss train_time_ms status description`. `commits` are (edit, status, start GPU-hours, description),
    each edit applied to the last kept code. Returns {edit: short hash}."""
    import subprocess

    session = written.session
    workspace = written.path / L.WORKSPACE
    start = dt.datetime.fromisoformat(session.started_at.replace("Z", "+00:00"))

    def git(*args: str, when: dt.datetime | None = None) -> str:
        env = {**os.environ, "GIT_AUTHOR_NAME": "agent", "GIT_AUTHOR_EMAIL": "agent@nanogpt-bench.invalid",
               "GIT_COMMITTER_NAME": "agent", "GIT_COMMITTER_EMAIL": "agent@nanogpt-bench.invalid"}
        if when is not None:
            env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = when.isoformat()
        return subprocess.run(["git", *args], cwd=workspace, env=env, check=True, capture_output=True,
                              text=True).stdout.strip()

    (workspace / ".gitignore").write_text("/data\n/logs/\n/verdicts/\n/submissions/\n/experiments/\nresults.tsv\n")
    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", f"anchor: {session.anchor}", when=start - dt.timedelta(minutes=1))
    git("checkout", "-q", "-b", f"autoresearch/{session.id}")
    rows = ["commit\tval_loss\ttrain_time_ms\tstatus\tdescription"]
    hashes = {}
    for edit, status, at_gpu_hours, description in commits:
        when = start + dt.timedelta(hours=at_gpu_hours / session.gpus)
        path = workspace / "train_gpt.py"
        path.write_text(EDITS[edit](path.read_text()))
        git("commit", "-q", "-am", description, when=when)
        short = git("rev-parse", "--short=7", "HEAD")
        hashes[edit] = short
        rows.append(f"{short}\t3.2771\t160000\t{status}\t{description}")
        if status != "keep":
            git("reset", "-q", "--hard", "HEAD~1")
    (workspace / "results.tsv").write_text("\n".join(rows) + "\n")
    return hashes
