"""The Docker backend against a real Docker Engine: the container contract, logs, stop, wait, inspect, GPUs, errors.

The tests marked `docker` need a daemon (skipped, with the reason, when none answers) and use the local test image
(`nanogpt-tui image build-test`, built here on first use: about 4 minutes cold on 2 cores, as root; seconds after).
The log parser, redaction and dead-daemon tests need no daemon.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
import uuid
from pathlib import Path

import docker
import pytest

from nanogpt_tui.backends.base import LOG_OFFSET_FILE, SESSION_LABEL, LaunchSpec
from nanogpt_tui.backends.docker_backend import (
    DockerBackend,
    LogLineParser,
    LogOffset,
    parse_docker_timestamp,
    redact_attrs,
    redact_env,
)
from nanogpt_tui.contract import layout as L
from nanogpt_tui.contract.env import contract_env
from nanogpt_tui.errors import UserError

TEST_LABEL = "nanogpt-tui.test-run"
RUN_ID = uuid.uuid4().hex[:10]
SECRET = "sk-ant-test-" + uuid.uuid4().hex
TS = b"2026-11-27T05:16:39.806643549Z "


def _daemon_url() -> str:
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def _daemon_problem() -> str | None:
    try:
        client = docker.from_env(timeout=10)
        client.ping()
        client.close()
        return None
    except Exception as err:  # noqa: BLE001 - any failure means: no daemon to test against
        return f"no Docker daemon answers at {_daemon_url()} ({type(err).__name__}: {str(err)[:120]})"


# --- without a daemon ------------------------------------------------------------------------------------------


def test_parser_joins_partial_chunks_and_long_lines_and_strips_timestamps():
    stream = (TS + b"part1 part2\n" + TS + b"x" * 50 + TS + b"y" * 10 + b"\n" + TS + b"last")
    for size in (1, 5, 31, 32, 1000):
        parser = LogLineParser()
        lines = []
        for i in range(0, len(stream), size):
            lines += parser.feed(stream[i:i + size])
        lines += parser.flush()
        texts = [line for _, line in lines]
        # A continuation message's timestamp is recognised at a chunk start: the SDK yields one frame per message
        # (test below); byte-sized chunks find it too.
        if size == 1:
            assert texts == [b"part1 part2", b"x" * 50 + b"y" * 10, b"last"]
        assert texts[0] == b"part1 part2" and texts[-1] == b"last" and len(texts) == 3
        assert all(ts == parse_docker_timestamp(TS.strip()) for ts, _ in lines)


def test_parser_frames_of_one_long_line():
    parser = LogLineParser()
    out = parser.feed(TS + b"a" * 16384) + parser.feed(TS + b"b" * 3 + b"\n") + parser.feed(TS + b"\n")
    assert [line for _, line in out] == [b"a" * 16384 + b"bbb", b""]
    assert parser.flush() == []


def test_timestamps_parse_to_nanoseconds():
    assert parse_docker_timestamp(b"1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_docker_timestamp(b"1970-01-01T00:00:01Z") == 1_000_000_000
    assert parse_docker_timestamp(b"not a time") is None


def test_secret_env_values_are_redacted():
    env = ["ANTHROPIC_API_KEY=sk-1", "OPENAI_API_KEY=sk-2", "GH_TOKEN=t", "MY_SECRET=s", "PATH=/bin", "EMPTY"]
    assert redact_env(env) == ["ANTHROPIC_API_KEY=<redacted>", "OPENAI_API_KEY=<redacted>", "GH_TOKEN=<redacted>",
                               "MY_SECRET=<redacted>", "PATH=/bin", "EMPTY"]
    attrs = {"Config": {"Env": env, "Labels": {}}, "Id": "x"}
    assert "sk-1" not in json.dumps(redact_attrs(attrs)) and attrs["Config"]["Env"][0] == "ANTHROPIC_API_KEY=sk-1"


def test_log_offset_ignores_another_containers_offset(tmp_path):
    LogOffset(tmp_path / "o.json", "aaa", [1, 2, 3], 3).save()
    assert list(LogOffset.load(tmp_path / "o.json", "aaa").recent) == [1, 2, 3]
    assert list(LogOffset.load(tmp_path / "o.json", "bbb").recent) == []


def test_dead_daemon_is_one_sentence_not_a_traceback(tmp_path):
    url = f"unix://{tmp_path}/no-such-docker.sock"
    backend = DockerBackend(url, None, "ghost")
    with pytest.raises(UserError) as err:
        backend.ping()
    assert str(err.value) == (f"Cannot reach the Docker daemon at {url} (No such file or directory); start it (e.g. "
                              "`sudo systemctl start docker`) or check the host's url in nanogpt-tui.toml.")
    state = backend.state("abc")
    assert state.status == "unreachable" and "Cannot reach the Docker daemon" in state.detail
    with pytest.raises(UserError, match="Cannot reach the Docker daemon"):
        backend.find_sessions()
    # A refused TCP port reads the same way.
    with pytest.raises(UserError, match=r"Cannot reach the Docker daemon at tcp://127\.0\.0\.1:9 \(.*refused"):
        DockerBackend("tcp://127.0.0.1:9", None, "closed").ping()


def test_a_tcp_host_that_drops_connections_fails_after_the_connect_timeout(monkeypatch):
    """A node whose packets are dropped: its SYNs go unanswered (here, a listener whose accept queue is full), and
    the call fails after CONNECT_TIMEOUT_S, not after the 30 s read timeout."""
    import socket

    from nanogpt_tui.backends import docker_backend

    monkeypatch.setattr(docker_backend, "CONNECT_TIMEOUT_S", 1.0)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):  # fill the accept queue; further SYNs are dropped by the kernel
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        time.sleep(0.2)
        backend = DockerBackend(f"tcp://127.0.0.1:{port}", None, "blackhole", timeout=30.0)
        started = time.monotonic()
        with pytest.raises(UserError) as err:
            backend.ping()
        assert str(err.value).startswith(f"Cannot reach the Docker daemon at tcp://127.0.0.1:{port} (no answer: the "
                                         "connection timed out); start it")
        assert time.monotonic() - started < 10
    finally:
        for c in fillers:
            c.close()
        server.close()


def test_dead_daemon_through_the_cli(tmp_path, monkeypatch, capsys):
    from nanogpt_tui.cli import main

    config = tmp_path / "nanogpt-tui.toml"
    config.write_text(f'schema_version = 1\n[[hosts]]\nname = "ghost"\nurl = "unix://{tmp_path}/none.sock"\n')
    monkeypatch.setenv("NANOGPT_TUI_CONFIG", str(config))
    assert main(["image", "build-test"]) == 2
    err = capsys.readouterr().err
    assert "Cannot reach the Docker daemon" in err and "Traceback" not in err


def _fetch_module():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "image" / "fetch_fineweb.py"
    spec = importlib.util.spec_from_file_location("fetch_fineweb", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_image_fetch_script_downloads_checks_and_copies_shards(tmp_path, monkeypatch, capsys):
    """image/fetch_fineweb.py (the image's FineWeb prefetch and volume seeding) against a fake hub on 127.0.0.1."""
    import numpy as np

    from nanogpt_tui.shards import write_shard
    from tests.fakes.static_server import StaticServer

    fetch = _fetch_module()
    src = tmp_path / "src"
    for i, name in enumerate(fetch.shard_names(2)):
        write_shard(src / name, np.arange(1000 + i, dtype=np.uint16))
    files = {f"/datasets/kjj0/fineweb10B-gpt2/resolve/main/{p.name}": p.read_bytes() for p in src.iterdir()}
    out = tmp_path / "volume" / "fineweb10B"
    with StaticServer(files) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert fetch.main(["--out", str(out), "--train-shards", "2"]) == 0
        assert sorted(p.name for p in out.iterdir()) == ["fineweb_train_000001.bin", "fineweb_train_000002.bin",
                                                          "fineweb_val_000000.bin"]
        assert all((out / p.name).read_bytes() == p.read_bytes() for p in src.iterdir())
        asked = len(hub.requests)
        assert fetch.main(["--out", str(out), "--train-shards", "2"]) == 0  # nothing missing: nothing fetched
        assert len(hub.requests) == asked
        # A hub answering with something that is not a shard writes nothing for it.
        hub.files["/datasets/kjj0/fineweb10B-gpt2/resolve/main/fineweb_train_000003.bin"] = b"<html>" * 300
        with pytest.raises(SystemExit, match="is not a valid shard .magic number"):
            fetch.main(["--out", str(out), "--train-shards", "3"])
        assert not list(out.glob("*000003*")) and not list(out.glob(".*part"))
    copy = tmp_path / "copy"
    assert fetch.main(["--out", str(copy), "--train-shards", "2", "--from", str(out)]) == 0
    assert fetch.main(["--out", str(copy), "--train-shards", "2", "--check"]) == 0
    (copy / "fineweb_train_000002.bin").write_bytes((copy / "fineweb_train_000002.bin").read_bytes()[:-2])
    assert fetch.main(["--out", str(copy), "--train-shards", "2", "--check"]) == 1
    assert "header promises" in capsys.readouterr().err


# --- against a daemon ------------------------------------------------------------------------------------------

docker_only = [pytest.mark.docker, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def backend():
    problem = _daemon_problem()
    if problem:
        pytest.skip(problem)
    b = DockerBackend(_daemon_url(), None, "local")
    yield b
    client = docker.from_env()
    for c in client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={RUN_ID}"}):
        c.remove(force=True)
    for v in client.volumes.list(filters={"label": f"{TEST_LABEL}={RUN_ID}"}):
        v.remove(force=True)
    b.close()


@pytest.fixture(scope="module")
def image(backend):
    from nanogpt_tui.backends.testimage import build_test_image

    result = build_test_image(backend, progress=lambda line: print(f"[test image] {line}", flush=True))
    print(f"[test image] {result.ref}: built {result.built or 'nothing'} in {result.seconds} s "
          f"{result.step_seconds}; {result.size_bytes / 1e6:.0f} MB")
    return result.ref


@pytest.fixture(scope="module")
def data_volume(backend):
    client = docker.from_env()
    name = f"nanogpt-tui-test-data-{RUN_ID}"
    client.volumes.create(name, labels={TEST_LABEL: RUN_ID})
    return name


def session_spec(tmp_path: Path, image: str, code: str, *, env: dict | None = None, gpu_ids=(),
                 data_volume: str | None = None, session_id: str | None = None) -> LaunchSpec:
    session_id = session_id or f"t-{uuid.uuid4().hex[:8]}"
    d = tmp_path / "sessions" / session_id
    ws, runner, control = d / L.WORKSPACE, d / L.RUNNER, d / L.CONTROL
    for sub in L.WORKSPACE_DIRS:
        (ws / sub).mkdir(parents=True)
    (runner / "agent").mkdir(parents=True)
    (runner / "agent" / "run.sh").write_text("echo agent\n")
    control.mkdir()
    (control / L.DEADLINE_FILE).write_text("{}\n")
    contract = contract_env(workspace=L.CONTAINER_WORKSPACE, runner=L.CONTAINER_RUNNER,
                              control=L.CONTAINER_CONTROL, run_id=session_id, agent="test", strategy="none",
                              session_hours=1, anchor="smoke", target=None)
    return LaunchSpec(
        session_id=session_id, image=image, command=["python3", "-u", "-c", code],
        env={**contract, **(env or {})}, workspace_dir=ws, runner_dir=runner, control_dir=control,
        log_path=d / L.CONTAINER_LOG, data_volume=data_volume, gpu_ids=list(gpu_ids),
        labels={TEST_LABEL: RUN_ID}, shm_size="256m", name=f"nanogpt-tui-test-{session_id}",
    )


def follow_to_end(backend: DockerBackend, container_id: str, log_path: Path, timeout: float = 60) -> int:
    stop = threading.Event()
    result: dict = {}
    t = threading.Thread(target=lambda: result.setdefault("n", backend.stream_logs(container_id, log_path, stop)))
    t.start()
    t.join(timeout)
    if t.is_alive():
        stop.set()
        t.join(10)
        raise AssertionError("the log stream did not end with the container")
    return result["n"]


CONTRACT_CODE = r'''
import os, sys, time
def can_write(path):
    try:
        open(path, "w").write("x")
        return "rw"
    except OSError as err:
        return "ro" if err.errno == 30 else f"error {err.errno}"
print("cwd", os.getcwd())
print("mounts", can_write("/workspace/probe"), can_write("/runner/probe"), can_write("/control/probe"),
      can_write("/workspace/data/probe"))
print("runner file", open("/runner/agent/run.sh").read().strip())
print("env", os.environ["BENCHMARK_WORKSPACE"], os.environ["BENCHMARK_RUN_ID"], os.environ["HOME"])
print("key set", bool(os.environ.get("ANTHROPIC_API_KEY")))
print("pid1", open("/proc/1/cmdline").read().split("\0")[0])
sys.stdout.write("part1 "); sys.stdout.flush(); time.sleep(0.3)
sys.stdout.write("part2\n"); sys.stdout.flush()
print("to stderr", file=sys.stderr, flush=True)
sys.stdout.write("L" * 20000 + "\n"); sys.stdout.flush()
sys.stdout.write("tail-no-newline"); sys.stdout.flush()
sys.exit(7)
'''


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_package_and_submit_are_installed_in_the_test_image(backend, image):
    code, out = backend.run_once(image, ["python3", "-m", "nanogpt_tui", "--version"])
    assert (code, out.strip()) == (0, "nanogpt-tui 0.1.0")
    code, out = backend.run_once(image, ["submit", "--help"])
    assert code == 0 and "usage: nanogpt-tui submit" in out
    code, out = backend.run_once(image, ["python3", "-c", "import torch, scipy, numpy; print(torch.__version__)"])
    assert code == 0 and out.strip().startswith("2.13.0")
    # The baked-in config finds the record timeline, so `submit` can score speedups as % of human progress.
    code, out = backend.run_once(image, ["python3", "-m", "nanogpt_tui", "records", "list"])
    assert code == 0 and "2025-09-03_FA3" in out
    code, out = backend.run_once(image, ["python3", "-c", "import nanogpt_tui.sessions.runner"])
    assert code == 0, out


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_session_container_contract_logs_exit_code_and_redacted_inspect(backend, image, data_volume, tmp_path):
    spec = session_spec(tmp_path, image, CONTRACT_CODE, env={"ANTHROPIC_API_KEY": SECRET},
                        data_volume=data_volume)
    t0 = time.monotonic()
    cid = backend.create_and_start(spec)
    started_s = time.monotonic() - t0
    print(f"[figures] create+start: {started_s * 1000:.0f} ms")
    follow_to_end(backend, cid, spec.log_path)
    assert backend.wait(cid, timeout=30) == 7
    assert backend.state(cid).status == "exited" and backend.state(cid).exit_code == 7

    lines = spec.log_path.read_text().split("\n")
    assert lines[-1] == ""  # every line ends with a newline, the last partial one too
    lines = lines[:-1]
    assert "cwd /workspace" in lines
    assert "mounts rw ro ro ro" in lines  # workspace rw; runner, control and the shared data read-only
    assert "runner file echo agent" in lines
    assert f"env /workspace {spec.session_id} /workspace/home" in lines
    assert "key set True" in lines
    assert "pid1 /sbin/docker-init" in lines  # init=True: SIGINT reaches the runner through docker-init
    assert "part1 part2" in lines and "to stderr" in lines
    assert "L" * 20000 in lines  # a line longer than Docker's 16 KiB buffer comes back whole
    assert lines[-1] == "tail-no-newline"
    assert not any(line.startswith("20") and "Z " in line[:40] for line in lines)  # no Docker timestamps left
    assert (spec.workspace_dir / "probe").read_text() == "x"

    saved = spec.log_path.with_name(L.INSPECT_FILE).read_text()
    assert SECRET not in saved and "ANTHROPIC_API_KEY=<redacted>" in saved
    attrs = backend.inspect(cid)
    assert SECRET not in json.dumps(attrs)
    host = attrs["HostConfig"]
    assert host["Init"] is True and host["IpcMode"] == "host" and host["ShmSize"] == 256 * 1024 * 1024
    assert attrs["Config"]["WorkingDir"] == "/workspace"
    labels = attrs["Config"]["Labels"]
    assert labels[SESSION_LABEL] == spec.session_id and labels["nanogpt-tui.image"] == image
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts["/workspace"]["RW"] and not mounts["/runner"]["RW"] and not mounts["/control"]["RW"]
    assert mounts["/workspace/data"]["Type"] == "volume" and mounts["/workspace/data"]["Name"] == data_volume

    # A control room restarted later finds the session again by its label.
    found = DockerBackend(_daemon_url(), None, "local").find_sessions()
    assert found[spec.session_id].container_id == cid and found[spec.session_id].exit_code == 7
    backend.remove(cid)
    assert backend.state(cid).status == "missing"


COUNTER_CODE = r'''
import time
for i in range(60):
    print(f"line {i:03d}", flush=True)
    time.sleep(0.05)
'''


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_reattach_resumes_without_duplicates(backend, image, tmp_path):
    spec = session_spec(tmp_path, image, COUNTER_CODE)
    cid = backend.create_and_start(spec)
    stop = threading.Event()
    t = threading.Thread(target=backend.stream_logs, args=(cid, spec.log_path, stop))
    t.start()
    time.sleep(1.2)
    stop.set()  # the control room quits mid-run ...
    t.join(10)
    assert not t.is_alive(), "closing the stream from another thread did not stop the reader"
    first = spec.log_path.read_text().splitlines()
    assert 5 < len(first) < 60
    offset = json.loads(spec.log_path.with_name(LOG_OFFSET_FILE).read_text())
    assert offset["container_id"] == cid and offset["lines"] == len(first)
    time.sleep(0.5)
    follow_to_end(backend, cid, spec.log_path)  # ... and comes back: it resumes where it stopped
    follow_to_end(backend, cid, spec.log_path)  # after the end, a re-attach adds nothing
    assert spec.log_path.read_text().splitlines() == [f"line {i:03d}" for i in range(60)]
    assert backend.wait(cid, timeout=30) == 0


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_stop_sends_sigint_then_sigkill(backend, image, tmp_path):
    polite = session_spec(tmp_path, image, (
        "import signal, sys, time\n"
        "def on_int(*_):\n    print('got SIGINT', flush=True); sys.exit(130)\n"
        "signal.signal(signal.SIGINT, on_int)\nprint('ready', flush=True)\ntime.sleep(600)\n"))
    stubborn = session_spec(tmp_path, image, (
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('ready', flush=True)\n"
        "time.sleep(600)\n"))
    ids = [backend.create_and_start(polite), backend.create_and_start(stubborn)]
    for cid, spec in zip(ids, (polite, stubborn)):
        deadline = time.monotonic() + 30
        while "ready" not in backend.client.api.logs(cid).decode() and time.monotonic() < deadline:
            time.sleep(0.1)
    assert backend.wait(ids[0], timeout=0.5) is None  # still running: a wait that times out says so
    t0 = time.monotonic()
    backend.stop(ids[0], grace_s=20)
    assert time.monotonic() - t0 < 10 and backend.wait(ids[0], timeout=5) == 130
    follow_to_end(backend, ids[0], polite.log_path)
    assert polite.log_path.read_text().splitlines() == ["ready", "got SIGINT"]
    t0 = time.monotonic()
    backend.stop(ids[1], grace_s=1.0)
    took = time.monotonic() - t0
    assert 0.9 < took < 15 and backend.state(ids[1]).exit_code == 137  # SIGKILL after the grace period
    backend.stop(ids[1], grace_s=1.0)  # stopping a stopped container is a no-op


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_gpu_request_without_nvidia_runtime_is_explained_and_cleaned_up(backend, image, tmp_path):
    if "nvidia" in (docker.from_env().info().get("Runtimes") or {}):
        pytest.skip("this Docker host has an NVIDIA runtime, so a GPU request would succeed")
    spec = session_spec(tmp_path, image, "print('never')", gpu_ids=[0, 1])
    with pytest.raises(UserError) as err:
        backend.create_and_start(spec)
    assert str(err.value) == ("This Docker host has no NVIDIA container runtime, so GPUs cannot be given to the "
                              "session; install the NVIDIA Container Toolkit on local or run with --gpus 0 / the "
                              "local backend.")
    assert spec.session_id not in backend.find_sessions()
    assert not docker.from_env().containers.list(all=True, filters={"name": spec.name})


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_gpu_discovery_without_nvidia_runtime_finds_none_and_is_cached(backend, image, tmp_path):
    from nanogpt_tui.config import HostConfig
    from nanogpt_tui.backends import pool as P

    if "nvidia" in (docker.from_env().info().get("Runtimes") or {}):
        pytest.skip("this Docker host has an NVIDIA runtime, so discovery would find its GPUs")
    cache = P.DiscoveryCache(tmp_path)
    host = HostConfig("local", _daemon_url())
    before = {c.id for c in docker.from_env().containers.list(all=True)}
    found = P.discover(backend, host, image, cache)
    assert {c.id for c in docker.from_env().containers.list(all=True)} <= before  # the probe left nothing behind
    assert found == P.HostGpus((), "none", "no NVIDIA container runtime")
    # Cached under the daemon's id: asked again, no container runs (a missing image would otherwise show).
    assert P.discover(backend, host, "nanogpt-tui-test:does-not-exist", cache) == found
    missing = P.discover(backend, host, "nanogpt-tui-test:does-not-exist", cache, force=True)
    assert missing.ids is None and "is missing" in missing.detail


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_preflight_names_what_is_missing_with_the_command_that_fixes_it(backend, image, data_volume, tmp_path):
    assert backend.missing(image, data_volume, "docker") == []
    problems = backend.missing("nanogpt-tui-test:does-not-exist", f"no-such-volume-{RUN_ID}", "docker -H x")
    assert problems == [
        "The image nanogpt-tui-test:does-not-exist is not on Docker host local: build it there (`docker -H x build "
        "-f image/Dockerfile -t nanogpt-tui-test:does-not-exist .`) or copy it (`docker save "
        "nanogpt-tui-test:does-not-exist | docker -H x load`).",
        f"The data volume no-such-volume-{RUN_ID} does not exist on Docker host local: create it (`docker -H x volume "
        f"create no-such-volume-{RUN_ID}`) and fill it as image/README.md shows."]
    # A remote host must see the sessions folder at the same path (checked by a short-lived container).
    assert backend.missing(image, None, "docker", shared_dir=Path("/nonexistent-shared-folder")) == [
        "The sessions folder /nonexistent-shared-folder is not visible on Docker host local: mount the shared "
        "filesystem there at the same path (bind mounts name host paths)."]
    assert backend.missing(image, None, "docker", shared_dir=tmp_path) == []
    assert list(tmp_path.iterdir()) == []  # the probe's token file is gone again


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_missing_image_volume_and_name_clash_are_explained(backend, image, data_volume, tmp_path):
    with pytest.raises(UserError, match=r"The image nanogpt-tui-test:does-not-exist is not on Docker host local"):
        backend.create_and_start(session_spec(tmp_path, "nanogpt-tui-test:does-not-exist", "pass"))
    with pytest.raises(UserError, match=r"The data volume 'no-such-volume-.*' does not exist on Docker host local"):
        backend.create_and_start(session_spec(tmp_path, image, "pass", data_volume=f"no-such-volume-{RUN_ID}"))
    spec = session_spec(tmp_path, image, "import time; time.sleep(60)")
    cid = backend.create_and_start(spec)
    again = session_spec(tmp_path, image, "pass")
    again.name = spec.name
    with pytest.raises(UserError, match=r"A container named .* already exists on Docker host local"):
        backend.create_and_start(again)
    backend.remove(cid)


LATENCY_CODE = r'''
import time
time.sleep(0.5)
for i in range(40):
    print(f"{time.time():.6f}", flush=True)
    time.sleep(0.05)
'''


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_log_latency_from_container_print_to_container_log(backend, image, tmp_path):
    spec = session_spec(tmp_path, image, LATENCY_CODE)
    cid = backend.create_and_start(spec)
    follower = backend.follow_logs(cid, spec.log_path)
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while len(seen) < 40 and time.monotonic() < deadline:
        text = spec.log_path.read_text() if spec.log_path.exists() else ""
        for line in text.splitlines():
            seen.setdefault(line, time.time())
        time.sleep(0.002)
    follower.join(30)
    assert not follower.running and follower.error is None and follower.lines_written == 40
    latencies = sorted(seen[line] - float(line) for line in seen)
    median, worst = statistics.median(latencies), latencies[-1]
    print(f"[figures] log latency print -> container.log: median {median * 1000:.1f} ms, "
          f"p90 {latencies[int(0.9 * len(latencies))] * 1000:.1f} ms, max {worst * 1000:.1f} ms")
    assert median < 0.5 and worst < 2.0
    backend.remove(cid)
