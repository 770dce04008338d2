"""The pool of Docker hosts sessions run on: whether each host answers, which GPUs it offers (from the config, or
discovered once by a short-lived container running `nvidia-smi`), which live sessions hold them, and where a new
session goes.

Placement is best fit: of the hosts that answer and have enough free GPUs, the one left with the fewest idle GPUs
(config order breaks ties), so an 8-GPU session still finds a whole node while smaller ones fill partly used
nodes. GPU ids are pinned per host and never given to two live sessions of the same host; an `unreachable`
session keeps its GPUs (it recovers when its host returns). A host that offers no GPUs (no NVIDIA runtime, none
listed) takes sessions only when it is named with `--host`, or when no host of the pool offers any: then sessions
run unpinned and their budget counts the GPUs they asked for.

The survey of the hosts (`survey`) is the only part that talks to Docker, through the per-host drivers it is given
(`DockerBackend`, imported only when a host is first used); `place` is pure. `DockerPool` is the Docker backend of
the protocol in `backends.base`: a single Docker host is a pool of one.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from nanogpt_tui.backends.base import (
    CONTAINER_MOUNTS,
    UNREACHABLE,
    BackendState,
    Holding,
    LaunchSpec,
    LogFollower,
    MountPoints,
    Placement,
    PlaceRequest,
    SessionRef,
    Target,
)
from nanogpt_tui.config import Config, HostConfig
from nanogpt_tui.contract import layout
from nanogpt_tui.errors import UserError
from nanogpt_tui.fsutil import atomic_write_json

# What the discovery container runs; the NVIDIA Container Toolkit puts nvidia-smi into any container given the
# `utility` capability.
GPU_QUERY = ("nvidia-smi", "--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits")
DISCOVERY_SCHEMA_VERSION = 1
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
# After a host fails to answer, it is not asked again for this long (a dead tcp:// host costs a timeout per call).
HOST_RETRY_S = 5.0


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str = ""
    name: str = ""
    memory_mib: int | None = None


def parse_gpu_query(text: str) -> tuple[Gpu, ...]:
    """The GPUs in `nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits` output;
    `ValueError` naming the line for anything else."""
    gpus = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4 or not parts[0].isdigit():
            raise ValueError(f"line {number} is not `index, uuid, name, memory`: {line.strip()[:120]!r}")
        memory = int(parts[3]) if parts[3].isdigit() else None
        gpus.append(Gpu(index=int(parts[0]), uuid=parts[1], name=parts[2], memory_mib=memory))
    if len({g.index for g in gpus}) != len(gpus):
        raise ValueError("a GPU index appears twice")
    return tuple(sorted(gpus, key=lambda g: g.index))


@dataclass(frozen=True)
class HostGpus:
    """The GPUs a host offers, and where that knowledge comes from."""

    ids: tuple[int, ...] | None  # None: not known (the host did not answer and nothing is configured or cached)
    source: str  # "config", "discovered", "none" (discovery found no NVIDIA runtime or GPU), "unknown"
    detail: str = ""
    gpus: tuple[Gpu, ...] = ()

    @property
    def offered(self) -> tuple[int, ...]:
        return self.ids or ()


@dataclass
class HostView:
    """One host as the pool sees it now."""

    name: str
    url: str
    answers: bool
    problem: str  # why it does not answer ("" when it does)
    gpus: HostGpus
    held: dict[int, str] = field(default_factory=dict)  # GPU id -> the live session holding it
    sessions: list[str] = field(default_factory=list)  # live sessions placed on this host

    @property
    def free(self) -> list[int]:
        return [g for g in self.gpus.offered if g not in self.held]

    def to_dict(self) -> dict:
        return {"name": self.name, "url": self.url, "answers": self.answers, "problem": self.problem,
                "gpus": list(self.gpus.ids) if self.gpus.ids is not None else None, "gpu_source": self.gpus.source,
                "gpu_detail": self.gpus.detail, "gpu_models": [asdict(g) for g in self.gpus.gpus],
                "free": self.free, "held": {str(k): v for k, v in sorted(self.held.items())},
                "sessions": list(self.sessions)}


def holders(held: Iterable[Holding], host: str) -> dict[int, str]:
    """GPU id -> session id for the live sessions on `host` (an unreachable one still holds its GPUs)."""
    return {gpu: h.session_id for h in held if h.host == host for gpu in h.gpu_ids}


def live_on(held: Iterable[Holding], host: str) -> list[str]:
    return [h.session_id for h in held if h.host == host]


def place(views: Sequence[HostView], gpus: int, *, forced: str | None = None,
          preflight: Callable[[str], list[str]] = lambda _host: []) -> Placement:
    """Choose a host and GPU ids for a session asking for `gpus` GPUs.

    `preflight(host)` lists what is missing on a host for the session to start there (image, data volume, ...);
    a host that fits but misses something is passed over, and if every fitting host misses something the
    placement is blocking with those sentences.
    """
    candidates = [v for v in views if forced is None or v.name == forced]
    if forced is not None and not candidates:
        raise UserError(f"There is no Docker host named {forced!r} in the config; `nanogpt-tui hosts list` shows them.")
    # A host that answers but whose GPUs are unknown (discovery could not run) may have some.
    pool_has_gpus = any(v.gpus.offered or (v.answers and v.gpus.ids is None) for v in views)
    waiting: list[str] = []
    fits: list[tuple[int, int, HostView, list[int]]] = []
    unpinned: list[tuple[int, int, HostView]] = []
    too_small: list[str] = []
    down: list[str] = []  # why the hosts that do not answer don't (with how to fix it)
    largest = 0
    for order, v in enumerate(candidates):
        if not v.answers:
            waiting.append(f"{v.name} does not answer")
            down.append(v.problem)
            continue
        offered = v.gpus.offered
        if v.gpus.ids is None:
            waiting.append(f"{v.name}'s GPUs are unknown ({v.gpus.detail or 'not discovered yet'})")
            continue
        if not offered:
            if forced is not None or not pool_has_gpus:
                unpinned.append((len(v.sessions), order, v))
            continue
        largest = max(largest, len(offered))
        free = v.free
        if len(offered) < gpus:
            too_small.append(f"{v.name} has only {len(offered)}")
            continue
        if len(free) < gpus:
            held_by = ", ".join(sorted(set(v.held.values()))) or "nobody"
            waiting.append(f"{v.name} has {len(free)} of {len(offered)} free (held by {held_by})")
            continue
        fits.append((len(free) - gpus, order, v, sorted(free)[:gpus]))
    problems: list[str] = []
    for _, _, v, ids in sorted(fits, key=lambda f: (f[0], f[1])):
        missing = preflight(v.name)
        if not missing:
            return Placement(v.name, ids, f"GPUs {','.join(map(str, ids))} on {v.name}")
        problems.extend(missing)
    if not fits:
        for _, _, v in sorted(unpinned, key=lambda u: (u[0], u[1])):
            missing = preflight(v.name)
            if not missing:
                return Placement(v.name, [], f"{v.name} offers no GPUs, so none are pinned (the budget counts "
                                             f"{gpus})")
            problems.extend(missing)
    if problems and not waiting:
        return Placement(None, [], " ".join(problems), blocking=True)
    reachable_gpu_hosts = [v for v in candidates if v.answers and v.gpus.offered]
    if reachable_gpu_hosts and not waiting and largest < gpus:
        where = forced or "the pool"
        return Placement(None, [], f"No host in {where} has {gpus} GPUs (the largest has {largest}); ask for "
                                   f"{largest} or fewer, or add a host with more.", impossible=True)
    notes = [problem.rstrip(".") for problem in [*down, *problems] if problem]
    return Placement(None, [], f"waiting for {gpus} GPU(s): " + "; ".join(waiting + too_small)
                     + "".join(f". {note}" for note in notes) + ("." if notes else ""))


# --- what Docker says (the survey) ------------------------------------------------------------------------------


def docker_command(host: HostConfig) -> str:
    """The `docker` command line that talks to `host`, for the fix-it sentences."""
    if host.url == DEFAULT_SOCKET:
        return "docker"
    parts = ["docker", "-H", host.url]
    if host.tls is not None:
        parts.append("--tlsverify" if host.tls.verify else "--tls")
        for flag, path in (("--tlscacert", host.tls.ca_cert), ("--tlscert", host.tls.client_cert),
                           ("--tlskey", host.tls.client_key)):
            if path:
                parts.append(f"{flag}={path}")
    return " ".join(shlex.quote(p) for p in parts)


class DiscoveryCache:
    """Discovered GPUs per host, kept in `<sessions_dir>/.hosts/<name>.json` and trusted while the host's Docker
    daemon id is unchanged (a reinstalled host is asked again)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / ".hosts"

    def _path(self, host: str) -> Path:
        return self.root / f"{host}.json"

    def load(self, host: str, daemon_id: str | None) -> HostGpus | None:
        try:
            raw = json.loads(self._path(host).read_text(encoding="utf-8"))
            if raw.get("schema_version") != DISCOVERY_SCHEMA_VERSION:
                return None
            if daemon_id is not None and raw.get("daemon_id") != daemon_id:
                return None
            gpus = tuple(Gpu(**g) for g in raw.get("gpus") or [])
            ids = tuple(g.index for g in gpus)
            return HostGpus(ids, "discovered" if ids else "none", str(raw.get("detail") or ""), gpus)
        except (OSError, ValueError, TypeError, AttributeError):
            return None  # absent or unreadable: discover again

    def save(self, host: str, daemon_id: str, found: HostGpus) -> None:
        atomic_write_json(self._path(host), {
            "schema_version": DISCOVERY_SCHEMA_VERSION, "daemon_id": daemon_id,
            "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"), "detail": found.detail,
            "gpus": [asdict(g) for g in found.gpus]})


def discover(backend, host: HostConfig, image: str, cache: DiscoveryCache, *, force: bool = False) -> HostGpus:
    """The GPUs of a host without a `gpus` list: from the cache, else from a short-lived container of `image`
    running nvidia-smi with every GPU. Raises `UserError` when the host does not answer."""
    daemon_id = backend.daemon_id()
    if not force:
        cached = cache.load(host.name, daemon_id)
        if cached is not None:
            return cached
    status, output = backend.query_gpus(image, list(GPU_QUERY))
    if status == "no-runtime":
        found = HostGpus((), "none", "no NVIDIA container runtime")
    elif status == "no-image":
        # Not cached: once the image is there, discovery runs again.
        return HostGpus(None, "unknown", f"image {image} is missing, so GPUs could not be discovered")
    elif status != "ok":
        # Not cached: a timeout or a driver hiccup must not make a GPU node a CPU box for good.
        last = output.strip().splitlines()[-1][:160] if output.strip() else status
        return HostGpus(None, "unknown", f"nvidia-smi failed: {last}")
    else:
        try:
            gpus = parse_gpu_query(output)
        except ValueError as err:
            return HostGpus(None, "unknown", f"unexpected nvidia-smi output ({err})")
        else:
            found = HostGpus(tuple(g.index for g in gpus), "discovered" if gpus else "none",
                             "" if gpus else "nvidia-smi lists no GPU", gpus)
    cache.save(host.name, daemon_id, found)
    return found


def survey(hosts: Sequence[HostConfig], held: Sequence[Holding], backend_for: Callable[[str], object],
           cache: DiscoveryCache, image: str, *, rediscover: bool = False,
           skip: Callable[[str], str | None] = lambda _name: None) -> list[HostView]:
    """Every host of the pool: does it answer, its GPUs, who holds them. `skip(name)` returns a reason to treat a
    host as not answering without asking it again (a host that just failed)."""
    views = []
    for host in hosts:
        held_here, live = holders(held, host.name), live_on(held, host.name)
        configured = HostGpus(host.gpus, "config") if host.gpus is not None else None
        problem = skip(host.name) or ""
        if not problem:
            backend = backend_for(host.name)
            try:
                backend.ping()
                gpus = configured or discover(backend, host, image, cache, force=rediscover)
            except UserError as err:
                problem = str(err)
        if problem:
            gpus = configured or cache.load(host.name, None) or HostGpus(None, "unknown", "the host does not answer")
        views.append(HostView(host.name, host.url, not problem, problem, gpus, held_here, live))
    return views


# --- the Docker backend of the protocol ------------------------------------------------------------------------


UNREAD = object()  # an anchor stack not read yet (None is an anchor that states none)


class DockerPool:
    """Sessions in containers on the Docker hosts of the config ([[hosts]]), placed by free GPUs. Hosts that fail
    to answer are backed off for HOST_RETRY_S; the handle is the container id on the session's host."""

    kind = "docker"
    default_gpus = None
    sandboxed = True

    def __init__(self, config: Config, sessions_root: Path, *, drivers: dict[str, object] | None = None) -> None:
        self.config = config
        self.root = Path(sessions_root)
        self._drivers: dict[str, object] = dict(drivers or {})  # host name -> DockerBackend (or a test's stand-in)
        self._host_down: dict[str, tuple[float, str]] = {}  # host -> (monotonic time to ask again, why)
        self._shared_seen: set[str] = set()  # remote hosts that have shown they see the sessions folder
        self._views: list[HostView] = []

    # --- hosts ----------------------------------------------------------------------------------------------

    def host_config(self, name: str) -> HostConfig:
        for host in self.config.hosts:
            if host.name == name:
                return host
        names = ", ".join(h.name for h in self.config.hosts)
        raise UserError(f"There is no Docker host named {name!r} in the config (hosts: {names}); add it under "
                        "[[hosts]] in nanogpt-tui.toml.")

    def driver(self, name: str):
        """The DockerBackend talking to host `name` (connected on first use)."""
        if name not in self._drivers:
            from nanogpt_tui.backends.docker_backend import DockerBackend

            cfg = self.host_config(name)
            self._drivers[name] = DockerBackend(url=cfg.url, tls=cfg.tls, name=cfg.name)
        return self._drivers[name]

    def _skip_host(self, name: str) -> str | None:
        down = self._host_down.get(name)
        if down is not None and time.monotonic() < down[0]:
            return down[1]
        return None

    def _mark_host(self, name: str, problem: str | None) -> None:
        if problem:
            self._host_down[name] = (time.monotonic() + HOST_RETRY_S, problem)
        else:
            self._host_down.pop(name, None)

    def hosts(self, held: Sequence[Holding] = (), *, rediscover: bool = False) -> list[HostView]:
        """Every Docker host of the config: does it answer, its GPUs (configured or discovered), who holds them.
        A host that failed within HOST_RETRY_S is not asked again (unless `rediscover`)."""
        skip = (lambda _name: None) if rediscover else self._skip_host
        skipped = {h.name for h in self.config.hosts if skip(h.name)}
        views = survey(self.config.hosts, held, self.driver, DiscoveryCache(self.root), self.config.docker.image,
                       rediscover=rediscover, skip=skip)
        for view in views:
            if view.name not in skipped:  # a skipped host keeps its back-off: it is asked again when it ends
                self._mark_host(view.name, view.problem or None)
        return views

    # --- the protocol ---------------------------------------------------------------------------------------

    def mounts(self, session_dir: Path) -> MountPoints:
        return CONTAINER_MOUNTS

    def admit(self, host: str | None, image: str | None) -> Target:
        if host:
            self.host_config(host)
        return Target(host=host or "", image=image or self.config.docker.image, host_forced=bool(host))

    def survey(self) -> None:
        # Pings and discovery, outside the placement lock: a slow host must not stall other launches.
        self._views = self.hosts()

    def preflight(self, host: str, image: str | None = None) -> list[str]:
        """What `host` lacks for a session to start there (the image, the data volume, the shared sessions folder),
        each with the command that fixes it."""
        cfg = self.host_config(host)
        # A remote host must see the sessions folder (once seen, it is not probed again by this process).
        shared = None if cfg.url.startswith("unix://") or host in self._shared_seen else self.root.resolve()
        try:
            problems = self.driver(host).missing(image or self.config.docker.image, self.config.docker.data_volume,
                                                 docker_command(cfg), shared)
        except UserError as err:
            return [str(err)]
        if shared is not None and not problems:
            self._shared_seen.add(host)
        return problems

    def anchor_stack(self, anchor: str):
        """The anchor's stack (the manifest's, from the anchor's log); None where it is no timeline record."""
        from nanogpt_tui.records import load_timeline

        timeline = load_timeline(self.config.paths.baselines_dir)
        return timeline.get(anchor).stack if anchor in timeline else None

    def env_check(self, request: PlaceRequest, host: str, anchor_stack=UNREAD):
        """The session's image on `host` against its anchor's stack (`anchor_stack`, read here when not given)."""
        from nanogpt_tui.stack import check_image_stack

        if anchor_stack is UNREAD:
            anchor_stack = self.anchor_stack(request.anchor)
        image = request.image or self.config.docker.image
        try:
            labels = self.driver(host).image_labels(image)
        except UserError as err:
            raise UserError(f"Cannot read the labels of {image} on {host} ({err}); check the Docker host.") from None
        return check_image_stack(request.anchor, anchor_stack, image, labels or {},
                                 allow_mismatch=request.allow_env_mismatch)

    def checks(self, request: PlaceRequest, host: str, anchor_stack=UNREAD, found: dict | None = None) -> list[str]:
        """The pre-start checks of `host` for this session, its image's stack against its anchor's included (the
        env check kept in `found[host]` for the placement that asks)."""
        problems = self.preflight(host, request.image)
        if not problems:
            check = self.env_check(request, host, anchor_stack)
            if found is not None:
                found[host] = check
            if check.refused:
                problems.append(check.reason)
        return problems

    def place(self, request: PlaceRequest, held: Sequence[Holding]) -> Placement:
        views = self._views or self.hosts()
        for view in views:  # who holds what, as of now
            view.held, view.sessions = holders(held, view.name), live_on(held, view.name)
        # One read of the timeline, and one env check per host asked: the chosen host's is the one it passed.
        stack, checked = self.anchor_stack(request.anchor), {}
        placement = place(views, request.gpus, forced=request.host,
                          preflight=lambda host: self.checks(request, host, stack, checked))
        if placement.host is None:
            # The one host it may run on (named, or the only one configured) does not answer: say so.
            explicit = request.host or (self.config.hosts[0].name if len(self.config.hosts) == 1 else None)
            down = next((v for v in views if v.name == explicit and not v.answers), None)
            if down is not None:
                return replace(placement, unreachable=f"Docker host {explicit} cannot be reached "
                                                      f"({down.problem.rstrip('.')})")
            return placement
        return replace(placement, env_check=checked[placement.host].to_dict())

    def start(self, ref: SessionRef, spec: LaunchSpec) -> str:
        return self.driver(spec.host).start(replace(spec, data_volume=self.config.docker.data_volume))

    def find(self, ref: SessionRef) -> str | None:
        if not ref.host:
            return None
        try:
            found = self.driver(ref.host).find_sessions().get(ref.session_id)
        except UserError:
            return None
        return found.container_id if found else None

    def state(self, ref: SessionRef) -> BackendState:
        skipped = self._skip_host(ref.host)
        if skipped:
            return BackendState(UNREACHABLE, detail=skipped)
        state = self.driver(ref.host).state(ref.handle)
        self._mark_host(ref.host, state.detail if state.status == UNREACHABLE else None)
        return state

    def stop(self, ref: SessionRef, grace_s: float) -> None:
        self.driver(ref.host).stop(ref.handle, grace_s)

    def follow_logs(self, ref: SessionRef, log_path: Path) -> LogFollower | None:
        return self.driver(ref.host).follow_logs(ref.handle, log_path)

    def extend(self, ref: SessionRef, deadline: dt.datetime) -> str | None:
        return None  # the deadline file is all there is: the runner re-reads it

    def release(self, ref: SessionRef, egress_prefix: str | None) -> None:
        self.driver(ref.host).release(ref.handle, ref.session_id, Path(ref.session_dir) / layout.INSPECT_FILE,
                                      egress_prefix)

    def hand_over(self, ref: SessionRef, launch) -> None:
        return None  # keys reach the gateway at start, on its stdin

    def pause(self, ref: SessionRef) -> list[int]:
        return self.driver(ref.host).pause(ref.handle)

    def resume(self, ref: SessionRef) -> None:
        self.driver(ref.host).resume(ref.handle)

    def retime_isolated(self, ref: SessionRef, **kwargs) -> dict:
        return self.driver(ref.host).retime_isolated(ref.handle, **kwargs)

    def close(self) -> None:
        for driver in self._drivers.values():
            driver.close()
        self._drivers.clear()
