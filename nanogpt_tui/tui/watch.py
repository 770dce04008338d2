"""Watcher threads for the control room: session files (watchfiles), backend state, and one log follower each.

No Textual import: each thread is a plain thread with an exit event (as toolong's watchers are), started and
stopped by the app, and hands results to callbacks that post messages. The UI thread never reads a file.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from nanogpt_tui.errors import UserError
from nanogpt_tui.contract import layout as L
from nanogpt_tui.tui.data.dashboard import Dashboard
from nanogpt_tui.tui.data.logrender import LogLine
from nanogpt_tui.tui.data.logtail import LOG_WINDOW_LINES, LogTail
from nanogpt_tui.tui.data.views import SessionView

FIRST_LINES = 200  # read and shown first when a log opens; the rest of the first fill comes right after
INITIAL_LINES = 1_000  # the first fill: enough to read back a while; older lines come on demand (scrolling up)
POSITIONS_KEPT = 8  # files a follower remembers where it stood in, to resume them (the log panel keeps their lines)
# A file left for a while is resumed (the lines appended since are read) only if it grew by at most this much;
# further behind, reading its tail afresh is cheaper than catching up.
RESUME_MAX_LAG_BYTES = 256 * 1024
JUMP_LINES_BEFORE, JUMP_LINES_AFTER = 500, 500
# Under a log flood watchfiles yields a batch every debounce; the batches that touch only logs look at the change
# ledgers that may be due and at the folder's list of sessions at most this often (each look stats every session's
# files: a few hundred calls at 50 sessions, which took the GIL from the UI thread at every batch).
QUIET_LOOK_EVERY_S = 1.0  # the window read around a line a search found in the file
_new_line = tuple.__new__  # a LogLine from its fields, at the speed of a tuple

ViewsCallback = Callable[[list[SessionView], list[str]], None]
FileCallback = Callable[[str, str], None]  # (session id, "log" | "events")


class SessionMonitor:
    """Reloads session views when their files change, and tells log followers when logs grow.

    It watches the sessions folder, each session folder, and each session's `validator/verdicts`,
    `workspace/verdicts` and `workspace/logs` (not recursively: workspaces hold git objects and data links), through watchfiles
    (inotify). Changes are batched by watchfiles; a batch reloads only the sessions it touched. When
    watchfiles cannot watch (no inotify), it falls back to reloading every `fallback_poll_s`. With `force_polling`
    (paths.poll_files: a sessions folder on NFS or Lustre, where writes from other machines raise no inotify event)
    watchfiles polls the files every `poll_ms` instead, and the first batch of views says so.

    With `wait_drawn_s`, the full reading after the first look waits (at most that long) for `drawn()`: the UI
    says when the first look is on screen, so the reading does not compete with drawing it.
    """

    def __init__(self, dashboard: Dashboard, on_views: ViewsCallback, on_file: FileCallback | None = None, *,
                 debounce_ms: int = 150, fallback_poll_s: float = 1.0, force_polling: bool = False,
                 poll_ms: int = 1000, wait_drawn_s: float = 0.0) -> None:
        self.dashboard = dashboard
        self.root = dashboard.root
        self.on_views = on_views
        self.on_file = on_file
        self.debounce_ms = debounce_ms
        self.fallback_poll_s = fallback_poll_s
        self.force_polling = force_polling
        self.poll_ms = poll_ms
        self.wait_drawn_s = wait_drawn_s
        self._stop = threading.Event()
        self._drawn = threading.Event()
        self._thread: threading.Thread | None = None
        self.mode = "starting"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nanogpt-tui-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._drawn.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def drawn(self) -> None:
        """The first look is on screen: read the rest."""
        self._drawn.set()

    def reload(self, ids: set[str] | None = None) -> None:
        views = self.dashboard.reload(ids)
        self.on_views(views, list(self.dashboard.problems))
        self.refresh_changes(ids)

    def refresh_changes(self, ids: set[str] | None = None) -> None:
        """Rebuild the change shares that are due (of the sessions `ids`, or all), after the views went out (they
        never wait for a ledger)."""
        if self.dashboard.refresh_changes(ids):
            self.on_views(self.dashboard.views(), list(self.dashboard.problems))

    def _paths(self) -> list[Path]:
        paths = [self.root]
        for sid in self.dashboard.session_ids():
            d = self.root / sid
            # The validator's verdicts count; the workspace's verdicts/ is watched too, to flag what lands there.
            # validator/ itself for its progress.jsonl (the live activity while it validates).
            paths += [d] + [p for p in (d / L.VALIDATOR, d / L.VALIDATOR / "verdicts", d / L.WORKSPACE / "verdicts",
                                        d / L.WORKSPACE / "logs") if p.is_dir()]
        return paths

    def _classify(self, changes) -> tuple[set[str], bool]:
        dirty, structural = set(), False
        for _change, raw in changes:
            try:
                parts = Path(raw).relative_to(self.root).parts
            except ValueError:
                continue
            if not parts or parts[0].startswith("."):
                continue
            sid = parts[0]
            if len(parts) == 1:
                structural = True
                dirty.add(sid)
            elif parts[1] == L.CONTAINER_LOG:
                if self.on_file:
                    self.on_file(sid, "log")
            elif parts[1] == L.WORKSPACE:
                dirty.add(sid)
                if parts[-1] == L.EVENTS_FILE and self.on_file:
                    self.on_file(sid, "events")
            elif parts[1] not in (L.INSPECT_FILE,):
                dirty.add(sid)  # session.json (and its temporary file while it is replaced)
        return dirty, structural

    def _run(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # A first look from session.json alone (cards, logs), then verdicts and usage, which take longer.
        self.on_views(self.dashboard.reload(quick=True), [self.polling_note()] if self.force_polling else [])
        if self.wait_drawn_s:
            self._drawn.wait(self.wait_drawn_s)
        if self._stop.is_set():
            return
        self.reload()
        try:
            import watchfiles
        except ImportError:
            watchfiles = None
        while not self._stop.is_set():
            if watchfiles is None:
                self._poll_forever()
                return
            known = set(self.dashboard.session_ids())
            looked = time.monotonic()
            # A file written after the last reload read it but before the watcher took its first look raises no
            # change (a poller compares against that first look): the watcher's first batch, or its first quiet
            # second, reloads every session once.
            first = True
            try:
                self.mode = "watchfiles-polling" if self.force_polling else "watchfiles"
                for changes in watchfiles.watch(*self._paths(), recursive=False, stop_event=self._stop,
                                                force_polling=self.force_polling, poll_delay_ms=self.poll_ms,
                                                debounce=self.debounce_ms, step=50, rust_timeout=1000,
                                                yield_on_timeout=True, raise_interrupt=False):
                    dirty, structural = self._classify(changes)
                    now = time.monotonic()
                    look = structural or now - looked >= QUIET_LOOK_EVERY_S
                    if first:
                        first = False
                        self.reload()
                    else:
                        if dirty:
                            self.reload(dirty)
                        if look:
                            self.refresh_changes()  # every session's: events written lately may be due now
                    if look:
                        looked = now
                        if structural or set(self.dashboard.session_ids()) != known:
                            break  # new or removed sessions: watch the new set of folders
            except (OSError, RuntimeError) as err:
                self.on_views(self.dashboard.views(),
                              [f"Watching {self.root} failed ({err}); falling back to re-reading every "
                               f"{self.fallback_poll_s:g} s."])
                self._poll_forever()
                return
            if not self._stop.is_set():
                self.reload()

    def polling_note(self) -> str:
        return (f"Polling {self.root} every {self.poll_ms / 1000:g} s for changes (paths.poll_files: a shared "
                "filesystem such as NFS or Lustre raises no inotify events for other machines' writes).")

    def _poll_forever(self) -> None:
        self.mode = "polling"
        while not self._stop.wait(self.fallback_poll_s):
            self.reload()
            if self.on_file:
                for sid in self.dashboard.session_ids():
                    self.on_file(sid, "log")


class BackendRefresher:
    """Brings active sessions' status up to date with their backend (process or container) every few seconds.

    The manager comes from `get_manager()`, called in the thread.

    `refresh` (SessionManager.refresh) writes session.json when a status changes, which the monitor sees; a
    backend that hangs delays only this thread.
    """

    def __init__(self, get_manager: Callable[[], object], on_problem: Callable[[str], None],
                 every_s: float = 2.0) -> None:
        self.get_manager = get_manager  # called in the thread: making the manager imports every backend
        self.manager = None
        self.on_problem = on_problem
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported: set[str] = set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nanogpt-tui-refresher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def refresh_once(self) -> None:
        sessions, _ = self.manager.list()
        for session in sessions:
            if self._stop.is_set():
                return
            if not session.is_active:
                continue
            try:
                self.manager.refresh(session)
                self._reported.discard(session.id)
            except (UserError, OSError, ValueError) as err:
                if session.id not in self._reported:
                    self._reported.add(session.id)
                    self.on_problem(f"Could not check {session.id} on {session.host}: {err}")
            except Exception as err:  # a backend SDK error must not end the refresher  # noqa: BLE001
                if session.id not in self._reported:
                    self._reported.add(session.id)
                    self.on_problem(f"Could not check {session.id} on {session.host} "
                                    f"({type(err).__name__}: {err}); it is retried every {self.every_s:g} s.")

    def _run(self) -> None:
        self.manager = self.get_manager()
        while True:
            self.refresh_once()
            if self._stop.wait(self.every_s):
                return


class LogFollower:
    """Follows one log (container.log, or an events file) in a thread with a bounded window.

    The thread owns the `LogTail`; the UI asks for work through `poke()` (the file grew), `request_older(n)`,
    `reopen()` and `switch(path, resume)` (follow another file: the same thread, so moving between sessions
    starts no thread), and collects rendered lines with `drain()` when `on_batch` tells it some are waiting.
    Lines pile up in one buffer between drains, so a flood produces one UI update per drain, not one per line.
    Every request carries the generation it was made for: work for a file switched away from is dropped.

    It remembers where the lines drained so far end in the last `POSITIONS_KEPT` files, so `switch(path,
    resume=True)` back to one of them reads only what was appended since (the caller still holds the lines
    before): moving between sessions re-reads no file, unless one grew too much meanwhile.
    """

    def __init__(self, path: Path, render: Callable[[str], list[LogLine]], on_batch: Callable[[], None], *,
                 window: int = LOG_WINDOW_LINES, initial: int = INITIAL_LINES, fallback_poll_s: float = 1.0,
                 name: str = "nanogpt-tui-log") -> None:
        self.path = Path(path)
        self.render = render
        self.on_batch = on_batch
        self.window = window
        self.initial = min(initial, window)
        self.fallback_poll_s = fallback_poll_s
        self.name = name
        self._tail = LogTail(self.path)
        self._requests: queue.Queue[tuple[str, int, object]] = queue.Queue()
        self._lock = threading.Lock()
        self._generation = 0
        self._new: list[LogLine] = []
        self._older: list[LogLine] | None = None
        self._reset = False
        self._at_start = False
        self._jump: tuple[list[LogLine], bool, int] | None = None
        self._ready: tuple[int, int, int | None] | None = None  # the tail's position once the buffer is drained
        self._drained: tuple[Path, tuple[int, int, int | None]] | None = None  # what the caller has, and where
        self._positions: OrderedDict[Path, tuple[int, int, int | None]] = OrderedDict()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.opened_at: float | None = None  # monotonic time the first window was ready (benchmarks read it)

    def _ask(self, what: str, arg: object = 0) -> None:
        self._requests.put((what, self._generation, arg))

    def start(self) -> None:
        self._ask("open", self.initial)
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._ask("stop")

    def poke(self) -> None:
        self._ask("new")

    def request_older(self, n: int) -> None:
        self._ask("older", n)

    def reopen(self) -> None:
        self._ask("open", self.initial)

    def jump(self, offset: int) -> None:
        """Read the lines around the line starting at byte `offset` (a search found it there) into a window of
        their own, which `take_jump()` hands over; scrolling up goes on from its start."""
        self._ask("jump", offset)

    def take_jump(self) -> tuple[list[LogLine], bool, int] | None:
        """(lines, whether the file's start is among them, the offset jumped to) once a `jump` was read."""
        with self._lock:
            jump, self._jump = self._jump, None
            return jump

    def hold(self) -> None:
        """Drop whatever was read and not drained, and ignore requests made so far (until `switch`)."""
        with self._lock:
            self._generation += 1
            self._new, self._older, self._reset, self._ready, self._jump = [], None, False, None, None

    def switch(self, path: Path, resume: bool = False) -> None:
        """Follow `path` instead: whatever was read of the previous file and not drained is dropped. `resume`:
        the caller still holds the lines drained from `path` before, so only later ones are wanted (when the
        follower remembers where they ended; otherwise the window restarts, as for a new file)."""
        self.hold()
        self._ask("switch", (Path(path), resume))

    def drain(self) -> tuple[list[LogLine], list[LogLine] | None, bool, bool]:
        """(new lines, older lines or None, whether the window restarted, whether the file's start is shown)."""
        with self._lock:
            new, older, reset = self._new, self._older, self._reset
            self._new, self._older, self._reset = [], None, False
            if self._ready is not None:
                self._drained = (self.path, self._ready)
            return new, older, reset, self._at_start

    def _render_all(self, raw: list[str]) -> list[LogLine]:
        """Display lines for raw lines the tail just read, each carrying the offset of its raw line."""
        out: list[LogLine] = []
        offsets = self._tail.offsets if len(self._tail.offsets) == len(raw) else [-1] * len(raw)
        for line, offset in zip(raw, offsets):
            for shown in self.render(line):
                out.append(_new_line(LogLine, (shown[0], shown[1], offset)))
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                what, generation, arg = self._requests.get(timeout=self.fallback_poll_s)
            except queue.Empty:
                what, generation, arg = "new", self._generation, 0
            if what == "stop":
                return
            if generation != self._generation:
                continue  # asked for a file since switched away from
            try:
                self._handle(what, generation, arg)
            except OSError as err:
                with self._lock:
                    self._new.append(LogLine("error", f"(could not read {self.path}: {err})"))
                self.on_batch()
                time.sleep(self.fallback_poll_s)

    def _remember(self) -> None:
        """Keep where the drained lines of the file followed so far end, to resume it later."""
        with self._lock:
            drained, self._drained, self._ready = self._drained, None, None
        if drained is not None and drained[0] == self.path:
            self._positions[self.path] = drained[1]
            self._positions.move_to_end(self.path)
            while len(self._positions) > POSITIONS_KEPT:
                self._positions.popitem(last=False)

    def _handle(self, what: str, generation: int, arg) -> None:
        if what == "switch":
            self._remember()
            path, resume = arg
            position = self._positions.pop(path, None)
            self.path, self._tail = path, LogTail(path)
            if resume and position is not None and self._tail.resume(position, RESUME_MAX_LAG_BYTES):
                with self._lock:
                    if generation != self._generation:
                        return
                    self._at_start = self._tail.at_start
                    # The caller holds the lines up to here already.
                    self._ready = self._tail.position()
                    self._drained = (path, self._ready)
                what = "new"
            else:
                what, arg = "open", self.initial
        if what == "open":
            # The screenful first, so a big log shows at once; the rest of the first fill comes as older lines.
            first = min(arg, FIRST_LINES)
            lines = self._render_all(self._tail.open(first))
            with self._lock:
                if generation != self._generation:
                    return
                self._new, self._reset, self._older = lines[-self.window:], True, None
                self._at_start = self._tail.at_start
                self._ready = self._tail.position()
            if self.opened_at is None:
                self.opened_at = time.monotonic()
            if arg > first and not self._tail.at_start:
                self._requests.put(("older", generation, arg - first))
        elif what == "jump":
            lines = self._render_all(self._tail.read_around(arg, JUMP_LINES_BEFORE, JUMP_LINES_AFTER))
            with self._lock:
                if generation != self._generation:
                    return
                self._jump = (lines[: self.window], self._tail.at_start, arg)
                self._at_start = self._tail.at_start
        elif what == "older":
            lines = self._render_all(self._tail.read_older(arg))
            with self._lock:
                if generation != self._generation:
                    return
                self._older = lines + (self._older or [])
                self._at_start = self._tail.at_start
                self._ready = self._tail.position()
        else:
            # One read takes everything appended so far, so a queue of pokes costs one stat each after it.
            raw, restarted = self._tail.read_new(self.window)
            if not raw and not restarted:
                return
            lines = self._render_all(raw)
            with self._lock:
                if generation != self._generation:
                    return
                if restarted:
                    self._new, self._reset = [LogLine("status", "(… lines skipped: the log was replaced, or grew "
                                                                "faster than it could be shown)")] + lines, True
                else:
                    self._new.extend(lines)
                    if len(self._new) > self.window:
                        del self._new[:-self.window]
                        self._reset = True
                self._at_start = self._tail.at_start
                self._ready = self._tail.position()
        self.on_batch()
