"""The replay agent: re-emits a recorded event stream (Claude Code or Codex format) with its original timing.

    python3 -m nanogpt_tui.agents.replay FILE [--speed X] [--gap S] [--max-gap S] [--loop]

Each line of FILE is written, unchanged, to $BENCHMARK_EVENTS_PATH (one write per line, like the relay
of a real agent) and to stdout. The wait before a line is the difference between its timestamp and the
previous line's (a `timestamp` or `ts` field holding ISO 8601 or Unix seconds), capped at --max-gap;
lines without one wait --gap. Waits are divided by --speed. It stops at the session deadline
($BENCHMARK_CONTROL_DIR/deadline.json) when there is one, and at the end of FILE unless --loop.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from nanogpt_tui.contract.deadline import read_deadline_or_none
from nanogpt_tui.contract.env import ENV_CONTROL_DIR, ENV_EVENTS_PATH, ENV_REPLAY_FILE
from nanogpt_tui.contract.layout import CONTAINER_CONTROL
from nanogpt_tui.errors import UserError

TIME_KEYS = ("timestamp", "ts")


def line_time(line: bytes) -> float | None:
    """The Unix time a recorded line carries, if any."""
    if not any(key.encode() in line for key in TIME_KEYS):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    for key in TIME_KEYS:
        value = obj.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value) / 1000.0 if value > 1e11 else float(value)  # milliseconds, too
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            if moment.tzinfo is not None:
                return moment.timestamp()
    return None


def replay_delays(lines: Sequence[bytes], *, gap: float, max_gap: float) -> list[float]:
    """The recorded wait before each line (before dividing by the speed)."""
    delays = []
    previous: float | None = None
    for index, line in enumerate(lines):
        moment = line_time(line)
        if index == 0:
            delay = 0.0
        elif moment is not None and previous is not None:
            delay = min(max(moment - previous, 0.0), max_gap)
        else:
            delay = gap
        delays.append(delay)
        if moment is not None:
            previous = moment
    return delays


def replay(lines: Sequence[bytes], *, speed: float = 1.0, gap: float = 0.5, max_gap: float = 30.0,
           events_path: str | None = None, sink: BinaryIO | None = None,
           deadline: Callable[[], float | None] | None = None, loop: bool = False,
           sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time) -> int:
    """Emit `lines` with their timing; returns how many lines were written. Stops at the deadline."""
    if speed <= 0 or not math.isfinite(speed):
        raise UserError(f"--speed must be a positive number, not {speed}.")
    lines = [ln if ln.endswith(b"\n") else ln + b"\n" for ln in lines if ln.strip()]
    if not lines:
        return 0
    delays = replay_delays(lines, gap=gap, max_gap=max_gap)
    fd = None
    if events_path:
        Path(events_path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    written = 0
    try:
        while True:
            for index, (line, delay) in enumerate(zip(lines, delays)):
                wait = (delay if (index or written == 0) else gap) / speed
                end = deadline() if deadline else None
                if end is not None and clock() + wait >= end:
                    if end > clock():
                        sleep(end - clock())
                    return written
                if wait > 0:
                    sleep(wait)
                if fd is not None:
                    view = memoryview(line)
                    while view:
                        view = view[os.write(fd, view):]
                if sink is not None:
                    try:
                        sink.write(line)
                        sink.flush()
                    except (BrokenPipeError, ValueError):
                        sink = None
                written += 1
            if not loop:
                return written
    finally:
        if fd is not None:
            os.close(fd)


def _deadline_reader(control: Path) -> Callable[[], float | None]:
    def read() -> float | None:
        deadline = read_deadline_or_none(control)
        return None if deadline is None else deadline.epoch
    return read


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m nanogpt_tui.agents.replay",
                                     description="Replay a recorded agent event stream with its original timing.")
    parser.add_argument("file", type=Path, metavar="FILE", help="a recorded stream (JSON Lines)")
    parser.add_argument("--speed", type=float, default=1.0, help="speed-up factor (default 1)")
    parser.add_argument("--gap", type=float, default=0.5,
                        help="seconds between lines that carry no timestamp (default 0.5)")
    parser.add_argument("--max-gap", type=float, default=30.0,
                        help="longest recorded pause kept, in seconds, before the speed-up (default 30)")
    parser.add_argument("--loop", action="store_true", help="start again at the end, until the deadline")
    parser.add_argument("--events", help=f"events file (default: ${ENV_EVENTS_PATH})")
    args = parser.parse_args(argv)
    try:
        try:
            data = args.file.read_bytes()
        except OSError as err:
            raise UserError(f"Cannot read the recorded stream {args.file} ({err.strerror}); "
                            f"check {ENV_REPLAY_FILE}.") from None
        events = args.events if args.events is not None else os.environ.get(ENV_EVENTS_PATH)
        control = Path(os.environ.get(ENV_CONTROL_DIR) or CONTAINER_CONTROL)
        replay(data.splitlines(keepends=True), speed=args.speed, gap=args.gap, max_gap=args.max_gap,
               events_path=events or None, sink=sys.stdout.buffer, deadline=_deadline_reader(control),
               loop=args.loop)
    except UserError as err:
        print(f"nanogpt_tui.agents.replay: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
