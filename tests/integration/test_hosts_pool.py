"""A pool of two Docker hosts on this machine: two private `dockerd` daemons (their own sockets, data roots and
bridges, `--live-restore` as a GPU node should run) with the test double of NVIDIA's prestart hook on their PATH,
so GPU ids from the config are pinned by real device requests without GPUs. Sessions are placed on both by free
GPUs, killed and extended on each; one daemon is stopped mid-session (its session goes `unreachable` and keeps its
GPUs) and started again (the session recovers and its log resumes with no line lost or doubled).

Skipped, with the reason, only where a second daemon cannot be started (not root, no dockerd, no `ip`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import docker
import pytest

from nanogpt_tui.backends import pool as pool_module
from nanogpt_tui.backends.docker_backend import DockerBackend
from nanogpt_tui.backends.testimage import PATH, build_package_wheel, make_rootfs_tarball, plan
from nanogpt_tui.config import load_config
from nanogpt_tui.contract import layout as L
from nanogpt_tui.contract.deadline import read_deadline
from nanogpt_tui.errors import UserError
from nanogpt_tui.sessions import manager as manager_module
from nanogpt_tui.sessions.manager import LaunchRequest, SessionManager
from tests.conftest import REPO, smoke_baselines

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

FAKE_HOOK_DIR = REPO / "tests" / "fakes" / "nvidia-hook"
IMAGE = "nanogpt-tui-pool-runner:test"
BASE_REPOSITORY = "nanogpt-tui-pool-base"
VOLUME = "nanogpt-tui-pool-data"
LINES = 20000  # the numbered stream the replay agent plays, 20 lines a second: longer than the test


class Daemon:
    """A private dockerd on this machine, as one host of the pool."""

    def __init__(self, name: str, index: int, *, live_restore: bool = True) -> None:
        self.name = name
        self.live_restore = live_restore  # restarting the daemon keeps its containers running (or stops them)
        self.dir = Path(tempfile.mkdtemp(prefix=f"ngt-{name}-", dir="/tmp"))
        self.url = f"unix://{self.dir / 'docker.sock'}"
        # Its own bridge: a daemon started with --bridge=none would delete the main daemon's docker0.
        self.bridge = f"ngt{os.getpid() % 100000}{name}"[:15]
        self.address = f"10.{200 + index}.{os.getpid() % 250}.1/24"
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "dockerd.log"

    def create_bridge(self) -> None:
        subprocess.run(["ip", "link", "add", "name", self.bridge, "type", "bridge"], check=True, capture_output=True)
        subprocess.run(["ip", "addr", "add", self.address, "dev", self.bridge], check=True, capture_output=True)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True, capture_output=True)

    def start(self) -> None:
        env = {**os.environ, "PATH": f"{FAKE_HOOK_DIR}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ["dockerd", "--data-root", str(self.dir / "root"), "--exec-root", str(self.dir / "exec"),
                 "--pidfile", str(self.dir / "docker.pid"), "-H", self.url, "--bridge", self.bridge,
                 "--iptables=false", "--ip6tables=false", *(["--live-restore"] if self.live_restore else [])],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                docker.DockerClient(base_url=self.url, timeout=5).ping()
                return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.3)
        raise RuntimeError(f"dockerd for host {self.name} did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)
        self.proc = None

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, timeout=60)

    def cleanup(self) -> None:
        try:
            if self.proc is not None:
                client = self.client()
                for container in client.containers.list(all=True):
                    container.remove(force=True)
        except Exception as err:  # noqa: BLE001 - best effort; the daemon may be stopped
            print(f"cleanup of host {self.name}: {err}")
        self.stop()
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        # dockerd bind-mounts its data root onto itself (a restarted one may leave that mount behind).
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(self.dir))]
        for mount in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def _second_daemon_problem() -> str | None:
    if os.geteuid() != 0:
        return "a second dockerd needs root"
    for tool in ("dockerd", "ip"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed, so a second Docker daemon cannot be started"
    return None


def _runner_image(backend: DockerBackend, wheel: Path) -> None:
    """The session image's contract minus torch: bookworm's Python with this package, enough for the runner and
    the replay agent (the full test image is 1.5 GB to copy into each daemon)."""
    p = plan(REPO)
    base = f"{BASE_REPOSITORY}:{p.base_tag}"
    if not backend.has_image(base):
        backend.import_image(make_rootfs_tarball(p, print), BASE_REPOSITORY, p.base_tag,
                             changes=[f"ENV PATH={PATH}", "ENV LANG=C.UTF-8"])
    fd, name = tempfile.mkstemp(suffix=".tar")
    os.close(fd)
    with tarfile.open(name, "w") as tar:
        tar.add(str(wheel), arcname=f"pkg/{wheel.name}")
    try:
        backend.run_and_commit(
            base, ["/bin/sh", "-c", "set -e; python3 -m venv /opt/venv; /opt/venv/bin/pip install --no-cache-dir "
                   f"--no-index --no-deps /tmp/pkg/{wheel.name}; rm -rf /tmp/pkg"],
            *IMAGE.split(":"), archives=[("/tmp", Path(name))],
            changes=[f"ENV PATH={PATH}", "ENV LANG=C.UTF-8", "ENV PYTHONUNBUFFERED=1", "WORKDIR /workspace"])
    finally:
        os.unlink(name)


@pytest.fixture(scope="module")
def hosts():
    problem = _second_daemon_problem()
    if problem:
        pytest.skip(problem)
    daemons = [Daemon("a", 1), Daemon("b", 2)]
    work = Path(tempfile.mkdtemp(prefix="ngt-wheel-"))
    try:
        wheel = build_package_wheel(REPO, work / "pkg")
        for d in daemons:
            d.create_bridge()
            d.start()
            backend = DockerBackend(d.url, None, d.name)
            _runner_image(backend, wheel)
            backend.close()
        daemons[0].client().volumes.create(VOLUME)  # host b gets its volume during the test
        yield daemons
    finally:
        for d in daemons:
            d.cleanup()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def config_path(hosts, tmp_path, monkeypatch):
    a, b = hosts
    smoke_baselines(tmp_path / "human_baselines")
    path = tmp_path / "nanogpt-tui.toml"
    path.write_text(f'schema_version = 1\n[paths]\nbaselines_dir = "human_baselines"\nsessions_dir = "sessions"\n'
                    f'[docker]\nimage = "{IMAGE}"\ndata_volume = "{VOLUME}"\n'
                    f'[[hosts]]\nname = "a"\nurl = "{a.url}"\ngpus = [0, 1, 2, 3]\n'
                    f'[[hosts]]\nname = "b"\nurl = "{b.url}"\ngpus = [0, 1]\n')
    monkeypatch.setenv("NANOGPT_TUI_CONFIG", str(path))
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    # Ask a pending session's placement and a failed host again at once (the defaults wait a few seconds).
    monkeypatch.setattr(manager_module, "PLACEMENT_RETRY_S", 0.0)
    monkeypatch.setattr(pool_module, "HOST_RETRY_S", 0.0)
    return path


def _create(manager: SessionManager, gpus: int, host: str | None = None):
    """A replay-agent session that prints a numbered line every 50 ms until killed. Unsandboxed: the pool's runner
    image holds our wheel without its dependencies, so it cannot run the model gateway (test_sandbox_docker and
    test_egress_docker test the sandbox on the full test image); what is tested here is placement."""
    session = manager.create(LaunchRequest(
        agent="replay", anchor="smoke", budget_gpu_hours=4.0, gpus=gpus, backend="docker", host=host, sandbox="off",
        extra_env=(("BENCHMARK_REPLAY_FILE", "/workspace/numbered.jsonl"), ("BENCHMARK_REPLAY_SPEED", "10"))))
    lines = "".join(json.dumps({"type": "tick", "n": n}) + "\n" for n in range(LINES))
    (manager.session_dir(session.id) / L.WORKSPACE / "numbered.jsonl").write_text(lines)
    return session


def _numbers(manager: SessionManager, session_id: str) -> list[int]:
    out = []
    for line in (manager.session_dir(session_id) / L.CONTAINER_LOG).read_text(errors="replace").splitlines():
        if line.startswith('{"type": "tick"'):
            out.append(json.loads(line)["n"])
    return out


def _wait_for_lines(manager: SessionManager, session_id: str, at_least: int, timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        manager.refresh(manager.get(session_id))  # keeps the log copy going
        numbers = _numbers(manager, session_id)
        if len(numbers) >= at_least or time.monotonic() > deadline:
            return numbers
        time.sleep(0.2)


def _init_env(daemon: Daemon, container_id: str) -> str:
    """The environment of the container's first process (where dockerd's GPU driver puts the pinned ids)."""
    result = daemon.client().containers.get(container_id).exec_run(["cat", "/proc/1/environ"])
    return result.output.decode(errors="replace")


def test_a_pool_of_two_hosts(hosts, config_path):
    a, b = hosts
    daemon = {"a": a, "b": b}
    manager = SessionManager(load_config(config_path))
    started = []
    try:
        # Host b lacks the data volume: a session named for it waits, with the command that creates it.
        s0 = _create(manager, 1, host="b")
        with pytest.raises(UserError) as err:
            manager.start(s0)
        assert f"docker -H {b.url} volume create {VOLUME}" in str(err.value)
        assert manager.get(s0.id).status == "pending"
        assert manager.kill(s0.id).status == "killed"
        b.client().volumes.create(VOLUME)

        # Placement by free GPUs, best fit: b (2 GPUs) is filled first, then a; nothing overlaps.
        s1 = manager.start(_create(manager, 2))
        s2 = manager.start(_create(manager, 2))
        s3 = manager.start(_create(manager, 2))
        started += [s1, s2, s3]
        assert [(s.host, s.gpu_ids, s.status) for s in (s1, s2, s3)] == [
            ("b", [0, 1], "running"), ("a", [0, 1], "running"), ("a", [2, 3], "running")]
        s4 = manager.start(_create(manager, 1))
        started.append(s4)
        assert s4.status == "pending" and s4.host == ""
        assert s4.status_reason == (f"waiting for 1 GPU(s): a has 0 of 4 free (held by {s2.id}, {s3.id}); "
                                    f"b has 0 of 2 free (held by {s1.id})")
        # The pinned ids reached each daemon as a device request (its GPU driver exports them to the container).
        for s in (s1, s2, s3):
            assert f"NVIDIA_VISIBLE_DEVICES={','.join(map(str, s.gpu_ids))}" in _init_env(daemon[s.host],
                                                                                       s.handle)
        views = {v.name: v for v in manager.backend("docker").hosts(manager.holdings("docker"))}
        assert views["a"].answers and views["b"].answers
        assert views["a"].held == {0: s2.id, 1: s2.id, 2: s3.id, 3: s3.id} and views["b"].held == {0: s1.id,
                                                                                                 1: s1.id}

        # Logs flow from both hosts.
        assert len(_wait_for_lines(manager, s1.id, 20)) >= 20
        assert len(_wait_for_lines(manager, s2.id, 20)) >= 20

        # Extend on each host: the container's own /control/deadline.json moves (no restart).
        for s in (s1, s2):
            before = read_deadline(manager.session_dir(s.id) / L.CONTROL).deadline
            extended = manager.extend(s.id, gpu_hours=2.0)
            inside = daemon[s.host].client().containers.get(s.handle).exec_run(
                ["cat", f"{L.CONTAINER_CONTROL}/{L.DEADLINE_FILE}"]).output.decode()
            assert json.loads(inside)["budget_gpu_hours"] == pytest.approx(6.0)
            after = read_deadline(manager.session_dir(s.id) / L.CONTROL).deadline
            assert (after - before).total_seconds() == pytest.approx(3600, abs=1)  # 2 GPU-hours on 2 GPUs
            assert extended.total_gpu_hours == pytest.approx(6.0)

        # Kill on host a: its GPUs go to the waiting session.
        killed = manager.kill(s3.id, grace_s=2)
        assert killed.status == "killed"
        assert s3.handle not in {c.id for c in a.client().containers.list(all=True)}  # removed once stopped
        s4 = manager.refresh(manager.get(s4.id))
        assert (s4.status, s4.host, s4.gpu_ids) == ("running", "a", [2])

        # Host b stops answering mid-session: its session is unreachable (not failed) and keeps its GPUs.
        before = _wait_for_lines(manager, s1.id, 60)
        b.stop()
        s1 = manager.refresh(manager.get(s1.id))
        assert s1.status == "unreachable" and "Cannot reach the Docker daemon" in s1.status_reason
        views = {v.name: v for v in manager.backend("docker").hosts(manager.holdings("docker"))}
        assert not views["b"].answers and views["b"].held == {0: s1.id, 1: s1.id}
        assert manager.refresh(manager.get(s2.id)).status == "running"  # host a is unaffected
        s5 = manager.start(_create(manager, 2))
        started.append(s5)
        assert s5.status == "pending" and "b does not answer" in s5.status_reason
        time.sleep(2)  # the agent on b keeps printing meanwhile

        # Host b returns: a new control room (a restarted process) finds the session running again, and its log
        # resumes where the copy stopped.
        b.start()
        manager.close()
        manager = SessionManager(load_config(config_path))
        s1 = manager.refresh(manager.get(s1.id))
        assert s1.status == "running" and s1.status_reason == "b answers again"
        after = _wait_for_lines(manager, s1.id, len(before) + 60)
        assert len(after) >= len(before) + 60
        assert after == list(range(len(after))), "lines lost or doubled across the host's outage"
        kinds = [t.status for t in s1.transitions]
        assert kinds[-3:] == ["running", "unreachable", "running"]

        # Kill on host b.
        assert manager.kill(s1.id, grace_s=2).status == "killed"
        assert s1.handle not in {c.id for c in b.client().containers.list(all=True)}  # removed once stopped
    finally:
        for s in started:
            try:
                manager.kill(s.id, grace_s=1)
            except UserError:
                pass
        manager.close()
