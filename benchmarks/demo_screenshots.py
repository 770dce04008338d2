"""Screenshots of `nanogpt-tui demo` itself, once its own sessions have validated verdicts, and how long that took.

Starts the demo's three sessions (or re-attaches to those still running, as `nanogpt-tui demo` does), waits until the
first of them has a validated submission and every one has its baseline, then opens the control room on them
headless (the app factory the CLI uses) and saves two SVGs: the main screen (cards with % of human progress, the
plot with the smoke track's record lines) and the first validated session's transcript. Prints the seconds from the
sessions' start to each session's first validated verdict, with the machine's load average.

    python benchmarks/demo_screenshots.py [--out docs/screenshots] [--sessions-dir DIR] [--timeout-s 1200] [--keep]

The sessions' folder defaults to /srv/nanogpt-tui/sessions, a neutral place: the scripted agent's commands name
their session's folder, and the committed screenshots must not carry the paths of the machine that took them.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nanogpt_tui.cli.common import config_from  # noqa: E402
from nanogpt_tui.demo import start_demo  # noqa: E402
from nanogpt_tui.sessions.manager import SessionManager  # noqa: E402
from nanogpt_tui.validator.protocol import trusted_verdicts  # noqa: E402


def first_validated(session_dir: Path):
    verdicts = trusted_verdicts(session_dir).verdicts
    counted = [v for v in verdicts if v.kind == "submission" and v.counts]
    return min(counted, key=lambda v: v.finished_at or "") if counted else None


def seconds_between(start_iso: str, end_iso: str) -> float:
    parse = lambda s: dt.datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end_iso) - parse(start_iso)).total_seconds()


async def shoot(config, selection: str, out: Path, size: tuple[int, int]) -> None:
    from nanogpt_tui.tui.app import create_app
    from nanogpt_tui.tui.screens.detail import DetailScreen

    app = create_app(config, initial_selection=selection)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(3.0)  # the first refresh reads every session, its verdicts and the plot's data
        app.save_screenshot(str(out / "demo-smoke-track.svg"))
        await pilot.press("enter")
        for _ in range(100):
            if isinstance(app.screen, DetailScreen):
                break
            await pilot.pause(0.1)
        await pilot.press("2")  # the transcript tab
        await pilot.pause(2.0)
        app.save_screenshot(str(out / "transcript.svg"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--timeout-s", type=float, default=1200.0)
    parser.add_argument("--sessions-dir", default="/srv/nanogpt-tui/sessions",
                        help="where the demo's sessions go (their paths show in the screenshots)")
    parser.add_argument("--keep", action="store_true", help="leave the demo's sessions running afterwards")
    args = parser.parse_args()

    config, sessions = start_demo(config_from(argparse.Namespace(config=None, sessions_dir=args.sessions_dir)),
                                  say=print)
    manager = SessionManager(config)
    started = time.monotonic()
    firsts: dict[str, float] = {}
    loads = [os.getloadavg()[0]]
    try:
        while len(firsts) < len(sessions) and time.monotonic() - started < args.timeout_s:
            for session in sessions:
                verdict = first_validated(config.paths.sessions_dir / session.id)
                if session.id not in firsts and verdict is not None:
                    firsts[session.id] = seconds_between(session.created_at, verdict.finished_at)
                    print(f"{session.id}: {verdict.submission} validated {firsts[session.id]:.0f} s after the "
                          f"session started ({verdict.speedup.get('percent_of_human_progress') or 0:.1f}% of human "
                          "progress)", flush=True)
            if firsts and not any(manager.get(s.id).is_active for s in sessions if s.id not in firsts):
                break
            loads.append(os.getloadavg()[0])
            time.sleep(2.0)
        if not firsts:
            print(f"no validated verdict within {args.timeout_s:.0f} s", file=sys.stderr)
            return 1
        selection = min(firsts, key=firsts.get)
        args.out.mkdir(parents=True, exist_ok=True)
        asyncio.run(shoot(config, selection, args.out, (160, 48)))
    finally:
        if not args.keep:
            for session in sessions:
                if manager.get(session.id).is_active:
                    manager.kill(session.id, reason="the screenshots are taken")
    print(f"{len(firsts)} of {len(sessions)} sessions validated a submission; load average {min(loads):.1f}-"
          f"{max(loads):.1f} while waiting; screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
