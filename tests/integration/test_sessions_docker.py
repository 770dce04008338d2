"""Sessions in real containers on this machine's dockerd: the scripted agent on the smoke record in the test image,
logs, verdicts, budget, extend inside the container, kill, re-attach after the host process goes away, and the
in-container watchdog with no host process at all. Skipped, with the reason, only where no daemon answers."""

from __future__ import annotations

import json
import time
import uuid

import docker
import pytest

from nanogpt_tui.config import load_config
from nanogpt_tui.contract import layout as L
from nanogpt_tui.sessions.manager import LaunchRequest, SessionManager
from tests.conftest import smoke_baselines
from tests.integration.test_docker_backend import _daemon_problem, _daemon_url

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]
RUN_ID = uuid.uuid4().hex[:8]
# One experiment that the smoke record keeps (150 steps still reach val_loss < 2.0), no baseline run,
# three retimings: a validated submission in about a minute of CPU.
QUICK_PLAN = """\
schema_version = 1
name = "docker-test"
description = "one kept hyperparameter change, then wait for the deadline"
runs = 3
run_timeout_s = 300
baseline = false

[[experiment]]
name = "fewer-steps"
kind = "hyperparameter"
why = "150 steps still reach the target."
set = { num_iterations = 150 }
"""


@pytest.fixture(scope="module")
def docker_env():
    problem = _daemon_problem()
    if problem:
        pytest.skip(problem)
    from nanogpt_tui.backends.docker_backend import DockerBackend
    from nanogpt_tui.backends.testimage import build_test_image

    backend = DockerBackend(_daemon_url(), None, "local")
    image = build_test_image(backend, progress=lambda line: print(f"[test image] {line}", flush=True)).ref
    client = docker.DockerClient(base_url=_daemon_url())
    volume = f"nanogpt-tui-test-smoke-data-{RUN_ID}"
    client.volumes.create(volume, labels={"nanogpt-tui.test": RUN_ID})
    # Fill the shared data volume the way a user fills the real one: a one-off container writes the shards.
    client.containers.run(image, ["python3", "-m", "nanogpt_tui", "data", "synth", "--out", "/data/fineweb10B"],
                          volumes={volume: {"bind": "/data", "mode": "rw"}}, remove=True)
    yield image, volume
    client.volumes.get(volume).remove(force=True)
    backend.close()


@pytest.fixture
def manager(docker_env, tmp_path, monkeypatch):
    image, volume = docker_env
    smoke_baselines(tmp_path / "human_baselines")
    path = tmp_path / "nanogpt-tui.toml"
    path.write_text(f'schema_version = 1\n[paths]\nbaselines_dir = "human_baselines"\nsessions_dir = "sessions"\n'
                    f'[docker]\nimage = "{image}"\ndata_volume = "{volume}"\n[judge]\nprovider = "none"\n'
                    f'[[hosts]]\nname = "local"\nurl = "{_daemon_url()}"\n')
    monkeypatch.setenv("NANOGPT_TUI_CONFIG", str(path))
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    m = SessionManager(load_config(path))
    yield m
    m.close()
    client = docker.DockerClient(base_url=_daemon_url())
    for session in m.list()[0]:  # whatever a failed test left behind
        if session.handle:
            try:
                client.containers.get(session.handle).remove(force=True)
            except docker.errors.NotFound:
                pass
    # The model gateway and the networks of this test's sessions folder.
    from nanogpt_tui.backends.docker_backend import DockerBackend
    from nanogpt_tui.backends.egress import Egress

    backend = DockerBackend(_daemon_url(), None, "local")
    Egress(backend, image="", state_dir=tmp_path, prefix=m.egress_prefix).remove_all()
    backend.close()


def start_scripted(manager: SessionManager, seconds: float, plan: str | None = QUICK_PLAN):
    session = manager.create(LaunchRequest(agent="scripted", anchor="smoke", backend="docker", gpus=1,
                                           budget_gpu_hours=seconds / 3600,
                                           extra_env=(("BENCHMARK_SCRIPTED_RUNS", "3"),)))
    if plan is not None:
        (manager.session_dir(session.id) / L.RUNNER / "agent" / "plan.toml").write_text(plan)
    return manager.start(session)


def container_file(manager, session, path: str) -> str:
    client = docker.DockerClient(base_url=_daemon_url())
    code, out = client.containers.get(session.handle).exec_run(["cat", path])
    assert code == 0, out
    return out.decode()


def wait_for(predicate, timeout_s: float, what: str, step: float = 1.0):
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_scripted_session_in_a_container(manager):
    t0 = time.monotonic()
    session = start_scripted(manager, seconds=900)
    print(f"create+start: {time.monotonic() - t0:.2f} s")
    assert session.status == "running" and session.handle and session.gpu_ids == []
    d = manager.session_dir(session.id)
    inspect = json.loads((d / L.INSPECT_FILE).read_text())
    host = inspect["HostConfig"]
    assert host["Init"] is True and host["IpcMode"] == "host"
    assert {m["Destination"]: m["RW"] for m in inspect["Mounts"]} == {
        "/workspace": True, "/runner": False, "/control": False, "/workspace/data": False, "/validator": False}
    assert inspect["Config"]["Labels"]["nanogpt-tui.session"] == session.id

    # Logs reach container.log while the host watches; the budget grows.
    wait_for(lambda: "starting the agent" in (d / L.CONTAINER_LOG).read_text()
             if manager.refresh(manager.get(session.id)) else False, 120, "the runner's first lines")
    used = manager.get(session.id).budget().used_gpu_hours()
    time.sleep(1.5)
    assert manager.refresh(manager.get(session.id)).budget().used_gpu_hours() > used

    # The agent's submission is validated apart from it; the validator's verdict appears on the host.
    verdicts = d / L.VALIDATOR / "verdicts"

    def validated():
        manager.refresh(manager.get(session.id))
        for path in verdicts.glob("*.json"):
            v = json.loads(path.read_text())
            if v["kind"] == "submission":
                return v
        return None

    verdict = wait_for(validated, 600, "a verdict", step=2.0)
    assert verdict["outcome"] == "validated", verdict["reasons"]
    assert verdict["runs_requested"] == 3 and len(verdict["runs"]) == 3

    # Extend: the deadline moves in control/, and the container sees it.
    before = json.loads(container_file(manager, session, "/control/deadline.json"))["deadline_epoch"]
    extended = manager.extend(session.id, gpu_hours=0.5)
    after = json.loads(container_file(manager, session, "/control/deadline.json"))["deadline_epoch"]
    assert after == pytest.approx(before + 1800, abs=1) and extended.total_gpu_hours == pytest.approx(0.75)
    wait_for(lambda: "deadline moved to" in (d / L.CONTAINER_LOG).read_text(), 30, "the runner to see the extension")

    # Kill: stopped now, marked killed; the container is gone from the running list.
    killed = manager.kill(session.id)
    assert killed.status == "killed"
    client = docker.DockerClient(base_url=_daemon_url())
    # Its output copied, the container is removed (its stored config with it); the redacted inspect stays.
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(session.handle)
    assert json.loads((d / L.INSPECT_FILE).read_text())["Id"] == session.handle


def test_reattach_after_the_host_process_goes_away(manager):
    session = start_scripted(manager, seconds=20, plan=None)
    manager.refresh(manager.get(session.id))
    manager.close()  # the host process "exits": log copying stops, the container keeps running
    time.sleep(3)
    fresh = SessionManager(manager.config)
    try:
        final = fresh.wait(session.id, poll_s=1.0, timeout_s=240)
    finally:
        fresh.close()
    assert final.status == "out-of-budget", final.status_reason
    log = (manager.session_dir(session.id) / L.CONTAINER_LOG).read_text()
    assert log.count("starting the agent") == 1  # resumed, not duplicated
    assert "session ends: deadline" in log


def test_the_watchdog_stops_the_container_with_no_host_running(manager):
    session = start_scripted(manager, seconds=8, plan=None)
    manager.close()
    client = docker.DockerClient(base_url=_daemon_url())
    container = client.containers.get(session.handle)
    started = time.monotonic()
    result = container.wait(timeout=120)
    elapsed = time.monotonic() - started
    assert result["StatusCode"] == 3 and elapsed < 60
    info = json.loads((manager.session_dir(session.id) / L.WORKSPACE / "logs" / L.RUNNER_EXIT_FILE).read_text())
    assert info["reason"] == "deadline"
    # A host process that comes later records what happened.
    fresh = SessionManager(manager.config)
    try:
        assert fresh.refresh(fresh.get(session.id)).status == "out-of-budget"
    finally:
        fresh.close()
