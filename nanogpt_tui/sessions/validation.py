"""The validator apart from the agent: the host process that answers a session's submit requests.

For each request the agent's `submit` writes into `workspace/requests/`, it freezes the named submission (a copy
and its sha256s, in `validator/`, which the agent's container sees read-only), checks the rules and asks the judge
(the judge's key is in this process's environment only, never in a container), pauses the agent, retimes the frozen
copy through the session's backend (on Docker: a container of its own, its own user, no network, the session's
GPUs), resumes the agent, writes and seals the verdict and answers the request. Its progress (run 4/10, step
1200/1600) goes to `validator/progress.jsonl`, which `submit` prints as it arrives.

One serving process per session (`nanogpt-tui validator serve ID`), started with the session and started again by
any host process that finds it gone (`SessionManager.refresh`). On the local backend the agent runs as the same
user as this process, so there the protocol keeps honest agents honest but is not tamper-proof.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from nanogpt_tui.backends.base import EXITED, MISSING, RUNNING
from nanogpt_tui.errors import UserError
from nanogpt_tui.fsutil import atomic_write_json
from nanogpt_tui.procgroup import start_ticks
from nanogpt_tui.contract import layout as L
from nanogpt_tui.contract.env import ENV_ANCHOR_DIR, ENV_VALIDATOR_DIR, ENV_WORKSPACE
from nanogpt_tui.sessions import model as M
from nanogpt_tui.validator import protocol as P
from nanogpt_tui.validator.retime import RetimeResult, RunOutcome, SessionClock

POLL_S = 0.3
LOCK_FILE = ".serve.lock"
# A request for a session whose agent has ended is still answered; the server stops once nothing is left.
IDLE_AFTER_END_S = 2.0
BACKEND_CHECK_S = 5.0
# Fewer seconds than this before the deadline (less the retiming's margin) and a submit is refused, not retimed.
MIN_RETIME_S = 5.0


class Refused(UserError):
    """The validator will not validate this request; the message is the one sentence `submit` prints."""


def _service_record(session_dir: Path) -> dict | None:
    """validator/service.json, if its serving process still runs (else gone, or its pid is another process by now):
    its pid, start ticks and, once the process serves (past its imports, holding the lock), `serving`."""
    try:
        info = json.loads((P.validator_dir(session_dir) / P.SERVICE_FILE).read_text())
        pid, ticks = int(info["pid"]), int(info["ticks"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if start_ticks(pid) == ticks else None


def _recorded_service(session_dir: Path) -> tuple[int, int] | None:
    """The serving process recorded in validator/service.json (pid, start ticks), if it still runs."""
    info = _service_record(session_dir)
    return None if info is None else (int(info["pid"]), int(info["ticks"]))


def service_starting(session_dir: Path) -> bool:
    """Whether the session's serving process runs but does not serve yet (started, still loading)."""
    info = _service_record(session_dir)
    return info is not None and not info.get("serving")


def service_alive(session_dir: Path) -> bool:
    """Whether the session's serving process (as recorded in validator/service.json) still runs."""
    return _recorded_service(session_dir) is not None


def stop_service(session_dir: Path) -> None:
    """Stop the session's serving process and whatever it runs (a retiming dies with it: it is tied to its parent by
    a parent-death signal), so a killed session leaves no validator or training run behind."""
    import signal

    from nanogpt_tui import procgroup

    if (service := _recorded_service(session_dir)) is None:
        return
    pid, ticks = service
    tree = {pid: ticks, **procgroup.descendants(pid)}
    procgroup.kill_tree(tree, signal.SIGKILL)
    procgroup.wait_gone(tree)


def spawn_service(session_dir: Path, config_path: Path | None) -> int:
    """Start `nanogpt-tui validator serve ID` detached (its own session, output to validator/service.log)."""
    vdir = P.validator_dir(session_dir)
    vdir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "nanogpt_tui"]
    if config_path is not None:
        argv += ["--config", str(config_path)]
    argv += ["validator", "serve", str(Path(session_dir).resolve())]
    with open(vdir / "service.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=str(session_dir))
    # Recorded at once, so a host process refreshing a moment later does not start a second one.
    ticks = None
    for _ in range(100):
        ticks = start_ticks(proc.pid)
        if ticks is not None or proc.poll() is not None:
            break
        time.sleep(0.01)
    atomic_write_json(vdir / P.SERVICE_FILE, {"pid": proc.pid, "ticks": ticks, "started_at": P.utc_now()})
    return proc.pid


class ValidatorService:
    """Answers one session's submit requests (see the module docstring)."""

    def __init__(self, manager, session_id: str, *, say: Callable[[str], None] = lambda line: None) -> None:
        self.manager = manager
        self.session_id = session_id
        self.dir = manager.session_dir(session_id)
        self.vdir = P.validator_dir(self.dir)
        self.say = say
        self.sealer = P.Sealer.for_sessions(manager.root, create=True)

    # --- serving ----------------------------------------------------------------------------------------------

    def serve(self, *, poll_s: float = POLL_S, stop: Callable[[], bool] = lambda: False) -> int:
        """Serve until the session has ended and no request is left; 1 if another process already serves it."""
        self.vdir.mkdir(parents=True, exist_ok=True)
        with open(self.vdir / LOCK_FILE, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.say(f"another process already serves {self.session_id}'s validator")
                return 1
            atomic_write_json(self.vdir / P.SERVICE_FILE, {"pid": os.getpid(), "ticks": start_ticks(os.getpid()),
                                                           "started_at": P.utc_now(), "serving": True})
            self._resume_left_paused()
            ended_since: float | None = None
            next_check = 0.0
            while not stop():
                served = self.serve_pending()
                try:
                    session = self.manager.get(self.session_id)
                    ended = session.status in M.FINAL
                    if not ended and time.monotonic() >= next_check:
                        # No host process may be watching: ask the backend whether the agent is still there.
                        next_check = time.monotonic() + BACKEND_CHECK_S
                        if session.handle:
                            state = self.manager.backend(session.backend).state(self.manager.ref(session))
                            ended = state.status in (EXITED, MISSING)
                            if state.status == RUNNING:
                                try:
                                    self.manager.hand_over(session)  # no control room may be running to do it
                                except UserError as err:
                                    self.say(f"hand-over: {err}")
                except UserError:
                    ended = True
                if ended and not served:
                    ended_since = ended_since or time.monotonic()
                    if time.monotonic() - ended_since >= IDLE_AFTER_END_S:
                        break
                time.sleep(poll_s)
        return 0

    def _resume_left_paused(self) -> None:
        """A validator that died mid-retiming leaves the agent paused: its successor resumes it first."""
        try:
            session = self.manager.get(self.session_id)
            if session.handle and session.status not in M.FINAL:
                self.manager.backend(session.backend).resume(self.manager.ref(session))
        except UserError as err:
            self.say(f"could not resume the agent on start: {err}")

    def serve_pending(self) -> int:
        """Answer every request not yet answered; how many were answered."""
        requests, bad = P.pending_requests(self.dir / L.WORKSPACE, P.answered_requests(self.vdir))
        for name, why in bad:
            if P.REQUEST_ID.match(name):
                P.write_response(self.vdir, name, status="refused", exit_code=2,
                                 text=f"Submit refused: the request {name}.json cannot be read ({why}).")
        for request in requests:
            self.answer(request)
        return len(requests) + len(bad)

    def answer(self, request: P.SubmitRequest) -> None:
        rid = request.request_id
        self.progress(rid, "received", f"request {rid} received: {request.kind} {request.submission}",
                      submission=request.submission, request_kind=request.kind)
        try:
            verdict, path = self.validate(request)
        except UserError as err:  # Refused, and every other one-sentence failure (bad submission, config)
            text = str(err)
            self.progress(rid, "refused", text)
            P.write_response(self.vdir, rid, status="refused", text=text, exit_code=1)
            return
        from nanogpt_tui.validator.submit import describe

        os.chmod(path, P.READABLE)  # the agent reads its verdict through its read-only mount, as another user
        self.sealer.seal_file(path)
        counts = verdict.outcome == "baseline" if request.kind == "baseline" else verdict.counts
        self.progress(rid, "verdict", f"verdict: {verdict.outcome.upper()} ({verdict.submission})",
                      outcome=verdict.outcome, counts=verdict.counts, verdict_file=path.name)
        P.write_response(self.vdir, rid, status="verdict", text=describe(verdict), verdict_file=path.name,
                         exit_code=0 if counts else 1)

    def progress(self, rid: str, kind: str, text: str, **fields) -> None:
        P.append_progress(self.vdir, rid, kind, text, **fields)
        self.say(f"[{rid}] {text}")

    # --- one validation ---------------------------------------------------------------------------------------

    def _source(self, request: P.SubmitRequest) -> tuple[Path, str]:
        if request.kind == "baseline":
            return self.dir / L.RUNNER / "anchor", f"{L.RUNNER}/anchor"
        submissions = (self.dir / L.WORKSPACE / "submissions").resolve()
        source = self.dir / L.WORKSPACE / "submissions" / request.submission
        # The agent names the folder: it must be a real folder right under submissions/, not a link elsewhere.
        if source.is_symlink() or not source.is_dir() or source.resolve().parent != submissions:
            raise Refused(f"Submit refused: there is no folder submissions/{request.submission} in the workspace; "
                          "put train_gpt.py and run.sh there and submit it.")
        return source, f"{L.WORKSPACE}/submissions/{request.submission}"

    def validate(self, request: P.SubmitRequest):
        from nanogpt_tui.records import load_timeline
        from nanogpt_tui.validator.submit import resolve_plan, run_submit

        session = self.manager.get(self.session_id)
        config = self.manager.config
        source, label = self._source(request)
        frozen = P.freeze(source, self.vdir, request, self.sealer, source_label=label)
        self.progress(request.request_id, "frozen", f"frozen {label}: " + ", ".join(
            f"{name} {digest[:12]}" for name, digest in frozen.sha256.items()))
        backend = self.manager.backend(session.backend)
        ref = self.manager.ref(session)
        handle = session.handle
        env = dict(os.environ)  # the judge's key lives here, in the validator's own process
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(map(str, session.gpu_ids)) if session.gpu_ids else "none"
        for name in (ENV_WORKSPACE, ENV_VALIDATOR_DIR, ENV_ANCHOR_DIR):
            env.pop(name, None)
        data_dir = Path(session.data_dir) if session.data_dir else None
        plan = resolve_plan(frozen.folder, config, env={}, anchor_dir=self.dir / L.RUNNER / "anchor",
                            runs=request.runs, verdicts_dir=self.vdir / P.VERDICTS, data_dir=data_dir,
                            kind=request.kind)
        plan = replace(plan, submission=request.submission if request.kind == "submission" else "anchor",
                       request_id=request.request_id, session_id=session.id, anchor=session.anchor,
                       target=session.target or plan.target)
        try:
            timeline = load_timeline(config.paths.baselines_dir)
        except UserError:
            timeline = None
        previous = P.trusted_verdicts(self.dir, self.sealer, scan_workspace=False).verdicts
        paused: dict[str, object] = {}
        rid = request.request_id

        clock = SessionClock(self.dir / L.CONTROL)

        def pause() -> None:
            if not handle:
                return
            # The paused agent's own watchdog cannot stop it: the retiming must end before the deadline.
            left = clock.seconds_left()
            if left is not None and left < MIN_RETIME_S:
                raise Refused(f"Submit refused: the session's deadline is {left + clock.margin_s:.0f} s away, too "
                              "soon to retime a submission (the agent is paused while it retimes); the verdicts so "
                              "far stand.")
            started = time.monotonic()
            paused["pids"] = backend.pause(ref)
            paused["s"] = time.monotonic() - started
            self.progress(rid, "paused", f"agent paused ({len(paused['pids'])} process(es), "
                          f"{paused['s'] * 1000:.0f} ms) for the retiming", pause_ms=round(paused["s"] * 1000, 1))

        def resume() -> None:
            if "pids" in paused:
                started = time.monotonic()
                backend.resume(ref)
                self.progress(rid, "resumed", "agent resumed",
                              resume_ms=round((time.monotonic() - started) * 1000, 1))

        def retimer(candidate_dir: Path, *, runs: int, logs_dir: Path, val_loss_target: float,
                    p_value_threshold: float, timeout_s: float, on_progress, **_ignored) -> RetimeResult:
            out = self.vdir / "work" / rid
            result = backend.retime_isolated(
                ref, session_dir=self.dir, candidate_dir=candidate_dir, out_dir=out, runs=runs,
                val_loss_target=val_loss_target, p_value_threshold=p_value_threshold, timeout_s=timeout_s,
                gpu_ids=list(session.gpu_ids), data_dir=data_dir, agent_pids=list(paused.get("pids", [])),
                on_line=on_progress)
            if result.get("refused"):
                raise Refused(str(result["refused"]))
            logs_dir.mkdir(parents=True, exist_ok=True)
            for log in sorted((out / "logs").glob("*.log")):
                if log.is_file() and not log.is_symlink():
                    log.replace(logs_dir / log.name)
            return RetimeResult(runs=[RunOutcome.from_dict(r) for r in result.get("runs") or []],
                                requested=int(result.get("requested") or runs),
                                stopped_early=bool(result.get("stopped_early")),
                                stop_reason=result.get("stop_reason"))

        return run_submit(plan, config, timeline=timeline, env=env, previous=previous, retimer=retimer,
                          before_retime=pause, after_retime=resume,
                          on_progress=lambda line: self.progress(rid, "progress", line))
