"""Sessions on a Docker Engine host, through the docker SDK: the one module of nanogpt-tui that imports `docker`.

A session is one container labelled `nanogpt-tui.session=<id>`, with the container contract's mounts (workspace
read-write at /workspace, runner and control read-only, the shared FineWeb volume read-only at /workspace/data),
pinned GPUs through a device request, `init` as PID 1 so SIGINT reaches the runner, and the host's IPC namespace for
NCCL. Its output is copied line by line into the session's container.log, resuming after a restart without
duplicates. Bind mounts name paths on the Docker host: for a remote host (tcp://, ssh://) the sessions folder must
be at the same path there (a shared filesystem).

Every failure the user can fix (no daemon, no image, no data volume, no NVIDIA runtime) becomes a `UserError`
with one sentence; nothing here prints a traceback for those.
"""

from __future__ import annotations

import calendar
import datetime as dt
import errno
import fcntl
import json
import os
import re
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.tls
import docker.types
import requests.exceptions

from nanogpt_tui import __version__
from nanogpt_tui.backends.base import (
    IMAGE_LABEL,
    LOG_OFFSET_FILE,
    SESSION_LABEL,
    VERSION_LABEL,
    BackendState,
    ContainerInfo,
    LaunchSpec,
    forward_worker_line,
    read_worker_result,
    worker_argv,
)
from nanogpt_tui.config import TLSConfig
from nanogpt_tui.contract import layout as L
from nanogpt_tui.contract.env import is_secret_name
from nanogpt_tui.errors import UserError
from nanogpt_tui.fsutil import atomic_write_json

DEFAULT_TIMEOUT_S = 60.0
# A tcp:// host that does not answer (down, or its packets dropped) fails after this long instead of the read
# timeout: the control room's refresh of a pool must not wait a minute per call on a dead node.
CONNECT_TIMEOUT_S = 10.0
REDACTED = "<redacted>"
NO_GPU_RUNTIME = 'could not select device driver'
# The validator's retiming container runs as this user: not the agent's (the host user's), not root.
VALIDATOR_USER = "64000:64000"
VALIDATOR_LABEL = "nanogpt-tui.validator"
VALIDATOR_PYTHON = "python3"
PAUSE_ATTEMPTS = 4  # the freezer may give up on a busy node; see pause()
PAUSE_RETRY_S = 0.5
# How many recent line timestamps the log offset keeps, to drop what a re-attach reads twice.
OFFSET_WINDOW = 512
OFFSET_SCHEMA_VERSION = 1


# --- small pure helpers (tested without a daemon) --------------------------------------------------------------


PIDS_LIMIT = 8192  # torchrun, dataloader workers and compile threads stay far below; a fork bomb does not
TMPFS = {"/tmp": "rw,nosuid,nodev,size=16g,mode=1777", "/var/tmp": "rw,nosuid,nodev,size=1g,mode=1777"}


def hardening(*, shm_size: str | int | None = None, memory: str | None = None, pids_limit: int = PIDS_LIMIT,
              read_only: bool = True) -> dict[str, Any]:
    """The limits every container we start for a session gets (agent, validator, probe): not privileged, every
    capability dropped (training needs none: the processes run as an unprivileged user), no privilege gain through
    setuid files, a pids limit, memory and shm as configured, IPv6 off, and a read-only root filesystem whose only
    writable places are the bind-mounted workspace and tmpfs scratch (/tmp, /var/tmp)."""
    options: dict[str, Any] = {
        "privileged": False, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "pids_limit": pids_limit,
        "read_only": read_only, "tmpfs": dict(TMPFS) if read_only else None,
        "sysctls": {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"},
    }
    if shm_size:
        options["shm_size"] = shm_size
    if memory:
        options["mem_limit"] = memory
        options["memswap_limit"] = memory  # no swap beyond the limit
    return options


def redact_env(env: Iterable[str] | None) -> list[str]:
    """`KEY=value` entries with the values of secret-looking keys replaced by `<redacted>`."""
    out = []
    for entry in env or ():
        key, sep, _ = entry.partition("=")
        out.append(f"{key}={REDACTED}" if sep and is_secret_name(key) else entry)
    return out


def redact_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `docker inspect` output safe to write to disk: Config.Env values of secrets redacted."""
    attrs = json.loads(json.dumps(attrs))  # a deep copy that is plain JSON
    config = attrs.get("Config") or {}
    if "Env" in config:
        config["Env"] = redact_env(config["Env"])
    return attrs


_TS_PREFIX = re.compile(rb"[0-9][0-9:.TZ-]*")
_TS = re.compile(rb"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z$")


def parse_docker_timestamp(raw: bytes) -> int | None:
    """Nanoseconds since the epoch of Docker's RFC 3339 log timestamp (`2026-11-27T05:16:39.806643549Z`)."""
    m = _TS.match(raw)
    if not m:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or b"").ljust(9, b"0")
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    return seconds * 1_000_000_000 + int(frac)


def parse_docker_time(text: object) -> dt.datetime | None:
    """Docker's RFC 3339 time of a container's State (`FinishedAt`), None for its zero time or anything else."""
    if not isinstance(text, str):
        return None
    ns = parse_docker_timestamp(text.encode())
    if ns is None or ns <= 0:
        return None
    return dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc)


def format_bytes(n: int) -> str:
    """A memory limit as people write it: 96 MiB, 2 GiB, 1536 KiB."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


class LogLineParser:
    """Turns the byte chunks of a `logs(timestamps=True)` stream into `(timestamp_ns, line)` pairs.

    Chunks are not lines: a chunk may hold several lines or part of one. Every log message starts with Docker's
    timestamp and a space. A line longer than Docker's 16 KiB buffer arrives as several messages, each with its
    own timestamp prefix; those prefixes are removed too, so the line comes out whole, stamped with its first
    message's time.
    """

    _MAX_TS = 40  # "2026-11-27T05:16:39.806643549Z " is 31 bytes

    def __init__(self) -> None:
        self._pending = b""  # bytes at a message start, too few yet to hold the whole timestamp
        self._parts: list[bytes] = []  # the current line so far
        self._line_ts: int | None = None
        self._expect = "message"  # "message": a timestamp comes next; "maybe": a continuation message may start

    def _strip_timestamp(self, data: bytes, pos: int) -> tuple[int | None, int]:
        space = data.find(b" ", pos, pos + self._MAX_TS)
        if space == -1:
            return None, pos
        ts = parse_docker_timestamp(data[pos:space])
        return (ts, space + 1) if ts is not None else (None, pos)

    def feed(self, chunk: bytes) -> list[tuple[int | None, bytes]]:
        data = self._pending + chunk
        self._pending = b""
        lines: list[tuple[int | None, bytes]] = []
        pos, end = 0, len(data)
        while pos < end:
            if self._expect == "message":
                if data.find(b" ", pos, pos + self._MAX_TS) == -1 and data.find(b"\n", pos) == -1 \
                        and end - pos < self._MAX_TS:
                    self._pending = data[pos:]  # wait for the rest of the timestamp
                    return lines
                ts, pos = self._strip_timestamp(data, pos)
                if self._line_ts is None:
                    self._line_ts = ts
            elif self._expect == "maybe":
                rest = data[pos:pos + self._MAX_TS]
                if len(rest) < self._MAX_TS and _TS_PREFIX.fullmatch(rest):
                    self._pending = data[pos:]  # perhaps the start of a continuation message's timestamp
                    return lines
                ts, pos = self._strip_timestamp(data, pos)
                if self._line_ts is None:
                    self._line_ts = ts
            newline = data.find(b"\n", pos)
            if newline == -1:
                self._parts.append(data[pos:])
                self._expect = "maybe"
                return lines
            self._parts.append(data[pos:newline])
            lines.append((self._line_ts, b"".join(self._parts)))
            self._parts, self._line_ts, self._expect = [], None, "message"
            pos = newline + 1
        return lines

    def flush(self) -> list[tuple[int | None, bytes]]:
        """The last line if the stream ended without a newline (the container's final partial write)."""
        if self._pending:
            ts, pos = self._strip_timestamp(self._pending, 0)
            self._parts.append(self._pending[pos:])
            self._line_ts = self._line_ts if self._line_ts is not None else ts
            self._pending = b""
        if not self._parts:
            return []
        line = (self._line_ts, b"".join(self._parts))
        self._parts, self._line_ts, self._expect = [], None, "message"
        return [line]


class LogOffset:
    """How far a container's output has been copied: the timestamps of the last lines written and the size of the
    log after the last whole line, persisted beside container.log, so that a re-attach asks Docker only for recent
    output, skips the lines already written and first cuts off whatever follows the last good write (a line half
    written when the disk filled, or lines written just before a crash and not yet counted)."""

    def __init__(self, path: Path, container_id: str, recent: Iterable[int] = (), lines: int = 0,
                 size: int | None = None) -> None:
        self.path = Path(path)
        self.container_id = container_id
        self.recent: deque[int] = deque(recent, maxlen=OFFSET_WINDOW)
        self.lines = lines
        self.size = size  # bytes of container.log up to the end of the last line counted here; None: unknown

    @classmethod
    def load(cls, path: Path, container_id: str) -> "LogOffset":
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError, OSError):
            return cls(path, container_id)
        if not isinstance(raw, dict) or raw.get("container_id") != container_id:
            return cls(path, container_id)  # another container's offset (a restarted session): start afresh
        recent = [int(t) for t in raw.get("recent_ts_ns", []) if isinstance(t, int)]
        size = raw.get("log_bytes")
        size = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
        return cls(path, container_id, recent, int(raw.get("lines", 0)), size)

    def save(self) -> None:
        atomic_write_json(self.path, {
            "schema_version": OFFSET_SCHEMA_VERSION, "container_id": self.container_id, "lines": self.lines,
            "last_ts_ns": max(self.recent) if self.recent else None, "recent_ts_ns": list(self.recent),
            "log_bytes": self.size,
        })


def _reason(err: BaseException) -> str:
    """The short cause of a connection failure, e.g. 'No such file or directory' or 'Connection refused'."""
    seen: set[int] = set()
    stack: list[BaseException] = [err]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, requests.exceptions.ConnectTimeout):
            return "no answer: the connection timed out"
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
        stack.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        for nxt in (e.__cause__, e.__context__, getattr(e, "reason", None)):
            if isinstance(nxt, BaseException):
                stack.append(nxt)
    text = str(err).replace("Error while fetching server API version: ", "")
    text = re.sub(r"\s+", " ", text).strip().rstrip(".")
    return text[:200] or type(err).__name__


def _api_message(err: docker.errors.APIError) -> str:
    text = err.explanation if isinstance(err.explanation, str) and err.explanation else str(err)
    return re.sub(r"\s+", " ", text).strip().rstrip(".")


# --- the backend -----------------------------------------------------------------------------------------------


class DockerBackend:
    """One Docker Engine host (unix://, tcp:// with TLS, or ssh://), reached through the docker SDK."""

    def __init__(self, url: str, tls: TLSConfig | None = None, name: str = "local", *,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url
        self.tls = tls
        self.name = name
        self.timeout = timeout
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()

    # --- connection ------------------------------------------------------------------------------------------

    def _unreachable(self, err: BaseException) -> UserError:
        return UserError(f"Cannot reach the Docker daemon at {self.url} ({_reason(err)}); start it (e.g. `sudo "
                         "systemctl start docker`) or check the host's url in nanogpt-tui.toml.")

    def _tls_config(self) -> docker.tls.TLSConfig | None:
        if self.tls is None:
            return None
        tls = self.tls
        for label, path in (("ca_cert", tls.ca_cert), ("client_cert", tls.client_cert), ("client_key", tls.client_key)):
            if path and not Path(path).expanduser().is_file():
                raise UserError(f"The TLS file {path} for Docker host {self.name} (`{label}`) does not exist; fix "
                                "the host's [hosts.tls] table in nanogpt-tui.toml.")
        client_cert = None
        if tls.client_cert and tls.client_key:
            client_cert = (str(Path(tls.client_cert).expanduser()), str(Path(tls.client_key).expanduser()))
        ca = str(Path(tls.ca_cert).expanduser()) if tls.ca_cert else None
        try:
            return docker.tls.TLSConfig(client_cert=client_cert, ca_cert=ca, verify=tls.verify)
        except docker.errors.TLSParameterError as err:
            raise UserError(f"The TLS settings of Docker host {self.name} are incomplete ({err}); fix its "
                            "[hosts.tls] table in nanogpt-tui.toml.") from None

    @property
    def client(self) -> docker.DockerClient:
        """The SDK client, created on first use (creating it asks the daemon for its API version)."""
        with self._lock:
            if self._client is None:
                timeout: float | tuple[float, float] = self.timeout
                if self.url.startswith("tcp://"):
                    # requests takes (connect, read); the SDK only does arithmetic on the timeout in `stop` and
                    # `restart`, which this backend never calls.
                    timeout = (min(CONNECT_TIMEOUT_S, self.timeout), self.timeout)
                kwargs: dict[str, Any] = {"base_url": self.url, "timeout": timeout, "max_pool_size": 64}
                tls = self._tls_config()
                if tls is not None:
                    kwargs["tls"] = tls
                if self.url.startswith("ssh://"):
                    # The system `ssh` (its config, agent and known_hosts) instead of paramiko, which the SDK
                    # would otherwise need as an extra dependency.
                    kwargs["use_ssh_client"] = True
                try:
                    self._client = docker.DockerClient(**kwargs)
                except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as err:
                    raise self._unreachable(err) from None
            return self._client

    @contextmanager
    def _daemon(self):
        """Turn a lost or absent daemon into the one-sentence error; Docker's own answers (APIError) pass."""
        try:
            yield
        except docker.errors.APIError:
            raise
        except (docker.errors.DockerException, requests.exceptions.ConnectionError,
                requests.exceptions.ChunkedEncodingError, requests.exceptions.Timeout) as err:
            raise self._unreachable(err) from None

    def _refused(self, err: docker.errors.APIError, what: str) -> UserError:
        return UserError(f"Docker host {self.name} answered {what} with an error ({_api_message(err)}); check its "
                         "daemon (`docker info` there).")

    def ping(self) -> bool:
        """True when the daemon answers; a `UserError` saying how to fix it otherwise."""
        with self._daemon():
            try:
                return bool(self.client.ping())
            except docker.errors.APIError as err:
                raise self._refused(err, "a ping") from None

    def daemon_id(self) -> str:
        """The Docker daemon's own id (stable across restarts, new when the host is reinstalled)."""
        with self._daemon():
            try:
                return str(self.client.api.info().get("ID") or self.url)
            except docker.errors.APIError as err:
                raise self._refused(err, "`info`") from None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # --- sessions --------------------------------------------------------------------------------------------

    def _check_launch(self, spec: LaunchSpec) -> None:
        if not spec.image:
            raise UserError("A Docker session needs an image; set docker.image in nanogpt-tui.toml or pass --image.")
        if self.url.startswith("unix://"):
            for what, path in (("workspace", spec.workspace_dir), ("runner", spec.runner_dir),
                               ("control", spec.control_dir)):
                if not Path(path).is_dir():
                    raise UserError(f"The session's {what} folder {path} does not exist; the session was not laid "
                                    "out completely, so create it again.")
        if spec.data_volume:
            try:
                self.client.volumes.get(spec.data_volume)
            except docker.errors.NotFound:
                raise UserError(f"The data volume {spec.data_volume!r} does not exist on Docker host {self.name}; "
                                "create and fill it as image/README.md shows (or set docker.data_volume).") from None

    def missing(self, image: str | None, data_volume: str | None, docker_cmd: str,
                shared_dir: Path | None = None) -> list[str]:
        """What this host lacks for a session to start: one sentence each, with the command that fixes it.

        `shared_dir` (a remote host: the sessions folder, which bind mounts name by its path on the host) is checked
        by a short-lived container that looks for a file written there just before, once the image is there: a
        folder of the same name on the host that is not the shared one fails the check."""
        try:
            return self._missing(image, data_volume, docker_cmd, shared_dir)
        except docker.errors.APIError as err:
            return [str(self._refused(err, "the pre-start check"))]

    def _missing(self, image: str | None, data_volume: str | None, docker_cmd: str,
                 shared_dir: Path | None) -> list[str]:
        problems = []
        with self._daemon():
            has_image = bool(image) and self.has_image(image)
            if image and not has_image:
                problems.append(f"The image {image} is not on Docker host {self.name}: build it there (`{docker_cmd} "
                                f"build -f image/Dockerfile -t {image} .`) or copy it (`docker save {image} | "
                                f"{docker_cmd} load`).")
            if data_volume:
                try:
                    self.client.volumes.get(data_volume)
                except docker.errors.NotFound:
                    problems.append(f"The data volume {data_volume} does not exist on Docker host {self.name}: "
                                    f"create it (`{docker_cmd} volume create {data_volume}`) and fill it as "
                                    "image/README.md shows.")
            if has_image and shared_dir is not None:
                token = f".probe-{uuid.uuid4().hex}"
                try:
                    (Path(shared_dir) / token).write_text("nanogpt-tui shared folder probe\n")
                except OSError:
                    token = "."  # not writable here: at least the folder must be there
                try:
                    code, _ = self.run_once(image, ["test", "-e", f"/probe/{token}"], timeout=60,
                                            mounts=[docker.types.Mount("/probe", str(shared_dir), type="bind",
                                                                       read_only=True)])
                except docker.errors.APIError:  # "bind source path does not exist"
                    code = -1
                finally:
                    if token != ".":
                        (Path(shared_dir) / token).unlink(missing_ok=True)
                if code != 0:
                    problems.append(f"The sessions folder {shared_dir} is not visible on Docker host {self.name}: "
                                    "mount the shared filesystem there at the same path (bind mounts name host "
                                    "paths).")
        return problems

    def query_gpus(self, image: str, command: Sequence[str]) -> tuple[str, str]:
        """Run `command` (nvidia-smi) in a short-lived container of `image` given every GPU: ("ok", output),
        ("no-runtime", why), ("no-image", why) or ("failed", output)."""
        request = docker.types.DeviceRequest(count=-1, capabilities=[["gpu", "utility"]])
        with self._daemon():
            try:
                code, output = self.run_once(image, command, timeout=120, device_requests=[request])
            except docker.errors.ImageNotFound as err:
                return "no-image", _api_message(err)
            except docker.errors.APIError as err:
                if NO_GPU_RUNTIME in str(err):
                    return "no-runtime", _api_message(err)
                return "failed", _api_message(err)
        return ("ok" if code == 0 else "failed"), output

    # --- the validator apart from the agent ---------------------------------------------------------------------

    def pause(self, container_id: str) -> list[int]:
        """Freeze the session's container (the cgroup freezer); the node PIDs of its processes."""
        with self._daemon():
            for attempt in range(PAUSE_ATTEMPTS):
                try:
                    self.client.api.pause(container_id)
                    break
                except docker.errors.APIError as err:
                    # The cgroup freezer gives up while a process is mid-syscall it cannot interrupt (a busy
                    # node, heavy I/O): that passes, so try again a few times before refusing the submit.
                    if attempt + 1 < PAUSE_ATTEMPTS and "unable to freeze" in _api_message(err):
                        time.sleep(PAUSE_RETRY_S * (attempt + 1))
                        continue
                    raise UserError(f"Docker host {self.name} could not pause the session's container for the "
                                    f"retiming ({_api_message(err)}); submit again.") from None
            try:
                top = self.client.api.top(container_id, ps_args="-eo pid")
            except docker.errors.APIError:
                top = {}
        titles = [t.upper() for t in top.get("Titles") or []]
        column = titles.index("PID") if "PID" in titles else 0
        pids = []
        for row in top.get("Processes") or []:
            try:
                pids.append(int(row[column]))
            except (ValueError, IndexError):
                continue
        return pids

    def resume(self, container_id: str) -> None:
        with self._daemon():
            try:
                self.client.api.unpause(container_id)
            except docker.errors.APIError as err:
                if err.status_code not in (404, 409):  # gone, or not paused
                    raise UserError(f"Docker host {self.name} could not resume the session's container "
                                    f"({_api_message(err)}); run `docker unpause {container_id[:12]}` there.") \
                        from None

    def retime_isolated(self, handle: str | None, *, session_dir: Path, candidate_dir: Path, out_dir: Path,
                        runs: int, val_loss_target: float, p_value_threshold: float, timeout_s: float,
                        gpu_ids: list[int], data_dir: Path | None, agent_pids: list[int], on_line) -> dict:
        """The retiming worker in a container of its own: the session's image and GPUs, its own user, no network,
        the frozen candidate read-only, only `out_dir` writable (result.json and the run logs)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "logs").mkdir(exist_ok=True)
        uid, gid = (int(x) for x in VALIDATOR_USER.split(":"))
        for path in (out_dir, out_dir / "logs"):
            try:
                os.chown(path, uid, gid)
            except PermissionError:  # not root on this host: let the validator's user write it anyway
                os.chmod(path, 0o777)
        with self._daemon():
            session = self.client.api.inspect_container(handle) if handle else {}
        config = session.get("Config") or {}
        labels = config.get("Labels") or {}
        image = labels.get(IMAGE_LABEL) or config.get("Image")
        volume = next((m.get("Name") for m in session.get("Mounts") or [] if m.get("Destination") == L.CONTAINER_DATA
                       and m.get("Type") == "volume"), None)
        mounts = [docker.types.Mount("/candidate", str(Path(candidate_dir).absolute()), type="bind", read_only=True),
                  docker.types.Mount("/out", str(out_dir.absolute()), type="bind"),
                  # The deadline file: the retiming ends before the session's deadline (the agent is paused).
                  docker.types.Mount(L.CONTAINER_CONTROL, str((Path(session_dir) / L.CONTROL).absolute()),
                                     type="bind", read_only=True)]
        if volume:
            mounts.append(docker.types.Mount(L.CONTAINER_DATA, volume, type="volume", read_only=True))
        argv = worker_argv(VALIDATOR_PYTHON, candidate="/candidate", out="/out",
                           data=L.CONTAINER_DATA if volume else None, runs=runs, val_loss_target=val_loss_target,
                           p_value_threshold=p_value_threshold, timeout_s=timeout_s, agent_pids=agent_pids,
                           control=L.CONTAINER_CONTROL)
        device_requests = None
        if gpu_ids:
            device_requests = [docker.types.DeviceRequest(device_ids=[str(i) for i in gpu_ids],
                                                          capabilities=[["gpu", "utility", "compute"]])]
        session_label = labels.get(SESSION_LABEL, "")
        tail: deque[str] = deque(maxlen=20)
        with self._daemon():
            container = self.client.containers.create(
                # No network; "localhost" as hostname so torchrun's rendezvous resolves it (/etc/hosts has only
                # localhost when there is no network).
                image=image, command=argv, user=VALIDATOR_USER, detach=True, init=True, network_mode="none",
                hostname="localhost",
                mounts=mounts, working_dir="/tmp", environment={"HOME": "/tmp", "PYTHONUNBUFFERED": "1"},
                labels={VALIDATOR_LABEL: session_label, VERSION_LABEL: __version__},
                device_requests=device_requests,
                **hardening(shm_size=(session.get("HostConfig") or {}).get("ShmSize") or None))
            try:
                container.start()
                parser = LogLineParser()
                for chunk in self.client.api.logs(container.id, stream=True, follow=True, timestamps=True):
                    for _ts, raw in parser.feed(chunk):
                        line = raw.decode("utf-8", "replace")
                        tail.append(line)
                        forward_worker_line(line, on_line)
                code = self.wait(container.id, timeout=60)
            finally:
                self._remove_quietly(container.id)
        return read_worker_result(out_dir, -1 if code is None else code, "\n".join(tail))

    def _mounts(self, spec: LaunchSpec) -> list[docker.types.Mount]:
        mounts = [
            docker.types.Mount(L.CONTAINER_WORKSPACE, str(Path(spec.workspace_dir).absolute()), type="bind"),
            docker.types.Mount(L.CONTAINER_RUNNER, str(Path(spec.runner_dir).absolute()), type="bind",
                               read_only=True),
            docker.types.Mount(L.CONTAINER_CONTROL, str(Path(spec.control_dir).absolute()), type="bind",
                               read_only=True),
        ]
        if spec.validator_dir is not None:
            # The validator's verdicts, frozen submissions and progress: the agent reads them, never writes them.
            mounts.append(docker.types.Mount(L.CONTAINER_VALIDATOR, str(Path(spec.validator_dir).absolute()),
                                             type="bind", read_only=True))
        if spec.data_volume:
            mounts.append(docker.types.Mount(L.CONTAINER_DATA, spec.data_volume, type="volume",
                                             read_only=spec.data_read_only))
        return mounts

    def create_and_start(self, spec: LaunchSpec) -> str:
        """Create the session's container with the contract's mounts, labels, env and GPUs, start it, write its
        redacted inspect beside container.log, and return its id."""
        with self._daemon():
            self._check_launch(spec)
            labels = {**spec.labels, SESSION_LABEL: spec.session_id, IMAGE_LABEL: spec.image or "",
                      VERSION_LABEL: __version__}
            device_requests = None
            if spec.gpu_ids:
                device_requests = [docker.types.DeviceRequest(device_ids=[str(i) for i in spec.gpu_ids],
                                                              capabilities=[["gpu"]])]
            name = spec.name or f"nanogpt-tui-{spec.session_id}".lower()
            env, network = dict(spec.env), {}
            egress = self.egress(spec)
            if egress is not None:
                network = egress.attach(spec.session_id)  # the internal network and our resolver
            try:
                container = self.client.containers.create(
                    image=spec.image, command=list(spec.command), name=name, labels=labels,
                    environment=env, mounts=self._mounts(spec), working_dir=L.CONTAINER_WORKSPACE, **network,
                    # The host's IPC namespace is what NCCL wants between a session's GPU processes. Under it the
                    # host's /dev/shm is used and shm_size is moot; it is still set for a private-IPC variant.
                    init=True, ipc_mode="host", device_requests=device_requests,
                    user=spec.user or "", detach=True, stdin_open=False, tty=False,
                    **hardening(shm_size=spec.shm_size, memory=spec.memory, pids_limit=spec.pids_limit,
                                read_only=spec.read_only_root),
                )
            except docker.errors.ImageNotFound:
                raise UserError(f"The image {spec.image} is not on Docker host {self.name}; build it there (see "
                                "image/README.md) or set docker.image in nanogpt-tui.toml.") from None
            except docker.errors.APIError as err:
                if err.status_code == 409:
                    raise UserError(f"A container named {name} already exists on Docker host {self.name}; remove it "
                                    f"(`docker rm -f {name}`) or start the session again.") from None
                raise UserError(f"Docker host {self.name} refused to create the session container "
                                f"({_api_message(err)}); check the image and the session's folders.") from None
            try:
                container.start()
            except docker.errors.APIError as err:
                self._remove_quietly(container.id)
                if NO_GPU_RUNTIME in str(err):
                    raise UserError(f"This Docker host has no NVIDIA container runtime, so GPUs cannot be given to "
                                    f"the session; install the NVIDIA Container Toolkit on {self.name} or run with "
                                    "--gpus 0 / the local backend.") from None
                raise UserError(f"Docker host {self.name} could not start the session container "
                                f"({_api_message(err)}); the container was removed, fix that and start again.") \
                    from None
            if egress is not None:
                try:
                    egress.register(spec.session_id, container.id)
                except UserError:
                    self._remove_quietly(container.id)
                    raise
            self.save_inspect(container.id, Path(spec.log_path).with_name(L.INSPECT_FILE))
            return container.id

    def egress(self, spec: LaunchSpec):
        """The host's egress policy for a sandboxed session (None with `--sandbox off`)."""
        if spec.egress is None:
            return None
        from nanogpt_tui.backends.egress import Egress

        return Egress(self, image=spec.image or "", state_dir=Path(spec.egress.state_dir),
                      routes=dict(spec.egress.routes), keys=dict(spec.egress.keys), prefix=spec.egress.prefix,
                      allow=tuple(spec.egress.allow))

    def release(self, container_id: str, session_id: str, inspect_path: Path, egress_prefix: str | None) -> None:
        """Once the session has ended and its logs are copied: keep its redacted inspect, remove the container
        (its stored config is gone from the daemon's disk with it) and its internal network."""
        with self._daemon():
            try:
                self.save_inspect(container_id, inspect_path)
            except UserError:
                pass  # already removed
            self._remove_quietly(container_id)
            if egress_prefix:
                from nanogpt_tui.backends.egress import Egress

                Egress(self, image="", state_dir=inspect_path.parent, prefix=egress_prefix).detach(session_id)

    def start(self, spec: LaunchSpec) -> str:
        """The `Backend` protocol's name for `create_and_start`."""
        return self.create_and_start(spec)

    def _remove_quietly(self, container_id: str) -> None:
        try:
            self.client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass

    def state(self, container_id: str) -> BackendState:
        """running, exited (with its code), created, missing; unreachable (with the reason) when the daemon is."""
        try:
            with self._daemon():
                attrs = self.client.api.inspect_container(container_id)
        except docker.errors.NotFound:
            return BackendState("missing", detail=f"no container {container_id[:12]} on {self.name}")
        except UserError as err:
            return BackendState("unreachable", detail=str(err))
        state = attrs.get("State") or {}
        status = state.get("Status", "")
        if status in ("running", "paused", "restarting"):
            return BackendState("running", detail=status if status != "running" else "")
        if status == "created":
            return BackendState("created")
        killed_by = ""
        if state.get("OOMKilled"):
            limit = (attrs.get("HostConfig") or {}).get("Memory") or 0
            killed_by = f"out of memory (limit {format_bytes(limit)})" if limit else "out of memory"
        return BackendState("exited", exit_code=state.get("ExitCode"), detail=state.get("Error") or "",
                            ended_at=parse_docker_time(state.get("FinishedAt")), killed_by=killed_by)

    def wait(self, container_id: str, timeout: float | None = None) -> int | None:
        """The container's exit status once it ends; None if it is still running after `timeout` seconds."""
        with self._daemon():
            try:
                result = self.client.api.wait(container_id, timeout=timeout)
            except docker.errors.NotFound:
                raise UserError(f"There is no container {container_id[:12]} on Docker host {self.name}; it was "
                                "removed.") from None
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                # The SDK reports a wait that outlived its timeout as ReadTimeout (on unix sockets sometimes as
                # a ConnectionError); ask again to tell that from a daemon that went away.
                state = self.state(container_id)
                if state.status == "unreachable":
                    raise UserError(state.detail) from None
                return state.exit_code if state.status == "exited" else None
        return int(result.get("StatusCode", -1))

    def stop(self, container_id: str, grace_s: float) -> None:
        """SIGINT (the runner stops the agent cleanly), `grace_s` seconds, then SIGKILL."""
        with self._daemon():
            state = self.state(container_id)
            if state.status == "unreachable":
                raise UserError(state.detail)
            if state.status not in ("running", "created"):
                return
            try:
                self.client.api.kill(container_id, signal="SIGINT")
            except docker.errors.APIError as err:
                if err.status_code in (404, 409):  # gone, or not running any more
                    return
                raise
            if self.wait(container_id, timeout=max(grace_s, 0.1)) is not None:
                return
            try:
                self.client.api.kill(container_id, signal="SIGKILL")
            except docker.errors.APIError as err:
                if err.status_code not in (404, 409):
                    raise
            self.wait(container_id, timeout=30)

    def inspect(self, container_id: str) -> dict[str, Any]:
        """`docker inspect` of the container with secret env values redacted."""
        with self._daemon():
            try:
                return redact_attrs(self.client.api.inspect_container(container_id))
            except docker.errors.NotFound:
                raise UserError(f"There is no container {container_id[:12]} on Docker host {self.name}.") from None

    def save_inspect(self, container_id: str, path: Path) -> dict[str, Any]:
        attrs = self.inspect(container_id)
        atomic_write_json(Path(path), attrs)
        return attrs

    def remove(self, container_id: str) -> None:
        """Remove the container (stopping it if it still runs); its workspace on the host stays."""
        with self._daemon():
            self._remove_quietly(container_id)

    def find_sessions(self) -> dict[str, ContainerInfo]:
        """Every session container on this host, by session id (found by label, so after a restart too)."""
        with self._daemon():
            rows = self.client.api.containers(all=True, filters={"label": SESSION_LABEL})
        found: dict[str, ContainerInfo] = {}
        for row in rows:
            labels = row.get("Labels") or {}
            session_id = labels.get(SESSION_LABEL)
            if not session_id:
                continue
            m = re.match(r"Exited \((-?\d+)\)", row.get("Status") or "")
            created = row.get("Created")
            info = ContainerInfo(
                container_id=row["Id"], name=((row.get("Names") or ["/"])[0]).lstrip("/"), session_id=session_id,
                image=labels.get(IMAGE_LABEL) or row.get("Image", ""), status=row.get("State", ""),
                exit_code=int(m.group(1)) if m else None, labels=dict(labels),
                created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)) if isinstance(created, int) else "",
            )
            previous = found.get(session_id)
            if previous is None or info.created > previous.created:
                found[session_id] = info
        return found

    # --- logs ------------------------------------------------------------------------------------------------

    def stream_logs(self, container_id: str, log_path: Path, stop_event: threading.Event,
                    since: float | None = None, *, offset_path: Path | None = None) -> int:
        """Append the container's output (stdout and stderr) to `log_path`, line by line, until it exits or
        `stop_event` is set; return the number of lines written.

        Docker's timestamps are stripped from the lines but remembered in `logs.offset.json` beside the log, so a
        later call (after a restart of the control room) asks only for recent output and skips the lines already
        written. `since` (epoch seconds) applies only when there is no offset yet. Only whole lines are written,
        except the container's last output when it ends without a newline.
        """
        log_path = Path(log_path)
        offset = LogOffset.load(offset_path or log_path.with_name(LOG_OFFSET_FILE), container_id)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab", buffering=0) as out:
            try:
                fcntl.flock(out, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # another control room copies this log: one writer, or every line twice
            size = os.fstat(out.fileno()).st_size
            if offset.size is not None and size > offset.size:
                os.ftruncate(out.fileno(), offset.size)  # what followed the last good write, copied again below
            elif offset.size is None:
                offset.size = size
            writer = _LineWriter(out, log_path, offset)
            written = self._copy_logs(container_id, writer, offset, stop_event, since, follow=True)
            if not stop_event.is_set():
                # A followed stream can end a moment before Docker has logged the container's last output (a final
                # write without a newline, notably): once the container has stopped, read what is left.
                deadline = time.monotonic() + 10
                while not stop_event.is_set() and time.monotonic() < deadline:
                    if self.state(container_id).status != "running":
                        break
                    stop_event.wait(0.1)
                written += self._copy_logs(container_id, writer, offset, stop_event, since, follow=False)
        return written

    def _copy_logs(self, container_id: str, out: "_LineWriter", offset: LogOffset, stop_event: threading.Event,
                   since: float | None, *, follow: bool) -> int:
        """One pass over the container's log from the saved offset, writing the lines not yet written."""
        skip = Counter(offset.recent)
        floor_ns = min(offset.recent) if offset.recent else None
        if floor_ns is not None:
            since_arg: float | int | None = max(1, floor_ns // 1_000_000_000)  # whole seconds: Docker's is inclusive
        else:
            since_arg = since if since and since > 0 else None
        with self._daemon():
            try:
                stream = self.client.api.logs(container_id, stream=True, follow=follow, stdout=True, stderr=True,
                                              timestamps=True, since=since_arg)
            except docker.errors.APIError as err:
                if not follow and err.status_code in (404, 409):
                    return 0  # removed (or being removed) since the followed pass: nothing more to read
                if err.status_code == 404:
                    raise UserError(f"There is no container {container_id[:12]} on Docker host {self.name}; its "
                                    "output cannot be followed.") from None
                raise UserError(f"Docker host {self.name} cannot show the output of container "
                                f"{container_id[:12]} ({_api_message(err)}).") from None

        finished = threading.Event()

        def close_on_stop() -> None:
            while not finished.is_set():
                if stop_event.wait(0.05):
                    try:
                        stream.close()
                    except (OSError, docker.errors.DockerException, AttributeError, NameError):
                        # Already closed, or a transport the SDK cannot cancel (ssh: its close() fails with an
                        # UnboundLocalError): the copy loop stops at the next chunk instead.
                        pass
                    return

        watcher = threading.Thread(target=close_on_stop, name=f"logs-stop-{container_id[:12]}", daemon=True)
        watcher.start()
        parser = LogLineParser()
        written = 0

        def commit(lines: Sequence[tuple[int | None, bytes]]) -> None:
            nonlocal written
            batch, stamps = [], []
            for ts, line in lines:
                if ts is not None:
                    if floor_ns is not None and ts < floor_ns:
                        continue
                    if skip.get(ts):
                        skip[ts] -= 1
                        continue
                    stamps.append(ts)
                batch.append(line + b"\n")
            if batch:
                out.write(b"".join(batch))  # whole lines or nothing; then the offset that counts them
                offset.recent.extend(stamps)
                offset.lines += len(batch)
                written += len(batch)
                out.save_offset()

        try:
            for chunk in stream:
                if stop_event.is_set():
                    break  # a stream that could not be closed: write nothing more (a new follower takes over)
                commit(parser.feed(chunk))
        except LogWriteError as err:
            raise UserError(str(err)) from None
        except (OSError, ValueError, AttributeError, requests.exceptions.RequestException,
                docker.errors.DockerException) as err:
            if not stop_event.is_set():
                raise self._unreachable(err) from None
        finally:
            finished.set()
            try:
                stream.close()
            except (OSError, docker.errors.DockerException, AttributeError, NameError):
                pass
        # The last output without a newline is written only from the final pass, once the container has ended.
        if not stop_event.is_set() and not follow:
            commit(parser.flush())
        return written

    def follow_logs(self, container_id: str, log_path: Path, *, since: float | None = None,
                    on_error: Callable[[UserError], None] | None = None) -> "LogFollower":
        """Start copying the container's output into `log_path` on a thread; `close()` the follower to stop."""
        follower = LogFollower(self, container_id, Path(log_path), since=since, on_error=on_error)
        follower.start()
        return follower

    # --- images (the test image is built through these) ------------------------------------------------------

    def has_image(self, tag: str) -> bool:
        with self._daemon():
            try:
                self.client.api.inspect_image(tag)
                return True
            except docker.errors.ImageNotFound:
                return False

    def image_labels(self, tag: str) -> dict[str, str] | None:
        """The image's labels (empty when it has none), or None when this host has no such image."""
        with self._daemon():
            try:
                config = self.client.api.inspect_image(tag).get("Config") or {}
            except docker.errors.ImageNotFound:
                return None
            except docker.errors.APIError as err:
                raise self._refused(err, "reading the image's labels") from None
            return {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}

    def image_size(self, tag: str) -> int:
        with self._daemon():
            return int(self.client.api.inspect_image(tag).get("Size", 0))

    def import_image(self, tar_path: Path, repository: str, tag: str, changes: Sequence[str] = ()) -> None:
        """`docker import`: a root filesystem tarball becomes the image `repository:tag`."""
        with self._daemon():
            try:
                self.client.api.import_image(src=str(tar_path), repository=repository, tag=tag,
                                             changes=list(changes) or None)
            except docker.errors.APIError as err:
                raise UserError(f"Docker host {self.name} could not import {tar_path} ({_api_message(err)}); delete "
                                "the file so it is made again.") from None
            if not self.has_image(f"{repository}:{tag}"):
                raise UserError(f"Importing {tar_path} into Docker host {self.name} produced no image; delete the "
                                "file so it is made again.")

    def run_and_commit(self, base: str, command: Sequence[str], repository: str, tag: str, *,
                       archives: Sequence[tuple[str, Path]] = (), changes: Sequence[str] = (),
                       on_output: Callable[[str], None] | None = None) -> None:
        """Run `command` in a container of `base` after copying tar `archives` into it (`(container_dir,
        tar_path)`), then commit the result as `repository:tag` with Dockerfile `changes` (ENV, CMD, ...).

        Unlike a Dockerfile COPY, files the command deletes (wheels, caches) never reach a layer, and nothing is
        sent as a build context, so it works against remote hosts too.
        """
        with self._daemon():
            container = self.client.containers.create(base, command=list(command), detach=True)
            try:
                for directory, tar_path in archives:
                    with open(tar_path, "rb") as data:
                        if not container.put_archive(directory, data):
                            raise UserError(f"Could not copy {tar_path} into the build container on {self.name}.")
                container.start()
                output = []
                for chunk in container.logs(stream=True, follow=True):
                    text = chunk.decode("utf-8", "replace")
                    output.append(text)
                    if on_output:
                        on_output(text)
                code = int(container.wait().get("StatusCode", -1))
                if code != 0:
                    tail = "".join(output)[-2000:].strip()
                    raise UserError(f"Building {repository}:{tag} failed (`{' '.join(command)[:120]}` exited "
                                    f"{code}): {tail}")
                container.commit(repository=repository, tag=tag, changes=list(changes) or None)
            finally:
                self._remove_quietly(container.id)

    def run_once(self, image: str, command: Sequence[str], *, env: Mapping[str, str] | None = None,
                 timeout: float = 300.0, mounts: Sequence[docker.types.Mount] = (),
                 device_requests: Sequence[docker.types.DeviceRequest] = ()) -> tuple[int, str]:
        """Run a throwaway container to completion; its exit status and output (stdout and stderr)."""
        with self._daemon():
            container = self.client.containers.create(image, command=list(command), environment=dict(env or {}),
                                                      detach=True, init=True, mounts=list(mounts) or None,
                                                      device_requests=list(device_requests) or None)
            try:
                container.start()
                code = self.wait(container.id, timeout=timeout)
                if code is None:
                    self.client.api.kill(container.id, signal="SIGKILL")
                    code = self.wait(container.id, timeout=30)
                output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
            finally:
                self._remove_quietly(container.id)
        return (code if code is not None else -1), output

    def remove_images(self, repository: str, keep: Iterable[str] = ()) -> list[str]:
        """Remove the tags of `repository` not in `keep` (older test images); those still in use stay."""
        keep = set(keep)
        removed = []
        with self._daemon():
            for image in self.client.api.images(name=repository):
                for ref in image.get("RepoTags") or []:
                    if ref.startswith(repository + ":") and ref not in keep:
                        try:
                            self.client.api.remove_image(ref)
                            removed.append(ref)
                        except docker.errors.APIError:
                            pass  # a container still uses it
        return removed


class LogWriteError(Exception):
    """container.log could not take the next lines (a full disk, a read-only or vanished filesystem)."""


class _LineWriter:
    """Appends whole lines to container.log: a write that fails part-way (the disk filled) is cut back to the last
    whole line, so the file ends at a line boundary that the offset counts, and the copy resumes there."""

    def __init__(self, out, log_path: Path, offset: LogOffset) -> None:
        self.out = out
        self.log_path = log_path
        self.offset = offset

    def write(self, data: bytes) -> None:
        good = self.offset.size if self.offset.size is not None else os.fstat(self.out.fileno()).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[self.out.write(view):]
        except OSError as err:
            try:
                os.ftruncate(self.out.fileno(), good)
            except OSError:
                pass  # the next copy cuts it back from the offset's size
            raise self._failed(err) from None
        self.offset.size = good + len(data)

    def save_offset(self) -> None:
        """Count the lines written; if that cannot be saved, the next copy cuts them off and writes them again."""
        try:
            self.offset.save()
        except OSError as err:
            raise self._failed(err) from None

    def _failed(self, err: OSError) -> LogWriteError:
        what = {errno.ENOSPC: "is full", errno.EDQUOT: "is over its quota", errno.EROFS: "is read-only"}.get(
            err.errno, f"cannot be written ({err.strerror})")
        return LogWriteError(
            f"The disk holding {self.log_path} {what}: the session's output stays on its Docker host and is copied "
            f"on from the last whole line once it can be written; free space and run `nanogpt-tui sessions show "
            f"{self.log_path.parent.name}`.")


class LogFollower:
    """Copies one container's output into its container.log on a plain thread, until the container ends or
    `close()`; errors go to `on_error` (a lost daemon) instead of dying silently."""

    def __init__(self, backend: DockerBackend, container_id: str, log_path: Path, *, since: float | None = None,
                 on_error: Callable[[UserError], None] | None = None) -> None:
        self.backend = backend
        self.container_id = container_id
        self.log_path = log_path
        self.since = since
        self.on_error = on_error
        self.stop_event = threading.Event()
        self.lines_written = 0
        self.error: UserError | None = None
        self._thread = threading.Thread(target=self._run, name=f"logs-{container_id[:12]}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self.lines_written = self.backend.stream_logs(self.container_id, self.log_path, self.stop_event,
                                                          self.since)
        except UserError as err:
            self.error = err
            if self.on_error:
                self.on_error(err)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        self._thread.join(timeout)
