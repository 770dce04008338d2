"""The sandbox on real Docker: scores out of the agent's reach and the session container's limits.

A scripted session submits; the validator (a host process, retiming in a container of its own user with no
network) answers while the agent's container is paused; the verdict lands in validator/, which the agent's
container sees read-only; the container runs unprivileged with
every capability dropped, a pids limit, IPv6 off and a read-only root filesystem."""

from __future__ import annotations

import json

import docker
import pytest

from nanogpt_tui.contract import layout as L
from nanogpt_tui.validator import protocol as P
from tests.integration.test_docker_backend import _daemon_url
from tests.integration.test_sessions_docker import docker_env, manager, start_scripted, wait_for  # noqa: F401

pytestmark = [pytest.mark.docker, pytest.mark.sandbox, pytest.mark.timeout(900)]


def test_the_validator_scores_apart_from_a_paused_agent_that_cannot_touch_its_verdicts(manager):
    session = start_scripted(manager, seconds=900)
    d = manager.session_dir(session.id)
    client = docker.DockerClient(base_url=_daemon_url())
    container = client.containers.get(session.container_id)

    attrs = client.api.inspect_container(session.container_id)
    host = attrs["HostConfig"]
    assert host["Privileged"] is False and host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert host["PidsLimit"] == 8192 and host["ReadonlyRootfs"] is True
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Sysctls"]["net.ipv6.conf.all.disable_ipv6"] == "1"
    assert set(host["Tmpfs"]) == {"/tmp", "/var/tmp"}

    # The agent's container cannot write the validator's folder, nor its root filesystem.
    code, out = container.exec_run(["sh", "-c", "echo forged > /validator/verdicts.json"])
    assert code != 0 and b"Read-only file system" in out
    code, out = container.exec_run(["sh", "-c", "echo x > /usr/local/bin/submit"])
    assert code != 0
    code, _ = container.exec_run(["sh", "-c", "echo ok > /tmp/scratch && echo ok > /workspace/home/scratch"])
    assert code == 0

    def answered():
        manager.refresh(manager.get(session.id))
        folder = d / L.VALIDATOR / P.RESPONSES
        for path in folder.glob("*.json") if folder.is_dir() else []:
            response = json.loads(path.read_text())
            if response["request_id"].startswith("submission_"):
                return response
        return None

    response = wait_for(answered, 600, "the validator's answer", step=2.0)
    assert response["status"] == "verdict", response["text"]
    events = [json.loads(line) for line in (d / L.VALIDATOR / P.PROGRESS_FILE).read_text().splitlines()]
    mine = [e for e in events if e["request_id"] == response["request_id"]]
    kinds = [e["type"] for e in mine]
    assert kinds.index("paused") < kinds.index("resumed")
    paused = next(e for e in mine if e["type"] == "paused")
    assert not paused["text"].startswith("agent paused (0 ")  # docker top listed the frozen processes
    assert any(e["text"].startswith("run 1/3:") for e in mine)
    trusted = P.trusted_verdicts(d)
    assert response["verdict_file"] in {f"{v.verdict_id}.json" for v in trusted.verdicts}
    assert [v.outcome for v in trusted.verdicts if v.kind == "submission"] == ["validated"]
    # The retiming container is gone once it answered; the agent's is running again.
    assert not client.containers.list(all=True, filters={"label": f"nanogpt-tui.validator={session.id}"})
    container.reload()
    assert container.status == "running"
    manager.kill(session.id)
