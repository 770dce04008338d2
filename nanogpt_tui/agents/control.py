"""Helpers the bash harnesses call inside a session: the deadline, the stream relay, our own event lines.

    python3 -m nanogpt_tui.agents.control seconds-left
        whole seconds until the deadline in $BENCHMARK_CONTROL_DIR/deadline.json (negative once it has
        passed); exit 2 with one sentence on stderr when the file is missing or malformed. The host
        rewrites that file when the session is extended, so harnesses read it before every resume.
    python3 -m nanogpt_tui.agents.control relay [--session-file F]
        copies the agent CLI's stdout, line by line, to $BENCHMARK_EVENTS_PATH (one write per line on an
        O_APPEND descriptor, so lines stay whole next to those `submit` writes) and to stdout (so the
        container log has them), and writes the latest Claude session id / Codex thread id to F.
    python3 -m nanogpt_tui.agents.control event TYPE [--text T]
        appends one of our own event lines (see nanogpt_tui.agents.events) to the events file and stdout.
    python3 -m nanogpt_tui.agents.control last-words --file F
        the last few non-empty lines of F (a CLI's stderr) as one sanitised line, keys masked.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from nanogpt_tui.agents.events import OWN_FIELDS, event_line
from nanogpt_tui.contract.deadline import read_deadline
from nanogpt_tui.contract.env import ENV_CONTROL_DIR, ENV_EVENTS_PATH
from nanogpt_tui.contract.layout import CONTAINER_CONTROL
from nanogpt_tui.errors import UserError


def control_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get(ENV_CONTROL_DIR) or CONTAINER_CONTROL)


def seconds_left(control: Path, now: float | None = None) -> int:
    """Whole seconds until the deadline (negative once passed); raises DeadlineError when it cannot be read."""
    return math.floor(read_deadline(control).seconds_left(time.time() if now is None else now))


# -------------------------------------------------------------------------------------------------- relay

def session_id_of(line: bytes) -> str | None:
    """The Claude session id (system/init or result line) or Codex thread id (thread.started) a line names."""
    if b"session_id" not in line and b"thread_id" not in line:
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    t = obj.get("type")
    if t == "thread.started":
        value = obj.get("thread_id")
    elif (t == "system" and obj.get("subtype") == "init") or t == "result":
        value = obj.get("session_id")
    else:
        return None
    return value if isinstance(value, str) and value.strip() and "\n" not in value else None


def relay(source: BinaryIO, sink: BinaryIO | None, events_path: str | None, session_file: Path | None) -> int:
    """Copy lines from `source` to the events file and `sink`; returns how many lines were relayed."""
    fd = None
    if events_path:
        Path(events_path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    count = 0
    try:
        for line in iter(source.readline, b""):
            if not line.endswith(b"\n"):
                line += b"\n"
            count += 1
            if fd is not None:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
            if sink is not None:
                try:
                    sink.write(line)
                    sink.flush()
                except (BrokenPipeError, ValueError):
                    sink = None  # nobody reads stdout any more; the events file still gets every line
            if session_file is not None:
                found = session_id_of(line)
                if found:
                    tmp = session_file.with_name(session_file.name + ".tmp")
                    tmp.write_text(found + "\n", encoding="utf-8")
                    os.replace(tmp, session_file)
    finally:
        if fd is not None:
            os.close(fd)
    return count


def last_words(path: Path, events: str | None = None, lines: int = 3, limit: int = 400) -> str:
    """What a CLI last said about failing, as one sanitised line with keys masked ("" when nothing): the last
    `lines` non-empty lines of its stderr (`path`), else the last error its stream reported (Claude Code prints an
    error `result` on stdout; Codex a `turn.failed` or `error` line) in the `events` file."""
    from nanogpt_tui.agents.render import env_secrets, mask_secrets, sanitize

    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    tail = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(("WARNING:", "Reading "))]
    tail = tail[-lines:]
    if not tail and events:
        tail = _last_stream_error(Path(events))
    words = mask_secrets(sanitize(" / ".join(tail)), env_secrets())
    return words if len(words) <= limit else words[: limit - 1] + "…"


def _last_stream_error(events: Path, tail_bytes: int = 65536) -> list[str]:
    from nanogpt_tui.agents.parsers import parse_line

    try:
        with open(events, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - tail_bytes))
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    for line in reversed(lines):
        for ev in parse_line(line):
            if ev.source in ("claude", "codex") and ev.text and (ev.type == "error" or (ev.type == "result"
                                                                                      and ev.ok is False)):
                return [ev.text]
    return []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m nanogpt_tui.agents.control",
                                     description="Helpers for agent harnesses inside a session.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("seconds-left", help="whole seconds until the session deadline (negative once passed)")
    p.add_argument("--control-dir", type=Path, help=f"default: ${ENV_CONTROL_DIR}, else {CONTAINER_CONTROL}")
    p = sub.add_parser("relay", help="copy stdin lines to the events file and stdout")
    p.add_argument("--session-file", type=Path, help="write the latest session/thread id here")
    p.add_argument("--events", help=f"events file (default: ${ENV_EVENTS_PATH}; none: stdout only)")
    p = sub.add_parser("event", help="append one of our own event lines to the events file and stdout")
    p.add_argument("type", choices=sorted(OWN_FIELDS))
    p.add_argument("--text")
    p.add_argument("--events", help=f"events file (default: ${ENV_EVENTS_PATH})")
    p = sub.add_parser("last-words", help="the last lines of a CLI's stderr, as one masked line")
    p.add_argument("--file", type=Path, required=True)
    args = parser.parse_args(argv)
    prog = "nanogpt_tui.agents.control"
    try:
        if args.command == "seconds-left":
            print(seconds_left(args.control_dir or control_dir()))
            return 0
        if args.command == "last-words":
            print(last_words(args.file, os.environ.get(ENV_EVENTS_PATH)))
            return 0
        events = args.events if args.events is not None else os.environ.get(ENV_EVENTS_PATH)
        if args.command == "relay":
            if args.session_file is not None:
                args.session_file.parent.mkdir(parents=True, exist_ok=True)
            relay(sys.stdin.buffer, sys.stdout.buffer, events or None, args.session_file)
            return 0
        fields = {"text": args.text} if args.text is not None and "text" in OWN_FIELDS[args.type] else {}
        line = event_line(args.type, **fields).encode("utf-8")
        if events:
            from nanogpt_tui.agents.events import append_line
            Path(events).parent.mkdir(parents=True, exist_ok=True)
            append_line(events, line)
        sys.stdout.buffer.write(line)
        sys.stdout.flush()
        return 0
    except UserError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
