"""When the control room should speak up: a verdict lands, a budget is nearly spent, a session's GPUs sit idle.
`AlertWatch` compares each new set of session views with what it saw before and says each thing once."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field

from nanogpt_tui.config import AlertsConfig
from nanogpt_tui.sessions import model as M
from nanogpt_tui.tui.data.formatting import format_duration
from nanogpt_tui.tui.data.views import SessionView


@dataclass(frozen=True)
class Alert:
    kind: str  # "verdict", "budget", "idle-gpu"
    session_id: str
    text: str
    severity: str = "information"  # or "warning"


@dataclass
class AlertWatch:
    """Remembers what it has said: the verdicts seen, the budgets already called nearly spent, the idle GPUs
    already reported (until they are busy again)."""

    config: AlertsConfig
    _verdicts: dict[str, set[str]] = field(default_factory=dict)
    _budget: set[tuple[str, str]] = field(default_factory=set)
    _idle: set[str] = field(default_factory=set)

    def check(self, views: Iterable[SessionView], now: dt.datetime) -> list[Alert]:
        """The alerts the change since the last call brings. The first look at a session only learns what is there
        (opening the control room on old verdicts says nothing)."""
        alerts: list[Alert] = []
        for v in views:
            if not v.complete:
                continue
            ids = {r.verdict.verdict_id for r in v.verdicts}
            seen = self._verdicts.get(v.id)
            self._verdicts[v.id] = ids
            first = seen is None
            if not first and self.config.on_verdict:
                for row in v.verdicts:
                    if row.verdict.verdict_id not in seen:
                        pct = f", {row.percent:.1f}% of human progress" if row.percent is not None else ""
                        speed = f", {row.seconds_faster:+.2f} s" if row.seconds_faster is not None else ""
                        alerts.append(Alert("verdict", v.id, f"{v.id}: {row.verdict.submission} "
                                                             f"{row.verdict.outcome}{speed}{pct}."))
            if v.session.status == M.RUNNING:
                alerts.extend(self._budgets(v, now, first))
                alerts.extend(self._idle_gpus(v))
        return alerts

    def _budgets(self, v: SessionView, now: dt.datetime, first: bool) -> list[Alert]:
        out = []
        threshold = self.config.budget_fraction
        if not threshold:
            return out
        b = v.budget_figures(now)
        spent = {"GPU-hour": b["fraction"]}
        if v.session.budget_usd and v.cost is not None and v.cost.total_usd is not None:
            spent["dollar"] = v.cost.total_usd / v.session.budget_usd
        for what, fraction in spent.items():
            key = (v.id, what)
            if fraction >= threshold and key not in self._budget:
                self._budget.add(key)
                if not first:
                    left = f", {format_duration(b['seconds_left'])} left" if what == "GPU-hour" and \
                        b["seconds_left"] is not None else ""
                    out.append(Alert("budget", v.id, f"{v.id} has spent {fraction * 100:.0f}% of its {what} "
                                                     f"budget{left}.", "warning"))
        return out

    def _idle_gpus(self, v: SessionView) -> list[Alert]:
        limit = self.config.idle_gpu_minutes * 60
        if not limit or v.gpu is None:
            return []
        if v.gpu.idle_s < limit:
            self._idle.discard(v.id)
            return []
        if v.id in self._idle:
            return []
        self._idle.add(v.id)
        return [Alert("idle-gpu", v.id, f"{v.id}: its GPUs have sat idle for {format_duration(v.gpu.idle_s)} "
                                        "(below 5% utilisation) while it runs.", "warning")]


def desktop_notify(title: str, text: str) -> bool:
    """A desktop notification through `notify-send` (no shell; the text is an argument); False where there is
    none."""
    exe = shutil.which("notify-send")
    if exe is None:
        return False
    try:
        subprocess.run([exe, "--app-name=nanogpt-tui", title, text], timeout=5, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return False
    return True
