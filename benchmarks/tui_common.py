"""Shared by the control room benchmarks: session folders to watch, and the real app driven through a pseudo-terminal.

The app runs as `nanogpt-tui` in its own process on a pty of a fixed size, exactly as a person would run it;
a reader thread drains the terminal output (timestamping it) so the app never blocks on a full pty, and the
benchmark writes keys and waits for text to appear on the screen.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import pty
import re
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nanogpt_tui.contract import layout as L  # noqa: E402
from nanogpt_tui.sessions import model as M  # noqa: E402
from nanogpt_tui.sessions.model import Session, iso, save_session  # noqa: E402

KEYS = {"tab": b"\t", "right": b"\x1b[C", "left": b"\x1b[D", "enter": b"\r", "escape": b"\x1b", "?": b"?", "q": b"q"}
ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


def write_config(folder: Path, sessions: Path) -> Path:
    path = folder / "nanogpt-tui.toml"
    path.write_text(f'schema_version = 1\n[paths]\nsessions_dir = "{sessions}"\n'
                    f'baselines_dir = "{REPO / "human_baselines"}"\n')
    return path


def proc_start_ticks(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[19])


def make_session(root: Path, sid: str, *, status: str = M.RUNNING, pid: int | None = None, hours: float = 2.0,
                 started_ago_s: float = 60.0) -> Path:
    """A local session folder (no git, no harness): what the control room reads, with `pid` as its process."""
    d = root / sid
    for sub in L.WORKSPACE_DIRS:
        (d / L.WORKSPACE / sub).mkdir(parents=True, exist_ok=True)
    (d / L.RUNNER / "anchor").mkdir(parents=True, exist_ok=True)
    (d / L.CONTROL).mkdir(exist_ok=True)
    (d / L.WORKSPACE / "logs" / L.EVENTS_FILE).touch()
    if not (d / L.EVENTS_FILE).is_symlink():
        (d / L.EVENTS_FILE).symlink_to(Path(L.WORKSPACE) / "logs" / L.EVENTS_FILE)
    (d / L.CONTAINER_LOG).touch()
    now = dt.datetime.now(dt.timezone.utc)
    started = now - dt.timedelta(seconds=started_ago_s)
    s = Session(id=sid, agent="claude", strategy="default", strategy_hash="0" * 64, anchor="smoke", target=None,
                backend="local", host="local", image=None, gpus=1, budget_gpu_hours=hours, created_at=iso(started))
    s.started_at = iso(started)
    s.deadline = iso(s.budget().deadline)
    s.transition(M.RUNNING, "started on local", at=started)
    if pid is not None:
        s.handle = f"{pid}:{proc_start_ticks(pid)}"
    if status != M.RUNNING:
        s.transition(status, "the agent finished", at=now)
    save_session(d, s)
    return d


class Terminal:
    """`nanogpt-tui` on a pty: write keys, wait for text, measure its process."""

    def __init__(self, config: Path | None, size: tuple[int, int] = (160, 48), args: tuple[str, ...] = (),
                 argv: list[str] | None = None) -> None:
        self.size = size
        pid, fd = pty.fork()
        if pid == 0:  # the child: the app (or `argv`, e.g. a bare Textual app for a baseline)
            os.environ.update(TERM="xterm-256color", COLORTERM="truecolor")
            if config is not None:
                os.environ["NANOGPT_TUI_CONFIG"] = str(config)
            if argv:
                os.execv(argv[0], argv)
            if os.environ.get("TUI_BENCH_PROFILE"):  # profile the UI thread: python -m cProfile -o FILE
                os.execv(sys.executable, [sys.executable, "-m", "cProfile", "-o", os.environ["TUI_BENCH_PROFILE"],
                                          "-m", "nanogpt_tui", *args])
            exe = shutil.which("nanogpt-tui", path=str(Path(sys.executable).parent)) or "nanogpt-tui"
            os.execv(exe, [exe, *args])
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        os.kill(pid, signal.SIGWINCH)
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._chunks: list[tuple[float, bytes]] = []
        self._bytes = 0
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = os.read(self.fd, 1 << 16)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self._chunks.append((time.monotonic(), data))
                self._bytes += len(data)
                if len(self._chunks) > 20_000:  # keep memory flat: only recent output matters
                    del self._chunks[:10_000]

    @property
    def output_bytes(self) -> int:
        return self._bytes

    def mark(self) -> int:
        with self._lock:
            return len(self._chunks)

    def press(self, key: str) -> float:
        os.write(self.fd, KEYS.get(key, key.encode()))
        return time.monotonic()

    def wait_for(self, text: str, since: int = 0, timeout: float = 20.0) -> float | None:
        """Monotonic time of the output chunk where `text` first appears (styles stripped) after chunk `since`."""
        needle = text.encode()
        deadline = time.monotonic() + timeout
        seen = since
        tail = b""
        while time.monotonic() < deadline:
            with self._lock:
                fresh = self._chunks[seen:] if seen <= len(self._chunks) else self._chunks[-1:]
                seen = len(self._chunks)
            for stamp, data in fresh:
                plain = tail + ANSI.sub(b"", data)
                if needle in plain:
                    return stamp
                tail = plain[-len(needle):]
            time.sleep(0.002)
        return None

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def thread_cpu_seconds(self) -> dict[str, float]:
        """CPU seconds per thread of the app: its main (UI) thread, and every other thread together."""
        out = {"ui": 0.0, "other": 0.0}
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            try:
                fields = Path(f"/proc/{self.pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            out["ui" if int(tid) == self.pid else "other"] += seconds
        return out

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def rss_parts_mb(self) -> dict[str, float]:
        """The RSS (`total`) and its split as the kernel counts it, from one read: anonymous memory (the heaps),
        file pages (code and data of the interpreter and its libraries, read in as they are first used) and shared
        memory."""
        parts = {"VmRSS:": "total", "RssAnon:": "anon", "RssFile:": "file", "RssShmem:": "shmem"}
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key = line.split(maxsplit=1)[0] if line else ""
            if key in parts:
                out[parts[key]] = int(line.split()[1]) / 1024
        return out

    def mappings_kb(self) -> dict[str, int]:
        """The resident KiB of each of the app's memory mappings (`/proc/PID/smaps`), by a name that stays the
        same while the app runs: `[heap]`, a file's name, or `anon@ADDRESS` for an anonymous mapping (malloc's
        arenas of other threads, Python's object arenas, large allocations)."""
        out: dict[str, int] = {}
        name = None
        for line in Path(f"/proc/{self.pid}/smaps").read_text().splitlines():
            fields = line.split()
            if fields and "-" in fields[0] and not fields[0].endswith(":"):
                path = " ".join(fields[5:]) if len(fields) > 5 else ""
                name = path.rsplit("/", 1)[-1] if path.startswith("/") else (path or f"anon@{fields[0].split('-')[0]}")
                name = name if name not in out else f"{name}@{fields[0].split('-')[0]}"
            elif fields and fields[0] == "Rss:" and name is not None:
                out[name] = int(fields[1])
        return out

    def close(self) -> None:
        try:
            self.press("q")
            for _ in range(50):
                if os.waitpid(self.pid, os.WNOHANG)[0]:
                    break
                time.sleep(0.1)
            else:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self._stop.set()
        try:
            os.close(self.fd)
        except OSError:
            pass


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def spawn(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=REPO)
