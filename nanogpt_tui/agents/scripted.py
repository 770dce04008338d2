"""The scripted agent: an offline researcher on a plan (no API, no key) that drives the demo and the end-to-end tests.

Run as `python3 -m nanogpt_tui.agents.scripted [--plan FILE]` inside a session (the harness in
`nanogpt_tui/agents/harnesses/scripted/` does). It works the way the benchmark's agents are asked to:

1. time the starting point once (`baseline = true` in the plan), in `experiments/00_baseline/`;
2. for each experiment of the plan, copy the current best into `experiments/NN_<name>/`, apply the edit
   (a `Hyperparameters` default located through the AST, or an exact text substitution that must match
   once), check the static rules, run `bash run.sh` once, and keep the change when its final val_loss is
   below the record's target and its train_time beats the best so far, else discard it; every experiment
   is a row of `experiments/results.tsv`;
3. commit each kept experiment in the workspace repository, promote it to `submissions/submission_N/` and
   validate it with `nanogpt-tui submit --judge none`;
4. once the plan is done, wait quietly for the deadline (it does not invent further experiments: the plan
   is the script, so a demo or a test sees exactly the steps it was given).

It re-reads `$BENCHMARK_CONTROL_DIR/deadline.json` before every step and every second while a run is going,
so `extend` moves its deadline too, and stops cleanly (its runs killed, a `result` event, exit 0) when the
deadline passes or on SIGINT/SIGTERM (the session watchdog's stop). Invoked again in the same workspace it
resumes: experiments already in `results.tsv` are not run again.

Events go to `$BENCHMARK_EVENTS_PATH` in nanogpt-tui's own event model, one JSON object per line, through
`nanogpt_tui.agents.events.append_event`; a short human line per action goes to stdout (the session's
container.log).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanogpt_tui.agents.events import append_event
from nanogpt_tui.code_edits import EditError, apply_edits, python_literal
from nanogpt_tui.contract.deadline import read_deadline_or_none
from nanogpt_tui.contract.env import (
    ENV_ANCHOR_DIR,
    ENV_CONTROL_DIR,
    ENV_EVENTS_PATH,
    ENV_LOG_DIR,
    ENV_RUN_ID,
    ENV_RUNNER_DIR,
    ENV_SCRIPTED_PLAN,
    ENV_SCRIPTED_RUNS,
    ENV_SUBMISSION_DIR,
    ENV_VALIDATOR_DIR,
    ENV_WORKSPACE,
)
from nanogpt_tui.procgroup import stop_tree

AGENT_NAME = "scripted"
DEFAULT_PLAN = Path(__file__).resolve().parent / "harnesses" / "scripted" / "plan.toml"
DEFAULT_VAL_LOSS_TARGET = 3.28  # the speedrun's, for a record without its own record.toml
RESULTS_HEADER = ("experiment", "kind", "val_loss", "train_time_ms", "status", "wall_s", "parent", "description")
KINDS = ("hyperparameter", "algorithmic")
CODE_SUFFIXES = (".py", ".sh")
POLL_S = 0.2
DEADLINE_REREAD_S = 1.0
STOP_GRACE_S = 8.0  # between SIGINT to a child's process group and SIGKILL (submit kills its own run first)
TAIL_CHARS = 600
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")



class PlanError(Exception):
    """The plan file is unusable; the message says what to fix."""


class Stopped(Exception):
    """The deadline passed or a stop signal came: finish now."""


# ------------------------------------------------------------------------------------------------- the plan

@dataclass(frozen=True)
class Experiment:
    """One step of the plan: a named change of a kind, and why the researcher tries it."""

    name: str
    kind: str
    why: str = ""
    set: Mapping[str, Any] = field(default_factory=dict)  # Hyperparameters field -> new literal value
    replace: tuple[tuple[str, str], ...] = ()  # exact (old, new) substitutions, each matching once

    def summary(self) -> str:
        parts = [f"{k} = {python_literal(v)}" for k, v in self.set.items()]
        parts += [f"replace {len(old.splitlines()) or 1} line(s)" for old, _ in self.replace]
        return ", ".join(parts)


@dataclass(frozen=True)
class Plan:
    name: str
    description: str
    experiments: tuple[Experiment, ...]
    runs: int = 3  # retimings per submit
    run_timeout_s: float = 600.0  # one experiment run
    baseline: bool = True  # time the starting point before the first experiment
    path: Path | None = None


def load_plan(path: Path) -> Plan:
    """Read and check a plan file; raises PlanError with one sentence naming the file and the problem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError(f"The plan {path} does not exist; pass --plan FILE or set {ENV_SCRIPTED_PLAN}.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise PlanError(f"The plan {path} is not valid TOML ({err}); fix it.") from None
    return plan_from_dict(data, path)


def plan_from_dict(data: Mapping[str, Any], path: Path | None = None) -> Plan:
    where = f"The plan {path}" if path else "The plan"
    raw = data.get("experiment", [])
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise PlanError(f"{where} must list its experiments as [[experiment]] tables.")
    experiments: list[Experiment] = []
    for index, item in enumerate(raw, start=1):
        name = item.get("name")
        label = f"{where}, experiment {index}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise PlanError(f"{label} needs a name of letters, digits, '.', '_' or '-' (it becomes a folder name).")
        if name in {e.name for e in experiments} or name == "baseline":
            raise PlanError(f"{label}: the name {name!r} is taken; give each experiment its own name.")
        kind = item.get("kind")
        if kind not in KINDS:
            raise PlanError(f"{label} ({name}): kind must be one of {', '.join(KINDS)}, not {kind!r}.")
        values = item.get("set", {})
        if not isinstance(values, dict) or not all(isinstance(v, (bool, int, float, str)) for v in values.values()):
            raise PlanError(f"{label} ({name}): `set` must be a table of Hyperparameters fields to numbers, "
                            "booleans or strings, e.g. set = {{ num_iterations = 150 }}.")
        replaces = item.get("replace", [])
        if isinstance(replaces, dict):
            replaces = [replaces]
        if not isinstance(replaces, list) or not all(
                isinstance(r, dict) and isinstance(r.get("old"), str) and isinstance(r.get("new"), str) and r["old"]
                for r in replaces):
            raise PlanError(f"{label} ({name}): `replace` must be {{ old = \"...\", new = \"...\" }} "
                            "(or a list of them) with a non-empty `old`.")
        if not values and not replaces:
            raise PlanError(f"{label} ({name}) changes nothing; give it `set` or `replace`.")
        why = item.get("why", "")
        experiments.append(Experiment(name=name, kind=kind, why=why if isinstance(why, str) else "",
                                      set=dict(values), replace=tuple((r["old"], r["new"]) for r in replaces)))
    runs = data.get("runs", 3)
    if not isinstance(runs, int) or isinstance(runs, bool) or runs < 2:
        raise PlanError(f"{where}: runs (retimings per submit) must be an integer of at least 2.")
    timeout = data.get("run_timeout_s", 600.0)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise PlanError(f"{where}: run_timeout_s must be a positive number of seconds.")
    baseline = data.get("baseline", True)
    if not isinstance(baseline, bool):
        raise PlanError(f"{where}: baseline must be true or false.")
    return Plan(name=str(data.get("name") or (path.stem if path else "plan")),
                description=str(data.get("description", "")), experiments=tuple(experiments), runs=runs,
                run_timeout_s=float(timeout), baseline=baseline, path=path)


# ------------------------------------------------------------------------------------------------ the edits

def apply_edit(source: str, experiment: Experiment) -> tuple[str, list[str]]:
    """The experiment's code: its substitutions first, then its Hyperparameters values."""
    return apply_edits(source, experiment.replace, experiment.set)


# ------------------------------------------------------------------------------------------------- results

@dataclass
class ResultRow:
    """One row of experiments/results.tsv (the Autoresearch-style notebook; the session report reads it)."""

    experiment: str  # the folder name under experiments/, e.g. 02_fewer-steps
    kind: str  # baseline, hyperparameter, algorithmic
    val_loss: float | None
    train_time_ms: float | None
    status: str  # keep, discard, crash
    description: str
    wall_s: float | None = None  # the run's wall-clock time (what it cost the session)
    parent: str = "anchor"  # the experiment it started from

    def to_line(self) -> str:
        cells = [self.experiment, self.kind, "" if self.val_loss is None else f"{self.val_loss:.4f}",
                 "" if self.train_time_ms is None else f"{self.train_time_ms:.0f}", self.status,
                 "" if self.wall_s is None else f"{self.wall_s:.1f}", self.parent, " ".join(self.description.split())]
        return "\t".join(c.replace("\t", " ") for c in cells) + "\n"


def read_results(path: Path) -> list[ResultRow]:
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        return []
    header = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        cell = dict(zip(header, line.split("\t")))
        if not cell.get("experiment") or not cell.get("status"):
            continue

        def number(name: str) -> float | None:
            try:
                return float(cell[name]) if cell.get(name) else None
            except ValueError:
                return None

        rows.append(ResultRow(cell["experiment"], cell.get("kind", ""), number("val_loss"), number("train_time_ms"),
                              cell["status"], cell.get("description", ""), number("wall_s"),
                              cell.get("parent") or "anchor"))
    return rows


def append_result(path: Path, row: ResultRow) -> None:
    new = not path.is_file()
    with open(path, "a", encoding="utf-8") as handle:
        if new:
            handle.write("\t".join(RESULTS_HEADER) + "\n")
        handle.write(row.to_line())


# --------------------------------------------------------------------------------------------- the agent

def tail(text: str, limit: int = TAIL_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


_EXCEPTION_LINE = re.compile(r"^(?:\[rank\d+\]:\s*)?((?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception)\b.*)$", re.M)


def crash_summary(output: str) -> str:
    """The exception that ended a run (torchrun's own wrapper error left out), else the output's tail."""
    found = [m.group(1).strip() for m in _EXCEPTION_LINE.finditer(output) if "ChildFailedError" not in m.group(1)]
    return found[-1][:300] if found else tail(output, 300)


def code_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in CODE_SUFFIXES)


@dataclass
class Best:
    """The code every next experiment starts from."""

    folder: Path
    label: str
    train_time_ms: float | None  # None until something was timed


@dataclass
class ProcessResult:
    exit_code: int | None
    timed_out: bool
    output: str


class ScriptedAgent:
    """One invocation of the scripted agent on a session workspace: runs the plan, then waits for the deadline."""

    def __init__(self, plan: Plan, *, workspace: Path, anchor_dir: Path, events_path: Path | None,
                 control_dir: Path | None, runs: int, run_id: str | None = None) -> None:
        self.plan = plan
        self.workspace = workspace
        self.anchor_dir = anchor_dir
        self.events_path = events_path
        self.control_dir = control_dir
        self.runs = runs
        self.run_id = run_id
        self.experiments_dir = workspace / "experiments"
        self.submissions_dir = Path(os.environ.get(ENV_SUBMISSION_DIR) or workspace / "submissions")
        # In a session the validator apart from the agent writes the verdicts (read-only here); standalone, submit
        # writes them into the workspace.
        validator = os.environ.get(ENV_VALIDATOR_DIR)
        self.verdicts_dir = Path(validator) / "verdicts" if validator else workspace / "verdicts"
        self.data_dir = workspace / "data"
        self.log_dir = Path(os.environ.get(ENV_LOG_DIR) or workspace / "logs") / "scripted"
        self.results_path = self.experiments_dir / "results.tsv"
        self.val_loss_target = self._val_loss_target()
        self.started = time.monotonic()
        self.stop_signal: int | None = None
        first = read_deadline_or_none(control_dir)
        self._deadline: float | None = first.epoch if first else None
        self._deadline_read_at = time.monotonic()
        self._calls = 0
        self._git_ok: bool | None = None

    # ---- output

    def emit(self, type: str, **fields: Any) -> None:
        if self.events_path is not None:
            append_event(self.events_path, type, **fields)

    def say(self, text: str) -> None:
        print(f"[scripted {dt.datetime.now(dt.timezone.utc):%H:%M:%S}] {text}", flush=True)

    def message(self, text: str) -> None:
        self.say(text)
        self.emit("message", text=text)

    def reasoning(self, text: str) -> None:
        self.say(f"(thinking) {' '.join(text.split())}")
        self.emit("reasoning", text=" ".join(text.split()))

    def call(self, tool: str, *, command: str | None = None, file: str | None = None,
             text: str | None = None) -> str:
        self._calls += 1
        call_id = f"scripted-{os.getpid()}-{self._calls}"
        self.say(f"$ {command}" if command else f"{tool} {file}" + (f": {text}" if text else ""))
        self.emit("tool_call", tool=tool, command=command, file=file, call_id=call_id, text=text)
        return call_id

    def result(self, call_id: str, ok: bool, text: str) -> None:
        self.say(("  ok: " if ok else "  FAILED: ") + tail(text, 200).replace("\n", " | "))
        self.emit("tool_result", call_id=call_id, ok=ok, text=tail(text))

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.workspace))
        except ValueError:
            return str(path)

    # ---- time and stopping

    def on_signal(self, signum: int, frame: Any) -> None:  # noqa: ARG002 - signal handler signature
        self.stop_signal = signum

    def seconds_left(self) -> float | None:
        now = time.monotonic()
        if now - self._deadline_read_at >= DEADLINE_REREAD_S:
            # The host rewrites the file when the session is extended; a file being replaced reads as
            # nothing for an instant, so keep the last deadline then.
            latest = read_deadline_or_none(self.control_dir)
            self._deadline = latest.epoch if latest else self._deadline
            self._deadline_read_at = now
        return None if self._deadline is None else self._deadline - time.time()

    def checkpoint(self) -> None:
        """Raise Stopped when a stop signal came or the deadline passed."""
        if self.stop_signal is not None:
            left = self.seconds_left()
            name = signal.Signals(self.stop_signal).name
            if left is not None and left <= 1.0:
                raise Stopped(f"stopped at the deadline ({name})")
            raise Stopped(f"stopped by {name}")
        left = self.seconds_left()
        if left is not None and left <= 0:
            raise Stopped("stopped at the deadline")

    def run_process(self, argv: Sequence[str], *, cwd: Path, timeout_s: float, log_path: Path, call_id: str,
                    env: Mapping[str, str] | None = None) -> ProcessResult:
        """Run argv in its own process group, output to `log_path`, watching the clock and the deadline.

        On a stop it interrupts the whole group (SIGINT, then SIGKILL after a grace period), reports the tool
        call as cut short, and raises Stopped.
        """
        log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(list(argv), cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=dict(env if env is not None else os.environ),
                                    start_new_session=True)
            timed_out = False
            try:
                while proc.poll() is None:
                    self.checkpoint()
                    if time.monotonic() - started > timeout_s:
                        timed_out = True
                        stop_tree(proc, first=signal.SIGINT, grace_s=STOP_GRACE_S)
                        break
                    time.sleep(POLL_S)
            except Stopped as stop:
                stop_tree(proc, first=signal.SIGINT, grace_s=STOP_GRACE_S)
                self.result(call_id, False, f"interrupted: {stop}")
                raise
            except BaseException:
                stop_tree(proc, first=signal.SIGINT, grace_s=STOP_GRACE_S)
                raise
        output = log_path.read_text(encoding="utf-8", errors="replace")
        return ProcessResult(exit_code=proc.returncode, timed_out=timed_out, output=output)

    # ---- the steps

    def _val_loss_target(self) -> float:
        for folder in (self.anchor_dir, self.workspace):
            path = folder / "record.toml"
            if path.is_file():
                try:
                    value = tomllib.loads(path.read_text(encoding="utf-8")).get("val_loss_target")
                except (tomllib.TOMLDecodeError, UnicodeDecodeError):
                    continue
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    return float(value)
        return DEFAULT_VAL_LOSS_TARGET

    def prepare(self, folder: Path, source: Path) -> None:
        """A fresh experiment folder holding the code of `source`, with the shared data linked in as data/."""
        files = code_files(source)
        data_link = os.path.relpath(self.data_dir, folder)
        command = (f"rm -rf {shlex.quote(self.rel(folder))} && mkdir -p {shlex.quote(self.rel(folder))} && cp -p "
                   + " ".join(shlex.quote(self.rel(f)) for f in files)
                   + f" {shlex.quote(self.rel(folder))}/ && ln -s {data_link} {shlex.quote(self.rel(folder))}/data")
        call_id = self.call("bash", command=command)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for f in files:
            shutil.copy2(f, folder / f.name)
        (folder / "data").symlink_to(data_link, target_is_directory=True)
        self.result(call_id, True, f"copied {', '.join(f.name for f in files)} from {self.rel(source) or '.'}")

    def edit(self, folder: Path, experiment: Experiment) -> str | None:
        """Apply the experiment's edit; returns None, or one sentence saying why it could not be applied."""
        path = folder / "train_gpt.py"
        call_id = self.call("edit", file=self.rel(path), text=experiment.summary())
        try:
            source, changes = apply_edit(path.read_text(encoding="utf-8"), experiment)
        except (EditError, SyntaxError, OSError) as err:
            self.result(call_id, False, str(err))
            return str(err)
        path.write_text(source, encoding="utf-8")
        self.result(call_id, True, "; ".join(changes))
        return None

    def check_rules(self, folder: Path) -> list[str]:
        """The static rule violations of the folder (empty when it is clean)."""
        argv = [sys.executable, "-m", "nanogpt_tui", "check-rules", "--anchor", str(self.anchor_dir), str(folder),
                "--json"]
        call_id = self.call("bash", command=f"python3 -m nanogpt_tui check-rules --anchor {self.anchor_dir} "
                                            f"{self.rel(folder)} --json")
        done = self.run_process(argv, cwd=self.workspace, timeout_s=120, log_path=self.log_dir / "check-rules.log",
                                call_id=call_id)
        try:
            report = json.loads(done.output[done.output.index("{"):])
            violations = [f"{v['rule']}: {v['file']}:{v['line']}: {v['message']}" for v in report["violations"]]
        except (ValueError, KeyError, TypeError):
            self.result(call_id, False, done.output or f"exit status {done.exit_code}")
            return [f"check-rules failed (exit status {done.exit_code}): {tail(done.output, 200)}"]
        self.result(call_id, not violations, "; ".join(violations) or "breaks none of the static rules")
        return violations

    def train(self, folder: Path) -> tuple[float | None, float | None, float, str]:
        """Run the folder's run.sh once: (val_loss, train_time_ms, wall seconds, what happened)."""
        from nanogpt_tui.validator.runlog import final_line, last_val_line

        timeout = self.plan.run_timeout_s
        call_id = self.call("bash", command=f"cd {shlex.quote(self.rel(folder))} && bash run.sh > run.log 2>&1")
        started = time.monotonic()
        done = self.run_process(["bash", "run.sh"], cwd=folder, timeout_s=timeout, log_path=folder / "run.log",
                                call_id=call_id)
        wall = time.monotonic() - started
        line = final_line(done.output)
        if done.timed_out:
            what = f"the run passed its {timeout:.0f} s limit and was stopped"
        elif done.exit_code != 0:
            what = f"the run exited with status {done.exit_code}: {crash_summary(done.output)}"
        elif line is None:
            last = last_val_line(done.output)
            what = (f"the run stopped at step {last.step} of {last.total_steps}" if last
                    else "the run printed no final `step:N/N val_loss:X train_time:Yms` line")
        else:
            text = (f"step:{line.step}/{line.total_steps} val_loss:{line.val_loss:.4f} "
                    f"train_time:{line.train_time_ms:.0f}ms (wall {wall:.1f} s)")
            self.result(call_id, True, text)
            return line.val_loss, line.train_time_ms, wall, text
        self.result(call_id, False, what)
        return None, None, wall, what

    def git_commit(self, paths: Sequence[Path], message: str) -> None:
        if self._git_ok is None:
            probe = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=self.workspace,
                                   capture_output=True, text=True) if shutil.which("git") else None
            self._git_ok = probe is not None and probe.returncode == 0
            if not self._git_ok:
                self.message("the workspace is not a git repository (or git is missing): kept experiments "
                             "are not committed")
        if not self._git_ok:
            return
        rels = [self.rel(p) for p in paths]
        call_id = self.call("bash", command=f"git add -- {' '.join(map(shlex.quote, rels))} && "
                                            f"git commit -m {shlex.quote(message)}")
        identity = ["-c", f"user.name={AGENT_NAME}-agent", "-c", "user.email=scripted@localhost"]
        log = self.log_dir / "git.log"
        done = self.run_process(["git", "add", "--", *rels], cwd=self.workspace, timeout_s=60, log_path=log,
                                call_id=call_id)
        if done.exit_code == 0:
            done = self.run_process(["git", *identity, "commit", "-q", "-m", message, "--", *rels],
                                    cwd=self.workspace, timeout_s=60, log_path=log, call_id=call_id)
        ok = done.exit_code == 0
        self.result(call_id, ok, "committed" if ok and not done.output.strip() else done.output)

    def record(self, row: ResultRow) -> None:
        self.experiments_dir.mkdir(parents=True, exist_ok=True)
        append_result(self.results_path, row)

    def run_baseline(self, best: Best) -> Best:
        folder = self.experiments_dir / "00_baseline"
        self.reasoning("Before changing anything, time the starting point once on this hardware, so every change "
                       "is judged against a measured train_time rather than a number from elsewhere.")
        self.prepare(folder, best.folder)
        # `submit --baseline` retimes the anchor N times and leaves a baseline verdict, the reference that later
        # verdicts measure their speedup against (the smoke record has no human timeline to give one).
        started = time.monotonic()
        verdict = self.submit(folder, baseline=True)
        stats = (verdict or {}).get("stats") or {}
        if verdict and verdict.get("outcome") == "baseline" and stats.get("mean_train_time_ms"):
            val_loss, time_ms = stats["mean_val_loss"], stats["mean_train_time_ms"]
            wall, what = time.monotonic() - started, "retimed with submit --baseline"
        else:
            val_loss, time_ms, wall, what = self.train(folder)
        if val_loss is None:
            self.record(ResultRow(folder.name, "baseline", None, None, "crash", what, wall, best.label))
            self.message(f"the baseline run failed ({what}); experiments are judged by val_loss alone")
            return best
        status = "keep"
        self.record(ResultRow(folder.name, "baseline", val_loss, time_ms, status,
                              f"the starting point ({best.label}) as it is", wall, best.label))
        self.message(f"baseline: val_loss {val_loss:.4f} (target {self.val_loss_target:g}), "
                     f"train_time {time_ms / 1000:.3f} s")
        return Best(folder=folder, label=folder.name, train_time_ms=time_ms)

    def run_experiment(self, index: int, experiment: Experiment, best: Best) -> Best:
        folder = self.experiments_dir / f"{index:02d}_{experiment.name}"
        self.reasoning(experiment.why or f"Try {experiment.name} ({experiment.kind}): {experiment.summary()}.")
        self.prepare(folder, best.folder)
        problem = self.edit(folder, experiment)
        if problem is not None:
            self.record(ResultRow(folder.name, experiment.kind, None, None, "crash", f"edit failed: {problem}",
                                  parent=best.label))
            self.message(f"{experiment.name}: the edit could not be applied; moving on ({problem})")
            return best
        violations = self.check_rules(folder)
        if violations:
            self.record(ResultRow(folder.name, experiment.kind, None, None, "discard",
                                  f"breaks the rules: {violations[0]}", parent=best.label))
            self.message(f"DISCARD {experiment.name}: it breaks the competition rules ({violations[0]})")
            return best
        val_loss, time_ms, wall, what = self.train(folder)
        if val_loss is None:
            self.record(ResultRow(folder.name, experiment.kind, None, None, "crash", what, wall, best.label))
            self.message(f"CRASH {experiment.name}: {what}")
            return best
        change = experiment.summary()
        if val_loss >= self.val_loss_target:
            status = "discard"
            why = f"val_loss {val_loss:.4f} misses the target {self.val_loss_target:g}"
        elif best.train_time_ms is not None and time_ms >= best.train_time_ms:
            status = "discard"
            why = (f"train_time {time_ms / 1000:.3f} s is not faster than {best.label}'s "
                   f"{best.train_time_ms / 1000:.3f} s")
        else:
            status = "keep"
            why = (f"val_loss {val_loss:.4f} < {self.val_loss_target:g} and train_time {time_ms / 1000:.3f} s"
                   + (f" beats {best.label}'s {best.train_time_ms / 1000:.3f} s" if best.train_time_ms else ""))
        self.record(ResultRow(folder.name, experiment.kind, val_loss, time_ms, status, f"{change}: {why}", wall,
                              best.label))
        self.message(f"{status.upper()} {experiment.name}: {why}")
        if status != "keep":
            return best
        new_best = Best(folder=folder, label=folder.name, train_time_ms=time_ms)
        self.promote_and_submit(new_best, commit_also=[folder / f.name for f in code_files(folder)])
        return new_best

    def submitted(self, folder: Path) -> bool:
        """Whether some submission folder already holds exactly this folder's code."""
        mine = {f.name: f.read_bytes() for f in code_files(folder)}
        if not self.submissions_dir.is_dir():
            return False
        for sub in self.submissions_dir.iterdir():
            if sub.is_dir() and {f.name: f.read_bytes() for f in code_files(sub)} == mine:
                return True
        return False

    def next_submission_dir(self) -> Path:
        numbers = [int(m.group(1)) for p in (self.submissions_dir.iterdir() if self.submissions_dir.is_dir() else [])
                   if (m := re.fullmatch(r"submission_(\d+)", p.name))]
        return self.submissions_dir / f"submission_{max(numbers, default=0) + 1}"

    def promote_and_submit(self, best: Best, commit_also: Sequence[Path] = ()) -> None:
        target = self.next_submission_dir()
        files = code_files(best.folder)
        call_id = self.call("bash", command=f"mkdir -p {self.rel(target)} && cp -p "
                            + " ".join(shlex.quote(self.rel(f)) for f in files) + f" {self.rel(target)}/")
        target.mkdir(parents=True)
        for f in files:
            shutil.copy2(f, target / f.name)
        self.result(call_id, True, f"{best.label} promoted to {self.rel(target)}")
        self.git_commit([*commit_also, *(target / f.name for f in files), self.results_path],
                        f"keep {best.label}; promote it to {target.name}")
        self.submit(target)

    def submit(self, folder: Path, *, baseline: bool = False) -> dict | None:
        """Run `submit` on a folder (with `baseline`, the anchor's own retiming); the verdict it wrote, if any."""
        self.checkpoint()
        flag = ["--baseline"] if baseline else []
        argv = [sys.executable, "-m", "nanogpt_tui", "submit", *flag, str(folder), "--judge", "none",
                "--runs", str(self.runs), "--data", str(self.data_dir)]
        call_id = self.call("bash", command=f"python3 -m nanogpt_tui submit {' '.join(flag)} {self.rel(folder)} "
                                            f"--judge none --runs {self.runs} --data {self.rel(self.data_dir)}")
        # `submit` itself appends the submission_started and verdict events to $BENCHMARK_EVENTS_PATH, as it
        # does for every agent; the agent only reads the verdict to decide and to tell.
        env = dict(os.environ)
        if self.anchor_dir.is_dir():
            env[ENV_ANCHOR_DIR] = str(self.anchor_dir)
        before = set(self.verdicts_dir.glob("*.json")) if self.verdicts_dir.is_dir() else set()
        timeout = self.runs * self.plan.run_timeout_s + 300
        done = self.run_process(argv, cwd=self.workspace, timeout_s=timeout, env=env,
                                log_path=self.log_dir / f"submit_{folder.name}.log", call_id=call_id)
        match = re.search(r"^verdict written to (.+)$", done.output, re.M)
        path = Path(match.group(1).strip()) if match else None
        if path is None or not path.is_file():
            fresh = sorted((p for p in self.verdicts_dir.glob(f"{folder.name}__*.json") if p not in before),
                           key=lambda p: p.stat().st_mtime) if self.verdicts_dir.is_dir() else []
            path = fresh[-1] if fresh else None
        self.result(call_id, done.exit_code == 0, done.output)
        if path is None:
            text = (f"submit wrote no verdict for {folder.name} (exit status {done.exit_code}): "
                    f"{tail(done.output, 300)}")
            self.say(text)
            self.emit("error", text=text)
            return None
        try:
            verdict = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            self.emit("error", text=f"the verdict {path} cannot be read ({err})")
            return None
        stats = verdict.get("stats") or {}
        mean_ms, p_value = stats.get("mean_train_time_ms"), stats.get("p_value")
        outcome = verdict.get("outcome")
        text = f"{folder.name}: {str(outcome).upper()}"
        if isinstance(mean_ms, (int, float)):
            text += f", mean train_time {mean_ms / 1000:.3f} s over {stats.get('n')} run(s)"
        if isinstance(p_value, (int, float)):
            text += f", p = {p_value:.3g}"
        if verdict.get("new_best"):
            text += ", new best"
        for reason in verdict.get("reasons") or []:
            text += f"; {reason}"
        self.say(f"verdict {text}")
        return verdict

    # ---- the loop

    def resume(self) -> tuple[Best, set[str]]:
        """Where a previous invocation in this workspace got to: the best kept code, and the experiments done."""
        best = Best(folder=self.workspace, label="anchor", train_time_ms=None)
        rows = read_results(self.results_path)
        for row in rows:
            folder = self.experiments_dir / row.experiment
            if row.status == "keep" and folder.is_dir():
                best = Best(folder=folder, label=row.experiment, train_time_ms=row.train_time_ms)
        return best, {row.experiment for row in rows}

    def run(self) -> int:
        plan = self.plan
        left = self.seconds_left()
        self.emit("session_start", agent=AGENT_NAME, session_id=self.run_id,
                  text=f"scripted agent, plan {plan.name} ({len(plan.experiments)} experiments, "
                       f"{self.runs} retimings per submit)"
                       + (f", {left / 60:.1f} min to the deadline" if left is not None else ""))
        self.say(f"plan {plan.name} from {plan.path}: {', '.join(e.name for e in plan.experiments)}; "
                 f"val_loss target {self.val_loss_target:g}; {self.runs} retimings per submit")
        if plan.description:
            self.reasoning(plan.description)
        try:
            best, done = self.resume()
            if done:
                self.message(f"resuming: {len(done)} experiment(s) already in {self.rel(self.results_path)}; "
                             f"starting from {best.label}")
            self.checkpoint()
            if plan.baseline and "00_baseline" not in done:
                best = self.run_baseline(best)
            if best.folder != self.workspace and not self.submitted(best.folder) and best.label != "00_baseline":
                self.message(f"{best.label} was kept but never submitted; submitting it now")
                self.promote_and_submit(best)
            for index, experiment in enumerate(plan.experiments, start=1):
                if f"{index:02d}_{experiment.name}" in done:
                    continue
                self.checkpoint()
                best = self.run_experiment(index, experiment, best)
            self.checkpoint()
            if self.seconds_left() is None:
                return self.finish(f"plan done; best {best.label}; no deadline to wait for", ok=True)
            self.message(f"plan done; best is {best.label}. Waiting for the deadline "
                         f"({self.seconds_left() / 60:.1f} min left) without using the GPUs")
            while True:
                self.checkpoint()
                time.sleep(POLL_S)
        except Stopped as stop:
            return self.finish(str(stop), ok=True)

    def finish(self, text: str, *, ok: bool) -> int:
        duration = round(time.monotonic() - self.started, 3)
        self.emit("usage", input_tokens=0, cached_input_tokens=0, output_tokens=0, cost_usd=0.0)
        self.emit("result", text=text, duration_s=duration, ok=ok,
                  usage={"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0}, cost_usd=0.0)
        self.say(f"{text} after {duration:.0f} s")
        return 0 if ok else 1


def resolve_plan_path(cli_plan: Path | None, env: Mapping[str, str], harness: Path | None = None) -> Path:
    """--plan, else $BENCHMARK_SCRIPTED_PLAN (a bare file name names one of the harness folder's own plans, e.g.
    demo.toml), else the harness folder's plan.toml; the harness folder is the session's copy (run.sh passes it),
    else this package's."""
    if cli_plan is not None:
        return cli_plan
    harness = harness or DEFAULT_PLAN.parent
    named = env.get(ENV_SCRIPTED_PLAN)
    if named:
        return harness / named if Path(named).name == named else Path(named)
    return harness / "plan.toml"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m nanogpt_tui.agents.scripted",
                                     description="The scripted offline agent: runs a plan of experiments on the "
                                                 "session's workspace, submits what it keeps, stops at the deadline.")
    parser.add_argument("--plan", type=Path, metavar="FILE",
                        help=f"the plan (default: ${ENV_SCRIPTED_PLAN}, else plan.toml in the harness folder, or the "
                             "built-in smoke plan)")
    parser.add_argument("--harness", type=Path, metavar="DIR",
                        help="the harness folder whose plans a bare plan name names (default: this package's)")
    args = parser.parse_args(argv)
    env = os.environ
    workspace = Path(env.get(ENV_WORKSPACE) or Path.cwd()).resolve()
    runner_dir = Path(env[ENV_RUNNER_DIR]) if env.get(ENV_RUNNER_DIR) else None
    anchor_dir = Path(env.get(ENV_ANCHOR_DIR) or (runner_dir / "anchor" if runner_dir else workspace))
    events = env.get(ENV_EVENTS_PATH)
    control = Path(env[ENV_CONTROL_DIR]) if env.get(ENV_CONTROL_DIR) else None

    def fail(text: str) -> int:
        print(f"[scripted] error: {text}", file=sys.stderr, flush=True)
        if events:
            append_event(events, "error", text=text)
        return 2

    try:
        plan = load_plan(resolve_plan_path(args.plan, env, args.harness))
    except PlanError as err:
        return fail(str(err))
    runs = plan.runs
    if env.get(ENV_SCRIPTED_RUNS):
        try:
            runs = int(env[ENV_SCRIPTED_RUNS])
        except ValueError:
            runs = 0
        if runs < 2:
            return fail(f"{ENV_SCRIPTED_RUNS} must be an integer of at least 2 (a t-test needs two runs), "
                        f"not {env[ENV_SCRIPTED_RUNS]!r}.")
    if not (workspace / "train_gpt.py").is_file():
        return fail(f"The workspace {workspace} holds no train_gpt.py; run the agent in a session workspace.")
    agent = ScriptedAgent(plan, workspace=workspace, anchor_dir=anchor_dir,
                          events_path=Path(events) if events else None, control_dir=control, runs=runs,
                          run_id=env.get(ENV_RUN_ID))
    signal.signal(signal.SIGINT, agent.on_signal)
    signal.signal(signal.SIGTERM, agent.on_signal)
    try:
        return agent.run()
    except Exception as err:  # the agent's last line: say what broke in the stream, and fail
        text = f"the scripted agent failed: {type(err).__name__}: {err}"
        agent.say(text)
        agent.emit("error", text=text)
        return agent.finish(text, ok=False)


if __name__ == "__main__":
    sys.exit(main())
