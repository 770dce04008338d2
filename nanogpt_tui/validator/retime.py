"""Retiming: run a candidate's `run.sh` N times in a scratch copy with the data linked in, keeping every run."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nanogpt_tui.contract.deadline import read_deadline_or_none
from nanogpt_tui.contract.env import without_secrets
from nanogpt_tui.procgroup import stop_tree, tied_to_caller
from nanogpt_tui.validator.runlog import final_line, last_val_line

@dataclass
class RunOutcome:
    """One retiming run: how it ended and, when it finished, its scoring line."""

    index: int  # 1-based
    status: str  # "ok", "crashed", "no-final-line", "timeout"
    exit_code: int | None
    wall_s: float
    log: str  # log file name, relative to the verdict's run folder
    val_loss: float | None = None
    train_time_ms: float | None = None
    final_step: int | None = None
    total_steps: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunOutcome":
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


@dataclass
class RetimeResult:
    runs: list[RunOutcome] = field(default_factory=list)
    requested: int = 0
    stopped_early: bool = False
    stop_reason: str | None = None

    @property
    def wall_s(self) -> float:
        return sum(r.wall_s for r in self.runs)


def visible_gpu_count(env: Mapping[str, str]) -> int:
    """GPUs this process may use: CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES, else the NVIDIA device nodes."""
    for name in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"):
        value = env.get(name)
        if value is not None:
            value = value.strip()
            if value in ("", "none", "void", "-1"):
                return 0
            if value == "all":
                break
            return len([v for v in value.split(",") if v.strip()])
    return len(glob.glob("/dev/nvidia[0-9]*"))


def prepare_work_dir(candidate_dir: Path, work_dir: Path, data_dir: Path | None) -> Path:
    """Copy the candidate into a fresh scratch folder (the submission itself stays untouched and hashable)
    and link the shared data in as `data/`, the path speedrun code reads from."""
    if work_dir.exists():
        shutil.rmtree(work_dir)
    shutil.copytree(candidate_dir, work_dir, symlinks=True,
                    ignore=shutil.ignore_patterns("logs", "__pycache__", "data"))
    if data_dir is not None:
        (work_dir / "data").symlink_to(Path(data_dir).resolve(), target_is_directory=True)
    return work_dir


_STEP = re.compile(rb"step:(\d+)/(\d+)")
STEP_PROGRESS = re.compile(r"run (\d+)/(\d+): step (\d+)/(\d+)")


def step_progress(run: int, runs: int, step: int, steps: int) -> str:
    """The progress line of a run that reached a step (`run 4/10: step 1200/1600`); `protocol.append_progress`
    gives its numbers their own fields."""
    return f"run {run}/{runs}: step {step}/{steps}"


STEP_POLL_S = 5.0  # how often a run's log is read for its latest step (progress, not timing)
DEADLINE_POLL_S = 1.0  # how often the session's deadline file is re-read while a run goes on
# A retiming ends this long before the session's deadline: the validator still has to resume the paused agent,
# whose own watchdog (frozen with it) then stops it at the deadline itself.
DEADLINE_MARGIN_S = 5.0


class SessionClock:
    """When the retiming must be over: the session's deadline (re-read from its deadline file, so an `extend`
    during a retiming counts) less DEADLINE_MARGIN_S. The agent is paused while it retimes, and with it the
    session's own watchdog, so the retiming must not outlast the deadline. No file: no limit."""

    def __init__(self, control_dir: Path | None, margin_s: float = DEADLINE_MARGIN_S) -> None:
        self.control_dir, self.margin_s = control_dir, margin_s
        self._last = read_deadline_or_none(control_dir)

    def seconds_left(self) -> float | None:
        if self.control_dir is None:
            return None
        self._last = read_deadline_or_none(self.control_dir) or self._last  # mid-rewrite: keep the last one
        return None if self._last is None else self._last.seconds_left() - self.margin_s


class CutAtDeadline(Exception):
    """A run was stopped because the session's deadline came."""


def _wait_reporting_steps(proc: subprocess.Popen, log_path: Path, timeout_s: float,
                          on_step: Callable[[int, int], None] | None, clock: SessionClock | None = None) -> int:
    """`proc.wait(timeout_s)`, telling `on_step(step, total)` each time the log shows a later training step;
    CutAtDeadline once the session's clock runs out."""
    if on_step is None and clock is None:
        return proc.wait(timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    poll_s = STEP_POLL_S if clock is None else DEADLINE_POLL_S
    offset, last, tail = 0, -1, b""
    next_step_read = 0.0
    while True:
        try:
            return proc.wait(timeout=max(0.0, min(poll_s, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                raise
        if clock is not None and (left := clock.seconds_left()) is not None and left <= 0:
            raise CutAtDeadline
        if on_step is None or time.monotonic() < next_step_read:
            continue
        next_step_read = time.monotonic() + STEP_POLL_S
        try:
            with open(log_path, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read(1 << 20)
        except OSError:
            continue
        offset += len(chunk)
        found = _STEP.findall(tail + chunk)
        tail = chunk[-64:]
        if found:
            step, total = (int(x) for x in found[-1])
            if step > last:
                last = step
                on_step(step, total)


def run_once(work_dir: Path, log_path: Path, index: int, *, timeout_s: float, env: Mapping[str, str],
             on_step: Callable[[int, int], None] | None = None, clock: SessionClock | None = None) -> RunOutcome:
    """Run `bash run.sh` once in its own process group, its output going to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    timed_out = cut = False
    with open(log_path, "wb") as log:
        # Tied to this process: a SIGKILLed `submit` takes its training run with it (no orphaned GPU job).
        proc = subprocess.Popen([*tied_to_caller(), "bash", "run.sh"], cwd=work_dir, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=dict(env), start_new_session=True)
        try:
            exit_code = _wait_reporting_steps(proc, log_path, timeout_s, on_step, clock)
        except subprocess.TimeoutExpired:
            timed_out = True
            stop_tree(proc)
            exit_code = proc.returncode
        except CutAtDeadline:
            cut = True
            stop_tree(proc)
            exit_code = proc.returncode
        except BaseException:
            # Interrupted (the session's watchdog, a kill): the run is disposable, and whoever interrupts us may
            # not wait long, so the run's whole group goes at once rather than outliving this process.
            stop_tree(proc, grace_s=0.0)
            raise
    wall = time.monotonic() - start
    text = log_path.read_text(encoding="utf-8", errors="replace")
    line = final_line(text)
    outcome = RunOutcome(index=index, status="ok", exit_code=exit_code, wall_s=round(wall, 3), log=log_path.name)
    if line is not None:
        outcome.val_loss, outcome.train_time_ms = line.val_loss, line.train_time_ms
        outcome.final_step, outcome.total_steps = line.step, line.total_steps
    if cut:
        outcome.status = "timeout"
        outcome.error = f"run {index} was stopped at the session's deadline after {wall:.0f} s"
    elif timed_out:
        outcome.status, outcome.error = "timeout", f"run {index} passed its {timeout_s:g} s limit and was stopped"
    elif exit_code != 0:
        outcome.status, outcome.error = "crashed", f"run {index} exited with status {exit_code}"
    elif line is None:
        last = last_val_line(text)
        outcome.status = "no-final-line"
        outcome.error = (f"run {index} stopped at step {last.step} of {last.total_steps}" if last
                         else f"run {index} printed no `step:N/N val_loss:X train_time:Yms` line")
    return outcome


def retime(candidate_dir: Path, *, runs: int, work_dir: Path, logs_dir: Path, data_dir: Path | None,
           val_loss_target: float, p_value_threshold: float, timeout_s: float,
           env: Mapping[str, str] | None = None,
           on_progress: Callable[[str], None] = lambda line: None, report_steps: bool = False,
           clock: SessionClock | None = None) -> RetimeResult:
    """Run the candidate `runs` times, one after another, stopping early (with the reason) as soon as the
    submission can no longer validate: a run failed, no val_loss values of the remaining runs could bring the
    one-sided p-value under the threshold (see `stats.best_reachable_p_value`), or the session's `clock` ran out
    (a run it cuts counts as failed: the submission did not validate within the session's budget)."""
    # scipy is imported here, not at module load: reading verdicts (which imports RunOutcome) stays fast.
    from nanogpt_tui.validator.stats import best_reachable_p_value

    prepare_work_dir(candidate_dir, work_dir, data_dir)
    # Candidate code is untrusted and could print a secret into a log.
    run_env = without_secrets(os.environ if env is None else env)
    result = RetimeResult(requested=runs)
    try:
        for index in range(1, runs + 1):
            left = clock.seconds_left() if clock is not None else None
            if left is not None and left <= 0:
                result.stopped_early = True
                result.stop_reason = (f"the session's deadline came after {index - 1} of {runs} run(s), so the "
                                      "remaining ones were skipped")
                break
            on_step = (lambda step, total, i=index: on_progress(step_progress(i, runs, step, total))) \
                if report_steps else None
            outcome = run_once(work_dir, logs_dir / f"run_{index:02d}.log", index, timeout_s=timeout_s, env=run_env,
                               on_step=on_step, clock=clock)
            result.runs.append(outcome)
            on_progress(describe_run(outcome, runs))
            if not outcome.ok:
                result.stopped_early = index < runs
                result.stop_reason = (f"{outcome.error}; a submission with a failed run cannot validate"
                                      + (f", so the remaining {runs - index} run(s) were skipped" if index < runs
                                         else ""))
                break
            losses = [r.val_loss for r in result.runs]
            remaining = runs - index
            if remaining and len(losses) + remaining >= 2:
                best = best_reachable_p_value(losses, remaining, val_loss_target)
                if not best < p_value_threshold:
                    result.stopped_early = True
                    result.stop_reason = (
                        f"after {index} run(s) even the most favourable val_loss values for the remaining "
                        f"{remaining} run(s) give p >= {best:.3g}, not below {p_value_threshold:g}, so they were skipped")
                    break
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return result


def describe_run(outcome: RunOutcome, runs: int) -> str:
    """One progress line per run."""
    head = f"run {outcome.index}/{runs}:"
    if outcome.ok:
        return (f"{head} val_loss {outcome.val_loss:.4f}  train_time {outcome.train_time_ms / 1000:.3f} s  "
                f"(wall {outcome.wall_s:.1f} s)")
    return f"{head} FAILED ({outcome.status}): {outcome.error} (wall {outcome.wall_s:.1f} s, log {outcome.log})"
