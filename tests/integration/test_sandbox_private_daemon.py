"""The sandbox on a private dockerd (its own socket, data root, exec root and bridge, as test_hosts_pool starts):

- a sandboxed session talks to a stand-in model API through the model gateway with a fake key (the API sees the
  key, the session's container only a placeholder); once the session has ended, the key appears nowhere under
  that daemon's folder (data root: container configs, logs, layers; exec root; its own log) nor in the sessions
  folder;
- `sandbox check` on that daemon is ok, and not ok, naming the leak, when the probe is also attached to the
  daemon's default bridge (the one this test made).

Traffic goes only to this test's bridge and to the networks its daemon makes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import pytest

from nanogpt_tui.backends.docker_backend import DockerBackend
from nanogpt_tui.backends.egress import Egress
from nanogpt_tui.backends.testimage import PATH, build_package_wheel, make_rootfs_tarball, plan
from nanogpt_tui.config import load_config
from nanogpt_tui.contract import layout as L
from nanogpt_tui.sessions.manager import LaunchRequest, SessionManager
from tests.conftest import REPO, smoke_baselines
from tests.integration.test_docker_backend import _daemon_problem, _daemon_url
from tests.integration.test_hosts_pool import FAKE_HOOK_DIR, Daemon, _second_daemon_problem

pytestmark = [pytest.mark.docker, pytest.mark.sandbox, pytest.mark.timeout(900)]

RUN = uuid.uuid4().hex[:8]
FAKE_KEY = "sk-ant-api03-" + f"private-daemon-fake-{RUN}"
IMAGE = "ngt-sandbox-private:test"
BASE_REPOSITORY = "ngt-sandbox-private-base"
VOLUME = "ngt-sandbox-private-data"
SITE = "/opt/venv/lib/python3.11/site-packages"
# What the model gateway imports besides this package (aiohttp and its dependencies), copied from the test image.
GATEWAY_PACKAGES = ("aiohttp", "aiohappyeyeballs", "aiosignal", "attr", "frozenlist", "multidict", "propcache",
                    "yarl", "idna", "typing_extensions.py")

REQUEST = r'''
import json, os, urllib.request
req = urllib.request.Request(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", method="POST",
    data=json.dumps({"model": "claude-opus-4-6", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}).encode(),
    headers={"x-api-key": os.environ["ANTHROPIC_API_KEY"], "content-type": "application/json"})
with urllib.request.urlopen(req, timeout=30) as r:
    print(json.dumps({"status": r.status, "body": r.read().decode(), "key": os.environ["ANTHROPIC_API_KEY"]}))
'''


def gateway_packages(test_image: str) -> Path:
    """aiohttp and its dependencies as a tar, out of the test image on the main daemon (no index, no download):
    copied from a container that is created and never started."""
    client = docker.DockerClient(base_url=_daemon_url())
    container = client.containers.create(test_image, ["true"], network_mode="none", name=f"ngt-sandbox-pkgs-{RUN}")
    fd, name = tempfile.mkstemp(prefix="ngt-sandbox-", suffix=".tar")
    os.close(fd)
    try:
        with tarfile.open(name, "w") as out:
            for package in GATEWAY_PACKAGES:
                stream, _stat = container.get_archive(f"{SITE}/{package}")
                with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                    for member in tar.getmembers():
                        out.addfile(member, tar.extractfile(member) if member.isfile() else None)
    finally:
        container.remove(force=True)
    return Path(name)


def private_image(backend: DockerBackend, wheel: Path, packages: Path) -> None:
    p = plan(REPO)
    base = f"{BASE_REPOSITORY}:{p.base_tag}"
    if not backend.has_image(base):
        backend.import_image(make_rootfs_tarball(p, print), BASE_REPOSITORY, p.base_tag,
                             changes=[f"ENV PATH={PATH}", "ENV LANG=C.UTF-8"])
    fd, name = tempfile.mkstemp(suffix=".tar")
    os.close(fd)
    with tarfile.open(name, "w") as tar:
        tar.add(str(wheel), arcname=f"pkg/{wheel.name}")
        tar.add(str(packages), arcname="pkg/site.tar")
    try:
        backend.run_and_commit(
            base, ["/bin/sh", "-c", f"set -e; python3 -m venv /opt/venv; tar -C {SITE} -xf /tmp/pkg/site.tar; "
                   f"/opt/venv/bin/pip install --no-cache-dir --no-index --no-deps /tmp/pkg/{wheel.name}; "
                   "rm -rf /tmp/pkg"],
            *IMAGE.split(":"), archives=[("/tmp", Path(name))],
            changes=[f"ENV PATH={PATH}", "ENV LANG=C.UTF-8", "ENV PYTHONUNBUFFERED=1", "WORKDIR /workspace"])
    finally:
        os.unlink(name)


POOL = "10.217.0.0/16"  # every network the private daemon makes takes its subnet from here
# With br_netfilter, bridged traffic passes the host's FORWARD chain, whose policy the main daemon set to DROP and
# whose ACCEPT rules name only its own bridges: between addresses of this daemon's networks (and nothing else),
# this rule lets it through, as the main daemon's rules do for its own. Removed when the test ends.
FORWARD_RULE = ["DOCKER-USER", "-s", POOL, "-d", POOL, "-j", "ACCEPT"]


class PoolDaemon(Daemon):
    """test_hosts_pool's private dockerd, its networks' subnets taken from POOL."""

    def start(self) -> None:
        env = {**os.environ, "PATH": f"{FAKE_HOOK_DIR}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ["dockerd", "--data-root", str(self.dir / "root"), "--exec-root", str(self.dir / "exec"),
                 "--pidfile", str(self.dir / "docker.pid"), "-H", self.url, "--bridge", self.bridge,
                 "--iptables=false", "--ip6tables=false", "--default-address-pool", f"base={POOL},size=24"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                docker.DockerClient(base_url=self.url, timeout=5).ping()
                return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.3)
        raise RuntimeError(f"the private dockerd did not start: {self.log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def daemon():
    problem = _second_daemon_problem() or _daemon_problem()
    if problem:
        pytest.skip(problem)
    from nanogpt_tui.backends.testimage import build_test_image

    main = DockerBackend(_daemon_url(), None, "local")
    test_image = build_test_image(main, progress=lambda line: print(f"[test image] {line}", flush=True),
                                  prune=False).ref
    main.close()
    d = PoolDaemon("s", 3)
    work = Path(tempfile.mkdtemp(prefix="ngt-sandbox-wheel-"))
    packages = None
    try:
        packages = gateway_packages(test_image)
        wheel = build_package_wheel(REPO, work / "pkg")
        d.create_bridge()
        d.start()
        subprocess.run(["iptables", "-I", *FORWARD_RULE], check=True, capture_output=True)
        backend = DockerBackend(d.url, None, "private")
        private_image(backend, wheel, packages)
        backend.close()
        d.client().volumes.create(VOLUME)
        yield d
    finally:
        subprocess.run(["iptables", "-D", *FORWARD_RULE], capture_output=True)
        d.cleanup()
        if packages is not None:
            packages.unlink(missing_ok=True)
        import shutil

        shutil.rmtree(work, ignore_errors=True)


class StandInAPI:
    """Plain HTTP on an address of a bridge the private daemon made; it checks the key."""

    def __init__(self, host: str) -> None:
        self.keys: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.keys.append(self.headers.get("x-api-key"))
                ok = self.headers.get("x-api-key") == FAKE_KEY
                body = json.dumps({"type": "message", "model": "claude-opus-4-6", "content": [],
                                   "usage": {"input_tokens": 7, "output_tokens": 3}} if ok else {}).encode()
                self.send_response(200 if ok else 401)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                return

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def files_holding(root: Path, needle: bytes) -> list[str]:
    found = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            try:
                if path.is_symlink() or not path.is_file():
                    continue
                with open(path, "rb") as handle:
                    if needle in handle.read():
                        found.append(str(path))
            except OSError:
                continue
    return found


def test_the_key_reaches_the_api_and_no_file_of_the_daemon(daemon, tmp_path, monkeypatch, capsys):
    from nanogpt_tui.cli import main

    smoke_baselines(tmp_path / "human_baselines")
    config = tmp_path / "nanogpt-tui.toml"

    def write_config(allow: str = "") -> None:
        config.write_text(f'schema_version = 1\n[paths]\nbaselines_dir = "human_baselines"\nsessions_dir = "sessions"\n'
                          f'[docker]\nimage = "{IMAGE}"\ndata_volume = "{VOLUME}"\n[judge]\nprovider = "none"\n'
                          f'[sandbox]\nallow = [{allow}]\n[[hosts]]\nname = "private"\nurl = "{daemon.url}"\n'
                          'gpus = [0]\n')

    write_config()
    monkeypatch.setenv("NANOGPT_TUI_CONFIG", str(config))
    manager = SessionManager(load_config(config))
    backend = DockerBackend(daemon.url, None, "private")
    egress = Egress(backend, image=IMAGE, state_dir=manager.egress_dir("private"), prefix=manager.egress_prefix)
    api = None
    try:
        # The stand-in API on the host side of the egress bridge the private daemon makes for the gateway.
        bridge = egress._network(egress.egress_network, internal=False)
        host_ip = bridge.attrs["IPAM"]["Config"][0]["Gateway"]
        api = StandInAPI(host_ip)
        # The replay agent stands for a real one here: it is handed the Anthropic API's endpoint and key, as
        # Claude Code is (the CLIs themselves are test_real_cli's; this daemon's image holds none).
        from nanogpt_tui.agents import credentials

        monkeypatch.setitem(credentials.AGENT_API, "replay", credentials.AGENT_API["claude"])
        monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://{host_ip}:{api.port}")
        session = manager.create(LaunchRequest(
            agent="replay", anchor="smoke", budget_gpu_hours=1.0, gpus=1, backend="docker",
            extra_env=(("BENCHMARK_REPLAY_FILE", "/workspace/ticks.jsonl"), ("BENCHMARK_REPLAY_SPEED", "1"))))
        d = manager.session_dir(session.id)
        (d / L.WORKSPACE / "ticks.jsonl").write_text("".join(json.dumps({"type": "tick", "n": n}) + "\n"
                                                             for n in range(2000)))
        session = manager.start(session)
        assert session.handle and session.sandbox == "on", session.status_reason
        client = daemon.client()
        container = client.containers.get(session.handle)
        code, out = container.exec_run(["python3", "-c", REQUEST])
        assert code == 0, out
        answer = json.loads(out.decode().strip().splitlines()[-1])
        assert answer["status"] == 200 and answer["key"] != FAKE_KEY and api.keys == [FAKE_KEY]
        assert FAKE_KEY not in json.dumps(client.api.inspect_container(session.handle))
        usage = [r for r in egress.records(session.id) if r["type"] == "usage"]
        assert [(u["input_tokens"], u["output_tokens"]) for u in usage] == [(7, 3)]

        manager.kill(session.id)
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(session.handle)
        # The daemon's whole folder (data root, exec root, its log) and the sessions folder: no key anywhere.
        needle = FAKE_KEY.encode()
        assert files_holding(daemon.dir, needle) == []
        assert files_holding(tmp_path, needle) == []
        # The grep can find it: the key written to a file under the data root is found (then removed).
        canary = daemon.dir / "root" / f"canary-{RUN}"
        canary.write_bytes(b"x" + needle)
        assert files_holding(daemon.dir, needle) == [str(canary)]
        canary.unlink()

        # sandbox check on this daemon: ok; not ok when the probe is also on the daemon's default bridge.
        monkeypatch.delenv("ANTHROPIC_BASE_URL")
        monkeypatch.delenv("ANTHROPIC_API_KEY")
        bridge_ip = daemon.address.split("/")[0]
        forbidden = StandInAPI(bridge_ip)
        try:
            argv = ["sandbox", "check", "--json", f"--probe={bridge_ip}:{forbidden.port}", "--probe=forbidden.test:80"]
            capsys.readouterr()
            assert main(argv) == 0, capsys.readouterr().out
            original = Egress.register

            def register_then_default_bridge(self, session_id, container_id):
                original(self, session_id, container_id)
                self.client.networks.get("bridge").connect(container_id)

            monkeypatch.setattr(Egress, "register", register_then_default_bridge)
            capsys.readouterr()
            assert main(argv) == 1
            result = json.loads(capsys.readouterr().out)
            checks = {c["check"]: c for c in result["hosts"][0]["checks"]}
            assert not checks["network"]["ok"] and "bridge" in checks["network"]["detail"], checks
            leak = {b["probe"]: b for b in result["blocked"]}[f"{bridge_ip}:{forbidden.port}"]
            assert not leak["blocked"] and "TCP connection" in leak["error"], leak
        finally:
            forbidden.close()
    finally:
        if api is not None:
            api.close()
        egress.remove_all()
        backend.close()
        manager.close()
