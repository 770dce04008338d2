"""Benchmark: the control room under a log flood (not a timed test).

N sessions (default 8) each get 2,000 log lines a second for a minute (plain lines, agent JSON lines, escape
codes), plus an agent usage event a second; the real `nanogpt-tui` runs on a 160x48 pty meanwhile. Measured:

- key-to-screen: from writing a key to the pty until the text it brings appears in the app's output, for
  moving to the next session (the log title changes) and for opening the help screen;
- the app's CPU use (user + system time of its process over the flood, as % of one core);
- its memory (RSS sampled every second): the log views keep a bounded window, so it must stay flat.

    .venv/bin/python benchmarks/tui_flood.py [--sessions 8] [--rate 2000] [--seconds 60] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tui_common import Terminal, make_session, percentile, spawn, write_config

AGENT_LINE = json.dumps({"type": "assistant", "message": {"id": "msg_{n}", "content": [
    {"type": "text", "text": "Trying a shorter warm-down; the loss curve at step 1450 suggests room."},
    {"type": "tool_use", "id": "toolu_{n}", "name": "Bash", "input": {"command": "bash run.sh > run.log"}}],
    "usage": {"input_tokens": 12, "output_tokens": 80}}})


def writer(root: Path, sessions: list[str], rate: int, seconds: float) -> None:
    """Append `rate` lines a second to each session's container.log, and some events, for `seconds`."""
    logs = [open(root / s / "container.log", "ab", buffering=0) for s in sessions]
    events = [open(root / s / "workspace" / "logs" / "events.jsonl", "ab", buffering=0) for s in sessions]
    tick = 0.02
    per_tick = max(1, int(rate * tick))
    n, k, start = 0, 0, time.monotonic()
    rng = random.Random(0)
    while time.monotonic() - start < seconds:
        k += 1
        for log in logs:
            lines = []
            for _ in range(per_tick):
                n += 1
                r = rng.random()
                if r < 0.6:
                    lines.append(f"step:{n % 1600}/1600 train_loss:{3 + r:.4f} train_time:{n}ms step_avg:61.2ms")
                elif r < 0.95:
                    lines.append(AGENT_LINE.replace("{n}", str(n)))
                else:
                    lines.append(f"\x1b[31mwarning\x1b[0m {n}: OPENAI_API_KEY=sk-" f"proj-abcdefghijklmnop{n}")
            log.write(("\n".join(lines) + "\n").encode())
        if k % 50 == 0:  # a usage event a second per session (an agent turn every second: a busy agent)
            for ev in events:
                ev.write((json.dumps({"nanogpt_tui_event": 1, "type": "usage", "input_tokens": 1000,
                                      "output_tokens": 50, "cost_usd": 0.01}) + "\n").encode())
        next_at = start + tick * k
        time.sleep(max(0.0, next_at - time.monotonic()))
    for f in logs + events:
        f.close()
    print(n, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--rate", type=int, default=2000, help="lines per second per session")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size", default="160x48")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (the flooded logs)")
    parser.add_argument("--writer", nargs=2, metavar=("ROOT", "IDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        writer(Path(args.writer[0]), args.writer[1].split(","), args.rate, args.seconds)
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="nanogpt-tui-flood-"))
    root = tmp / "sessions"
    root.mkdir()
    ids = [f"flood-{i:02d}" for i in range(args.sessions)]
    for sid in ids:
        make_session(root, sid)
    proc = spawn([__file__, "--writer", str(root), ",".join(ids), "--rate", str(args.rate), "--seconds",
                  str(args.seconds + 8)])
    for sid in ids:  # the writer is every session's "process", so the backend sees them running
        make_session(root, sid, pid=proc.pid)
    width, height = (int(x) for x in args.size.split("x"))
    term = Terminal(write_config(tmp, root), size=(width, height))
    try:
        if term.wait_for("control room", timeout=30) is None:
            print("the app did not draw its screen", file=sys.stderr)
            return 1
        time.sleep(3.0)  # warm-up: every session loaded, the flood under way
        cpu0, t0, out0 = term.cpu_seconds(), time.monotonic(), term.output_bytes
        threads0 = term.thread_cpu_seconds()
        rss, nav, helps = [], [], []
        selected, direction = 0, 1
        next_sample = t0
        while time.monotonic() - t0 < args.seconds:
            if time.monotonic() >= next_sample:
                rss.append(term.rss_mb())
                next_sample += 1.0
            # Move to the next session: the log title names it.
            if not 0 <= selected + direction < len(ids):
                direction = -direction
            selected += direction
            mark = term.mark()
            sent = term.press("right" if direction > 0 else "left")
            seen = term.wait_for(f"{ids[selected]} · container.log", since=mark, timeout=10)
            nav.append(None if seen is None else (seen - sent) * 1000)
            time.sleep(0.4)
            mark = term.mark()
            sent = term.press("?")
            seen = term.wait_for("this help", since=mark, timeout=10)
            helps.append(None if seen is None else (seen - sent) * 1000)
            time.sleep(0.2)
            term.press("escape")
            time.sleep(0.6)
        wall = time.monotonic() - t0
        cpu = term.cpu_seconds() - cpu0
        threads = {k: v - threads0.get(k, 0.0) for k, v in term.thread_cpu_seconds().items()}
        out_rate = (term.output_bytes - out0) / wall
        alive = os.waitpid(term.pid, os.WNOHANG)[0] == 0
    finally:
        term.close()
        proc.terminate()
        proc.wait()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)  # a minute of flood is ~100 MB of logs per session set

    def summary(values):
        got = [v for v in values if v is not None]
        return {"n": len(values), "missed": len(values) - len(got), "median_ms": round(statistics.median(got), 1)
                if got else None, "p95_ms": round(percentile(got, 0.95), 1) if got else None,
                "max_ms": round(max(got), 1) if got else None}

    result = {
        "sessions": args.sessions, "lines_per_s_per_session": args.rate, "seconds": round(wall, 1),
        "terminal": args.size, "cpus": os.cpu_count(),
        "key_to_screen_next_session": summary(nav), "key_to_screen_help": summary(helps),
        "app_cpu_percent_of_one_core": round(100 * cpu / wall, 1),
        "app_cpu_percent_by_thread": {k: round(100 * v / wall, 1) for k, v in threads.items()},
        "rss_mb": {"first": round(rss[0], 1), "last": round(rss[-1], 1), "max": round(max(rss), 1),
                   "first_10s_mean": round(statistics.mean(rss[:10]), 1),
                   "last_10s_mean": round(statistics.mean(rss[-10:]), 1)},
        "terminal_output_kb_per_s": round(out_rate / 1024, 1), "app_alive_at_end": alive,
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:32} {value}")
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
