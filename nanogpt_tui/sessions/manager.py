"""Creating, starting, watching, killing and extending sessions, on any backend; headless (the CLI and the control
room both drive it)."""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nanogpt_tui.backends import DEFAULT_BACKEND, create_backend, sandboxed_kind
from nanogpt_tui.backends.base import (
    CREATED,
    QUEUED,
    RUNNER_COMMAND,
    RUNNING,
    SESSION_LABEL,
    UNREACHABLE,
    Backend,
    BackendState,
    EgressSpec,
    Holding,
    LaunchSpec,
    PlaceRequest,
    SessionRef,
)
from nanogpt_tui.config import Config
from nanogpt_tui.contract import layout as L
from nanogpt_tui.contract.deadline import DEFAULT_GRACE_S, DeadlineError, read_deadline, write_deadline
from nanogpt_tui.contract.env import ENV_AGENT_BASE_URL, ENV_AGENT_EFFORT, ENV_AGENT_MODEL, ENV_TOOL_TIMEOUT_S, contract_env
from nanogpt_tui.contract.runner_exit import (EXIT_NO_RECORD, BrokenRunnerExit, ExitReason, RunnerExit,
                                               read_runner_exit)
from nanogpt_tui.errors import UserError
from nanogpt_tui.fields import MAX_GPU_HOURS, MAX_GPUS, BadField, finite, whole
from nanogpt_tui.sessions import model as M
from nanogpt_tui.sandbox.names import DEFAULT_ROUTES, GATEWAY_URLS, PLACEHOLDER_KEY
from nanogpt_tui.sessions.model import (BrokenSession, Extension, Session, iso, load_session, parse_iso, read_session,
                                        save_session, utc_now)

RECORD_FILES = (".py", ".sh", ".toml")
SANDBOX_CHOICES = ("on", "off")
# What the agent CLIs' own command time-outs must exceed besides the retimings: the judge's tries and the copying.
SUBMIT_MARGIN_S = 600.0
ID_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
# A pending session asks its backend for a place at most this often.
PLACEMENT_RETRY_S = 5.0
# Validators a host process found gone and restarts, at most this many still starting at once (each imports the
# validator and its backend, over a second of CPU): re-attaching to 50 sessions must not start 50 at a stroke.
VALIDATOR_STARTS_AT_ONCE = 2
PLACEMENT_LOCK = ".placement.lock"
STAGING_PREFIX = ".creating-"  # + pid + "-" + session id: a session folder being built (hidden from listings)
# Keys the model gateway holds for sandboxed sessions (the agent's container gets a placeholder).
# Per API, the credentials the gateway can hold and how it sends each (the first one the session has is used):
# API keys, bearer tokens (a LiteLLM-style gateway's, a Claude subscription token), Azure OpenAI's api-key header.
GATEWAY_CREDENTIALS = {
    "anthropic": (("ANTHROPIC_API_KEY", "x-api-key"), ("ANTHROPIC_AUTH_TOKEN", "bearer"),
                  ("CLAUDE_CODE_OAUTH_TOKEN", "bearer")),
    "openai": (("OPENAI_API_KEY", "bearer"), ("CODEX_API_KEY", "bearer"), ("AZURE_OPENAI_API_KEY", "api-key")),
}
GATEWAY_KEYS = tuple(name for held in GATEWAY_CREDENTIALS.values() for name, _auth in held)


@dataclass
class SessionScan:
    """What a sessions folder holds: the sessions, the broken ones (session.json unreadable or invalid), and one
    sentence for each folder that is no session at all."""

    sessions: list[Session]
    broken: list[BrokenSession]
    strays: list[str]

    @property
    def problems(self) -> list[str]:
        return [str(b) for b in self.broken] + self.strays


@dataclass(frozen=True)
class LaunchRequest:
    agent: str
    strategy: str = "default"
    anchor: str | None = None
    target: str | None = None
    budget_gpu_hours: float | None = None
    gpus: int | None = None
    backend: str = DEFAULT_BACKEND
    host: str | None = None  # None lets the backend place it (the Docker pool: by free GPUs)
    image: str | None = None
    extra_env: tuple[tuple[str, str], ...] = ()  # e.g. BENCHMARK_SCRIPTED_RUNS for the demo
    sandbox: str | None = None  # "on" / "off"; None: on for Docker, off for local (refused there for a real agent)
    # With one explicitly chosen Docker host (`host`, or the only one configured) that cannot be reached: wait
    # for it (pending) instead of failing at once.
    queue: bool = False
    budget_usd: float | None = None  # stop the session once agent and judge have spent this much (None: no limit)
    allow_env_mismatch: bool = False  # start even where the image's stack differs from the anchor's


def resolve_sandbox(agent, backend: str, sandbox: str | None, *, sandboxed: bool | None = None) -> str:
    """The sandbox setting a session records, or a `UserError` saying why it cannot start that way. `sandboxed`:
    whether the backend runs sessions in the sandbox (by default, all but the local backend do)."""
    if sandbox is not None and sandbox not in SANDBOX_CHOICES:
        raise UserError(f"--sandbox must be on or off, not {sandbox!r}.")
    if not (sandboxed if sandboxed is not None else sandboxed_kind(backend)):
        if sandbox == "on":
            raise UserError(f"The {backend} backend has no sandbox here; use --backend docker, or --sandbox off to "
                            "run it unsandboxed.")
        if agent.real_agent and sandbox != "off":
            raise UserError(f"The {agent.name} agent would run unsandboxed with the {backend} backend; use "
                            "--backend docker, or pass --sandbox off to accept that explicitly.")
        return "off"
    return sandbox or "on"


def last_harness_error(events_path: Path, tail_bytes: int = 65536) -> str | None:
    """The harness's last own error line in a session's event stream (what it gave up with), if any."""
    from nanogpt_tui.agents.parsers import parse_line

    try:
        with open(events_path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - tail_bytes))
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        for ev in parse_line(line):
            if ev.type == "error" and ev.source == "nanogpt-tui" and ev.text and " harness: " in ev.text:
                return ev.text
    return None


def submit_time_bound_s(config: Config) -> float:
    """The longest a `submit` can take: every retiming to its time-out, the judge's tries, a margin."""
    judge = config.judge.timeout_s * (config.judge.max_retries + 1)
    return config.validation.runs * config.validation.run_timeout_s + judge + SUBMIT_MARGIN_S


def _copy_code(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.iterdir()):
        if path.is_file() and path.suffix in RECORD_FILES:
            shutil.copy2(path, dest / path.name)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _git(workspace: Path, *args: str) -> None:
    try:
        subprocess.run(["git", "-c", "user.name=nanogpt-tui", "-c", "user.email=nanogpt-tui@localhost", *args],
                       cwd=workspace, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise UserError("git is not installed; install it (the session workspace is a git repository).") from None
    except subprocess.CalledProcessError as err:
        said = err.stderr.strip()
        if "No space left on device" in said or "Disk quota exceeded" in said:
            raise UserError(f"The disk holding {workspace.parent.parent} is full (git {args[0]} could not write); "
                            "free space and launch the session again; nothing of it was kept.") from None
        raise UserError(f"git {args[0]} failed in {workspace}: {' / '.join(said.splitlines())}") from None


class SessionManager:
    """All sessions under `config.paths.sessions_dir`, and the backends that run them."""

    def __init__(self, config: Config, *, backends: dict[str, Backend] | None = None) -> None:
        self.config = config
        self.root = Path(config.paths.sessions_dir)
        self._backends: dict[str, Backend] = dict(backends or {})  # kind -> backend, made on first use
        self._followers: dict[str, object] = {}  # session id -> the thread copying its output into container.log
        self._next_placement: dict[str, float] = {}  # pending session id -> monotonic time to try again
        self._meters: dict = {}  # session id -> its token meter (read on incrementally)
        self._starting_validators: list[Path] = []  # session folders whose validator was restarted here, starting

    # --- backends -------------------------------------------------------------------------------------------

    def backend(self, kind: str) -> Backend:
        """The backend that runs sessions of `kind` (a UserError names the kinds there are)."""
        if kind not in self._backends:
            self._backends[kind] = create_backend(kind, self.config, self.root)
        return self._backends[kind]

    def ref(self, session: Session) -> SessionRef:
        return SessionRef(session_id=session.id, session_dir=self.session_dir(session.id), host=session.host,
                          handle=session.handle, gpu_ids=tuple(session.gpu_ids))

    def holdings(self, kind: str, sessions: list[Session] | None = None) -> list[Holding]:
        """The GPUs the live sessions of backend `kind` hold, from their session.json (an unreachable session keeps
        its GPUs until it recovers or ends)."""
        if sessions is None:
            sessions, _ = self.list()
        return live_holdings(sessions, kind)

    # --- listing --------------------------------------------------------------------------------------------

    def session_dir(self, session_id: str) -> Path:
        return L.session_dir(self.root, session_id)

    def scan(self) -> SessionScan:
        """Every session, oldest first; every broken one; a sentence for each folder that is not a session."""
        scan = SessionScan([], [], [])
        if not self.root.is_dir():
            return scan
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(".") or not path.is_dir():
                continue
            if (path / L.SESSION_FILE).exists():
                read = read_session(path)
                (scan.broken if isinstance(read, BrokenSession) else scan.sessions).append(read)
            elif path.name != REPORTS_DIR:
                scan.strays.append(stray_sentence(path))
        scan.sessions.sort(key=lambda s: s.created_at)
        return scan

    def list(self) -> tuple[list[Session], list[str]]:
        """Every readable session, oldest first, and one sentence for each folder that could not be read."""
        scan = self.scan()
        return scan.sessions, scan.problems

    def get(self, session_id: str) -> Session:
        """A session by id or unique prefix (or suffix, e.g. the agent-strategy part)."""
        path = self.session_dir(session_id)
        if (path / L.SESSION_FILE).exists():
            return load_session(path)
        sessions, _ = self.list()
        matches = [s for s in sessions if s.id.startswith(session_id) or s.id.endswith(session_id)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise UserError(f"There is no session {session_id!r} in {self.root}; `nanogpt-tui sessions list` shows "
                            "them.")
        raise UserError(f"{session_id!r} matches {len(matches)} sessions; give more of the id.")

    def save(self, session: Session) -> None:
        save_session(self.session_dir(session.id), session)

    # --- creating and starting ------------------------------------------------------------------------------

    def _new_id(self, agent: str, strategy: str) -> str:
        stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
        base = ID_SAFE.sub("-", f"{stamp}-{agent}-{strategy}")
        candidate, n = base, 2
        self._clear_stale_staging()
        while self.session_dir(candidate).exists() or any(self.root.glob(f"{STAGING_PREFIX}*-{candidate}")):
            candidate, n = f"{base}-{n}", n + 1
        return candidate

    def create(self, request: LaunchRequest) -> Session:
        """Lay a new session out on disk (workspace repo, runner, control), pending until `start`."""
        from nanogpt_tui.agents.catalog import check_strategy_fits, copy_harness, copy_strategy, get_agent
        from nanogpt_tui.agents.strategy import resolve_strategy

        cfg = self.config
        # Numbers first: nothing is resolved or created from a bad one.
        backend = self.backend(request.backend)
        gpus = request.gpus if request.gpus is not None else (backend.default_gpus or cfg.benchmark.gpus_per_session)
        budget = request.budget_gpu_hours if request.budget_gpu_hours is not None else cfg.benchmark.budget_gpu_hours
        try:
            whole(gpus, "gpus", minimum=1, maximum=MAX_GPUS)
            finite(budget, "budget_gpu_hours", positive=True, maximum=MAX_GPU_HOURS)
            if request.budget_usd is not None:
                finite(request.budget_usd, "budget_usd", positive=True)
        except BadField as err:
            raise UserError(f"The session's {err}; a session needs 1 to {MAX_GPUS} GPUs and a budget above 0 and at "
                            f"most {MAX_GPU_HOURS:g} GPU-hours.") from None
        agent = get_agent(request.agent)
        strategy = resolve_strategy(request.strategy)
        check_strategy_fits(agent, strategy.agents, strategy.name)
        sandbox = resolve_sandbox(agent, request.backend, request.sandbox, sandboxed=backend.sandboxed)
        anchor = request.anchor or cfg.benchmark.anchor
        anchor_dir = cfg.paths.baselines_dir / anchor
        if not (anchor_dir / "train_gpt.py").is_file():
            raise UserError(f"The anchor record {anchor!r} has no code in {anchor_dir}; fetch it first with "
                            f"`nanogpt-tui records fetch {anchor}` (or import it).")
        target = request.target or (cfg.benchmark.target if anchor == cfg.benchmark.anchor else None)
        where = backend.admit(request.host, request.image)
        agent_cfg = cfg.agents.get(agent.name)
        session = Session(
            id=self._new_id(agent.name, strategy.name), agent=agent.name, strategy=strategy.name,
            strategy_hash=strategy.content_hash, anchor=anchor, target=target, backend=request.backend, host=where.host,
            image=where.image, gpus=gpus,
            budget_gpu_hours=budget, created_at=iso(utc_now()),
            agent_model=agent_cfg.model if agent_cfg else None, agent_effort=agent_cfg.effort if agent_cfg else None,
            host_forced=where.host_forced, sandbox=sandbox,
            allow_env_mismatch=request.allow_env_mismatch,
            budget_usd=request.budget_usd,
        )
        from nanogpt_tui.config import config_as_dict

        session.config = config_as_dict(cfg)
        session.config["extra_env"] = dict(request.extra_env)
        # Built in a staging folder beside the sessions and renamed into place: a session folder appears complete
        # (session.json included) or not at all, even when this process is killed half-way.
        final = self.session_dir(session.id)
        d = self._staging_dir(session.id)
        try:
            d.mkdir(parents=True)
            workspace = d / L.WORKSPACE
            _copy_code(anchor_dir, workspace)
            for sub in L.WORKSPACE_DIRS:
                (workspace / sub).mkdir(parents=True, exist_ok=True)
            (workspace / ".gitignore").write_text("/data\n/logs/\n/verdicts/.work/\n/requests/\n__pycache__/\n")
            _git(workspace, "init", "-q", "-b", "main")
            _git(workspace, "add", "-A")
            _git(workspace, "commit", "-q", "-m", f"anchor: {anchor}")
            events = workspace / "logs" / L.EVENTS_FILE
            events.touch()
            (d / L.EVENTS_FILE).symlink_to(Path(L.WORKSPACE) / "logs" / L.EVENTS_FILE)
            runner = d / L.RUNNER
            copy_harness(agent, runner / "agent")
            copy_strategy(strategy.root, runner / "strategy")
            _copy_code(anchor_dir, runner / "anchor")
            (d / L.CONTROL).mkdir()
            (d / L.VALIDATOR).mkdir()
            (d / L.CONTAINER_LOG).touch()
            session.transition(M.PENDING, "created")
            while True:
                save_session(d, session)
                try:
                    os.rename(d, final)  # refuses, rather than merge, when another launch took the id meanwhile
                    break
                except OSError as err:
                    if not final.exists():
                        raise UserError(f"Could not move the new session into {final} ({err.strerror}); check "
                                        "the sessions folder's permissions and free space.") from None
                session.id = self._new_id(session.agent, session.strategy)
                final = self.session_dir(session.id)
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        return session

    def _staging_dir(self, session_id: str) -> Path:
        return self.root / f"{STAGING_PREFIX}{os.getpid()}-{session_id}"

    def _clear_stale_staging(self) -> None:
        """Remove staging folders whose creating process is gone (killed mid-creation): nothing else uses them."""
        if not self.root.is_dir():
            return
        for path in self.root.glob(f"{STAGING_PREFIX}*"):
            pid = path.name[len(STAGING_PREFIX):].split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)

    # --- placing and starting ------------------------------------------------------------------------------

    @contextmanager
    def _placement_lock(self) -> Iterator[None]:
        """One placement at a time across processes (two launches must not take the same GPUs)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / PLACEMENT_LOCK, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _launch_spec(self, session: Session, backend: Backend) -> LaunchSpec:
        d = self.session_dir(session.id).resolve()
        extra = dict(session.config.get("extra_env") or {})
        mounts = backend.mounts(d)
        env = contract_env(workspace=mounts.workspace, runner=mounts.runner, control=mounts.control,
                           run_id=session.id, agent=session.agent, strategy=session.strategy,
                           session_hours=session.total_gpu_hours / max(1, session.gpus), anchor=session.anchor,
                           target=session.target, validator=mounts.validator)
        env[ENV_AGENT_MODEL] = session.agent_model or ""
        env[ENV_AGENT_EFFORT] = session.agent_effort or ""
        env[ENV_TOOL_TIMEOUT_S] = str(int(submit_time_bound_s(self.config)))
        from nanogpt_tui.agents.credentials import session_env

        agent_cfg = self.config.agents.get(session.agent)
        env.update(session_env(session.agent, agent_cfg.base_url if agent_cfg else ""))
        env.update(extra)  # what the launching code asked for explicitly wins
        egress = None
        if mounts.container and session.sandboxed:
            egress = self._egress_spec(session.agent, session.host, env)
        return LaunchSpec(
            user=self._container_user(d / L.WORKSPACE) if mounts.container else None, session_id=session.id,
            image=session.image, command=list(RUNNER_COMMAND), env=env, workspace_dir=d / L.WORKSPACE,
            runner_dir=d / L.RUNNER, control_dir=d / L.CONTROL, log_path=d / L.CONTAINER_LOG,
            gpu_ids=list(session.gpu_ids), labels={SESSION_LABEL: session.id, "nanogpt-tui.agent": session.agent,
                                                   "nanogpt-tui.strategy": session.strategy},
            name=f"nanogpt-tui-{session.id}".lower(), validator_dir=d / L.VALIDATOR,
            memory=self.config.docker.memory, shm_size=self.config.docker.shm_size,
            pids_limit=self.config.docker.pids_limit, egress=egress, gpus=session.gpus, host=session.host,
            time_limit_s=session.total_gpu_hours / max(1, session.gpus) * 3600.0,
        )

    @staticmethod
    def _container_user(workspace: Path) -> str:
        """Never root: the host user when that is not root (the workspace stays theirs), else the images' fixed
        `agent` user, to whom the workspace is handed (Claude Code refuses to skip permission prompts as root)."""
        if os.getuid() != 0:
            return f"{os.getuid()}:{os.getgid()}"
        from nanogpt_tui.agents.pins import AGENT_GID, AGENT_UID

        for path in [workspace, *workspace.rglob("*")]:
            if not path.is_symlink():
                os.chown(path, AGENT_UID, AGENT_GID)
        return f"{AGENT_UID}:{AGENT_GID}"

    def _egress_spec(self, agent: str, host: str | None, env: dict[str, str]) -> EgressSpec:
        """Take the API keys and endpoints out of the session's environment: the model gateway holds the keys and
        forwards to the endpoints; the agent gets the gateway's address and a placeholder (and the CONNECT proxy
        when `[sandbox] allow` names destinations)."""
        from nanogpt_tui.agents.credentials import AGENT_API

        cloud = [name for name in ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX") if env.get(name)]
        if cloud:
            # Their credentials would sit in the container and their endpoints are not the gateway's.
            raise UserError(f"{cloud[0]} is set, but the sandbox's model gateway cannot hold Bedrock or Vertex "
                            "credentials; point base_url at a gateway for them (e.g. LiteLLM) with an API key, or "
                            "run with --sandbox off.")
        keys = {name: env.pop(name) for name in GATEWAY_KEYS if env.get(name)}
        for name in keys:
            env[name] = PLACEHOLDER_KEY  # the CLI keeps its way of signing in; the gateway swaps the real one in
        routes = {name: dict(route) for name, route in DEFAULT_ROUTES.items()}
        for name, held in GATEWAY_CREDENTIALS.items():
            chosen = next(((key, auth) for key, auth in held if key in keys), None)
            if chosen is not None:
                routes[name]["key_name"], routes[name]["auth"] = chosen
        for name, variable in (("anthropic", "ANTHROPIC_BASE_URL"), ("openai", "OPENAI_BASE_URL")):
            upstream = env.pop(variable, None)
            if upstream:
                routes[name]["upstream"] = upstream
            env[variable] = GATEWAY_URLS[name]
        api = AGENT_API.get(agent)
        if api is not None:  # the endpoint the harness hands its CLI: the gateway
            env[ENV_AGENT_BASE_URL] = GATEWAY_URLS["anthropic" if api[0] == "ANTHROPIC_BASE_URL" else "openai"]
        allow = tuple(self.config.sandbox.allow)
        if allow:
            from nanogpt_tui.sandbox.names import proxy_env

            env.update(proxy_env())
        return EgressSpec(state_dir=self.egress_dir(host), routes=routes, keys=keys, prefix=self.egress_prefix,
                          allow=allow)

    def egress_dir(self, host: str | None) -> Path:
        """The model gateway's folder for a Docker host: its config, address book and per-session records."""
        return L.gateway_dir(self.root.resolve(), host)

    def probe_spec(self, host: str, image: str | None = None) -> LaunchSpec:
        """The launch of a sandbox probe on a Docker host (`nanogpt-tui sandbox check`): a sandboxed session's,
        keys and endpoints taken from this environment as a launch takes them, in a folder of its own under the
        gateway's (the caller runs it with its command and removes `spec.workspace_dir.parent` afterwards)."""
        import uuid

        probe_id = f"probe-{uuid.uuid4().hex[:10]}"
        folder = (self.egress_dir(host) / ".probes" / probe_id).resolve()
        for sub in (L.WORKSPACE, L.RUNNER, L.CONTROL):
            (folder / sub).mkdir(parents=True)
        env = {name: os.environ[name] for name in GATEWAY_KEYS if os.environ.get(name)}
        for variable in ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL"):
            if os.environ.get(variable):
                env[variable] = os.environ[variable]
        egress = self._egress_spec("probe", host, env)
        return LaunchSpec(
            session_id=probe_id, image=image or self.config.docker.image, command=[], env=env,
            workspace_dir=folder / L.WORKSPACE, runner_dir=folder / L.RUNNER, control_dir=folder / L.CONTROL,
            log_path=folder / L.CONTAINER_LOG, user=self._container_user(folder / L.WORKSPACE),
            name=f"{self.egress_prefix}-{probe_id}", labels={"nanogpt-tui.probe": probe_id},
            memory=self.config.docker.memory, shm_size=self.config.docker.shm_size,
            pids_limit=self.config.docker.pids_limit, egress=egress, host=host)

    @property
    def egress_prefix(self) -> str:
        """The names of this sessions folder's gateway and networks on each host: one gateway per host and
        sessions folder (its records live in the folder)."""
        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:8]
        return f"nanogpt-tui-{digest}"

    def release(self, session: Session) -> None:
        """Once a Docker session has ended and its log is copied: its container (and with it its stored config)
        and its network are removed; the redacted inspect stays."""
        if not session.handle:
            return
        try:
            self.backend(session.backend).release(self.ref(session),
                                                  self.egress_prefix if session.sandboxed else None)
        except UserError:
            pass  # the host is away: the container stays until a later look at the ended session

    def start(self, session: Session, grace_s: float = DEFAULT_GRACE_S, *, queue: bool = True) -> Session:
        """Place the session (the Docker pool: a host with enough free GPUs, or the one it names) and start it. While
        nothing fits it stays pending with the reason; when the user must act first (a missing image, data volume
        or shards) it stays pending and a `UserError` says what to do; asking for more GPUs than any host has
        fails it. Without `queue`, a session whose one place (the host it names, or the only one configured)
        cannot be reached fails at once instead of waiting for it."""
        if session.status not in (M.PENDING,):
            raise UserError(f"Session {session.id} is {session.status}; only a pending session can start.")
        from nanogpt_tui.records import trains_on_synthetic_shards  # here: listing sessions needs no records

        backend = self.backend(session.backend)
        backend.survey()  # may be slow (pings, discovery): outside the lock, so it stalls no other launch
        with self._placement_lock():
            session = self.get(session.id)  # another process may have started or killed it meanwhile
            if session.status != M.PENDING or session.started_at is not None or session.handle is not None:
                return session
            request = PlaceRequest(session_id=session.id, gpus=session.gpus,
                                   host=session.host if session.host_forced else None, image=session.image,
                                   anchor=session.anchor, allow_env_mismatch=session.allow_env_mismatch,
                                   synthetic_data=trains_on_synthetic_shards(self.session_dir(session.id) / L.RUNNER
                                                                             / "anchor"))
            placement = backend.place(request, self.holdings(session.backend))
            if placement.host is None:
                if placement.unreachable and not queue:
                    session.transition(M.FAILED, f"its place cannot be reached: {placement.unreachable}")
                    self.save(session)
                    raise UserError(f"Session {session.id} did not start: {placement.unreachable}. Fix that and run "
                                    "again, or pass --queue to wait for it.")
                self._next_placement[session.id] = time.monotonic() + PLACEMENT_RETRY_S
                if placement.impossible:
                    session.transition(M.FAILED, placement.reason)
                    self.save(session)
                    raise UserError(f"Session {session.id} cannot run: {placement.reason}")
                session.transition(M.PENDING, placement.reason)
                self.save(session)
                if placement.blocking:
                    raise UserError(f"Session {session.id} is pending: {placement.reason} It starts by itself once "
                                    f"that is done (`nanogpt-tui sessions kill {session.id}` drops it).")
                return session
            session.host, session.gpu_ids = placement.host, placement.gpu_ids
            if placement.env_check is not None:
                session.env_check = placement.env_check
            session.data_dir = placement.data_dir
            return self._start_placed(session, backend, grace_s)

    def _start_placed(self, session: Session, backend: Backend, grace_s: float) -> Session:
        now = utc_now()
        deadline = now + dt.timedelta(hours=session.total_gpu_hours / max(1, session.gpus))
        write_deadline(self.session_dir(session.id) / L.CONTROL, deadline, gpus=session.gpus,
                       budget_gpu_hours=session.total_gpu_hours, grace_s=grace_s)
        try:
            handle = backend.start(self.ref(session), self._launch_spec(session, backend))
        except UserError as err:
            session.transition(M.FAILED, str(err))
            self.save(session)
            raise
        session.handle = handle
        state = backend.state(self.ref(session))
        if state.status == QUEUED:  # a scheduler holds it: the budget starts when it runs
            session.facts = dict(state.facts)
            session.transition(M.PENDING, _queued(state))
        else:
            self._mark_started(session, state.started_at or now)
            session.transition(M.RUNNING, f"started on {session.host}"
                               + (f" with GPUs {','.join(map(str, session.gpu_ids))}" if session.gpu_ids else ""))
        self.save(session)
        self.ensure_validator(session)
        return session

    def _mark_started(self, session: Session, at: dt.datetime) -> None:
        session.started_at = iso(at)
        session.deadline = iso(session.budget().deadline)

    def ensure_validator(self, session: Session, *, bounded: bool = False) -> None:
        """Start the session's validator (the process answering its submit requests) unless it already runs.
        `bounded` (a refresh finding it gone): not while VALIDATOR_STARTS_AT_ONCE restarted here are still starting;
        a later refresh starts it then."""
        from nanogpt_tui.sessions.validation import service_alive, service_starting, spawn_service

        d = self.session_dir(session.id)
        if service_alive(d):
            return
        if bounded:
            self._starting_validators = [s for s in self._starting_validators if service_starting(s)]
            if len(self._starting_validators) >= VALIDATOR_STARTS_AT_ONCE:
                return
            self._starting_validators.append(d)
        spawn_service(d, self.config.source)

    def hand_over(self, session: Session) -> None:
        """Give a started session what its backend could not carry (a Slurm job's API keys, which must not pass
        through the scheduler); a UserError says why it failed (the next look tries again)."""
        backend = self.backend(session.backend)
        backend.hand_over(self.ref(session), lambda: self._launch_spec(session, backend))

    def launch(self, request: LaunchRequest) -> Session:
        return self.start(self.create(request), queue=request.queue)

    # --- watching -------------------------------------------------------------------------------------------

    def runner_exit(self, session: Session) -> RunnerExit | BrokenRunnerExit | None:
        return read_runner_exit(self.session_dir(session.id) / L.WORKSPACE / "logs")

    def refresh(self, session: Session) -> Session:
        """Bring the session's status up to date with its backend; enforce the deadline from the host side; start
        a pending session whose GPUs have come free."""
        if session.status == M.PENDING and session.handle is None:
            if session.status_reason != "created" and time.monotonic() >= self._next_placement.get(session.id, 0.0):
                try:
                    return self.start(session)
                except UserError:
                    return self.get(session.id)  # still pending; its reason says what to do
            return session
        if session.status not in (M.PENDING, M.RUNNING, M.UNREACHABLE):
            return session
        backend = self.backend(session.backend)
        ref = self.ref(session)
        if session.handle is None:  # lost between start and save: find it by its id
            session.handle = backend.find(ref)
            ref = self.ref(session)
        state = backend.state(ref) if session.handle else None
        if state is None or state.status == UNREACHABLE:
            if session.status != M.UNREACHABLE:
                session.transition(M.UNREACHABLE, state.detail if state else "no container or process recorded")
                self.save(session)
            return session
        if state.facts and state.facts != session.facts:
            session.facts = dict(state.facts)
            self.save(session)
        if state.gpu_hours is not None and state.gpu_hours != session.accounted_gpu_hours:
            session.accounted_gpu_hours = state.gpu_hours  # the scheduler's count: the budget's from now on
            self.save(session)
        if state.status == QUEUED:
            if session.status != M.PENDING or session.status_reason != _queued(state):
                session.transition(M.PENDING, _queued(state))
                self.save(session)
            return session
        self.follow_logs(session)
        if state.status in (RUNNING, CREATED):
            self.ensure_validator(session, bounded=True)
            try:
                self.hand_over(session)
            except UserError as err:
                if session.facts.get("hand-over") != str(err):
                    session.facts = {**session.facts, "hand-over": str(err)}
                    self.save(session)
            if session.started_at is None:  # it waited in a queue: its budget starts now
                self._mark_started(session, state.started_at or utc_now())
                session.transition(M.RUNNING, f"running on {session.host}")
                self.save(session)
            elif session.status == M.UNREACHABLE:
                session.transition(M.RUNNING, f"{session.host} answers again")
                self.save(session)
            budget = session.budget()
            left = budget.seconds_left()
            if left is not None and left < -self._grace(session) - 5:
                # The in-session watchdog should have stopped it; the host stops it too.
                backend.stop(ref, 5.0)
                session.exit_code = None
                session.transition(M.OUT_OF_BUDGET, "stopped by the host at the deadline")
                self.save(session)
                self._copy_and_release(session)
            elif session.accounted_gpu_hours is not None and session.accounted_gpu_hours >= budget.gpu_hours:
                # The scheduler counts more GPUs than the session asked for (a whole node, say): its budget is
                # spent before its deadline.
                backend.stop(ref, self._grace(session))
                session.exit_code = None
                session.transition(M.OUT_OF_BUDGET, f"stopped by the host: the scheduler's accounting counts "
                                                    f"{session.accounted_gpu_hours:.3f} GPU-hours, its whole "
                                                    f"{budget.gpu_hours:g} GPU-hour budget")
                self.save(session)
                self._copy_and_release(session)
            elif session.budget_usd is not None:
                spent = self.cost(session).total_usd
                if spent is not None and spent >= session.budget_usd:
                    # Dollars are counted host-side (the agent cannot write the price table or the meter).
                    backend.stop(ref, self._grace(session))
                    session.exit_code = None
                    session.transition(M.OUT_OF_BUDGET, f"stopped by the host: ${spent:,.2f} spent of its "
                                                        f"${session.budget_usd:,.2f} budget")
                    self.save(session)
                    self._copy_and_release(session)
            return session
        follower = self._followers.pop(session.id, None)
        if follower is not None:
            follower.join(30.0)  # the container has ended: its last lines are on their way to container.log
        exit_info = self.runner_exit(session) or RunnerExit(reason="", exit_code=None)
        unreachable_before = session.status == M.UNREACHABLE
        if isinstance(exit_info, BrokenRunnerExit):
            session.exit_code = state.exit_code
            status, reason, ended_at = (M.FAILED, f"the session ended but its exit record is broken: "
                                        f"{exit_info.sentence}", state.ended_at or exit_info.written_at)
        else:
            session.exit_code = state.exit_code if state.exit_code is not None else exit_info.exit_code
            status, reason, ended_at = self._ending(session, exit_info, state, unreachable_before)
        if state.killed_by and status == M.FAILED:
            # What ended it from outside comes first: "killed: out of memory (limit 96 MiB); the agent failed ..."
            reason = f"killed: {state.killed_by}; {reason}"
        elif state.killed_by:
            # It ended otherwise (its deadline, say); a process of it was killed along the way (a resumed agent).
            reason = f"{reason}; a process of it was killed: {state.killed_by}"
        session.transition(status, reason, ended_at)
        self.save(session)
        self.release(session)
        return session

    def _ending(self, session: Session, exit_info: RunnerExit, state: BackendState,
                unreachable_before: bool) -> tuple[str, str, dt.datetime | None]:
        """How an ended session ended: its status, the sentence, and when (the runner's record; else the backend's
        own end time; else the last output): never the time a host happened to look."""
        code = session.exit_code
        reason = exit_info.reason
        ended_at = parse_iso(exit_info.at) if exit_info.at else state.ended_at
        if not reason and code == EXIT_NO_RECORD:
            end = state.ended_at or self._last_output_at(session)
            return (M.FAILED, f"the session ended at {iso(end) if end else 'an unknown time'} but its runner could not "
                              "write its exit record (the disk holding the session was full or read-only); the last "
                              "lines of container.log say how it ended", end)
        if not reason:
            # The runner died without its record (SIGKILL, OOM, a crash): its agent ended with it (a container, or
            # the local backend's PID namespace, ends as a whole).
            died = state.ended_at or self._last_output_at(session)
            return (M.FAILED, f"runner died at {iso(died) if died else 'an unknown time'} without an exit record "
                              f"(exit status {code}); its agent's processes ended with it", died)
        if reason == ExitReason.DEADLINE:
            return M.OUT_OF_BUDGET, "the deadline passed; the watchdog stopped the agent", ended_at
        if reason == ExitReason.AGENT_EXITED and code == 0:
            return M.EXITED, "the agent finished", ended_at
        if reason == ExitReason.STOPPED:
            if unreachable_before:
                # Nobody here asked: the daemon stopped its containers as it went away (no live-restore).
                return (M.FAILED, f"stopped by a signal at {iso(ended_at) if ended_at else 'an unknown time'} while "
                                  f"its host {session.host} did not answer: a Docker daemon without live-restore "
                                  "stops its containers when it stops (enable live-restore there)", ended_at)
            return M.KILLED, "stopped by a signal", ended_at
        what = reason or "no runner record"
        said = last_harness_error(self.session_dir(session.id) / L.EVENTS_FILE) if reason == "agent-failed" \
            else None
        if said:
            return M.FAILED, f"the agent failed (exit status {code}): {said}", ended_at
        return M.FAILED, f"the session ended ({what}, exit status {code})", ended_at

    def _last_output_at(self, session: Session) -> dt.datetime | None:
        """When the session last wrote to its log or events: the best record of when a runner that died ended
        (GPU-hours are counted to then, not to when a host noticed)."""
        folder = self.session_dir(session.id)
        times = []
        for path in (folder / L.CONTAINER_LOG, folder / L.WORKSPACE / "logs" / L.EVENTS_FILE):
            try:
                times.append(path.stat().st_mtime)
            except OSError:
                pass
        if not times:
            return None
        when = dt.datetime.fromtimestamp(max(times), dt.timezone.utc)
        started = parse_iso(session.started_at)
        return max(when, started) if started else when

    def cost(self, session: Session):
        """What the session has spent so far (`telemetry.cost.SessionCost`): its agent's tokens from the one token
        meter, its judge's from its verdicts, at the config's prices."""
        from nanogpt_tui.telemetry.cost import judge_tokens, session_cost, token_meter
        from nanogpt_tui.validator.protocol import trusted_verdicts

        meter = self._meters.get(session.id)
        if meter is None:
            meter = self._meters[session.id] = token_meter(self.session_dir(session.id))
        # The judge's tokens from the validator's sealed verdicts only (workspace/verdicts/ is the agent's to write).
        verdicts = trusted_verdicts(self.session_dir(session.id)).verdicts
        return session_cost(meter.read(), judge_tokens(verdicts), self.config.prices, session.agent_model)

    def follow_logs(self, session: Session) -> None:
        """Copy the session's output into its container.log on a thread where its backend needs that (resuming where
        the last copy stopped, so lines are neither lost nor doubled after a restart)."""
        if not session.handle:
            return
        follower = self._followers.get(session.id)
        if follower is not None and follower.running:
            return
        started = self.backend(session.backend).follow_logs(self.ref(session),
                                                            self.session_dir(session.id) / L.CONTAINER_LOG)
        if started is not None:
            self._followers[session.id] = started

    def log_copy_error(self, session_id: str) -> str | None:
        """Why copying the session's output into its container.log stopped (a full disk, its host away), until a
        later copy resumes it; None while it copies or has nothing to copy."""
        follower = self._followers.get(session_id)
        error = follower.error if follower is not None and not follower.running else None
        return str(error) if error else None

    def close(self) -> None:
        """Stop copying logs and close the backends' connections (an ssh:// host holds an ssh process per
        connection); the sessions keep running and a later manager resumes the copy."""
        for follower in self._followers.values():
            follower.close()
        self._followers.clear()
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()

    def _grace(self, session: Session) -> float:
        try:
            return read_deadline(self.session_dir(session.id) / L.CONTROL).grace_s
        except DeadlineError:
            return DEFAULT_GRACE_S

    # --- steering -------------------------------------------------------------------------------------------

    def kill(self, session_id: str, reason: str = "killed by the user", grace_s: float = 10.0) -> Session:
        session = self.get(session_id)
        if session.status in M.FINAL:
            raise UserError(f"Session {session.id} has already ended ({session.status}); nothing to kill.")
        if session.status == M.PENDING and session.handle is None:
            with self._placement_lock():  # a placement in progress must not start it after this
                session = self.get(session.id)
                if session.status == M.PENDING and session.handle is None:
                    session.transition(M.KILLED, reason + " before it started")
                    self.save(session)
                    return session
            if session.status in M.FINAL:
                return session
        if session.handle:
            self.backend(session.backend).stop(self.ref(session), grace_s)
        from nanogpt_tui.sessions.validation import stop_service

        stop_service(self.session_dir(session.id))  # and a retiming in flight with it
        session = self.get(session.id)
        if session.handle and session.accounted_gpu_hours is not None:
            try:  # the scheduler's count of the whole run, now that it has ended
                final = self.backend(session.backend).state(self.ref(session)).gpu_hours
            except UserError:
                final = None
            if final is not None:
                session.accounted_gpu_hours = final
        session.transition(M.KILLED, reason)
        self.save(session)
        self._copy_and_release(session)
        return session

    def _copy_and_release(self, session: Session) -> None:
        """A stopped session: copy the rest of its output into container.log, then release what it held."""
        if not session.handle:
            return
        try:
            self.follow_logs(session)
        except UserError:
            return  # its host is away: the container stays, and so does its output
        follower = self._followers.pop(session.id, None)
        if follower is not None:
            follower.join(30.0)
        self.release(session)

    def extend(self, session_id: str, *, gpu_hours: float | None = None, wall_hours: float | None = None,
               reason: str = "") -> Session:
        """Add GPU-hours (or wall-clock hours x GPUs); the deadline moves in control/ and session.json."""
        if (gpu_hours is None) == (wall_hours is None):
            raise UserError("Say how much to extend by: --gpu-hours H or --wall-hours H.")
        with self._placement_lock():  # a placement starting this session must not save over the extension
            return self._extend(session_id, gpu_hours, wall_hours, reason)

    def _extend(self, session_id: str, gpu_hours: float | None, wall_hours: float | None, reason: str) -> Session:
        session = self.get(session_id)
        if session.status not in (M.RUNNING, M.UNREACHABLE, M.PENDING):
            raise UserError(f"Session {session.id} has ended ({session.status}); only a live session can be "
                            "extended.")
        added = gpu_hours if gpu_hours is not None else wall_hours * max(1, session.gpus)
        try:
            finite(added, "extension", positive=True, maximum=MAX_GPU_HOURS - session.total_gpu_hours)
        except BadField as err:
            raise UserError(f"The {err} GPU-hours; extend by a finite number above 0 that keeps the budget at most "
                            f"{MAX_GPU_HOURS:g} GPU-hours.") from None
        session.extensions.append(Extension(at=iso(utc_now()), gpu_hours=added, reason=reason))
        note = None
        if session.handle is not None:
            # Started (or queued: its start rewrites the deadline from the budget in the file).
            start = parse_iso(session.started_at) if session.started_at else utc_now()
            deadline = start + dt.timedelta(hours=session.total_gpu_hours / max(1, session.gpus))
            if session.started_at is not None:
                session.deadline = iso(deadline)
            write_deadline(self.session_dir(session.id) / L.CONTROL, deadline, gpus=session.gpus,
                           budget_gpu_hours=session.total_gpu_hours, grace_s=self._grace(session))
            note = self.backend(session.backend).extend(self.ref(session), deadline)
        if note:
            session.facts = {**session.facts, "extend": note}
        self.save(session)
        return session

    def wait(self, session_id: str, *, poll_s: float = 1.0, timeout_s: float | None = None,
             on_update: Callable[[Session], None] | None = None) -> Session:
        """Follow a session until it ends (the host enforces its deadline meanwhile)."""
        start = time.monotonic()
        session = self.get(session_id)
        while True:
            session = self.refresh(session)
            if on_update:
                on_update(session)
            if session.status in M.FINAL:
                return session
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                return session
            time.sleep(poll_s)


REPORTS_DIR = "reports"  # group reports and the reproduce figure live beside the sessions


def stray_sentence(path: Path) -> str:
    """What to say of a folder in the sessions folder that holds no session.json."""
    if (path / L.WORKSPACE).is_dir():
        return (f"{path} holds a workspace but no session.json: a session whose creation was interrupted (by an "
                f"older version, before sessions were created atomically); nothing runs there, remove it with "
                f"`rm -r {path}`.")
    return (f"{path} is not a session (it holds no session.json); move it out of the sessions folder, or remove it "
            f"with `rm -r {path}`.")


def session_summary(session: Session, now: dt.datetime | None = None) -> dict:
    """The numbers a list or a card shows."""
    budget = session.budget()
    return {
        "id": session.id, "agent": session.agent, "strategy": session.strategy, "anchor": session.anchor,
        "status": session.status, "reason": session.status_reason, "backend": session.backend, "host": session.host,
        "gpus": session.gpus, "gpu_ids": session.gpu_ids, "budget_gpu_hours": session.total_gpu_hours,
        "used_gpu_hours": round(budget.used_gpu_hours(now), 6),
        "gpu_hours_from": "sacct" if session.accounted_gpu_hours is not None else "wall-clock x GPUs",
        # An ended session has no time left (not a countdown gone negative): it has when it ended.
        "seconds_left": None if session.status in M.FINAL else budget.seconds_left(now),
        "ended_at": session.finished_at if session.status in M.FINAL else None,
        "deadline": session.deadline, "exit_code": session.exit_code, "facts": dict(session.facts),
    }


def live_holdings(sessions: list[Session], kind: str) -> list[Holding]:
    """What the live sessions of backend `kind` hold (an unreachable one keeps its GPUs)."""
    return [Holding(s.id, s.host, tuple(s.gpu_ids)) for s in sessions
            if s.backend == kind and s.status in (M.RUNNING, M.UNREACHABLE)]


def _queued(state: BackendState) -> str:
    return "queued" + (f": {state.detail}" if state.detail else "")
