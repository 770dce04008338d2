"""Benchmark: opening a finished session whose container.log is 1 GB (not a timed test).

Measured: the headless tail read (`LogTail.open`, the last 5,000 lines, by seeking backwards from the end);
the real `nanogpt-tui` on a 160x48 pty from a cold start until the log's last line is on the screen; and from
`enter` on the session's card until its detail screen shows that last line; plus the app's memory then.

    .venv/bin/python benchmarks/tui_big_log.py [--gb 1.0] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tui_common import Terminal, make_session, write_config

from nanogpt_tui.sessions import model as M
from nanogpt_tui.tui.data.logtail import LogTail

LAST = "the last line of the big log: 0xC0FFEE"


def write_big_log(path: Path, size_bytes: int) -> int:
    line = (json.dumps({"type": "assistant", "message": {"id": "m", "content": [
        {"type": "text", "text": "Retiming the candidate; the step time looks stable at 61.2 ms."}]}}) + "\n"
            + "step:1200/1600 val_loss:3.3012 train_time:74012ms step_avg:61.68ms\n")
    block = (line * (4 * 1024 * 1024 // len(line))).encode()
    written = 0
    with open(path, "wb") as handle:
        while written < size_bytes:
            handle.write(block)
            written += len(block)
        handle.write(f"{LAST}\n".encode())
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nanogpt-tui-biglog-"))
    try:
        root = tmp / "sessions"
        d = make_session(root, "big-log-session", status=M.EXITED)
        t = time.monotonic()
        size = write_big_log(d / "container.log", int(args.gb * 1024 ** 3))
        write_s = time.monotonic() - t
        os.sync()

        t = time.perf_counter()
        lines = LogTail(d / "container.log").open(5000)
        tail_ms = (time.perf_counter() - t) * 1000
        assert lines[-1] == LAST, lines[-1]

        config = write_config(tmp, root)
        term = Terminal(config, size=(160, 48))
        try:
            painted = term.wait_for("control room", timeout=30)
            seen = term.wait_for(LAST, timeout=30)
            cold = {"first_paint_s": None if painted is None else round(painted - term.started, 2),
                    "tail_on_screen_s": None if seen is None else round(seen - term.started, 2)}
            time.sleep(1.0)
            mark = term.mark()
            sent = term.press("enter")
            shown = term.wait_for(LAST, since=mark, timeout=30)
            detail_s = None if shown is None else round(shown - sent, 3)
            time.sleep(1.0)
            rss = term.rss_mb()
        finally:
            term.close()
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    result = {"log_bytes": size, "write_s": round(write_s, 1), "headless_tail_5000_lines_ms": round(tail_ms, 1),
              "cold_start": cold, "enter_to_detail_tail_s": detail_s, "app_rss_mb": round(rss, 1),
              "load_average": os.getloadavg()}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:30} {value}")
    ok = cold["tail_on_screen_s"] is not None and detail_s is not None
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
