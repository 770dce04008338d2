"""The `submit` pipeline: static rules, the LLM judge, retiming, statistics, and the verdict."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from nanogpt_tui.config import Config
from nanogpt_tui.contract.env import ENV_ANCHOR, ENV_ANCHOR_DIR, ENV_RUN_ID, ENV_TARGET, ENV_WORKSPACE
from nanogpt_tui.contract.layout import CONTAINER_ANCHOR
from nanogpt_tui.errors import UserError
from nanogpt_tui.records import Timeline
from nanogpt_tui.scoring import percent_of_human_progress
from nanogpt_tui.validator import verdict as V
from nanogpt_tui.validator.retime import retime, visible_gpu_count
from nanogpt_tui.validator.stats import faster_test, loss_p_value, min_detectable_speedup_ms, summarize_times
from nanogpt_tui.validator.verdict import Verdict, load_verdicts, write_verdict

CODE_SUFFIXES = (".py", ".sh")


@dataclass(frozen=True)
class SubmitPlan:
    """Where everything is, resolved from flags, the container environment and the config."""

    candidate_dir: Path
    anchor_dir: Path
    anchor: str
    target: str | None
    verdicts_dir: Path
    data_dir: Path | None
    runs: int
    val_loss_target: float
    p_value_threshold: float
    run_timeout_s: float
    judge_provider: str
    session_id: str | None
    kind: str = "submission"
    submission: str | None = None  # the name verdicts use (default: the candidate folder's name)
    request_id: str | None = None  # the validator's request this answers (its frozen copy is the candidate)


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def record_metadata(record_dir: Path) -> dict:
    """A record folder's own `record.toml` (the smoke record declares its val_loss target there), if any."""
    path = record_dir / "record.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is not valid TOML ({err}); fix it.") from None


def code_files(folder: Path) -> dict[str, str]:
    """The code of a record or candidate folder (top-level .py and .sh files) as text."""
    files = {}
    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and path.suffix in CODE_SUFFIXES:
            files[path.name] = path.read_text(encoding="utf-8", errors="replace")
    return files


def hash_files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).iterdir()) if p.is_file() and p.suffix in CODE_SUFFIXES}


def resolve_plan(candidate_dir: Path, config: Config, *, env: Mapping[str, str], anchor_dir: Path | None = None,
                 runs: int | None = None, judge: str | None = None, data_dir: Path | None = None,
                 verdicts_dir: Path | None = None, val_loss_target: float | None = None,
                 run_timeout_s: float | None = None, kind: str = "submission") -> SubmitPlan:
    candidate_dir = Path(candidate_dir)
    if not candidate_dir.is_dir():
        raise UserError(f"{candidate_dir} is not a folder; pass the submission folder, e.g. "
                        "/workspace/submissions/submission_1.")
    if not (candidate_dir / "train_gpt.py").is_file() or not (candidate_dir / "run.sh").is_file():
        raise UserError(f"{candidate_dir} must hold train_gpt.py and run.sh; copy both into the submission folder.")
    workspace = Path(env[ENV_WORKSPACE]) if env.get(ENV_WORKSPACE) else None
    # The anchor's code comes from a place the agent cannot write (the read-only /runner mount in a session).
    if anchor_dir is None:
        for candidate in (env.get(ENV_ANCHOR_DIR), CONTAINER_ANCHOR):
            if candidate and Path(candidate).is_dir():
                anchor_dir = Path(candidate)
                break
    if anchor_dir is None:
        anchor_dir = config.paths.baselines_dir / config.benchmark.anchor
    anchor_dir = Path(anchor_dir)
    if not (anchor_dir / "train_gpt.py").is_file():
        raise UserError(f"The anchor folder {anchor_dir} holds no train_gpt.py; pass --anchor DIR, or fetch the "
                        f"anchor with `nanogpt-tui records fetch {config.benchmark.anchor}`.")
    meta = record_metadata(anchor_dir)
    anchor = env.get(ENV_ANCHOR) or meta.get("name") or anchor_dir.name
    target = env.get(ENV_TARGET) or meta.get("target") or (
        config.benchmark.target if anchor == config.benchmark.anchor else None)
    if verdicts_dir is None:
        if workspace is not None:
            verdicts_dir = workspace / "verdicts"
        elif candidate_dir.resolve().parent.name == "submissions":
            verdicts_dir = candidate_dir.resolve().parent.parent / "verdicts"
        else:
            verdicts_dir = candidate_dir.resolve().parent / "verdicts"
    if data_dir is None:
        for candidate in ((workspace / "data") if workspace else None, Path.cwd() / "data"):
            if candidate is not None and candidate.is_dir():
                data_dir = candidate
                break
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UserError(f"The data folder {data_dir} does not exist; pass --data DIR with the shards' parent folder "
                        "(it should hold fineweb10B/).")
    target_loss = val_loss_target if val_loss_target is not None else float(
        meta.get("val_loss_target", config.benchmark.val_loss_target))
    provider = judge or config.judge.provider
    if provider not in ("anthropic", "openai", "none"):
        raise UserError(f"--judge must be anthropic, openai or none, not {provider!r}.")
    n_runs = runs if runs is not None else config.validation.runs
    if n_runs < 2:
        raise UserError("--runs must be at least 2: a t-test needs two runs.")
    return SubmitPlan(candidate_dir=candidate_dir, anchor_dir=anchor_dir, anchor=anchor, target=target,
                      verdicts_dir=Path(verdicts_dir), data_dir=Path(data_dir) if data_dir else None, runs=n_runs,
                      val_loss_target=target_loss, p_value_threshold=config.validation.p_value_threshold,
                      run_timeout_s=run_timeout_s if run_timeout_s is not None else config.validation.run_timeout_s,
                      judge_provider=provider, session_id=env.get(ENV_RUN_ID), kind=kind)


def _reference(plan: SubmitPlan, previous: list[Verdict], timeline: Timeline | None):
    """What 'faster' is measured against: the session's best counted submission so far, else the anchor's own
    same-hardware retiming (a baseline verdict), else the anchor's official record time."""
    counted = [v for v in previous if v.kind == "submission" and v.counts and v.mean_train_time_ms]
    if counted:
        best = min(counted, key=lambda v: v.mean_train_time_ms)
        return best.submission, [r.train_time_ms for r in best.runs if r.ok], None
    baselines = [v for v in previous if v.kind == "baseline" and v.stats.get("mean_train_time_ms")]
    if baselines:
        base = baselines[-1]
        return "anchor (retimed here)", [r.train_time_ms for r in base.runs if r.ok], None
    if timeline is not None and plan.anchor in timeline:
        return "anchor (official record time)", None, timeline.get(plan.anchor).record_time_s * 1000
    return None, None, None


def _anchor_time_ms(plan: SubmitPlan, previous: list[Verdict], timeline: Timeline | None) -> tuple[float | None, str]:
    baselines = [v for v in previous if v.kind == "baseline" and v.stats.get("mean_train_time_ms")]
    if baselines:
        return baselines[-1].stats["mean_train_time_ms"], "anchor retimed on this hardware"
    if timeline is not None and plan.anchor in timeline:
        return timeline.get(plan.anchor).record_time_s * 1000, "anchor's official record time"
    return None, "unknown: retime the anchor with `submit --baseline` to measure speedups"


def run_submit(plan: SubmitPlan, config: Config, *, timeline: Timeline | None, env: Mapping[str, str],
               on_progress: Callable[[str], None] = print, judge_fn=None, retimer: Callable[..., object] = retime,
               previous: list[Verdict] | None = None, before_retime: Callable[[], None] | None = None,
               after_retime: Callable[[], None] | None = None) -> tuple[Verdict, Path]:
    """Validate one submission and write its verdict. Returns the verdict and where it was written.

    The validator apart from the agent passes `retimer` (retiming in its own container), `previous` (the session's
    trusted verdicts, not whatever lies in the verdicts folder) and `before_retime` / `after_retime` (pause and
    resume the agent around the timed runs; `before_retime` may raise `UserError` to refuse)."""
    started = utc_now()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    submission = plan.submission or plan.candidate_dir.resolve().name
    verdict = Verdict(submission=submission, submission_dir=str(plan.candidate_dir), kind=plan.kind,
                      verdict_id=f"{submission}__{stamp}", session_id=plan.session_id, anchor=plan.anchor,
                      target=plan.target, started_at=started, runs_requested=plan.runs,
                      code_sha256=hash_files(plan.candidate_dir), request_id=plan.request_id)
    if previous is None:
        previous, problems = load_verdicts(plan.verdicts_dir)
        for problem in problems:
            on_progress(f"warning: {problem}")
    reasons: list[str] = []

    # 1. Static rules: authoritative, free. A baseline is the anchor itself, so there is nothing to compare.
    if plan.kind == "baseline":
        verdict.static = {"skipped": "a baseline retimes the anchor itself"}
        verdict.judge = {"status": "skipped", "provider": "none", "model": "none",
                         "error": "a baseline retimes the anchor itself"}
        static_ok, judge_ok = True, True
    else:
        from nanogpt_tui.validator.rules import check_rules

        on_progress(f"checking the rules against the anchor {plan.anchor} ...")
        report = check_rules(plan.anchor_dir, plan.candidate_dir)
        verdict.static = report.to_dict()
        static_ok = report.ok
        for v in report.violations:
            on_progress(f"  rule {v.rule}: {v.file}:{v.line}: {v.message}")
        # What the AST could not decide goes to the judge as a question (never a silent pass).
        questions = [f"Not decided by the static checks, the judge must decide ({q.rule}, {q.file}:{q.line}): "
                     f"{q.message}" for q in report.needs_judge]
        for q in questions:
            on_progress(f"  needs the judge: {q}")
        if not static_ok:
            reasons.append(f"{len(report.violations)} static rule violation(s); the static checks are authoritative.")

        # 2. The LLM judge (skipped when the static checks already reject: it could not change the outcome).
        if judge_fn is None:
            from nanogpt_tui.validator.judge import judge_submission as judge_fn
        judge_config = replace(config.judge, provider=plan.judge_provider)
        if plan.judge_provider != config.judge.provider:
            from nanogpt_tui.config import DEFAULT_JUDGE_MODELS

            judge_config = replace(judge_config, model=DEFAULT_JUDGE_MODELS[plan.judge_provider])
        if static_ok:
            on_progress(f"asking the judge ({judge_config.provider}) ...")
            result = judge_fn(judge_config, anchor_files=code_files(plan.anchor_dir),
                              candidate_files=code_files(plan.candidate_dir),
                              static_violations=questions, env=env)
            verdict.judge = result.to_dict()
            if result.status == "answered":
                judge_ok = not result.cheating
                on_progress(f"judge: {'FLAGGED' if result.cheating else 'cleared'} "
                            f"(confidence {result.confidence:.2f}): {result.summary}")
                if result.cheating:
                    reasons.append(f"The judge found the change breaks the rules or is incomparable: {result.summary}")
            elif result.status == "skipped":
                judge_ok = True
                on_progress("judge: skipped (--judge none); the verdict records that")
            else:
                judge_ok = False
                on_progress(f"judge: {result.status}: {result.error}")
                reasons.append(result.error or "The judge could not run, so the submission does not count.")
        else:
            judge_ok = False
            verdict.judge = {"status": "skipped", "provider": plan.judge_provider, "model": judge_config.model,
                             "error": "not asked: the static rule checks already reject the submission"}

    verdict.comparable = static_ok and (verdict.judge.get("status") != "answered" or not verdict.judge.get("cheating"))
    verdict.valid = static_ok and judge_ok

    # 3. Retiming, only when the submission can still count (GPU-hours are the budget).
    if verdict.valid:
        on_progress(f"retiming: {plan.runs} run(s) of run.sh ...")
        verdict.gpus = visible_gpu_count(env)
        work_root = plan.verdicts_dir / ".work"
        work_root.mkdir(parents=True, exist_ok=True)
        if before_retime is not None:
            before_retime()
        try:
            result = retimer(plan.candidate_dir, runs=plan.runs,
                             work_dir=Path(tempfile.mkdtemp(prefix=f"{submission}.", dir=work_root)),
                             logs_dir=plan.verdicts_dir / verdict.verdict_id, data_dir=plan.data_dir,
                             val_loss_target=plan.val_loss_target, p_value_threshold=plan.p_value_threshold,
                             timeout_s=plan.run_timeout_s, env=env, on_progress=on_progress)
        finally:
            if after_retime is not None:
                after_retime()
        verdict.runs = result.runs
        verdict.early_stop = {"stopped": result.stopped_early, "reason": result.stop_reason}
        verdict.gpu_seconds = round(result.wall_s * verdict.gpus, 3)
        if result.stop_reason:
            on_progress(f"stopped: {result.stop_reason}")
    else:
        verdict.early_stop = {"stopped": False, "reason": "retiming skipped: the submission cannot count"}

    # 4. Statistics.
    ok_runs = [r for r in verdict.runs if r.ok]
    all_ok = bool(verdict.runs) and len(ok_runs) == len(verdict.runs) == plan.runs
    losses = [r.val_loss for r in ok_runs]
    times = [r.train_time_ms for r in ok_runs]
    summary = summarize_times(times)
    p_value = loss_p_value(losses, plan.val_loss_target)
    verdict.stats = {
        "n": len(ok_runs), "n_failed": len(verdict.runs) - len(ok_runs),
        "val_loss_target": plan.val_loss_target, "p_value_threshold": plan.p_value_threshold,
        "p_value": p_value, "mean_val_loss": (sum(losses) / len(losses)) if losses else None,
        "mean_train_time_ms": summary.mean_ms if times else None, "std_train_time_ms": summary.std_ms,
        "ci95_train_time_ms": list(summary.ci95_ms), "cv_train_time": summary.cv if times else None,
    }
    verdict.significant = all_ok and p_value < plan.p_value_threshold
    if verdict.runs and not all_ok:
        if len(ok_runs) < len(verdict.runs):
            reasons.append(next(r.error for r in verdict.runs if not r.ok) + "; every run must finish.")
        elif verdict.early_stop.get("reason"):
            reasons.append(verdict.early_stop["reason"] + ".")
    elif verdict.runs and not verdict.significant:
        reasons.append(f"Mean val_loss {verdict.stats['mean_val_loss']:.4f} is not significantly below "
                       f"{plan.val_loss_target} (p = {p_value:.3g}, needs < {plan.p_value_threshold:g}).")

    # 5. Speed: against the session's best so far (or the anchor), and vs the anchor in seconds and % progress.
    if len(times) >= 2:
        label, ref_runs, ref_mean = _reference(plan, previous, timeline)
        if label is not None:
            test = faster_test(times, baseline=label, baseline_runs_ms=ref_runs, baseline_mean_ms=ref_mean,
                               alpha=plan.p_value_threshold)
            verdict.stats["faster"] = test.to_dict()
            verdict.stats["faster"]["significant"] = test.p_value < plan.p_value_threshold
            verdict.stats["min_detectable_speedup_ms"] = test.min_detectable_ms
        else:
            verdict.stats["min_detectable_speedup_ms"] = min_detectable_speedup_ms(times, plan.p_value_threshold)
    anchor_ms, basis = _anchor_time_ms(plan, previous, timeline)
    speedup: dict = {"basis": basis, "anchor_time_ms": anchor_ms, "seconds_faster": None, "percent_of_human_progress": None,
                     "gap_s": None}
    # A baseline is the anchor itself: how it compares with the manifest's time (measured elsewhere) is no progress.
    if anchor_ms is not None and summary.n and plan.kind != "baseline":
        faster_s = (anchor_ms - summary.mean_ms) / 1000
        speedup["seconds_faster"] = faster_s
        if timeline is not None and plan.target and plan.anchor in timeline and plan.target in timeline:
            gap = timeline.gap(plan.anchor, plan.target)
            speedup["gap_s"] = gap
            speedup["percent_of_human_progress"] = percent_of_human_progress(faster_s, gap)
    verdict.speedup = speedup
    verdict.new_best = verdict.counts and plan.kind == "submission" and bool(
        verdict.stats.get("faster", {}).get("significant"))

    # 6. Outcome.
    if plan.kind == "baseline":
        verdict.outcome = V.BASELINE if all_ok else V.FAILED
        if not all_ok:
            reasons.append("The anchor's retiming did not complete every run, so it is no baseline.")
    elif not verdict.comparable:
        verdict.outcome = V.REJECTED
    elif not verdict.valid:
        verdict.outcome = V.NOT_VALIDATED
    elif any(not r.ok for r in verdict.runs):
        verdict.outcome = V.FAILED
    elif verdict.significant:
        verdict.outcome = V.VALIDATED
    else:
        verdict.outcome = V.NOT_SIGNIFICANT
    verdict.reasons = reasons
    verdict.finished_at = utc_now()
    path = write_verdict(plan.verdicts_dir, verdict)
    return verdict, path


def headline(verdict: Verdict) -> str:
    """One line: outcome, mean time, p-value, new best, and why it does not count."""
    s = verdict.stats
    text = f"{verdict.submission}: {verdict.outcome.upper()}"
    if isinstance(s.get("mean_train_time_ms"), (int, float)):
        text += f", mean train_time {s['mean_train_time_ms'] / 1000:.3f} s over {s.get('n')} run(s)"
    if isinstance(s.get("p_value"), (int, float)) and s["p_value"] == s["p_value"]:
        text += f", p = {s['p_value']:.3g}"
    if verdict.new_best:
        text += ", new best"
    for reason in verdict.reasons:
        text += f"; {reason}"
    return text


def describe(verdict: Verdict) -> str:
    """A few human lines summarising a verdict (the end of `submit`'s output)."""
    s = verdict.stats
    lines = [f"verdict: {verdict.outcome.upper()} ({verdict.submission})"]
    if s.get("n"):
        ci = s.get("ci95_train_time_ms") or [None, None]
        ci_text = f" (95% CI {ci[0] / 1000:.3f}-{ci[1] / 1000:.3f} s)" if None not in ci else ""
        lines.append(f"  runs {s['n']}/{verdict.runs_requested}, mean val_loss {s['mean_val_loss']:.4f}, "
                     f"p = {s['p_value']:.3g} (target {s['val_loss_target']}), "
                     f"mean train_time {s['mean_train_time_ms'] / 1000:.3f} s{ci_text}")
    faster = s.get("faster")
    if faster:
        lines.append(f"  vs {faster['baseline']}: {faster['difference_ms'] / 1000:+.3f} s, p = {faster['p_value']:.3g} "
                     f"({'significantly faster' if faster['significant'] else 'not significantly faster'}; "
                     f"smallest detectable speedup {faster['min_detectable_ms'] / 1000:.3f} s)")
    if not faster and s.get("min_detectable_speedup_ms") is not None:
        lines.append(f"  smallest speedup detectable against an equally noisy baseline: "
                     f"{s['min_detectable_speedup_ms'] / 1000:.3f} s")
    sp = verdict.speedup
    if sp.get("seconds_faster") is not None:
        pct = sp.get("percent_of_human_progress")
        lines.append(f"  {sp['seconds_faster']:+.3f} s vs the anchor ({sp['basis']})"
                     + (f", {pct:.2f}% of human progress" if pct is not None else ""))
    for reason in verdict.reasons:
        lines.append(f"  - {reason}")
    if verdict.new_best:
        lines.append("  NEW BEST for this session")
    return "\n".join(lines)
