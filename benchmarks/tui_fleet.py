"""Benchmark: the control room for a fleet, first frames and keys (not a timed test).

Measured on the real `nanogpt-tui` on a pty, each next to a bare Textual app started the same way in the same run:

- first frame: from spawning the process until the screen shows its first content; for the control room, its
  title line and a session of the folder (`re-attach`: N sessions already on disk, their processes alive), and
  the cold demo (`nanogpt-tui demo --fresh` on an empty sessions folder: its title line, then its first session's
  card, which waits for the session's launch);
- key-to-screen with M sessions: `T` (cards to table: the table header appears), `s` (the sort column moves:
  the header's arrow), `down` in the table (the log title names the next session), typing a filter word;
- the app's memory (RSS) after loading, and after the keys.

Both apps run with bytecode caches, as on a user's machine after the first run (an environment that sets
PYTHONDONTWRITEBYTECODE would otherwise recompile every module of ours at each start): the caches go to a folder
of the run (PYTHONPYCACHEPREFIX), filled by one unmeasured start of each app. The load average is printed at the
start and the end: on a shared machine, compare the apps of one run, not runs.

    .venv/bin/python benchmarks/tui_fleet.py [--sessions 24] [--keys-sessions 50] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tui_common import REPO, Terminal, make_session, percentile, write_config

sys.path.insert(0, str(REPO))
from tests.tui.sessions_data import add_events, add_verdict  # noqa: E402

BARE_APP = '''
from textual.app import App
from textual.widgets import Static

class Bare(App):
    def compose(self):
        yield Static("bare textual app ready")

Bare().run()
'''


def fleet(root: Path, n: int, pid: int) -> list[str]:
    """`n` local sessions whose process is `pid` (alive: the control room re-attaches), each with verdicts,
    usage and a log, as a fleet's folders look after a while."""
    ids = []
    for i in range(n):
        sid = f"20261203T{10 + i // 60:02d}{i % 60:02d}00Z-fleet-{i:02d}"
        d = make_session(root, sid, pid=pid, hours=50.0, started_ago_s=3600.0 + 60 * i)
        add_verdict(d, 1, hours_after_start=0.5, outcome="validated", mean_ms=163_000.0 - 50 * i, p=0.001)
        add_events(d, [(100_000 * (i + 1), 5_000, 0.4)], texts=["trying a shorter warm-down"])
        (d / "container.log").write_text("".join(f"step:{k}/1600 val_loss:3.30 train_time:{k}ms\n"
                                                 for k in range(2000)))
        ids.append(sid)
    return ids


def mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def first_frame(config: Path | None, args: tuple[str, ...], text: str, size, exe: list[str] | None = None,
                timeout: float = 60.0) -> tuple[float | None, Terminal]:
    term = Terminal(config, size=size, args=args, argv=exe)
    seen = term.wait_for(text, timeout=timeout)
    return (None if seen is None else (seen - term.started) * 1000), term


def key_ms(term: Terminal, key: str, text: str, timeout: float = 10.0) -> float | None:
    mark = term.mark()
    sent = term.press(key)
    seen = term.wait_for(text, since=mark, timeout=timeout)
    return None if seen is None else (seen - sent) * 1000


def summary(values):
    got = [v for v in values if v is not None]
    return {"n": len(values), "missed": len(values) - len(got),
            "median_ms": round(statistics.median(got), 1) if got else None,
            "p95_ms": round(percentile(got, 0.95), 1) if got else None, "max_ms": round(max(got), 1) if got else None}


def warm_bytecode_caches(tmp: Path) -> None:
    """Bytecode caches in a folder of this run, compiled now (children inherit the environment)."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "nanogpt_tui")], check=False,
                   stdout=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=24, help="sessions for the re-attach first frame")
    ap.add_argument("--keys-sessions", type=int, default=50, help="sessions for key-to-screen")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--presses", type=int, default=30, help="presses of each key")
    ap.add_argument("--size", default="160x48")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    size = tuple(int(x) for x in args.size.split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="nanogpt-tui-fleet-"))
    os.environ["XDG_STATE_HOME"] = str(tmp / "state")  # the apps start on the default view, not a user's
    sleeper = subprocess.Popen(["sleep", "3600"])
    result: dict = {"terminal": args.size, "cpus": os.cpu_count(),
                    "load_average_at_start_1_5_15": [round(x, 2) for x in os.getloadavg()]}
    try:
        warm_bytecode_caches(tmp)
        bare_script = tmp / "bare.py"
        bare_script.write_text(BARE_APP)
        root = tmp / "sessions"
        root.mkdir()
        ids = fleet(root, args.sessions, sleeper.pid)
        config = write_config(tmp, root)  # each folder its own config file: the demo's must not replace this one
        cold_root = tmp / "cold"
        cold_config = write_config(mkdir(tmp / "cold-config"), cold_root)
        demo_config = write_config(mkdir(tmp / "demo-config"), cold_root / "demo")
        for exe, cfg in (([sys.executable, str(bare_script)], None), (None, config)):  # unmeasured: caches filled
            _ms, term = first_frame(cfg, (), "bare textual app ready" if exe else ids[-1].split("Z-", 1)[1], size,
                                    exe=exe)
            term.close()
        bare, reattach, reattach_rss, cold, cold_card = [], [], [], [], []
        for r in range(args.repeats):
            ms, term = first_frame(None, (), "bare textual app ready", size, exe=[sys.executable, str(bare_script)])
            bare.append(ms)
            term.close()
            ms, term = first_frame(config, (), ids[-1].split("Z-", 1)[1], size)  # the first card: the oldest
            reattach.append(ms)
            time.sleep(2.0)
            reattach_rss.append(term.rss_mb())
            term.close()
            shutil.rmtree(cold_root, ignore_errors=True)
            cold_root.mkdir()
            ms, term = first_frame(cold_config, ("demo", "--fresh"), "control room", size, timeout=120)
            cold.append(ms)
            seen = term.wait_for("scripted · ", timeout=120)  # the first demo session's card
            cold_card.append(None if seen is None else (seen - term.started) * 1000)
            term.close()
            from nanogpt_tui.config import load_config
            from nanogpt_tui.sessions.manager import SessionManager

            demo = SessionManager(load_config(demo_config))
            for s in demo.list()[0]:
                if s.is_active:
                    demo.kill(s.id, grace_s=1.0)
        result["first_frame_ms"] = {
            "bare_textual_app": summary(bare), f"control_room_reattach_{args.sessions}_sessions": summary(reattach),
            "demo_cold": summary(cold), "demo_cold_first_session_card": summary(cold_card)}
        result["rss_mb_after_reattach"] = round(statistics.mean(reattach_rss), 1)

        # Keys with a bigger fleet.
        root50 = tmp / "sessions50"
        root50.mkdir()
        ids50 = fleet(root50, args.keys_sessions, sleeper.pid)
        term = Terminal(write_config(tmp, root50), size=size)
        try:
            if term.wait_for(ids50[-1].split("Z-", 1)[1], timeout=60) is None:
                print("the control room did not draw", file=sys.stderr)
                return 1
            time.sleep(3.0)
            rss0 = term.rss_mb()
            toggles, sorts, downs, filters = [], [], [], []
            for _ in range(max(1, args.presses // 5)):
                toggles.append(key_ms(term, "T", "GPU-h used"))  # the table's header
                time.sleep(0.3)
                term.press("T")
                time.sleep(0.5)
            term.press("T")
            time.sleep(0.5)
            order = ["agent", "strategy", "anchor", "host", "status", "GPU-h used", "left", "best  %human",
                     "last verdict", "activity", "GPU", "cost", "session"]
            for k in range(args.presses):
                title = order[k % len(order)]
                if title in ("anchor",):  # hidden at 160 columns: its arrow cannot be seen
                    term.press("s")
                    time.sleep(0.3)
                    continue
                sorts.append(key_ms(term, "s", f"{title}▲"))
                time.sleep(0.3)
            while key_ms(term, "s", "session▲", timeout=2) is None:
                pass
            rows = ids50[::-1]  # by session: oldest first (the fleet's first session was started last)
            for k in range(min(args.presses, len(rows) - 1)):
                downs.append(key_ms(term, "\x1b[B", f"{rows[k + 1]} · container.log"))
                time.sleep(0.3)
            term.press("/")
            time.sleep(0.3)
            for k in range(min(args.presses, 10)):
                want = f"fleet-{k:02d}"
                for ch in want[:-1]:
                    term.press(ch)
                filters.append(key_ms(term, want[-1], "(" + str(len(ids50) - 1) + " hidden)"))
                for _ in want:
                    term.press("\x7f")
                time.sleep(0.5)
            result[f"key_to_screen_{args.keys_sessions}_sessions"] = {
                "T_cards_to_table": summary(toggles), "s_next_sort_column": summary(sorts),
                "down_next_row": summary(downs), "filter_last_character": summary(filters)}
            result["rss_mb_50_sessions"] = {"loaded": round(rss0, 1), "after_keys": round(term.rss_mb(), 1)}
        finally:
            term.close()
    finally:
        sleeper.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
    result["load_average_at_end_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:34} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
