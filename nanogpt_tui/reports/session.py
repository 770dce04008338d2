"""One session's report section, read from its folder: submissions and verdicts, progress, budget, tokens and cost,
the best submission's diff against the anchor, reproducibility facts, and the change ledger; headless.

How a verdict's moment, GPU-hours and % of human progress are read is in `nanogpt_tui.reports.conventions` (the
control room uses the same functions); the progress curve steps at each counted verdict (valid, significant,
comparable) that beats the best so far.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanogpt_tui import __version__
from nanogpt_tui.contract import layout as L
from nanogpt_tui.records import Timeline
from nanogpt_tui.reports.conventions import finite_number as _num
from nanogpt_tui.reports.conventions import gap_for, gpu_hours_at, judge_label, verdict_moment, verdict_percent
from nanogpt_tui.reports.ledger import Ledger, ClassifierCache, build_ledger, read_code
from nanogpt_tui.scoring import ProgressCurve, ProgressPoint
from nanogpt_tui.sessions import model as M
from nanogpt_tui.sessions.model import Session, load_session
from nanogpt_tui.validator.protocol import VERDICTS, trusted_verdicts, validator_dir
from nanogpt_tui.validator.verdict import Verdict

if TYPE_CHECKING:
    from nanogpt_tui.telemetry.cost import AgentTokens, SessionTokenMeter

DIFF_MAX_LINES = 3000
ENV_LOG_BYTES = 512 * 1024  # how much of a run log is searched for GPU/driver/CUDA lines


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class SessionData:
    """A session read from disk, with what the report computes from it."""

    path: Path
    session: Session
    verdicts: list[Verdict]
    gap_s: float | None
    curve: ProgressCurve
    steps: list[dict[str, Any]]  # the curve's steps with their submissions
    horizon_gpu_hours: float  # the x range of the session's line: its budget, or what it used if more
    ledger: Ledger
    problems: list[str] = field(default_factory=list)
    frozen: dict[str, Path] = field(default_factory=dict)  # verdict id -> the frozen code the validator validated

    @property
    def final_seconds_faster(self) -> float:
        """Best counted seconds faster within the session's budget (0 when nothing counted)."""
        return self.curve.value_at(self.session.total_gpu_hours)

    @property
    def final_percent(self) -> float | None:
        return None if not self.gap_s else 100.0 * self.final_seconds_faster / self.gap_s


def load_session_data(session_dir: Path, timeline: Timeline | None, *, baselines_dir: Path | None = None,
                      now: dt.datetime | None = None, classifier: ClassifierCache | None = None) -> SessionData:
    session_dir = Path(session_dir)
    session = load_session(session_dir)
    trusted = trusted_verdicts(session_dir)
    verdicts, problems = trusted.verdicts, trusted.all_messages
    gap = gap_for(timeline, session.anchor, session.target)
    if gap is None:
        gaps = {_num((v.speedup or {}).get("gap_s")) for v in verdicts} - {None}
        if len(gaps) == 1:
            gap = gaps.pop()
    points, owners = [], {}
    for v in verdicts:
        faster = _num((v.speedup or {}).get("seconds_faster"))
        hours = gpu_hours_at(session, verdict_moment(v))
        if v.kind == "submission" and v.counts and faster is not None and hours is not None:
            points.append(ProgressPoint(hours, faster))
            owners.setdefault((hours, faster), v)
    curve = ProgressCurve(points)
    steps = []
    for p in curve.steps:
        v = owners.get((p.gpu_hours, p.seconds_faster))
        steps.append({"gpu_hours": round(p.gpu_hours, 6), "seconds_faster": round(p.seconds_faster, 6),
                      "percent": None if not gap else round(100.0 * p.seconds_faster / gap, 6),
                      "submission": v.submission if v else None, "verdict_id": v.verdict_id if v else None,
                      "within_budget": p.gpu_hours <= session.total_gpu_hours})
    used = session.budget().used_gpu_hours(now)
    # A live session's line ends now; a finished one's runs to the end of its budget (its score is read there).
    horizon = used if session.status in M.ACTIVE else max(session.total_gpu_hours, used)
    ledger = build_ledger(session_dir, session, verdicts, baselines_dir=baselines_dir, now=now, classifier=classifier)
    return SessionData(path=session_dir, session=session, verdicts=verdicts, gap_s=gap, curve=curve, steps=steps,
                       horizon_gpu_hours=horizon, ledger=ledger, problems=list(problems), frozen=trusted.frozen)


# ------------------------------------------------------------------------------------------------ sections

def submissions_table(data: SessionData) -> list[dict[str, Any]]:
    rows = []
    by_sub = {it.name: it for it in data.ledger.items if it.source == "submission"}
    for v in data.verdicts:
        stats = v.stats or {}
        ci = stats.get("ci95_train_time_ms")
        ci_s = [(_num(x) / 1000 if _num(x) is not None else None) for x in ci] if isinstance(ci, list) else None
        mean_ms = _num(stats.get("mean_train_time_ms"))
        half = None
        if ci_s and len(ci_s) == 2 and None not in ci_s:
            half = (ci_s[1] - ci_s[0]) / 2
        judge = v.judge or {}
        item = by_sub.get(v.submission)
        moment = verdict_moment(v)
        hours = gpu_hours_at(data.session, moment)
        rows.append({
            "submission": v.submission, "verdict_id": v.verdict_id, "kind": v.kind, "outcome": v.outcome,
            "counts": v.counts, "new_best": v.new_best, "at": moment,
            "gpu_hours_at": None if hours is None else round(hours, 6),
            "within_budget": None if hours is None else hours <= data.session.total_gpu_hours,
            "runs": len(v.runs), "runs_requested": v.runs_requested,
            "p_value": _clean(_num(stats.get("p_value"))), "mean_val_loss": _clean(_num(stats.get("mean_val_loss"))),
            "mean_train_time_s": None if mean_ms is None else mean_ms / 1000,
            "ci95_train_time_s": ci_s, "ci95_half_width_s": half,
            "seconds_faster": _num((v.speedup or {}).get("seconds_faster")),
            "percent_of_human_progress": verdict_percent(v, data.gap_s),
            "faster_than": ((stats.get("faster") or {}).get("baseline")),
            "faster_p_value": _num((stats.get("faster") or {}).get("p_value")),
            "judge": {"label": judge_label(v), "status": judge.get("status"), "provider": judge.get("provider"),
                      "model": judge.get("model"), "cheating": judge.get("cheating"),
                      "summary": judge.get("summary") or judge.get("error")},
            "static_violations": len((v.static or {}).get("violations") or []),
            "gpu_seconds": v.gpu_seconds, "reasons": list(v.reasons),
            "change": None if item is None or item.classification is None else {
                "kind": item.kind, "summary": item.classification.summary(), "parent": item.parent},
        })
    return rows


def budget_section(data: SessionData, now: dt.datetime | None) -> dict[str, Any]:
    s = data.session
    budget = s.budget()
    used = budget.used_gpu_hours(now)
    extensions = [{"at": e.at, "gpu_hours": e.gpu_hours, "reason": e.reason,
                   "gpu_hours_at": _round(gpu_hours_at(s, e.at))} for e in s.extensions]
    return {
        "gpus": s.gpus, "gpu_ids": list(s.gpu_ids), "budget_gpu_hours": s.budget_gpu_hours,
        "extended_gpu_hours": round(sum(e.gpu_hours for e in s.extensions), 6),
        "total_gpu_hours": s.total_gpu_hours, "used_gpu_hours": round(used, 6),
        "remaining_gpu_hours": round(budget.remaining_gpu_hours(now), 6),
        "used_fraction": round(used / s.total_gpu_hours, 6) if s.total_gpu_hours else None,
        "created_at": s.created_at, "started_at": s.started_at, "deadline": s.deadline, "finished_at": s.finished_at,
        "extensions": extensions, "status": s.status, "ended_because": ended_because(s),
        "transitions": [{"at": t.at, "status": t.status, "reason": t.reason,
                         "gpu_hours_at": _round(gpu_hours_at(s, t.at))} for t in s.transitions],
    }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


def ended_because(session: Session) -> str:
    s = session
    if s.status in M.ACTIVE:
        return f"still {s.status} ({s.status_reason})"
    reason = s.status_reason or "no reason recorded"
    what = {M.OUT_OF_BUDGET: "out of budget", M.EXITED: "the agent exited", M.KILLED: "killed",
            M.FAILED: "failed"}.get(s.status, s.status)
    code = f", exit status {s.exit_code}" if s.exit_code is not None else ""
    return f"{what}: {reason}{code}"


def usage_section(meter: SessionTokenMeter) -> dict[str, Any] | None:
    """The agent's tokens from the one token meter (read): the model gateway's for a sandboxed session (what the
    agent reported is kept beside, as `agent_reported`), else from the session's events file (None when it has
    none). The events are the meter's: one read of the file, found by one rule (`layout.events_path`)."""
    tokens = meter.tokens
    reported = None if meter.events.totals is None else meter.events.totals.to_dict()
    if not tokens.metered:
        return None if reported is None else {**reported, "source": L.EVENTS_FILE, "metered": False}
    return {"input_tokens": tokens.input_tokens, "cached_input_tokens": tokens.cached_input_tokens,
            "output_tokens": tokens.output_tokens, "total_tokens": tokens.total_tokens,
            "cost_usd": tokens.cli_cost_usd, "cost_complete": tokens.cli_cost_complete,
            "invocations": (reported or {}).get("invocations", 0), "requests": tokens.requests,
            "by_model": [{"model": m.model, "input_tokens": m.input_tokens,
                          "cached_input_tokens": m.cached_input_tokens, "output_tokens": m.output_tokens,
                          "requests": m.requests} for m in tokens.by_model],
            "source": "the model gateway's meter", "metered": True,
            "agent_reported": None if reported is None else {k: reported[k] for k in (
                "input_tokens", "cached_input_tokens", "output_tokens", "total_tokens")}}


def cost_section(data: SessionData, tokens: AgentTokens) -> dict[str, Any]:
    """Dollars at the prices the session was launched with (the built-in table where its config snapshot has none):
    the agent's tokens (`token_meter(...).read()`), the judge's from the verdicts; the CLI's own figure beside."""
    from nanogpt_tui.pricing import DEFAULT_PRICES, PRICES_AS_OF, parse_price
    from nanogpt_tui.telemetry.cost import judge_tokens, session_cost

    prices = dict(DEFAULT_PRICES)
    snapshot = data.session.config.get("prices") if isinstance(data.session.config, dict) else None
    for model, value in (snapshot or {}).items():
        price = parse_price(value)
        if price is not None:
            prices[model] = price
    cost = session_cost(tokens, judge_tokens(data.verdicts), prices, data.session.agent_model)
    return {**cost.to_dict(), "token_source": tokens.source, "built_in_prices_as_of": PRICES_AS_OF}


def gpu_section(path: Path) -> dict[str, Any] | None:
    """The session's GPU samples summed up (None when it has no gpu.jsonl): mean utilisation and power, peak
    memory, and the share of samples with every GPU idle."""
    from nanogpt_tui.telemetry.gpu import GpuHistory

    history = GpuHistory(path / L.GPU_FILE, kept=1_000_000)
    history.update()
    samples = list(history.samples)
    if not samples:
        return None
    utils = [s.util_pct for s in samples if s.util_pct is not None]
    powers = [s.power_w for s in samples if s.power_w is not None]
    mems = [(s.mem_used_mib, s.mem_total_mib) for s in samples if s.mem_used_mib is not None and s.mem_total_mib]
    return {"samples": len(samples), "first": samples[0].at, "last": samples[-1].at,
            "gpus": sorted({g.index for s in samples for g in s.gpus}),
            "mean_util_pct": round(sum(utils) / len(utils), 1) if utils else None,
            "mean_power_w": round(sum(powers) / len(powers), 1) if powers else None,
            "peak_mem_pct": round(100 * max(u / t for u, t in mems), 1) if mems else None,
            "idle_share": round(sum(1 for s in samples if s.idle) / len(samples), 4),
            "source": L.GPU_FILE}


def best_submission(data: SessionData) -> Verdict | None:
    """The counted submission at the top of the curve within the budget (the fastest, earliest on a tie)."""
    best = None
    for step in data.steps:
        if step["within_budget"]:
            best = step["verdict_id"]
    return next((v for v in data.verdicts if v.verdict_id == best), None)


def code_diff(anchor: dict[str, str], candidate: dict[str, str], candidate_label: str,
              max_lines: int = DIFF_MAX_LINES) -> tuple[str, int, bool]:
    """A unified diff of code files; its text, the number of files that differ, and whether it was clipped."""
    out: list[str] = []
    changed = 0
    for name in sorted(set(anchor) | set(candidate)):
        a, b = anchor.get(name, ""), candidate.get(name, "")
        if a == b:
            continue
        changed += 1
        out.extend(difflib.unified_diff(a.splitlines(), b.splitlines(), f"anchor/{name}",
                                        f"{candidate_label}/{name}", lineterm=""))
    clipped = len(out) > max_lines
    if clipped:
        out = out[:max_lines] + [f"... diff clipped at {max_lines} lines"]
    return "\n".join(out), changed, clipped


def best_section(data: SessionData, anchor: dict[str, str], anchor_label: str) -> dict[str, Any] | None:
    v = best_submission(data)
    if v is None:
        return None
    # The code the validator froze and validated, not whatever the workspace holds under that name now.
    folder = data.frozen.get(v.verdict_id) or data.path / L.WORKSPACE / "submissions" / v.submission
    code = read_code(folder) if folder.is_dir() else {}
    text, files, clipped = code_diff(anchor, code, v.submission) if code and anchor else ("", 0, False)
    return {
        "submission": v.submission, "verdict_id": v.verdict_id,
        "seconds_faster": _num((v.speedup or {}).get("seconds_faster")),
        "percent_of_human_progress": verdict_percent(v, data.gap_s),
        "mean_train_time_s": (v.mean_train_time_ms or 0) / 1000 if v.mean_train_time_ms else None,
        "diff_against": anchor_label or None, "files_changed": files, "diff": text, "diff_clipped": clipped,
        "diff_missing": None if code and anchor else (
            f"the folder {folder} is gone" if not code else "the anchor's code is not available"),
    }


# ------------------------------------------------------------------------------------------------ environment

_DRIVER = re.compile(r"Driver Version:\s*([0-9][\w.]*)")
_CUDA = re.compile(r"CUDA Version:\s*([0-9][\w.]*)")
_GPU_ROW = re.compile(r"^\|\s*\d+\s+(NVIDIA [^|]*?|Tesla [^|]*?|AMD [^|]*?)\s{2,}(?:On|Off)\s*\|", re.M)
_TORCH = re.compile(r"Running PyTorch\s+(\d\S*)")
_SEPARATOR = re.compile(r"^=+\s*$", re.M)
_PYTHON = re.compile(r"Running Python\s+(\d+\.\d+\.\d+)")
_CU_SUFFIX = re.compile(r"\+cu(\d+)(\d)\b")


def parse_environment(text: str) -> dict[str, Any]:
    """GPU model and count, driver, CUDA, PyTorch and Python versions from what a speedrun log prints (the
    records print `nvidia-smi` and `Running PyTorch ...`). A log that begins with the script's own source (the
    speedrun's convention) is read from its first line of `=` characters on, so the code is not mistaken for
    output."""
    out: dict[str, Any] = {}
    sep = _SEPARATOR.search(text)
    if sep is not None:
        text = text[sep.end():]
    if m := _DRIVER.search(text):
        out["driver_version"] = m.group(1)
    if m := _CUDA.search(text):
        out["cuda_version"] = m.group(1)
    gpus = [g.strip() for g in _GPU_ROW.findall(text)]
    if gpus:
        out["gpu_model"] = max(set(gpus), key=gpus.count)
        out["gpu_count"] = len(gpus)
    if m := _TORCH.search(text):
        out["torch_version"] = m.group(1)
        if "cuda_version" not in out and (cu := _CU_SUFFIX.search(m.group(1))):
            out["cuda_version"] = f"{cu.group(1)}.{cu.group(2)} (from the PyTorch build)"
    if m := _PYTHON.search(text):
        out["python_version"] = m.group(1)
    return out


def _read_head(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read(ENV_LOG_BYTES).decode("utf-8", "replace")
    except OSError:
        return ""


def reproducibility_section(data: SessionData, anchor_sha: dict[str, str]) -> dict[str, Any]:
    s = data.session
    env: dict[str, Any] = {}
    sources: dict[str, str] = {}
    logs: list[Path] = []
    verdicts_dir = validator_dir(data.path) / VERDICTS
    for v in sorted(data.verdicts, key=lambda v: (not v.counts, v.started_at)):
        for r in v.runs:
            logs.append(verdicts_dir / v.verdict_id / r.log)
    logs.extend(sorted((data.path / L.WORKSPACE / "experiments").glob("*/run.log")))
    for log in logs[:50]:
        found = parse_environment(_read_head(log))
        for key, value in found.items():
            if key not in env:
                env[key] = value
                sources[key] = str(log.relative_to(data.path)) if log.is_relative_to(data.path) else str(log)
        if {"gpu_model", "driver_version", "cuda_version", "torch_version"} <= set(env):
            break
    image_id = None
    inspect_path = data.path / L.INSPECT_FILE
    if inspect_path.is_file():
        try:
            inspect = json.loads(inspect_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            inspect = {}
        if isinstance(inspect, dict):
            image_id = inspect.get("Image") if isinstance(inspect.get("Image"), str) else None
            if image_id:
                sources["image_id"] = L.INSPECT_FILE
    unknown = "unknown"
    return {
        "image": s.image, "image_id": image_id or (unknown if s.backend == "docker" else None),
        "backend": s.backend, "host": s.host,
        "gpu_model": env.get("gpu_model", unknown), "gpu_count": env.get("gpu_count"),
        "driver_version": env.get("driver_version", unknown), "cuda_version": env.get("cuda_version", unknown),
        "torch_version": env.get("torch_version", unknown), "python_version": env.get("python_version", unknown),
        "agent": s.agent, "agent_model": s.agent_model, "agent_effort": s.agent_effort,
        "strategy": s.strategy, "strategy_hash": s.strategy_hash, "anchor": s.anchor, "target": s.target,
        "anchor_code_sha256": anchor_sha, "nanogpt_tui_version": __version__, "config": s.config,
        "env_check": s.env_check, "allow_env_mismatch": s.allow_env_mismatch,
        "sources": sources,
    }
