"""A verdict in full as plain styled text: outcome, reasons, rule violations, the judge's answer, every run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from nanogpt_tui.tui.data.formatting import format_utc
from nanogpt_tui.tui.data.views import judge_label
from nanogpt_tui.tui.widgets.card import OUTCOME_STYLES

if TYPE_CHECKING:
    from nanogpt_tui.validator.verdict import Verdict


def _clean(value: object) -> str:
    """Judge answers and error texts come from an LLM or a run log: strip control sequences, mask keys."""
    from nanogpt_tui.agents.render import mask_secrets, sanitize

    return mask_secrets(sanitize(str(value)))


def _num(value: object, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def verdict_text(v: Verdict, percent: float | None) -> Text:
    t = Text()
    t.append(f"{v.submission}", style="bold")
    t.append(f"  {v.verdict_id}\n", style="bright_black")
    t.append("outcome ")
    t.append(v.outcome, style=OUTCOME_STYLES.get(v.outcome, "bold"))
    t.append(f" · counts {'yes' if v.counts else 'no'} · valid {'yes' if v.valid else 'no'} · significant "
             f"{'yes' if v.significant else 'no'} · comparable {'yes' if v.comparable else 'no'}"
             + (" · new best" if v.new_best else "") + "\n")
    t.append(f"started {format_utc(v.started_at)} · finished {format_utc(v.finished_at)} UTC · {v.gpus} GPU(s) · "
             f"{v.gpu_seconds / 3600:.3f} GPU-h of retiming\n", style="bright_black")
    for reason in v.reasons:
        t.append(f"  • {_clean(reason)}\n", style="yellow")

    stats, speed = v.stats or {}, v.speedup or {}
    t.append("\nStatistics\n", style="bold underline")
    ci = stats.get("ci95_train_time_ms")
    ci_text = f"[{_num(ci[0] / 1000, '.3f')}, {_num(ci[1] / 1000, '.3f')}] s" if (
        isinstance(ci, (list, tuple)) and len(ci) == 2 and None not in ci) else "-"
    mean = stats.get("mean_train_time_ms")
    t.append(f"  runs {stats.get('n', '-')} ok, {stats.get('n_failed', 0)} failed of {v.runs_requested} · "
             f"mean val_loss {_num(stats.get('mean_val_loss'), '.4f')} (target {stats.get('val_loss_target', '-')}) · "
             f"p val_loss {_num(stats.get('p_value'), '.3g')}\n")
    t.append(f"  mean train_time {_num(mean / 1000 if isinstance(mean, (int, float)) else None, '.3f')} s · "
             f"95% CI {ci_text} · CV {_num(stats.get('cv_train_time'), '.2%')}\n")
    faster = stats.get("faster") or {}
    if faster:
        t.append(f"  vs {faster.get('baseline', '-')}: {_num(faster.get('difference_ms'), '.0f')} ms faster, "
                 f"p faster {_num(faster.get('p_value'), '.3g')} ({faster.get('method', '-')}), smallest detectable "
                 f"{_num(faster.get('min_detectable_ms'), '.0f')} ms\n")
    if v.kind == "baseline":
        t.append("  the anchor itself, retimed here: the reference this session's speedups are measured against\n",
                 style="bright_black")
    elif not v.counts:
        # As the verdict table: a submission that did not validate has a mean time but no speedup that counts.
        t.append(f"  no speedup or % of human progress: the submission does not count ({v.outcome})\n",
                 style="bright_black")
    else:
        t.append(f"  speedup {_num(speed.get('seconds_faster'), '+.3f')} s vs the anchor ({speed.get('basis', '-')}) · "
                 + (f"{percent:.2f}% of human progress" if percent is not None else "% of human progress n/a "
                    "(no human timeline for this anchor)") + "\n")
    if (v.early_stop or {}).get("stopped"):
        t.append(f"  stopped early: {_clean(v.early_stop.get('reason'))}\n", style="yellow")

    static = v.static or {}
    t.append("\nRule checks\n", style="bold underline")
    if "skipped" in static:
        t.append(f"  skipped: {_clean(static['skipped'])}\n", style="bright_black")
    elif static.get("ok"):
        t.append("  every rule kept\n", style="green")
    for violation in static.get("violations") or []:
        t.append(f"  ✗ {_clean(violation.get('rule'))} {_clean(violation.get('file'))}:{violation.get('line')} "
                 f"{_clean(violation.get('message'))}\n", style="red")

    judge = v.judge or {}
    t.append("\nJudge\n", style="bold underline")
    answered = [f"{name} {_clean(judge[name])}" for name in ("cheating", "confidence") if judge.get(name) is not None]
    t.append(" · ".join([f"  {judge_label(v)}", f"status {judge.get('status', '-')}",
                         f"{judge.get('provider', '-')} {judge.get('model', '')}".rstrip(), *answered]) + "\n")
    if judge.get("summary"):
        t.append(f"  {_clean(judge['summary'])}\n")
    for reason in judge.get("reasons") or []:
        if isinstance(reason, dict):
            t.append(f"  - {_clean(reason.get('file', ''))}: {_clean(reason.get('reason', ''))}\n")
        else:
            t.append(f"  - {_clean(reason)}\n")
    if judge.get("error"):
        t.append(f"  {_clean(judge['error'])}\n", style="yellow")

    t.append("\nRuns\n", style="bold underline")
    t.append("    #  status          val_loss  train_time (s)  steps      wall (s)\n", style="bright_black")
    for run in v.runs:
        steps = f"{run.final_step}/{run.total_steps}" if run.final_step is not None else "-"
        line = (f"  {run.index:>3}  {run.status:<14}  {_num(run.val_loss, '.4f'):>8}  "
                f"{_num(run.train_time_ms / 1000 if run.train_time_ms is not None else None, '.3f'):>14}  "
                f"{steps:<9}  {run.wall_s:>8.1f}\n")
        t.append(line, style="" if run.ok else "red")
        if run.error:
            t.append(f"       {_clean(run.error)}\n", style="red")
    if not v.runs:
        t.append("  no runs\n", style="bright_black")
    return t
