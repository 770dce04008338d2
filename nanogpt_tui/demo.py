"""The demo: three local-backend sessions of the scripted agent on the smoke track, with short budgets (headless).

They live in their own sessions folder, `<sessions_dir>/demo/`, so they never mix with real sessions; the
smoke record's synthetic shards are shared with other local sessions (`paths.local_data_dir`). No GPU,
Docker or API key is needed: the scripted agent follows its demo plan (harnesses/scripted/demo.toml), trains on the
CPU and validates with `submit --judge none` (4 retimings each, through BENCHMARK_SCRIPTED_RUNS: the one-block candidate
ends about 0.015 below the target with a run-to-run sd near 0.003, so with 3 runs the one-sided t-test's p came
out between 0.0004 and 0.008 and sometimes misses 0.01; with 4 it is near 0.001).

Their anchor is the smoke track's smoke-2-mlp-only and their target the track's last record
(`human_baselines/records.tsv`, track `smoke`: our own records, each timed against its predecessor), so they score %
of human progress against that track's times, measured on the hardware the manifest names, with the three later
records (architecture, optimizer, systems) as lines on the plot. Not the smoke record itself: its runs take about
22 s each on an idle 2-core CPU (three at once, half as fast again), so the first validated verdict came after
several minutes, and under load after the sessions' budgets; smoke-2-mlp-only's take about 10 s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nanogpt_tui.config import Config
from nanogpt_tui.contract.env import ENV_SCRIPTED_PLAN, ENV_SCRIPTED_RUNS
from nanogpt_tui.errors import UserError
from nanogpt_tui.sessions import model as M
from nanogpt_tui.sessions.model import Session

if TYPE_CHECKING:  # loaded by start_demo: `nanogpt-tui demo` draws its control room before it needs the manager
    from nanogpt_tui.sessions.manager import SessionManager

DEMO_FOLDER = "demo"
DEMO_ANCHOR = "smoke-2-mlp-only"
DEMO_PLAN = "demo.toml"  # one of the scripted harness's plans
DEMO_ENV = ((ENV_SCRIPTED_RUNS, "4"), (ENV_SCRIPTED_PLAN, DEMO_PLAN))


@dataclass(frozen=True)
class DemoSession:
    strategy: str
    budget_gpu_hours: float  # on 1 GPU: wall-clock hours


# Three sessions, two strategies, budgets of 18 to 24 minutes: logs and budgets move at once. A session's first
# validated verdict needs 9 runs (a baseline of 4, the one-block experiment, its 4 retimings), about 10 s of CPU
# each; the plan's rest adds 7. Measured with 3 retimings at a load average of 11-13 (seven engineers' tests on
# this 2-core machine): baselines after 204 s, the three first submissions validated after 436-439 s; the budgets
# leave room for twice that (a retiming ends before the deadline, so a budget too short for it gets no verdict).
DEMO_SESSIONS = (
    DemoSession("default", 0.30),
    DemoSession("autoresearch", 0.35),
    DemoSession("default", 0.40),
)


def demo_config(config: Config) -> Config:
    """The same config with sessions under `<sessions_dir>/demo/` (shards stay where local sessions share them)."""
    paths = config.paths
    # The demo is offline (no judge key): its validator skips the judge, and its verdicts say so.
    return dataclasses.replace(config, paths=dataclasses.replace(
        paths, sessions_dir=Path(paths.sessions_dir) / DEMO_FOLDER, data_dir=paths.local_data_dir),
        judge=dataclasses.replace(config.judge, provider="none", model="none"))


def strategy_for_scripted(name: str, say: Callable[[str], None]) -> str:
    """`name` when the strategy lists the scripted agent, else `default` (said out loud, never silently)."""
    from nanogpt_tui.agents.catalog import check_strategy_fits, get_agent
    from nanogpt_tui.agents.strategy import resolve_strategy

    strategy = resolve_strategy(name)
    try:
        check_strategy_fits(get_agent("scripted"), strategy.agents, strategy.name)
    except UserError:
        say(f"note: the {name} strategy does not list the scripted agent, so this demo session records the "
            "default strategy instead")
        return "default"
    return name


def smoke_target(config: Config) -> tuple[str | None, str]:
    """The smoke track's last record (the demo's 100%) and a sentence naming the hardware its times are from;
    (None, why) when the manifest holds no later smoke record. The anchor's folder is written first when it is not
    here yet (it is one of our own records: `records fetch` writes it the same way)."""
    from nanogpt_tui.records import ensure_record_code, load_timeline

    try:
        timeline = load_timeline(config.paths.baselines_dir)
        last = timeline.last_of_track(DEMO_ANCHOR) if DEMO_ANCHOR in timeline else None
        if DEMO_ANCHOR in timeline:
            ensure_record_code(timeline, DEMO_ANCHOR, config.paths.baselines_dir)
    except UserError as err:
        return None, f"note: {err} The demo sessions show seconds faster only."
    if last is None:
        return None, "note: the record manifest has no smoke track, so the demo sessions show seconds faster only."
    anchor = timeline.get(DEMO_ANCHOR)
    gap = timeline.gap(DEMO_ANCHOR, last.name)
    where = last.hardware or "hardware the manifest does not name"
    return last.name, (f"% of human progress is against the smoke track ({anchor.record_time_s:.2f} s -> "
                       f"{last.name} {last.record_time_s:.2f} s, a {gap:.2f} s gap), timed on {where}; "
                       "times on other machines, or under other load, differ.")


def live_demo_sessions(manager: SessionManager) -> list[Session]:
    sessions, _ = manager.list()
    return [s for s in sessions if s.status in M.ACTIVE]


def start_demo(config: Config, *, say: Callable[[str], None] = print, fresh: bool = False) -> tuple[Config, list[Session]]:
    """Start the three demo sessions (or keep the ones still running) and return the demo config and sessions.

    With `fresh`, three new sessions start even when earlier ones are still running.
    """
    from nanogpt_tui.sessions.manager import LaunchRequest, SessionManager

    cfg = demo_config(config)
    manager = SessionManager(cfg)
    running = live_demo_sessions(manager)
    if running and not fresh:
        say(f"{len(running)} demo session(s) still running in {cfg.paths.sessions_dir}; re-attaching (the CLI "
            f"sees them with `nanogpt-tui --sessions-dir {cfg.paths.sessions_dir} sessions list`).")
        return cfg, running
    started = []
    target, note = smoke_target(cfg)
    say(note)
    for spec in DEMO_SESSIONS:
        strategy = strategy_for_scripted(spec.strategy, say)
        request = LaunchRequest(agent="scripted", strategy=strategy, anchor=DEMO_ANCHOR, target=target,
                                backend="local", budget_gpu_hours=spec.budget_gpu_hours, gpus=1, extra_env=DEMO_ENV)
        try:
            session = manager.launch(request)
        except UserError as err:
            for s in started:  # leave nothing half-started behind
                try:
                    manager.kill(s.id, reason="the demo could not start all its sessions")
                except UserError:
                    pass
            raise UserError(f"The demo could not start its {strategy} session: {err}") from None
        say(f"started {session.id} (scripted agent, strategy {strategy}, "
            f"{spec.budget_gpu_hours * 60:.0f} min)")
        started.append(session)
    say(f"The demo's sessions are in {cfg.paths.sessions_dir}; the CLI sees them with "
        f"`nanogpt-tui --sessions-dir {cfg.paths.sessions_dir} sessions list`.")
    return cfg, started
