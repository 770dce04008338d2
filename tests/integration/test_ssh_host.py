"""A Docker host reached over ssh://, for real: a private sshd on 127.0.0.1 (its own host key, a key pair made for
the test), the system `ssh` client (the SDK's `use_ssh_client`), `docker system dial-stdio` on the far side, and
this machine's dockerd behind it. A session runs there: placed, its log copied over ssh, extended, killed.

The user's ssh settings are stood in for by a wrapper that adds `-F <test config>` (the SDK runs plain `ssh`).
Skipped, with the reason, where sshd, ssh or a Docker daemon is missing or we are not root."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import docker
import pytest

from nanogpt_tui.backends.docker_backend import DockerBackend
from nanogpt_tui.config import load_config
from nanogpt_tui.contract import layout as L
from nanogpt_tui.sessions import manager as manager_module
from nanogpt_tui.sessions.manager import SessionManager
from tests.conftest import smoke_baselines
from tests.integration.test_docker_backend import _daemon_problem, _daemon_url
from tests.integration.test_hosts_pool import _create, _wait_for_lines

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]
VOLUME = f"nanogpt-tui-ssh-data-{uuid.uuid4().hex[:8]}"


def _ssh_problem() -> str | None:
    if os.geteuid() != 0:
        return "the test sshd logs in as root"
    for tool in ("/usr/sbin/sshd", shutil.which("ssh"), shutil.which("ssh-keygen"), shutil.which("docker")):
        if not tool or not Path(tool).exists():
            return "sshd, ssh, ssh-keygen or the docker CLI is not installed (apt-get install openssh-server)"
    return _daemon_problem()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ssh_url(tmp_path_factory):
    problem = _ssh_problem()
    if problem:
        pytest.skip(problem)
    d = tmp_path_factory.mktemp("ssh")
    for key in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
    shutil.copy(d / "user_key.pub", d / "authorized_keys")
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        f"PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"UsePAM no\nStrictModes no\nPidFile {d / 'sshd.pid'}\n")
    (d / "ssh_config").write_text(f"Host *\n  IdentityFile {d / 'user_key'}\n  StrictHostKeyChecking no\n"
                                  "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\n")
    bin_dir = d / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {d / "ssh_config"} "$@"\n')
    (bin_dir / "ssh").chmod(0o755)
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
    sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config")],
                            stdout=subprocess.DEVNULL, stderr=open(d / "sshd.log", "wb"))
    old_path = os.environ["PATH"]
    os.environ["PATH"] = f"{bin_dir}:{old_path}"
    client = docker.DockerClient(base_url=_daemon_url())
    client.volumes.create(VOLUME)
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["ssh", "-p", str(port), "root@127.0.0.1", "true"], capture_output=True).returncode:
            assert sshd.poll() is None and time.monotonic() < deadline, (d / "sshd.log").read_text()[-2000:]
            time.sleep(0.2)
        yield f"ssh://root@127.0.0.1:{port}"
    finally:
        os.environ["PATH"] = old_path
        sshd.terminate()
        sshd.wait(10)
        for container in client.containers.list(all=True, filters={"volume": VOLUME}):
            container.remove(force=True)
        client.volumes.get(VOLUME).remove(force=True)


def test_a_session_on_a_host_reached_over_ssh(ssh_url, tmp_path, monkeypatch):
    from nanogpt_tui.backends.testimage import build_test_image

    local = DockerBackend(_daemon_url(), None, "local")
    image = build_test_image(local, progress=lambda line: print(f"[test image] {line}", flush=True)).ref
    over_ssh = DockerBackend(ssh_url, None, "viassh")
    assert over_ssh.ping() and over_ssh.daemon_id() == local.daemon_id()  # the same dockerd, through ssh
    assert over_ssh.run_once(image, ["echo", "hello over ssh"]) == (0, "hello over ssh\n")

    smoke_baselines(tmp_path / "human_baselines")
    path = tmp_path / "nanogpt-tui.toml"
    path.write_text(f'schema_version = 1\n[paths]\nbaselines_dir = "human_baselines"\nsessions_dir = "sessions"\n'
                    f'[docker]\nimage = "{image}"\ndata_volume = "{VOLUME}"\n'
                    f'[[hosts]]\nname = "viassh"\nurl = "{ssh_url}"\n')
    monkeypatch.setenv("NANOGPT_TUI_CONFIG", str(path))
    monkeypatch.setattr(manager_module, "PLACEMENT_RETRY_S", 0.0)
    manager = SessionManager(load_config(path))
    session = None
    try:
        (view,) = manager.backend("docker").hosts(manager.holdings("docker"))
        assert view.answers and view.gpus.ids == () and view.gpus.detail == "no NVIDIA container runtime"
        # A remote host must see the sessions folder at the same path: the probe container runs over ssh too.
        assert manager.backend("docker").preflight("viassh") == []
        session = manager.start(_create(manager, 1))
        assert (session.status, session.host, session.gpu_ids) == ("running", "viassh", [])
        numbers = _wait_for_lines(manager, session.id, 20)
        assert numbers[:20] == list(range(20))  # copied over ssh into container.log, in order
        extended = manager.extend(session.id, gpu_hours=1.0)
        # Read through the local socket (the same daemon): the SDK's exec over its ssh transport can fail as it
        # closes (it writes to the stdin of an ssh that has already exited: BrokenPipeError); the product's one exec
        # over ssh, the gateway's health check, counts that as no answer and asks again.
        inside = local.client.containers.get(session.handle).exec_run(
            ["cat", f"{L.CONTAINER_CONTROL}/{L.DEADLINE_FILE}"]).output.decode()
        assert json.loads(inside)["budget_gpu_hours"] == pytest.approx(extended.total_gpu_hours)
        assert manager.kill(session.id, grace_s=2).status == "killed"
        with pytest.raises(docker.errors.NotFound):  # removed once its log was copied (its stored config held env)
            over_ssh.client.containers.get(session.handle)
    finally:
        if session is not None and manager.get(session.id).status not in ("killed",):
            manager.kill(session.id, grace_s=1)
        manager.close()
        over_ssh.close()
        local.close()
