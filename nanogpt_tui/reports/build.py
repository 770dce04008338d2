"""Assembling a session or group report as one JSON-ready document (schema: docs/report-schema.md) plus the
specification of its figure; headless."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanogpt_tui import __version__
from nanogpt_tui.records import Timeline
from nanogpt_tui.reports.conventions import anchor_here_note
from nanogpt_tui.reports.figure import FigureSpec, HumanLineSpec, Series
from nanogpt_tui.reports.ledger import ClassifierCache, anchor_code
from nanogpt_tui.reports.session import (
    SessionData,
    best_section,
    budget_section,
    load_session_data,
    reproducibility_section,
    submissions_table,
    cost_section,
    gpu_section,
    usage_section,
)
from nanogpt_tui.scoring import human_lines
from nanogpt_tui.sessions import model as M

if TYPE_CHECKING:
    from nanogpt_tui.reports.human import HumanKinds

REPORT_SCHEMA_VERSION = 1
FIGURE_FILE = "progress.png"


def _utc(now: dt.datetime | None) -> str:
    t = now or dt.datetime.now(dt.timezone.utc)
    return t.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def short_label(data: SessionData, with_id: bool = True) -> str:
    s = data.session
    model = f" ({s.agent_model})" if s.agent_model else ""
    return f"{s.agent} / {s.strategy}{model}" + (f" · {s.id[:16]}" if with_id else "")


def progress_section(data: SessionData) -> dict[str, Any]:
    s = data.session
    total = s.total_gpu_hours
    area = data.curve.area(total)
    gap = data.gap_s
    return {
        "gap_s": gap, "final_seconds_faster": round(data.final_seconds_faster, 6),
        "final_percent": None if data.final_percent is None else round(data.final_percent, 6),
        "best_seconds_faster_any_time": round(data.curve.final, 6),
        "area_seconds_gpu_hours": round(area, 6),
        "area_percent_gpu_hours": None if not gap else round(100.0 * area / gap, 6),
        "mean_percent_over_budget": None if not gap or not total else round(100.0 * area / gap / total, 6),
        "horizon_gpu_hours": round(data.horizon_gpu_hours, 6),
        "complete": s.status in M.FINAL,
        "steps": data.steps,
    }


def session_section(data: SessionData, baselines_dir: Path | None, now: dt.datetime | None,
                    human: HumanKinds) -> dict[str, Any]:
    """One session's part of a report; `human`: the human records' kinds, read once for the whole report."""
    from nanogpt_tui.telemetry.cost import token_meter

    s = data.session
    meter = token_meter(data.path)
    tokens = meter.read()  # the events and the gateway's record, read once for the usage and the cost
    anchor, anchor_where = anchor_code(data.path, baselines_dir, s.anchor)
    anchor_sha = {name: hashlib.sha256(text.encode("utf-8")).hexdigest() for name, text in anchor.items()}
    return {
        "id": s.id, "path": str(data.path), "agent": s.agent, "agent_model": s.agent_model,
        "agent_effort": s.agent_effort, "strategy": s.strategy, "strategy_hash": s.strategy_hash,
        "sandbox": s.sandbox,
        "anchor": s.anchor, "target": s.target, "status": s.status, "status_reason": s.status_reason,
        "progress": progress_section(data),
        "submissions": submissions_table(data),
        "budget": budget_section(data, now),
        "usage": usage_section(meter),
        "cost": cost_section(data, tokens),
        "gpu": gpu_section(data.path),
        "best_submission": best_section(data, anchor, anchor_where),
        "changes": data.ledger.to_dict(),
        "human_kinds": human.over(s.anchor, s.target),
        "reproducibility": reproducibility_section(data, anchor_sha),
        "problems": [*data.problems, *data.ledger.problems],
    }


def scale_for(datas: Sequence[SessionData], timeline: Timeline | None) -> dict[str, Any]:
    """The figure's y scale: the most common anchor/target pair of the sessions, its gap and human lines."""
    pairs = Counter((d.session.anchor, d.session.target) for d in datas)
    (anchor, target), _ = pairs.most_common(1)[0]
    gap = next((d.gap_s for d in datas if (d.session.anchor, d.session.target) == (anchor, target) and d.gap_s),
               None)
    lines = []
    if timeline is not None and target and anchor in timeline and target in timeline and gap:
        lines = [{"index": h.index, "name": h.name, "date": h.date.isoformat(), "label": h.label,
                  "seconds_faster": round(h.seconds_faster, 4), "percent": round(h.percent, 4)}
                 for h in human_lines(timeline, anchor, target)]
    note = ""
    if not gap:
        note = (f"No % of human progress: {anchor} is not on the human record timeline"
                + (f" with target {target}" if target else " or the session has no target") + "; seconds faster only.")
    if len(pairs) > 1:
        note = (note + " " if note else "") + (
            f"Sessions have different anchors or targets; the axis uses {anchor} -> {target}, and each line is "
            "its own session's % of progress.")
    basis = "same-hardware re-timings where known, else official record times (records.tsv)"
    hardware = timeline.get(anchor).hardware if gap and timeline is not None and anchor in timeline else ""
    if hardware:
        # A track timed by us (the smoke track): its times hold for the hardware they were measured on.
        basis = f"record times measured on {hardware} (records.tsv)"
        note = (note + " " if note else "") + f"% against record times measured on {hardware}."
    here = anchor_here_note([v for d in datas if (d.session.anchor, d.session.target) == (anchor, target)
                             for v in d.verdicts], timeline, anchor) if gap else ""
    if here:
        note = (note + " " if note else "") + here[0].upper() + here[1:] + "."
    return {"anchor": anchor, "target": target, "gap_s": gap, "human_lines": lines, "note": note, "basis": basis}


def figure_spec(datas: Sequence[SessionData], scale: dict[str, Any], title: str) -> FigureSpec:
    series = []
    for d in datas:
        xs, ys = d.curve.series(d.horizon_gpu_hours)
        series.append(Series(label=short_label(d, with_id=len(datas) > 1), xs=xs, ys=ys, group=f"{d.session.id}",
                             gap_s=d.gap_s))
    marks: list[tuple[float, str]] = []
    if len(datas) == 1:
        s = datas[0].session
        marks.append((s.budget_gpu_hours, f"budget {s.budget_gpu_hours:g} GPU-h"))
        if s.extensions:
            marks.append((s.total_gpu_hours, f"+{s.total_gpu_hours - s.budget_gpu_hours:g} GPU-h extended"))
    x_max = max([d.horizon_gpu_hours for d in datas] + [m[0] for m in marks] + [1e-9])
    return FigureSpec(title=title, series=series,
                      human_lines=[HumanLineSpec(h["label"], h["seconds_faster"], h["percent"])
                                   for h in scale["human_lines"]],
                      gap_s=scale["gap_s"], anchor=scale["anchor"], x_max=x_max, budget_marks=marks,
                      note=scale["note"])


def build_report(session_dirs: Sequence[Path], *, timeline: Timeline | None, baselines_dir: Path | None = None,
                 now: dt.datetime | None = None) -> tuple[dict[str, Any], FigureSpec]:
    """The report document for one session or a group, and its figure's specification."""
    classifier = ClassifierCache()
    datas = [load_session_data(Path(p), timeline, baselines_dir=baselines_dir, now=now, classifier=classifier)
             for p in session_dirs]
    scale = scale_for(datas, timeline)
    if len(datas) == 1:
        s = datas[0].session
        title = f"{s.agent} / {s.strategy} on {s.anchor}" + (f" -> {s.target}" if s.target else "")
    else:
        title = f"{len(datas)} sessions on {scale['anchor']}" + (f" -> {scale['target']}" if scale["target"] else "")
    spec = figure_spec(datas, scale, title)
    from nanogpt_tui.reports.human import HumanKinds  # deferred: reports.human imports reports.outcomes

    human = HumanKinds.load(baselines_dir)  # the timeline and the classified table, once for every session
    sessions = [session_section(d, baselines_dir, now, human) for d in datas]
    summary = []
    for d, sec in zip(datas, sessions):
        changes = sec["changes"]
        summary.append({
            "id": d.session.id, "agent": d.session.agent, "strategy": d.session.strategy,
            "status": d.session.status, "final_percent": sec["progress"]["final_percent"],
            "final_seconds_faster": sec["progress"]["final_seconds_faster"],
            "best_submission": (sec["best_submission"] or {}).get("submission"),
            "used_gpu_hours": sec["budget"]["used_gpu_hours"], "total_gpu_hours": sec["budget"]["total_gpu_hours"],
            "share_of_changes": changes["share_of_changes"],
            "cost_usd": sec["cost"]["total"],  # at the price table's rates, agent and judge
            "agent_cli_reported_cost_usd": (sec["usage"] or {}).get("cost_usd"),
        })
    report = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "kind": "session-report" if len(datas) == 1 else "group-report",
        "title": title,
        "generated_at": _utc(now),
        "generated_by": f"nanogpt-tui {__version__}",
        "scale": scale,
        "figure": {"file": FIGURE_FILE, "width_px": None, "height_px": None,
                   "description": "% of human progress (left) and seconds faster (right) against GPU-hours; one step "
                                  "line per session; dashed lines are human records between anchor and target."},
        "summary": summary,
        "sessions": sessions,
    }
    return report, spec
