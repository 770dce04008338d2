"""The demo: three local-backend sessions of the scripted agent on the smoke record, with short budgets (headless).

They live in their own sessions folder, `<sessions_dir>/demo/`, so they never mix with real sessions; the
smoke record's synthetic shards are shared with other local sessions (`paths.local_data_dir`). No GPU,
Docker or API key is needed: the scripted agent follows a fixed plan, trains the smoke record on the CPU and
validates with `submit --judge none` (3 retimings each, through BENCHMARK_SCRIPTED_RUNS: with 2, a one-sided t-test rarely reaches p < 0.01).
Their target is the last record of the smoke track (`human_baselines/records.tsv`, track `smoke`: our own records,
each timed against its predecessor), so they score % of human progress against that track's times, which were
measured on the hardware the manifest names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nanogpt_tui.config import Config
from nanogpt_tui.contract.env import ENV_SCRIPTED_RUNS
from nanogpt_tui.errors import UserError
from nanogpt_tui.sessions import model as M
from nanogpt_tui.sessions.manager import LaunchRequest, SessionManager
from nanogpt_tui.sessions.model import Session

DEMO_FOLDER = "demo"
DEMO_ANCHOR = "smoke"
DEMO_ENV = ((ENV_SCRIPTED_RUNS, "3"),)


@dataclass(frozen=True)
class DemoSession:
    strategy: str
    budget_gpu_hours: float  # on 1 GPU: wall-clock hours


# Three sessions, two strategies, budgets of 6 to 9 minutes: logs and budgets move at once, the first verdicts
# come after a few minutes (three smoke trainings share the CPU).
DEMO_SESSIONS = (
    DemoSession("default", 0.10),
    DemoSession("autoresearch", 0.12),
    DemoSession("default", 0.15),
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
    (None, why) when the manifest holds no later smoke record."""
    from nanogpt_tui.records import load_timeline

    try:
        timeline = load_timeline(config.paths.baselines_dir)
        last = timeline.last_of_track(DEMO_ANCHOR) if DEMO_ANCHOR in timeline else None
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
