"""The benchmark's knobs, read from `nanogpt-tui.toml` and validated field by field."""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from nanogpt_tui.errors import UserError
from nanogpt_tui.fields import MAX_GPU_HOURS

CONFIG_ENV = "NANOGPT_TUI_CONFIG"
CONFIG_FILENAME = "nanogpt-tui.toml"
SCHEMA_VERSION = 1
JUDGE_PROVIDERS = ("anthropic", "openai", "none")
# The judge model when the config names a provider but no model.
DEFAULT_JUDGE_MODELS = {"anthropic": "claude-opus-4-6", "openai": "gpt-5.4", "none": "none"}


def repo_root() -> Path:
    """The folder that holds `human_baselines/` and `sessions/` for a source checkout."""
    return Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class BenchmarkConfig:
    anchor: str = "2025-09-03_FA3"
    target: str = "2026-01-19_BigramHashEmbedding"
    budget_gpu_hours: float = 512.0
    gpus_per_session: int = 8
    val_loss_target: float = 3.28


@dataclass(frozen=True)
class ValidationConfig:
    runs: int = 10
    p_value_threshold: float = 0.01
    run_timeout_s: float = 3600.0  # one retiming run; a run past it is stopped and counts as failed


@dataclass(frozen=True)
class JudgeConfig:
    provider: str = "anthropic"
    model: str = "claude-opus-4-6"
    timeout_s: float = 180.0
    max_retries: int = 4
    max_output_tokens: int = 4096


@dataclass(frozen=True)
class DockerConfig:
    image: str = "nanogpt-bench:latest"
    data_volume: str = "nanogpt-bench-data"
    memory: str | None = None  # a session container's memory limit ("64g"); None: no limit
    shm_size: str = "16g"
    pids_limit: int = 8192


@dataclass(frozen=True)
class SandboxConfig:
    # Destinations besides the model APIs a sandboxed session may reach, as "host:port", through the model
    # gateway's CONNECT proxy (the CLIs get HTTPS_PROXY); nothing else leaves the session's network.
    allow: tuple[str, ...] = ()


def parse_allow_entry(entry: str) -> tuple[str, int] | None:
    """("host", port) of a `[sandbox] allow` entry, None when it is not host:port (IPv6: [addr]:port)."""
    host, sep, port = entry.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c in host for c in " /@"):
        return None
    return host.lower(), int(port)


@dataclass(frozen=True)
class SlurmConfig:
    """Sessions as Slurm jobs (`--backend slurm`): where they are submitted, how long a job may run, and what runs
    on the node."""

    partition: str = ""  # "" = the cluster's default partition (`--host` names another)
    account: str = ""
    qos: str = ""
    constraint: str = ""
    # The job's --time in minutes; 0 takes it from the budget (then `extend` must raise it: raise_time_limit).
    time_limit_minutes: int = 0
    # Whether `extend` also raises the job's TimeLimit (`scontrol update`): an operator's right on most clusters.
    raise_time_limit: bool = False
    # "docker": the container contract (sandbox included) through Docker on the node; "process": a process tree
    # on the node, like the local backend (no sandbox: tests and trusted agents only).
    node_runtime: str = "docker"
    docker_url: str = "unix:///var/run/docker.sock"  # the node's Docker daemon
    python: str = ""  # the interpreter with nanogpt-tui on the nodes ("" = the one running the control room)


NODE_RUNTIMES = ("docker", "process")


@dataclass(frozen=True)
class TLSConfig:
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    verify: bool = True


@dataclass(frozen=True)
class HostConfig:
    name: str
    url: str
    gpus: tuple[int, ...] | None = None
    tls: TLSConfig | None = None


@dataclass(frozen=True)
class PathsConfig:
    sessions_dir: Path = field(default_factory=lambda: repo_root() / "sessions")
    baselines_dir: Path = field(default_factory=lambda: repo_root() / "human_baselines")
    # Shards for local-backend sessions (holding fineweb10B/); the smoke record's are synthesized here on demand.
    data_dir: Path | None = None
    # Poll the sessions folder instead of waiting for inotify events (NFS, Lustre and other shared filesystems
    # deliver none for writes made on other machines).
    poll_files: bool = False

    @property
    def local_data_dir(self) -> Path:
        return self.data_dir if self.data_dir is not None else self.sessions_dir / ".data"


@dataclass(frozen=True)
class AgentConfig:
    """Model, effort and API endpoint handed to an agent CLI; empty means the CLI's default. The endpoint
    (`base_url`) is overridden by ANTHROPIC_BASE_URL / OPENAI_BASE_URL in the environment."""

    model: str = ""
    effort: str = ""
    base_url: str = ""


DEFAULT_AGENTS = {
    "claude": AgentConfig(model="claude-opus-4-6", effort="max"),
    "claude-autoresearch": AgentConfig(model="claude-opus-4-6", effort="max"),
    "codex": AgentConfig(model="gpt-5.4", effort="xhigh"),
}


@dataclass(frozen=True)
class AlertsConfig:
    """When the control room rings the bell and shows a toast (and, with `desktop`, a desktop notification)."""

    bell: bool = True
    toast: bool = True
    desktop: bool = False  # through `notify-send`, where it is installed
    on_verdict: bool = True
    budget_fraction: float = 0.9  # a session has spent this share of its GPU-hour (or dollar) budget
    idle_gpu_minutes: float = 10.0  # a running session's GPUs all sat idle this long (0: never)
    gpu_sample_every_s: float = 5.0  # how often the host-side sampler reads each pinned GPU


def default_hosts(environ: dict[str, str] | None = None) -> tuple[HostConfig, ...]:
    """The Docker hosts when the config names none: the one `DOCKER_HOST` points at (with TLS from
    DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, as the docker CLI reads them), else this machine's socket."""
    env = os.environ if environ is None else environ
    url = env.get("DOCKER_HOST", "").strip()
    if not url:
        return (HostConfig(name="local", url="unix:///var/run/docker.sock"),)
    if not url.startswith(("unix://", "tcp://", "ssh://", "npipe://")):
        raise UserError(f"DOCKER_HOST={url!r} is not a Docker endpoint (unix://, tcp:// or ssh://); fix or unset "
                        "it, or name the host under [[hosts]] in nanogpt-tui.toml.")
    tls = None
    if env.get("DOCKER_TLS_VERIFY", "") not in ("", "0"):
        certs = Path(env.get("DOCKER_CERT_PATH") or Path.home() / ".docker")
        tls = TLSConfig(ca_cert=str(certs / "ca.pem"), client_cert=str(certs / "cert.pem"),
                        client_key=str(certs / "key.pem"), verify=True)
    if url.startswith("unix://"):
        name = "local"
    else:
        name = url.split("://", 1)[1].split("@")[-1].split(":")[0].split("/")[0] or "docker-host"
    return (HostConfig(name=name, url=url, tls=tls),)


def _default_prices() -> dict:
    from nanogpt_tui.pricing import DEFAULT_PRICES

    return dict(DEFAULT_PRICES)


@dataclass(frozen=True)
class Config:
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    docker: DockerConfig = field(default_factory=DockerConfig)
    hosts: tuple[HostConfig, ...] = field(default_factory=default_hosts)  # DOCKER_HOST, else the local socket
    paths: PathsConfig = field(default_factory=PathsConfig)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    agents: dict[str, AgentConfig] = field(default_factory=lambda: dict(DEFAULT_AGENTS))
    prices: dict = field(default_factory=_default_prices)  # model -> pricing.Price (USD per million tokens)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    source: Path | None = None  # the file it was read from, None for the built-in defaults


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The configuration file to read: explicit path, $NANOGPT_TUI_CONFIG, ./nanogpt-tui.toml, then the user's."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise UserError(f"The configuration file {path} does not exist; check the --config path.")
        return path
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise UserError(f"${CONFIG_ENV} names {path}, which does not exist; fix or unset it.")
        return path
    for candidate in (Path.cwd() / CONFIG_FILENAME, Path.home() / ".config" / "nanogpt-tui" / CONFIG_FILENAME):
        if candidate.is_file():
            return candidate
    return None


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate the configuration; built-in defaults where there is no file."""
    path = find_config_file(explicit)
    if path is None:
        return Config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{path} is not valid TOML ({err}); fix the syntax at that position.") from None
    except OSError as err:
        raise UserError(f"Cannot read {path} ({err.strerror}); check its permissions.") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; save it as UTF-8.") from None
    return parse_config(raw, path)


class _Reader:
    """Validates one TOML table, naming the file and the dotted field in every message."""

    def __init__(self, raw: dict[str, Any], prefix: str, path: Path) -> None:
        self.raw = raw
        self.prefix = prefix
        self.path = path
        self.used: set[str] = set()

    def _where(self, key: str) -> str:
        return f"{self.prefix}{key}" if self.prefix else key

    def fail(self, key: str, expected: str) -> UserError:
        value = self.raw.get(key)
        return UserError(f"In {self.path}, `{self._where(key)}` is {value!r} but must be {expected}; fix that field.")

    def get(self, key: str, default: Any, kind: str, *, minimum: float | None = None,
            maximum: float | None = None, choices: tuple[str, ...] | None = None, empty_ok: bool = False) -> Any:
        self.used.add(key)
        if key not in self.raw:
            return default
        value = self.raw[key]
        if kind == "str":
            if not isinstance(value, str) or not (value.strip() or empty_ok):
                raise self.fail(key, "a string" if empty_ok else "a non-empty string")
            if choices and value not in choices:
                raise self.fail(key, "one of " + ", ".join(choices))
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                raise self.fail(key, "true or false")
            return value
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(key, "a whole number")
        elif kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.fail(key, "a number")
            if not math.isfinite(value):  # TOML has nan and inf
                raise self.fail(key, "a finite number")
            value = float(value)
        else:  # pragma: no cover - programming error
            raise ValueError(kind)
        if minimum is not None and value < minimum:
            raise self.fail(key, f"at least {minimum:g}")
        if maximum is not None and value > maximum:
            raise self.fail(key, f"at most {maximum:g}")
        return value

    def check_unknown(self) -> None:
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            where = self._where(unknown[0])
            raise UserError(f"In {self.path}, `{where}` is not a known setting; remove it or check its spelling "
                            "(docs/nanogpt-tui.example.toml lists every setting).")


def _table(raw: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise UserError(f"In {path}, `{key}` must be a table ([{key}]); fix that section.")
    return value


def parse_config(raw: dict[str, Any], path: Path) -> Config:
    """Turn a parsed TOML document into a validated `Config`."""
    top = _Reader(raw, "", path)
    version = top.get("schema_version", SCHEMA_VERSION, "int")
    if version != SCHEMA_VERSION:
        raise top.fail("schema_version", f"{SCHEMA_VERSION} (this version of nanogpt-tui reads only that)")
    for section in ("benchmark", "validation", "judge", "docker", "paths", "hosts", "agents", "prices", "alerts", "slurm",
                    "sandbox"):
        top.used.add(section)
    top.check_unknown()

    d = BenchmarkConfig()
    r = _Reader(_table(raw, "benchmark", path), "benchmark.", path)
    benchmark = BenchmarkConfig(
        anchor=r.get("anchor", d.anchor, "str"),
        target=r.get("target", d.target, "str"),
        budget_gpu_hours=r.get("budget_gpu_hours", d.budget_gpu_hours, "float", minimum=0.001,
                                maximum=MAX_GPU_HOURS),
        gpus_per_session=r.get("gpus_per_session", d.gpus_per_session, "int", minimum=1, maximum=64),
        val_loss_target=r.get("val_loss_target", d.val_loss_target, "float", minimum=0.0),
    )
    r.check_unknown()
    if benchmark.anchor == benchmark.target:
        raise UserError(f"In {path}, `benchmark.anchor` and `benchmark.target` are both {benchmark.anchor!r}; "
                        "the target must be a later record than the anchor.")

    v = ValidationConfig()
    r = _Reader(_table(raw, "validation", path), "validation.", path)
    validation = ValidationConfig(
        runs=r.get("runs", v.runs, "int", minimum=2, maximum=1000),
        p_value_threshold=r.get("p_value_threshold", v.p_value_threshold, "float", minimum=1e-12, maximum=0.5),
        run_timeout_s=r.get("run_timeout_s", v.run_timeout_s, "float", minimum=1.0),
    )
    r.check_unknown()

    j = JudgeConfig()
    r = _Reader(_table(raw, "judge", path), "judge.", path)
    provider = r.get("provider", j.provider, "str", choices=JUDGE_PROVIDERS)
    judge = JudgeConfig(
        provider=provider,
        model=r.get("model", DEFAULT_JUDGE_MODELS[provider], "str"),
        timeout_s=r.get("timeout_s", j.timeout_s, "float", minimum=1.0),
        max_retries=r.get("max_retries", j.max_retries, "int", minimum=0, maximum=20),
        max_output_tokens=r.get("max_output_tokens", j.max_output_tokens, "int", minimum=256),
    )
    r.check_unknown()

    dk = DockerConfig()
    r = _Reader(_table(raw, "docker", path), "docker.", path)
    docker = DockerConfig(
        image=r.get("image", dk.image, "str"),
        data_volume=r.get("data_volume", dk.data_volume, "str"),
        memory=r.get("memory", dk.memory, "str"),
        shm_size=r.get("shm_size", dk.shm_size, "str"),
        pids_limit=r.get("pids_limit", dk.pids_limit, "int", minimum=64),
    )
    r.check_unknown()

    p = _Reader(_table(raw, "paths", path), "paths.", path)
    base = path.parent
    defaults = PathsConfig()
    sessions_dir = p.get("sessions_dir", None, "str")
    baselines_dir = p.get("baselines_dir", None, "str")
    data_dir = p.get("data_dir", None, "str")
    paths = PathsConfig(
        sessions_dir=(base / Path(sessions_dir).expanduser()) if sessions_dir else defaults.sessions_dir,
        baselines_dir=(base / Path(baselines_dir).expanduser()) if baselines_dir else defaults.baselines_dir,
        data_dir=(base / Path(data_dir).expanduser()) if data_dir else None,
        poll_files=p.get("poll_files", False, "bool"),
    )
    p.check_unknown()

    sl = SlurmConfig()
    r = _Reader(_table(raw, "slurm", path), "slurm.", path)
    slurm = SlurmConfig(
        partition=r.get("partition", sl.partition, "str", empty_ok=True),
        account=r.get("account", sl.account, "str", empty_ok=True), qos=r.get("qos", sl.qos, "str", empty_ok=True),
        constraint=r.get("constraint", sl.constraint, "str", empty_ok=True),
        time_limit_minutes=r.get("time_limit_minutes", sl.time_limit_minutes, "int", minimum=0),
        raise_time_limit=r.get("raise_time_limit", sl.raise_time_limit, "bool"),
        node_runtime=r.get("node_runtime", sl.node_runtime, "str", choices=NODE_RUNTIMES),
        docker_url=r.get("docker_url", sl.docker_url, "str"), python=r.get("python", sl.python, "str", empty_ok=True),
    )
    r.check_unknown()

    agents = dict(DEFAULT_AGENTS)
    raw_agents = _table(raw, "agents", path)
    for agent_name, table in raw_agents.items():
        if not isinstance(table, dict):
            raise UserError(f"In {path}, `agents.{agent_name}` must be a table ([agents.{agent_name}]) with model, "
                            "effort and base_url.")
        a = _Reader(table, f"agents.{agent_name}.", path)
        default = agents.get(agent_name, AgentConfig())
        agents[agent_name] = AgentConfig(model=a.get("model", default.model, "str"),
                                         effort=a.get("effort", default.effort, "str"),
                                         base_url=a.get("base_url", default.base_url, "str"))
        if agents[agent_name].base_url and not agents[agent_name].base_url.startswith(("http://", "https://")):
            raise a.fail("base_url", "an http:// or https:// URL")
        a.check_unknown()

    from nanogpt_tui.pricing import parse_price

    prices = _default_prices()
    for model, table in _table(raw, "prices", path).items():
        price = parse_price(table)
        if price is None:
            raise UserError(f"In {path}, `prices.\"{model}\"` must be a table with input, output and optionally "
                            "cached_input: USD per million tokens, numbers from 0.")
        prices[model] = price

    al = AlertsConfig()
    r = _Reader(_table(raw, "alerts", path), "alerts.", path)
    alerts = AlertsConfig(
        bell=r.get("bell", al.bell, "bool"), toast=r.get("toast", al.toast, "bool"),
        desktop=r.get("desktop", al.desktop, "bool"), on_verdict=r.get("on_verdict", al.on_verdict, "bool"),
        budget_fraction=r.get("budget_fraction", al.budget_fraction, "float", minimum=0.0, maximum=1.0),
        idle_gpu_minutes=r.get("idle_gpu_minutes", al.idle_gpu_minutes, "float", minimum=0.0),
        gpu_sample_every_s=r.get("gpu_sample_every_s", al.gpu_sample_every_s, "float", minimum=0.5),
    )
    r.check_unknown()

    r = _Reader(_table(raw, "sandbox", path), "sandbox.", path)
    r.used.add("allow")
    allow = r.raw.get("allow", [])
    if not isinstance(allow, list) or not all(isinstance(a, str) and parse_allow_entry(a) for a in allow):
        raise r.fail("allow", 'a list of "host:port" strings (e.g. ["pypi.org:443"])')
    sandbox = SandboxConfig(allow=tuple(a.strip() for a in allow))
    r.check_unknown()

    hosts = _parse_hosts(raw.get("hosts"), path) if "hosts" in raw else default_hosts()
    return Config(sandbox=sandbox, benchmark=benchmark, validation=validation, judge=judge, docker=docker,
                  hosts=hosts, paths=paths, agents=agents, slurm=slurm, prices=prices, alerts=alerts, source=path)


def _parse_hosts(value: Any, path: Path) -> tuple[HostConfig, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(h, dict) for h in value):
        raise UserError(f"In {path}, `hosts` must be a list of [[hosts]] tables, each with a name and a url.")
    hosts: list[HostConfig] = []
    seen: set[str] = set()
    for index, table in enumerate(value):
        r = _Reader(table, f"hosts[{index}].", path)
        name = r.get("name", None, "str")
        url = r.get("url", None, "str")
        if name is None or url is None:
            missing = "name" if name is None else "url"
            raise UserError(f"In {path}, `hosts[{index}].{missing}` is missing; every host needs a name and a url.")
        if name in seen:
            raise UserError(f"In {path}, host name {name!r} appears twice; give each host its own name.")
        seen.add(name)
        if not url.startswith(("unix://", "tcp://", "ssh://", "npipe://")):
            raise r.fail("url", "a Docker endpoint starting with unix://, tcp:// or ssh://")
        gpus = None
        r.used.add("gpus")
        if "gpus" in table:
            raw_gpus = table["gpus"]
            if (not isinstance(raw_gpus, list) or any(isinstance(g, bool) or not isinstance(g, int) or g < 0
                                                      for g in raw_gpus) or len(set(raw_gpus)) != len(raw_gpus)):
                raise r.fail("gpus", "a list of distinct GPU ids (whole numbers from 0)")
            gpus = tuple(raw_gpus)
        tls = None
        r.used.add("tls")
        if "tls" in table:
            if not isinstance(table["tls"], dict):
                raise r.fail("tls", "a table with ca_cert, client_cert, client_key and verify")
            t = _Reader(table["tls"], f"hosts[{index}].tls.", path)
            tls = TLSConfig(
                ca_cert=t.get("ca_cert", None, "str"),
                client_cert=t.get("client_cert", None, "str"),
                client_key=t.get("client_key", None, "str"),
                verify=t.get("verify", True, "bool"),
            )
            t.check_unknown()
            if (tls.client_cert is None) != (tls.client_key is None):
                raise UserError(f"In {path}, `hosts[{index}].tls` needs both client_cert and client_key, or neither.")
        r.check_unknown()
        hosts.append(HostConfig(name=name, url=url, gpus=gpus, tls=tls))
    return tuple(hosts)


def config_as_dict(config: Config) -> dict[str, Any]:
    """A plain-data view of the configuration (for reports and reproducibility blocks)."""

    def convert(obj: Any) -> Any:
        if hasattr(obj, "__dataclass_fields__"):
            return {f.name: convert(getattr(obj, f.name)) for f in fields(obj)}
        if isinstance(obj, (list, tuple)):
            return [convert(x) for x in obj]
        if isinstance(obj, dict):
            return {k: convert(v) for k, v in obj.items()}
        if isinstance(obj, Path):
            return str(obj)
        return obj

    return convert(config)


def set_benchmark_choice(path: Path, *, anchor: str, target: str, budget_gpu_hours: float | None = None) -> Path | None:
    """Write `benchmark.anchor`, `benchmark.target` (and the budget) into the config file at `path`, keeping every
    other line and comment (tomlkit edits in place); the previous file is kept beside it as
    `<name>.bak-<UTC time>`, whose path is returned (None when there was no file). The result must read back as
    a valid config, or the file is left as it was."""
    import datetime as dt

    import tomlkit

    from nanogpt_tui.fsutil import atomic_write_text

    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.is_file() else None
    try:
        document = tomlkit.parse(old) if old is not None else tomlkit.document()
    except tomlkit.exceptions.ParseError as err:
        raise UserError(f"{path} is not valid TOML ({err}); fix it before `refresh` writes to it.") from None
    if old is None:
        document["schema_version"] = 1
    benchmark = document.get("benchmark")
    if benchmark is None:
        benchmark = tomlkit.table()
        document["benchmark"] = benchmark
    benchmark["anchor"] = anchor
    benchmark["target"] = target
    if budget_gpu_hours is not None:
        benchmark["budget_gpu_hours"] = float(budget_gpu_hours)
    text = tomlkit.dumps(document)
    parse_config(tomllib.loads(text), path)  # refuses (UserError) before anything is written
    backup = None
    if old is not None:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        backup = path.with_name(f"{path.name}.bak-{stamp}")
        backup.write_text(old, encoding="utf-8")
    atomic_write_text(path, text)
    return backup
