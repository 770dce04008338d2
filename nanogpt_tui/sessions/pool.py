"""The pool of Docker hosts sessions run on: whether each host answers, which GPUs it offers (from the config, or
discovered once by a short-lived container running `nvidia-smi`), which live sessions hold them, and where a new
session goes.

Placement is best fit: of the hosts that answer and have enough free GPUs, the one left with the fewest idle GPUs
(config order breaks ties), so an 8-GPU session still finds a whole node while smaller ones fill partly used
nodes. GPU ids are pinned per host and never given to two live sessions of the same host; an `unreachable`
session keeps its GPUs (it recovers when its host returns). A host that offers no GPUs (no NVIDIA runtime, none
listed) takes sessions only when it is named with `--host`, or when no host of the pool offers any: then sessions
run unpinned and their budget counts the GPUs they asked for.

The survey of the hosts (`survey`) is the only part that talks to Docker, through the backend objects it is given;
`place` is pure.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nanogpt_tui.config import HostConfig
from nanogpt_tui.errors import UserError
from nanogpt_tui.fsutil import atomic_write_json
from nanogpt_tui.sessions import model as M

# What the discovery container runs; the NVIDIA Container Toolkit puts nvidia-smi into any container given the
# `utility` capability.
GPU_QUERY = ("nvidia-smi", "--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits")
DISCOVERY_SCHEMA_VERSION = 1
DEFAULT_SOCKET = "unix:///var/run/docker.sock"


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


@dataclass(frozen=True)
class Placement:
    """Where a session goes, or why it waits."""

    host: str | None  # None: nothing fits now (see reason)
    gpu_ids: list[int]
    reason: str
    blocking: bool = False  # waiting alone will not help: the user must act (create an image or a volume)
    impossible: bool = False  # it can never fit (more GPUs than any host has)


def holders(sessions: Iterable[M.Session], host: str, exclude: str | None = None) -> dict[int, str]:
    """GPU id -> session id for the live Docker sessions on `host` (an unreachable one still holds its GPUs)."""
    held: dict[int, str] = {}
    for s in sessions:
        if s.backend == "docker" and s.host == host and s.id != exclude and s.status in (M.RUNNING, M.UNREACHABLE):
            for gpu in s.gpu_ids:
                held[gpu] = s.id
    return held


def live_on(sessions: Iterable[M.Session], host: str) -> list[str]:
    return [s.id for s in sessions if s.backend == "docker" and s.host == host and s.status in (M.RUNNING,
                                                                                                M.UNREACHABLE)]


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
            "at": M.iso(dt.datetime.now(dt.timezone.utc)), "detail": found.detail,
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


def survey(hosts: Sequence[HostConfig], sessions: Sequence[M.Session], backend_for: Callable[[str], object],
           cache: DiscoveryCache, image: str, *, rediscover: bool = False,
           skip: Callable[[str], str | None] = lambda _name: None) -> list[HostView]:
    """Every host of the pool: does it answer, its GPUs, who holds them. `skip(name)` returns a reason to treat a
    host as not answering without asking it again (a host that just failed)."""
    views = []
    for host in hosts:
        held, live = holders(sessions, host.name), live_on(sessions, host.name)
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
        views.append(HostView(host.name, host.url, not problem, problem, gpus, held, live))
    return views
