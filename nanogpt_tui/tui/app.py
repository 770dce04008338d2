"""The control room app and its factory (`create_app`), shared by the CLI, the demo, tests and benchmarks."""

from __future__ import annotations

import datetime as dt
import gc
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from nanogpt_tui.config import Config, load_config
from nanogpt_tui.errors import UserError
from nanogpt_tui.sessions import model as M
from nanogpt_tui.tui.data.alerts import Alert, AlertWatch
from nanogpt_tui.tui.data.dashboard import Dashboard
from nanogpt_tui.tui.data.fleet import ViewState, load_view_state, save_view_state
from nanogpt_tui.tui.data.views import SessionView
from nanogpt_tui.tui.messages import DashboardUpdated, FileGrew, Problem
from nanogpt_tui.tui.screens.dialogs import ConfirmKill, ExportDialog, ExtendDialog, HelpScreen
from nanogpt_tui.tui.screens.main import MainScreen
from nanogpt_tui.tui.textual_mends import mend_textual
from nanogpt_tui.tui.watch import BackendRefresher, SessionMonitor

if TYPE_CHECKING:
    from nanogpt_tui.records import Timeline
    from nanogpt_tui.sessions.manager import LaunchRequest, SessionManager
    from nanogpt_tui.tui.screens.new_session import FormChoices

PLOT_EVERY_TICKS = 5
# The full reading of the sessions, the refresher and the sampler start once the first look is drawn, or after
# this long if it never is (a first frame can take seconds on a busy machine: they must not compete with it).
BACKGROUND_AFTER_S = 10.0
CRASH_DIR = ".crash"  # in the sessions folder (hidden: not a session); one trace file per control room that died


def crash_summary() -> str:
    error = sys.exc_info()[1]
    return "unknown error" if error is None else f"{type(error).__name__}: {str(error)[:200]}"


def write_crash_log(sessions_root: Path, append_to: Path | None = None) -> Path:
    """Write the exception being handled, in full, to a new file (or after what `append_to` holds); its path."""
    if append_to is not None:
        try:
            with open(append_to, "a", encoding="utf-8") as handle:
                handle.write("\nThen, while closing:\n" + traceback.format_exc())
        except OSError:
            pass
        return append_to
    folder = sessions_root / CRASH_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir())
    path = folder / f"control-room-{M.utc_now().strftime('%Y%m%dT%H%M%S%fZ')}.log"
    try:
        path.write_text("".join(traceback.format_exc()), encoding="utf-8")
    except OSError as err:
        return Path(f"(nowhere: writing {path} failed, {err.strerror})")
    return path


class ControlRoom(App[None]):
    """Watches every session under the sessions folder and steers them through the `SessionManager`.

    Blocking work (reading files, backends, launching, killing) happens in threads: the watcher threads in
    `watch.py`, and thread workers for actions, whose failures all arrive in `on_worker_state_changed`.
    Quitting stops only those threads: sessions keep running, and the next control room re-attaches.
    """

    CSS_PATH = "app.tcss"
    TITLE = "nanogpt-tui"
    SCREENS = {"help": HelpScreen}
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("question_mark", "help", "help"),
    ]

    def __init__(self, config: Config, *, timeline: Timeline | None = None, manager: SessionManager | None = None,
                 clock: Callable[[], dt.datetime] | None = None, live: bool = True, refresh_every_s: float = 2.0,
                 initial_selection: str | None = None, startup_notes: Iterable[str] = (),
                 read_only: bool = False, state_path: Path | None = None,
                 startup: Callable[[Callable[[str], None]], object] | None = None) -> None:
        mend_textual()
        super().__init__()
        self.config = config
        self.read_only = read_only  # watching only (e.g. served to a browser without the control token)
        self.timeline = timeline
        self._manager = manager
        self._manager_lock = threading.Lock()
        self.clock = clock or M.utc_now
        self.live = live
        self.refresh_every_s = refresh_every_s
        self.initial_selection = initial_selection
        self.startup_notes = list(startup_notes)
        self.sessions_root = Path(config.paths.sessions_dir)
        self.state_path = state_path  # where sort, filter and the table toggle are kept (None: the user's state dir)
        self.view_state = load_view_state(self.sessions_root, state_path)
        self._view_changed = False  # sort, filter or the table toggle changed in this run
        self.views: list[SessionView] = []
        self._by_id: dict[str, SessionView] = {}
        self._shown_problems: set[str] = set()
        self._ticks = 0
        self._followed: frozenset[str] = frozenset()
        self.monitor: SessionMonitor | None = None
        self.refresher: BackendRefresher | None = None
        self.alerts = AlertWatch(config.alerts)
        self.sampler = None  # a telemetry.sampler.GpuSampler while this control room samples GPUs
        self.loaded = False  # the first views have arrived (tests and benchmarks wait for it)
        self.looked = False  # the monitor's first look (session.json alone) has arrived
        self._drawn = False  # ... and is on screen (`sessions_drawn`)
        self._frozen = False
        self.crash: str | None = None  # one line when an internal error ended the app
        # Work that starts sessions once the first frame is up (the demo's launches), given a way to say things;
        # its one-sentence failure, if any, is kept for the CLI to print after the app ends.
        self.startup = startup
        self.startup_error: str | None = None
        self._crash_log: Path | None = None

    def get_default_screen(self) -> Screen:
        return MainScreen()

    @property
    def manager(self) -> SessionManager:
        """The session manager, made when first needed (by the backend refresher's thread, or an action's): its
        backends and their imports are not on the way to the first frame."""
        with self._manager_lock:
            if self._manager is None:
                from nanogpt_tui.sessions.manager import SessionManager

                self._manager = SessionManager(self.config)
            return self._manager

    def _fatal_error(self) -> None:
        """An unhandled exception ends the app: the full trace goes to a file and `crash` says in one line what
        happened and where the trace is (the CLI prints it and exits non-zero); Textual's own handler would print a
        trace of thousands of lines."""
        if self.crash is not None:  # a later error while closing: its trace joins the first one's file
            write_crash_log(self.sessions_root, append_to=self._crash_log)
            self._close_messages_no_wait()
            return
        log = self._crash_log = write_crash_log(self.sessions_root)
        self.crash = (f"nanogpt-tui: the control room stopped on an internal error ({crash_summary()}); the full "
                      f"trace is in {log}. The sessions keep running; `nanogpt-tui` opens it again.")
        self.bell()
        self._close_messages_no_wait()

    # --- lifecycle ----------------------------------------------------------------------------------------

    def on_mount(self) -> None:
        for note in self.startup_notes:
            self._problem(note)
        self.set_timer(BACKGROUND_AFTER_S, self.sessions_drawn)  # if no screen ever says so
        if self.live:
            # The cards first (the monitor's first look reads session.json alone); backends and GPUs once they are
            # on screen, or after a while if the first look never comes.
            self.monitor = SessionMonitor(self.make_dashboard(), self._views_from_thread, self._file_from_thread,
                                          force_polling=self.config.paths.poll_files, wait_drawn_s=BACKGROUND_AFTER_S)
            self.monitor.start()
            self.set_interval(1.0, self._tick)
        else:
            self.load_once()

    def sessions_drawn(self) -> None:
        """The first look at the sessions is on screen (the main screen says so after the frame that shows it):
        now the monitor reads verdicts and usage, the start-up work (the demo's launches) begins, and the backends
        and GPUs are asked. Once."""
        if self._drawn or self._closing:
            return
        self._drawn = True
        if self.monitor is not None:
            self.monitor.drawn()
        if self.startup is not None:
            self.run_startup()
        self.start_background()

    def start_background(self) -> None:
        """Start the backend refresher and the GPU sampler (once; after the first frame with the sessions)."""
        if self.refresher is not None or not self.live or self._closing:
            return
        self.refresher = BackendRefresher(lambda: self.manager, lambda text: self.post_message(Problem(text)),
                                          self.refresh_every_s)
        self.refresher.start()
        self.start_gpu_sampler()

    def on_unmount(self) -> None:
        self.stop_watchers()
        if self._view_changed:
            try:  # the last view, once more and waited for: a write still in its thread must not be lost at quit
                save_view_state(self.sessions_root, self.view_state, self.state_path)
            except OSError:
                pass  # said already when the last write failed; the sessions are untouched
        if self._frozen:
            gc.unfreeze()  # the app's objects can be collected again (an app run in tests, or in a longer process)
            self._frozen = False

    def stop_watchers(self) -> None:
        """Tell the watcher threads to stop; they are daemons, so quitting never waits on a slow backend."""
        for watcher in (self.monitor, self.refresher, self.sampler):
            if watcher is not None:
                watcher.stop(timeout=0.2)
        self.monitor = self.refresher = self.sampler = None

    def start_gpu_sampler(self) -> None:
        """Sample the pinned GPUs of the running sessions on this machine's Docker host into their gpu.jsonl
        (host-side: the agent cannot write there), unless another process samples this sessions folder."""
        from nanogpt_tui.telemetry.sampler import GpuSampler, local_targets

        local = {h.name for h in self.config.hosts if h.url.startswith("unix://")}
        self.sampler = GpuSampler(self.sessions_root,
                                  lambda: local_targets([v.session for v in self.views], self.sessions_root, local),
                                  every_s=self.config.alerts.gpu_sample_every_s,
                                  on_problem=lambda text: self.post_message(Problem(text)))
        if not self.sampler.start():
            self.sampler = None

    async def action_quit(self) -> None:
        """Leave the control room; every session keeps running (nothing is stopped)."""
        self.stop_watchers()
        self.exit()

    def make_dashboard(self) -> Dashboard:
        return Dashboard(self.sessions_root, self.timeline, baselines_dir=self.config.paths.baselines_dir,
                         clock=self.clock, prices=self.config.prices,
                         agent_models={name: a.model for name, a in self.config.agents.items() if a.model})

    @work(thread=True, exclusive=True, exit_on_error=False, group="load")
    def load_once(self) -> None:
        dashboard = self.make_dashboard()
        dashboard.reload()
        dashboard.refresh_changes()
        self.post_message(DashboardUpdated(dashboard.views(), dashboard.problems))

    def _views_from_thread(self, views: list[SessionView], problems: list[str]) -> None:
        self.post_message(DashboardUpdated(views, problems))

    def _file_from_thread(self, session_id: str, what: str) -> None:
        if session_id in self._followed:  # other sessions' logs are not on screen: no message at all
            self.post_message(FileGrew(session_id, what))

    def refresh_followed(self) -> None:
        """Note which sessions' files a log panel follows (the monitor thread reads this set)."""
        from nanogpt_tui.tui.widgets.log_panel import LogPanel

        self._followed = frozenset(panel.path.parent.name for screen in self.screen_stack
                                   for panel in screen.query(LogPanel) if panel.path is not None)

    # --- data ---------------------------------------------------------------------------------------------

    def view(self, session_id: str | None) -> SessionView | None:
        return self._by_id.get(session_id) if session_id else None

    def _session_screens(self) -> Iterable[Screen]:
        """The screens that show sessions, while they are up (not while the app or they are closing)."""
        if self._closing:
            return []
        return [s for s in self.screen_stack if getattr(s, "shows_sessions", False) and s.is_mounted
                and not s._closing]

    def _to_screens(self, call: Callable[[Screen], None]) -> None:
        for screen in self._session_screens():
            try:
                call(screen)
            except NoMatches:
                pass  # the screen is being torn down (the app is exiting): nothing left to update

    def on_dashboard_updated(self, message: DashboardUpdated) -> None:
        self.views = message.views
        self._by_id = {v.id: v for v in message.views}
        was_loaded = self.loaded
        self.loaded = all(v.complete for v in message.views)  # past the monitor's first, quick look
        if self.loaded and not was_loaded and not self._frozen:
            # What exists once the sessions are loaded (modules, styles, widgets) lives as long as the app: moved
            # out of the cycle collector's reach, its full collections walk only what came since, and pause the
            # UI for a fraction of the time (they come every few seconds while logs flood in).
            self._frozen = True
            gc.freeze()
        self._to_screens(lambda screen: screen.update_views(self.views))
        self.looked = True
        for problem in message.problems + [p for v in message.views for p in v.problems]:
            self._problem(problem)
        if self.loaded:
            for alert in self.alerts.check(self.views, self.clock()):
                self.raise_alert(alert)

    def raise_alert(self, alert: Alert) -> None:
        """A verdict, a budget nearly spent or idle GPUs: the bell, a toast and a desktop notification, as the
        config's [alerts] asks."""
        settings = self.config.alerts
        if settings.bell:
            self.bell()
        if settings.toast:
            self.notify(alert.text, severity=alert.severity, timeout=10, markup=False)
        if settings.desktop:
            self.notify_desktop(alert.text)

    @work(thread=True, exit_on_error=False, group="desktop", name="desktop notification")
    def notify_desktop(self, text: str) -> None:
        from nanogpt_tui.tui.data.alerts import desktop_notify

        desktop_notify("nanogpt-tui", text)

    def on_file_grew(self, message: FileGrew) -> None:
        self._to_screens(lambda screen: screen.file_grew(message.session_id, message.what))

    def on_problem(self, message: Problem) -> None:
        self._problem(message.text)

    def _problem(self, text: str) -> None:
        if text not in self._shown_problems:
            self._shown_problems.add(text)
            self.notify(text, severity="warning", timeout=8, markup=False)

    def _tick(self) -> None:
        self._ticks += 1

        def tick(screen: Screen) -> None:
            screen.tick()
            if self._ticks % PLOT_EVERY_TICKS == 0 and isinstance(screen, MainScreen):
                screen.replot()

        self._to_screens(tick)

    # --- navigation ---------------------------------------------------------------------------------------

    def open_detail(self, session_id: str, verdict_id: str | None = None) -> None:
        if self.view(session_id) is None:
            self.notify(f"Session {session_id} is not loaded (its folder may be gone).", severity="error",
                        markup=False)
            return
        from nanogpt_tui.tui.screens.detail import DetailScreen  # its widgets load when first opened

        self.push_screen(DetailScreen(session_id, verdict_id=verdict_id))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen("help")  # installed once and reused: a fresh screen each time grows Textual's caches

    # --- steering: ask, then act in a thread ------------------------------------------------------------

    def _need_session(self, session_id: str | None, what: str) -> SessionView | None:
        view = self.view(session_id)
        if view is None:
            self.notify(f"No session is selected to {what}; move to a session card first (arrows or tab).",
                        severity="warning")
        return view

    def _refused_read_only(self, what: str) -> bool:
        """True (and said) when this control room only watches: nothing may change a session."""
        if self.read_only:
            self.notify(f"This control room is read-only, so it cannot {what}; open the page with the control "
                        "link that `nanogpt-tui serve` printed.", severity="warning", markup=False)
        return self.read_only

    def ask_kill(self, session_id: str | list[str] | None) -> None:
        if self._refused_read_only("kill a session"):
            return
        if isinstance(session_id, list):
            live = [v for v in map(self.view, session_id) if v is not None and v.session.status not in M.FINAL]
            if not live:
                self.notify("None of the marked sessions is live; nothing to kill.", severity="warning")
                return
            self.push_screen(ConfirmKill([(v.id, v.session.status) for v in live],
                                         skipped=len(session_id) - len(live)),
                             lambda yes: [self.kill_session(v.id) for v in live] if yes else None)
            return
        view = self._need_session(session_id, "kill")
        if view is None:
            return
        if view.session.status in M.FINAL:
            self.notify(f"{view.id} has already ended ({view.session.status}); nothing to kill.",
                        severity="warning", markup=False)
            return
        self.push_screen(ConfirmKill(view.id, view.session.status),
                         lambda yes: self.kill_session(view.id) if yes else None)

    def ask_extend(self, session_id: str | list[str] | None) -> None:
        if self._refused_read_only("extend a session"):
            return
        if isinstance(session_id, list):
            live = [v for v in map(self.view, session_id) if v is not None and v.session.status in M.ACTIVE]
            if not live:
                self.notify("None of the marked sessions is live; only live sessions can be extended.",
                            severity="warning")
                return
            self.push_screen(ExtendDialog([v.id for v in live], sum(v.session.total_gpu_hours for v in live),
                                          sum(v.session.gpus for v in live), skipped=len(session_id) - len(live)),
                             lambda hours: [self.extend_session(v.id, hours) for v in live] if hours else None)
            return
        view = self._need_session(session_id, "extend")
        if view is None:
            return
        if view.session.status not in M.ACTIVE:
            self.notify(f"{view.id} has ended ({view.session.status}); only a live session can be extended.",
                        severity="warning", markup=False)
            return
        self.push_screen(ExtendDialog(view.id, view.session.total_gpu_hours, view.session.gpus),
                         lambda hours: self.extend_session(view.id, hours) if hours else None)

    def ask_export(self, session_id: str | None) -> None:
        self.push_screen(ExportDialog(session_id if self.view(session_id) else None, len(self.views)),
                         lambda what: self.export_report([session_id] if what == "one" else None) if what else None)

    def ask_new_session(self) -> None:
        if self._refused_read_only("start a session"):
            return
        self.prepare_new_session(self.view(getattr(self.screen, "selected", None)))

    def save_view_state(self, state: ViewState) -> None:
        """Remember sort, filter and the table toggle for the next control room on this sessions folder (written
        off the UI thread: an atomic write syncs the disk, which a key press must not wait for)."""
        self.view_state, self._view_changed = state, True
        self.write_view_state(state)

    @work(thread=True, exclusive=True, exit_on_error=False, group="view-state", name="keeping the view")
    def write_view_state(self, state: ViewState) -> None:
        try:
            save_view_state(self.sessions_root, state, self.state_path)
        except OSError as err:
            self.post_message(Problem(f"Could not keep the view for the next run ({err}); it still applies now."))

    def export_csv(self, views: list[SessionView]) -> None:
        """Write the table of `views` as CSV next to the reports (`<sessions_dir>/reports/`)."""
        if not views:
            self.notify("No sessions are shown; nothing to export.", severity="warning")
            return
        self.write_csv(views)

    # --- workers ------------------------------------------------------------------------------------------

    def _say(self, text: str, severity: str = "information") -> None:
        self.call_from_thread(partial(self.notify, text, severity=severity, markup=False,
                                      timeout=8 if severity == "error" else 4))

    def _after_action(self) -> None:
        if not self.live:
            self.call_from_thread(self.load_once)

    @work(thread=True, exclusive=True, exit_on_error=False, group="startup", name="starting the sessions")
    def run_startup(self) -> None:
        def say(text: str, severity: str = "information") -> None:
            try:
                self._say(text, severity)
            except RuntimeError:  # the control room was quit meanwhile: the work goes on, said on stderr
                print(text, file=sys.stderr)

        try:
            self.startup(say)
        except UserError as err:
            self.startup_error = str(err)
            say(str(err), "error")
            return
        if self.is_running:
            self._after_action()

    @work(thread=True, exit_on_error=False, group="actions", name="kill")
    def kill_session(self, session_id: str) -> None:
        if self.read_only:  # the one place that changes sessions: never from a read-only room
            self._say("This control room is read-only; nothing was changed.", "error")
            return
        try:
            session = self.manager.kill(session_id)
        except UserError as err:
            self._say(f"Could not kill {session_id}: {err}", "error")
            return
        self._say(f"Killed {session.id} ({session.status_reason}).")
        self._after_action()

    @work(thread=True, exit_on_error=False, group="actions", name="extend")
    def extend_session(self, session_id: str, gpu_hours: float) -> None:
        if self.read_only:  # the one place that changes sessions: never from a read-only room
            self._say("This control room is read-only; nothing was changed.", "error")
            return
        try:
            session = self.manager.extend(session_id, gpu_hours=gpu_hours, reason="from the control room")
        except UserError as err:
            self._say(f"Could not extend {session_id}: {err}", "error")
            return
        self._say(f"Extended {session.id} by {gpu_hours:g} GPU-hours: budget {session.total_gpu_hours:g}, "
                  f"deadline {session.deadline or 'when it starts'}.")
        self._after_action()

    @work(thread=True, exit_on_error=False, group="actions", name="export")
    def export_report(self, session_ids: list[str] | None) -> None:
        from nanogpt_tui.tui.reporting import export_report

        ids = session_ids if session_ids else [v.id for v in self.views]
        try:
            out_dir, written = export_report(self.config, self.timeline, [self.sessions_root / i for i in ids])
        except UserError as err:
            self._say(f"Could not export the report: {err}", "error")
            return
        names = ", ".join(p.name for p in written)
        self._say(f"Report of {len(ids)} session{'s' if len(ids) != 1 else ''} written to {out_dir} ({names}).")

    @work(thread=True, exit_on_error=False, group="actions", name="CSV export")
    def write_csv(self, views: list[SessionView]) -> None:
        from nanogpt_tui.tui.data.fleet import export_table_csv

        try:
            path = export_table_csv(views, self.clock(), self.sessions_root / "reports")
        except OSError as err:
            self._say(f"Could not write the CSV ({err}); check that {self.sessions_root} is writable.", "error")
            return
        self._say(f"Table of {len(views)} session{'s' if len(views) != 1 else ''} written to {path}.")

    @work(thread=True, exit_on_error=False, group="actions", name="new session form")
    def prepare_new_session(self, focused: SessionView | None) -> None:
        choices = form_choices(self.config, focused)
        from nanogpt_tui.tui.screens.new_session import NewSessionScreen

        self.call_from_thread(self.push_screen, NewSessionScreen(choices),
                              lambda request: self.launch_session(request) if request else None)

    @work(thread=True, exit_on_error=False, group="actions", name="launch")
    def launch_session(self, request: LaunchRequest) -> None:
        from nanogpt_tui.records import ensure_record_code, load_timeline

        if self.read_only:  # the one place that changes sessions: never from a read-only room
            self._say("This control room is read-only; nothing was changed.", "error")
            return
        try:
            baselines = Path(self.config.paths.baselines_dir)
            anchor = request.anchor or self.config.benchmark.anchor
            timeline = load_timeline(baselines)
            if anchor in timeline:
                # ensure_record_code decides (missing code, or one of our derived records gone stale): one rule.
                _folder, fetched = ensure_record_code(timeline, anchor, baselines)
                if fetched:
                    self._say(f"Fetched {anchor}'s code for the session.")
            session = self.manager.launch(request)
        except UserError as err:
            self._say(f"Could not start the session: {err}", "error")
            return
        if session.status == M.PENDING:
            self._say(f"Created {session.id}; pending: {session.status_reason}.", "warning")
        else:
            self._say(f"Started {session.id} ({session.agent}, {session.strategy}) on {session.host}.")
        self._after_action()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Every worker failure ends here, as one sentence (never a traceback)."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            name = event.worker.name or "a background task"
            self.notify(f"{name} failed: {type(error).__name__}: {error}", severity="error", timeout=10,
                        markup=False)

    # --- command palette ----------------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        commands = (
            ("new_session", "New session", "Start an agent session (agent, strategy, anchor, budget, GPUs, host)"),
            ("kill", "Kill session", "Stop the focused session now (asks first)"),
            ("extend", "Extend session", "Add GPU-hours to the focused session"),
            ("export", "Export report", "Write a report of the focused session or of all sessions"),
            ("search", "Search the log", "Find text anywhere in the focused session's log file (enter: next "
             "match up)"),
            ("follow", "Follow the log on/off", "Keep the newest log lines in view"),
            ("filter", "Filter the log by event type", "Cycle: all, agent, tools, submissions, errors, ..."),
            ("toggle_dates", "Plot the human timeline by date", "Switch the plot between GPU-hours and dates"),
            ("filter_host", "Filter sessions by host", "Cycle: every host, then each Docker host of the pool"),
            ("toggle_table", "Table / cards", "Show the sessions as a table (one row each) or as cards"),
            ("sort_next", "Sort sessions by the next column", "Cycle the sort column (S reverses)"),
            ("filter_status", "Filter sessions by status", "Cycle: all, live, running, ended, failed"),
            ("slash", "Filter sessions by text", "Agent, strategy, status, host, anchor or id (agent:codex)"),
            ("mark", "Mark / unmark the session", "Kill or extend every marked session at once"),
            ("export_csv", "Export the table as CSV", "The sessions shown, in their order, to sessions/reports/"),
            ("back", "Back to all sessions", "Leave the session's detail screen"),
        )
        for action, title, help_text in commands:
            method = getattr(screen, f"action_{action}", None)
            if method is not None:
                yield SystemCommand(title, help_text, method)
        if isinstance(screen, MainScreen) and screen.selected:
            yield SystemCommand("Open session detail", "Log, events, submissions and verdicts of the focused "
                                "session", partial(self.open_detail, screen.selected))
        yield SystemCommand("Help: keys", "Every key of the control room", self.action_help)
        yield SystemCommand("Quit, sessions keep running", "Leave the control room without stopping any session",
                            self.action_quit)


def form_choices(config: Config, focused: SessionView | None) -> FormChoices:
    """What the new-session form offers (reads the catalog, strategies and baselines: call it off the UI thread)."""
    from nanogpt_tui.agents.catalog import agent_names
    from nanogpt_tui.agents.strategy import builtin_names
    from nanogpt_tui.backends.slurm import partitions
    from nanogpt_tui.tui.screens.new_session import AUTO_HOST, DEFAULT_PARTITION, THIS_MACHINE, FormChoices, Place

    from nanogpt_tui.records import anchor_choices, load_timeline

    baselines = Path(config.paths.baselines_dir)
    try:
        # Every record with code: present, or fetched when the session is launched.
        anchors = anchor_choices(load_timeline(baselines), baselines)
    except UserError:  # a broken manifest: still offer the folders with code
        anchors = sorted(p.name for p in baselines.iterdir() if (p / "train_gpt.py").is_file()) \
            if baselines.is_dir() else []
    s = focused.session if focused else None
    return FormChoices(
        agents=agent_names(), strategies=builtin_names(), anchors=anchors,
        places={"docker": [AUTO_HOST, *(Place.named(h.name) for h in config.hosts)], "local": [THIS_MACHINE],
                "slurm": [Place.named(config.slurm.partition) if config.slurm.partition else DEFAULT_PARTITION,
                          *(Place.named(p) for p in partitions() if p != config.slurm.partition)]},
        default_agent=s.agent if s else "claude", default_strategy=s.strategy if s else "default",
        default_anchor=s.anchor if s else config.benchmark.anchor,
        default_budget=s.budget_gpu_hours if s else config.benchmark.budget_gpu_hours,
        default_gpus=s.gpus if s else config.benchmark.gpus_per_session,
        default_backend=s.backend if s else "docker")


def create_app(config: Config | None = None, *, config_path: str | None = None, **options) -> ControlRoom:
    """The control room for a config (default: the one in effect, `$NANOGPT_TUI_CONFIG` included).

    The record timeline is loaded here; when it cannot be read the app still opens, with no human lines.
    """
    from nanogpt_tui.records import load_timeline

    config = config or load_config(config_path)
    timeline = options.pop("timeline", None)
    note = ""
    if timeline is None:
        try:
            timeline = load_timeline(config.paths.baselines_dir)
        except UserError as err:
            timeline, note = None, str(err)
    return ControlRoom(config, timeline=timeline, startup_notes=[note] if note else [], **options)
