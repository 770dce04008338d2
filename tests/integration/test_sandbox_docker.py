"""The sandbox on real Docker: scores out of the agent's reach and the session container's limits.

A live session's agent submits from inside its container; the validator (a host process, retiming in a container of its own user with no
network) answers while the agent's container is paused; the verdict lands in validator/, which the agent's
container sees read-only; the container runs unprivileged with
every capability dropped, a pids limit, IPv6 off and a read-only root filesystem."""

from __future__ import annotations

import json
import subprocess
import uuid

import docker
import pytest

from nanogpt_tui.contract import layout as L
from nanogpt_tui.validator import protocol as P
from tests.integration.test_docker_backend import _daemon_url
from nanogpt_tui.contract.env import ENV_REPLAY_LOOP, ENV_REPLAY_SPEED
from nanogpt_tui.sessions.manager import LaunchRequest
from tests.integration.test_sessions_docker import docker_env, manager  # noqa: F401

pytestmark = [pytest.mark.docker, pytest.mark.sandbox, pytest.mark.timeout(900)]
REPLAY_ENV = ((ENV_REPLAY_SPEED, "50"), (ENV_REPLAY_LOOP, "1"))
API_KEY = "sk-ant-api03-" + f"sandbox-test-{uuid.uuid4().hex}"


def test_the_validator_scores_apart_from_a_paused_agent_that_cannot_touch_its_verdicts(manager, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)  # the user's key: the gateway's, never the container's
    # A live session (a replayed agent stream); its "agent" submits from inside the container, as agents do.
    session = manager.launch(LaunchRequest(agent="replay", anchor="smoke", backend="docker", gpus=1,
                                           budget_gpu_hours=900 / 3600, extra_env=REPLAY_ENV))
    d = manager.session_dir(session.id)
    client = docker.DockerClient(base_url=_daemon_url())
    container = client.containers.get(session.handle)

    attrs = client.api.inspect_container(session.handle)
    host = attrs["HostConfig"]
    assert host["Privileged"] is False and host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert host["PidsLimit"] == 8192 and host["ReadonlyRootfs"] is True
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Sysctls"]["net.ipv6.conf.all.disable_ipv6"] == "1"
    assert set(host["Tmpfs"]) == {"/tmp", "/var/tmp"}
    # Sandboxed: alone on its internal network with the gateway, our resolver, a placeholder for the key.
    assert list(attrs["NetworkSettings"]["Networks"]) == [f"{manager.egress_prefix}-net-{session.id}".lower()]
    assert API_KEY not in json.dumps(attrs) and json.loads((d / L.INSPECT_FILE).read_text())
    assert "ANTHROPIC_BASE_URL=http://model-gateway:8080/anthropic" in attrs["Config"]["Env"]
    assert API_KEY not in json.dumps(client.api.inspect_container(f"{manager.egress_prefix}-gateway"))
    assert json.loads((d / L.SESSION_FILE).read_text())["sandbox"] == "on"

    # The agent's container cannot write the validator's folder, nor its root filesystem.
    code, out = container.exec_run(["sh", "-c", "echo forged > /validator/verdicts.json"])
    assert code != 0 and b"Read-only file system" in out
    code, out = container.exec_run(["sh", "-c", "echo x > /usr/local/bin/submit"])
    assert code != 0
    code, _ = container.exec_run(["sh", "-c", "echo ok > /tmp/scratch && echo ok > /workspace/home/scratch"])
    assert code == 0

    sub = d / L.WORKSPACE / "submissions" / "submission_1"
    sub.mkdir(parents=True)
    for name in ("run.sh", "train_gpt.py"):
        text = (d / L.RUNNER / "anchor" / name).read_text()
        (sub / name).write_text(text.replace("num_iterations = 200", "num_iterations = 40"))
    code, out = container.exec_run(["submit", "submissions/submission_1", "--runs", "2"], workdir="/workspace")
    text = out.decode("utf-8", "replace")
    assert "submitted submission_1 to the validator" in text and "run 1/2:" in text, text
    assert "verdict written to /validator/verdicts/" in text, text

    [response] = [json.loads(p.read_text()) for p in (d / L.VALIDATOR / P.RESPONSES).glob("*.json")]
    assert response["status"] == "verdict", response["text"]
    assert code == response["exit_code"]
    events = [json.loads(line) for line in (d / L.VALIDATOR / P.PROGRESS_FILE).read_text().splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds.index("paused") < kinds.index("resumed")
    paused = next(e for e in events if e["type"] == "paused")
    assert not paused["text"].startswith("agent paused (0 ")  # docker top listed the frozen processes
    print(f"pause {paused['pause_ms']} ms, resume {next(e for e in events if e['type'] == 'resumed')['resume_ms']} ms")
    trusted = P.trusted_verdicts(d)
    assert [f"{v.verdict_id}.json" for v in trusted.verdicts] == [response["verdict_file"]]
    assert not list((d / L.WORKSPACE / "verdicts").glob("*.json"))
    # The retiming container is gone once it answered; the agent's is running again.
    assert not client.containers.list(all=True, filters={"label": f"nanogpt-tui.validator={session.id}"})
    container.reload()
    assert container.status == "running"
    manager.kill(session.id)
    # Gone once its output is copied, and the key is nowhere in the daemon's stored container configs.
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(session.handle)
    root = client.info()["DockerRootDir"]
    found = subprocess.run(["grep", "-rlF", API_KEY, f"{root}/containers"], capture_output=True, text=True)
    assert found.returncode == 1 and not found.stdout, found.stdout
