"""Sessions as Slurm jobs on a real one-node Slurm (Debian's slurm-wlm and munge, started by the fixture in a temporary
folder, GPUs declared as generic resources): sessions start, wait in the queue while the node is full, are extended
past their first time limit, are killed, survive a restart of the control room and of slurmctld; the validator
pauses the agent and retimes in steps of the session's own job, before its deadline; API keys reach the job through
such a step and nowhere else; GPU-hours come from sacct (slurmdbd on a private MariaDB); and the tested production
path, Docker on the node with its sandbox, against this machine's dockerd."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nanogpt_tui.cli import main
from nanogpt_tui.config import load_config
from nanogpt_tui.contract import layout as L
from nanogpt_tui.contract.runner_exit import ExitReason, read_runner_exit
from nanogpt_tui.sessions.manager import LaunchRequest, SessionManager
from nanogpt_tui.sessions.model import parse_iso
from nanogpt_tui.validator import protocol as P
from tests.conftest import REPO
from tests.integration.slurm_cluster import PARTITION, SlurmCluster

pytestmark = pytest.mark.slurm

REPLAY_ENV = (("BENCHMARK_REPLAY_SPEED", "50"), ("BENCHMARK_REPLAY_LOOP", "1"))


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), gpus=4, accounting=True).start()
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)  # the client commands the backend runs find the cluster here
    yield cluster
    cluster.run("scancel", "--full", "--user=root", check=False)
    cluster.stop()
    if before is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = before


def write_config(tmp_path: Path, slurm_section: str, extra: str = "") -> Path:
    baselines = tmp_path / "baselines"
    shutil.copytree(REPO / "human_baselines" / "smoke", baselines / "smoke",
                    ignore=shutil.ignore_patterns("data", "logs"))
    path = tmp_path / "nanogpt-tui.toml"
    path.write_text(f'schema_version = 1\n[paths]\nsessions_dir = "sessions"\nbaselines_dir = "baselines"\n'
                    f'[benchmark]\nanchor = "smoke"\n[slurm]\npartition = "{PARTITION}"\n{slurm_section}\n{extra}')
    return path


@pytest.fixture
def config_path(slurm, tmp_path, monkeypatch):
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    return write_config(tmp_path, 'node_runtime = "process"\nraise_time_limit = true\ntime_limit_minutes = 1\n')


def launch(manager: SessionManager, gpus: int, seconds: float) -> object:
    return manager.launch(LaunchRequest(agent="replay", strategy="default", anchor="smoke", backend="slurm",
                                        gpus=gpus, budget_gpu_hours=gpus * seconds / 3600, extra_env=REPLAY_ENV))


def wait_for(manager: SessionManager, sid: str, status: str, timeout_s: float = 60.0, poll_s: float = 0.2):
    start = time.monotonic()
    while True:
        session = manager.refresh(manager.get(sid))
        if session.status == status:
            return session, time.monotonic() - start
        assert time.monotonic() - start < timeout_s, f"{sid} is {session.status} ({session.status_reason})"
        time.sleep(poll_s)


def wait_for_text(path: Path, text: str, timeout_s: float = 60.0) -> None:
    start = time.monotonic()
    while not (path.exists() and text in path.read_text(errors="replace")):
        assert time.monotonic() - start < timeout_s, f"{text!r} never appeared in {path}"
        time.sleep(0.2)


def test_sessions_wait_in_the_queue_while_the_node_is_full_and_are_killed(slurm, config_path, capsys):
    manager = SessionManager(load_config(config_path))
    first = launch(manager, gpus=3, seconds=600)
    assert first.handle and first.handle.isdigit() and first.host == PARTITION
    first, latency = wait_for(manager, first.id, "running")
    print(f"sbatch -> running: {latency:.2f} s")
    wait_for_text(manager.session_dir(first.id) / L.CONTAINER_LOG, "starting the agent")
    assert first.facts["job"] == first.handle and first.facts["partition"] == PARTITION
    assert first.started_at is not None

    second = launch(manager, gpus=2, seconds=600)  # 3 + 2 GPUs > the node's 4
    second, _ = wait_for(manager, second.id, "pending", timeout_s=10)
    for _ in range(50):  # the scheduler gives its reason on its next pass
        second = manager.refresh(manager.get(second.id))
        if "Resources" in second.status_reason:
            break
        time.sleep(0.2)
    assert second.status_reason == "queued: PENDING (Resources)" and second.started_at is None
    assert second.budget().used_gpu_hours() == 0  # time in the queue is not spent

    assert main(["--config", str(config_path), "sessions", "list"]) == 0
    listed = capsys.readouterr().out
    assert f"job {second.handle}" in listed and "PENDING (Resources)" in listed

    killed = manager.kill(first.id, grace_s=10)
    assert killed.status == "killed"
    exit_record = read_runner_exit(manager.session_dir(first.id) / L.WORKSPACE / "logs")
    assert exit_record is not None and exit_record.reason == ExitReason.STOPPED  # the runner saw SIGINT
    ended = manager.backend("slurm").state(manager.ref(killed))  # when Slurm says the job ended (sacct's End)
    assert ended.status == "exited" and ended.ended_at is not None
    assert abs((ended.ended_at - parse_iso(killed.finished_at)).total_seconds()) < 30

    second, _ = wait_for(manager, second.id, "running", timeout_s=60)  # the freed GPUs go to the queued one
    wait_for_text(manager.session_dir(second.id) / L.CONTAINER_LOG, "starting the agent")
    assert "the budget starts now" in (manager.session_dir(second.id) / L.SLURM_DIR / L.SLURM_OUTPUT).read_text()
    assert manager.kill(second.id, grace_s=10).status == "killed"


def test_extend_past_the_first_time_limit_through_restarts_of_the_control_room_and_slurmctld(slurm, config_path):
    manager = SessionManager(load_config(config_path))
    session = launch(manager, gpus=1, seconds=45)  # submitted with the configured cap: --time=1
    session, _ = wait_for(manager, session.id, "running")
    started = time.monotonic()
    job = session.handle
    assert slurm.run("squeue", "-h", "-j", job, "-o", "%l").stdout.strip() == "1:00"

    manager.extend(session.id, gpu_hours=75 / 3600, reason="test")  # deadline 120 s after the start
    limit = slurm.run("squeue", "-h", "-j", job, "-o", "%l").stdout.strip()
    assert limit in ("4:00", "5:00"), limit  # raised: deadline + the grace margin, in whole minutes

    # A restart of the control room: a new manager finds the job from session.json and squeue.
    manager.close()
    manager = SessionManager(load_config(config_path))
    assert manager.refresh(manager.get(session.id)).status == "running"

    # slurmctld goes away: the session is unreachable (never ended) and the job runs on.
    log = manager.session_dir(session.id) / L.CONTAINER_LOG
    slurm.stop_slurmctld()
    down_at, lines_before = time.monotonic(), log.read_text().count("\n")
    seen = manager.refresh(manager.get(session.id))
    assert seen.status == "unreachable" and "does not answer" in seen.status_reason
    time.sleep(2)
    assert log.read_text().count("\n") > lines_before  # the agent kept working while the controller was away
    slurm.start_slurmctld()
    back, recovered_in = wait_for(manager, session.id, "running", timeout_s=60)
    print(f"slurmctld down for {time.monotonic() - down_at:.1f} s; the session answered again "
          f"{recovered_in:.1f} s after the restart began")

    # Past the first limit (1 min, plus up to 30 s until Slurm checks limits), it still runs.
    while time.monotonic() - started < 95:
        assert manager.refresh(manager.get(session.id)).status == "running"
        time.sleep(2)
    assert slurm.run("squeue", "-h", "-j", job, "-o", "%T").stdout.strip() == "RUNNING"
    assert manager.kill(session.id, grace_s=10).status == "killed"


def test_the_docker_path_runs_the_container_contract_in_its_sandbox_on_the_node(slurm, tmp_path, monkeypatch):
    import docker

    from nanogpt_tui.agents import credentials
    from nanogpt_tui.backends.docker_backend import DockerBackend
    from nanogpt_tui.backends.egress import Egress
    from nanogpt_tui.sandbox.names import PLACEHOLDER_KEY
    from nanogpt_tui.backends.testimage import build_test_image
    from tests.integration.test_sessions_docker import _daemon_problem, _daemon_url

    problem = _daemon_problem()
    assert problem is None, problem
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    key = "sk-ant-" + "slurm-gateway-" + os.urandom(8).hex()
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    # As in the key test: the replayed agent is given the Anthropic API's variables, so its gateway holds a key.
    monkeypatch.setitem(credentials.AGENT_API, "replay", credentials.AGENT_API["claude"])
    backend = DockerBackend(_daemon_url(), None, "local")
    image = build_test_image(backend).ref
    client = docker.DockerClient(base_url=_daemon_url())
    volume = f"ngt-contract-slurm-data-{os.getpid()}"
    client.volumes.create(volume, labels={"nanogpt-tui.test": "contract-slurm"})
    manager = None
    try:
        config_path = write_config(tmp_path, f'node_runtime = "docker"\ndocker_url = "{_daemon_url()}"\n',
                                   f'[docker]\nimage = "{image}"\ndata_volume = "{volume}"\n'
                                   '[judge]\nprovider = "none"\n')
        manager = SessionManager(load_config(config_path))
        prefix = manager.egress_prefix
        session = launch(manager, gpus=1, seconds=600)
        session, latency = wait_for(manager, session.id, "running", timeout_s=90)
        print(f"sbatch -> running (Docker on the node): {latency:.2f} s")
        found = []
        for _ in range(300):
            manager.refresh(manager.get(session.id))  # hands the job its key (for the gateway) once it waits
            found = client.containers.list(filters={"label": f"nanogpt-tui.session={session.id}"})
            if found:
                break
            time.sleep(0.2)
        assert found, "no session container on the node's Docker"
        container = found[0]
        # The sandbox on the node: alone on its internal network with the gateway, which holds the key handed over;
        # the container has a placeholder.
        attrs = client.api.inspect_container(container.id)
        assert list(attrs["NetworkSettings"]["Networks"]) == [f"{prefix}-net-{session.id}".lower()]
        assert client.networks.get(f"{prefix}-net-{session.id}".lower()).attrs["Internal"] is True
        assert f"ANTHROPIC_API_KEY={PLACEHOLDER_KEY}" in attrs["Config"]["Env"]
        assert "ANTHROPIC_BASE_URL=http://model-gateway:8080/anthropic" in attrs["Config"]["Env"]
        assert key not in json.dumps(attrs) and key not in json.dumps(client.api.inspect_container(f"{prefix}-gateway"))
        assert "the API keys were handed over" in (manager.session_dir(session.id) / L.SLURM_DIR
                                                   / L.SLURM_OUTPUT).read_text()
        mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
        assert mounts[L.CONTAINER_CONTROL]["RW"] is False and mounts[L.CONTAINER_RUNNER]["RW"] is False
        log = manager.session_dir(session.id) / L.CONTAINER_LOG
        for _ in range(100):
            if "starting the agent" in log.read_text():
                break
            time.sleep(0.2)
        assert "starting the agent" in log.read_text()  # the runner's output came back through the shared folder
        # The agent submits from inside its container and reads the answer through its read-only /validator; the
        # validator pauses the container and retimes in a step of the job, in a container of its own on the node's
        # Docker (a run that fails at once: the mechanism, not the training, is under test here).
        assert mounts[L.CONTAINER_VALIDATOR]["RW"] is False
        d = manager.session_dir(session.id)
        _candidate(manager, session, "quick", iterations=40)
        run_sh = d / L.WORKSPACE / "submissions" / "quick" / "run.sh"
        run_sh.write_text(run_sh.read_text().replace("torchrun ", "exit 3\ntorchrun ", 1))
        code, out = container.exec_run(["submit", "submissions/quick", "--runs", "2"], workdir="/workspace")
        text = out.decode("utf-8", "replace")
        assert "run 1/2: FAILED" in text and "verdict written to /validator/verdicts/" in text, text
        kinds = [e["type"] for e in _progress(d)]
        assert kinds.index("paused") < kinds.index("resumed")
        assert not next(e for e in _progress(d) if e["type"] == "paused")["text"].startswith("agent paused (0 ")
        assert any(e["text"].startswith("retiming in step ") and f"of job {session.handle} on ngtnode" in e["text"]
                   for e in _progress(d))
        launch_file = json.loads((manager.session_dir(session.id) / L.SLURM_DIR / L.SLURM_LAUNCH).read_text())
        assert launch_file["runtime"] == "docker" and launch_file["env"]["BENCHMARK_WORKSPACE"] == "/workspace"
        assert manager.kill(session.id, grace_s=15).status == "killed"
        assert read_runner_exit(manager.session_dir(session.id) / L.WORKSPACE / "logs").reason == ExitReason.STOPPED
        for _ in range(100):
            if not client.containers.list(all=True, filters={"label": f"nanogpt-tui.session={session.id}"}):
                break
            time.sleep(0.2)
        assert not client.containers.list(all=True, filters={"label": f"nanogpt-tui.session={session.id}"})
        assert not client.networks.list(names=[f"{prefix}-net-{session.id}".lower()])  # its network went with it
        for folder in (slurm.root / "state", slurm.root / "spool", manager.session_dir(session.id)):
            for path in folder.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    assert key.encode() not in path.read_bytes(), path
    finally:
        if manager is not None:  # the node's gateway and networks of this test's sessions folder
            Egress(backend, image="", state_dir=tmp_path, prefix=manager.egress_prefix).remove_all()
        for c in client.containers.list(all=True, filters={"label": "nanogpt-tui.agent=replay"}):
            if c.labels.get("nanogpt-tui.session", "").startswith(tuple(p.name for p in
                                                                       (tmp_path / "sessions").glob("*"))):
                c.remove(force=True)
        client.volumes.get(volume).remove(force=True)
        backend.close()


def _submit(manager: SessionManager, session, folder: str, runs: int = 2) -> subprocess.Popen:
    """The agent's `submit`, from inside the session's workspace with the session's contract environment."""
    env = {**os.environ, **manager._launch_spec(manager.get(session.id), manager.backend(session.backend)).env}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return subprocess.Popen([sys.executable, "-m", "nanogpt_tui", "submit", f"submissions/{folder}", "--runs",
                             str(runs)], cwd=manager.session_dir(session.id) / L.WORKSPACE, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _candidate(manager: SessionManager, session, folder: str, *, iterations: int, wait_s: int = 0) -> None:
    d = manager.session_dir(session.id)
    sub = d / L.WORKSPACE / "submissions" / folder
    sub.mkdir(parents=True)
    code = (d / L.RUNNER / "anchor" / "train_gpt.py").read_text()
    (sub / "train_gpt.py").write_text(code.replace("num_iterations = 200", f"num_iterations = {iterations}"))
    run = (d / L.RUNNER / "anchor" / "run.sh").read_text()
    if wait_s:  # a run that outlasts the session's deadline
        run = run.replace("torchrun ", f"sleep {wait_s}\ntorchrun ", 1)
    (sub / "run.sh").write_text(run)


def _progress(d: Path) -> list[dict]:
    path = d / L.VALIDATOR / P.PROGRESS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def validating_config(slurm, tmp_path, monkeypatch):
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    path = write_config(tmp_path, 'node_runtime = "process"\ntime_limit_minutes = 5\n',
                        '[judge]\nprovider = "none"\n')
    monkeypatch.setenv("NANOGPT_TUI_CONFIG", str(path))
    return path


def test_the_validator_pauses_the_job_and_retimes_in_a_step_of_its_own_before_the_deadline(slurm, validating_config,
                                                                                             capsys):
    manager = SessionManager(load_config(validating_config))
    long = launch(manager, gpus=1, seconds=600)
    # A second session, whose retiming would outlast its deadline: it must be cut before it.
    short = launch(manager, gpus=1, seconds=75)
    long, _ = wait_for(manager, long.id, "running")
    short, _ = wait_for(manager, short.id, "running")
    for s in (long, short):
        wait_for_text(manager.session_dir(s.id) / L.CONTAINER_LOG, "starting the agent")
    _candidate(manager, long, "quick", iterations=40)
    _candidate(manager, short, "slow", iterations=40, wait_s=600)
    slow = _submit(manager, short, "slow")
    quick = _submit(manager, long, "quick")

    d = manager.session_dir(long.id)
    log = d / L.CONTAINER_LOG
    steps_seen: set[str] = set()
    frozen = []  # container.log sizes while the agent is paused (the replayed agent writes lines all the time)
    while quick.poll() is None:
        kinds = [e["type"] for e in _progress(d)]
        if "paused" in kinds and "resumed" not in kinds:
            frozen.append(log.stat().st_size)
            steps = slurm.run("squeue", "--steps", "--noheader", f"--jobs={long.handle}", "--format=%j",
                              check=False).stdout.split()
            steps_seen.update(steps)
        time.sleep(0.5)
    out = quick.stdout.read()
    assert quick.returncode in (0, 1), out
    events = _progress(d)
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "verdict", out
    assert kinds.index("paused") < kinds.index("resumed")
    texts = [e["text"] for e in events]
    ran = [t for t in texts if t.startswith("run 1/2: val_loss")]  # it ran to its final line
    assert f"ngt-{long.id}-retime" in steps_seen, steps_seen  # in a step of the session's own job
    job_gpus = slurm.run("scontrol", "--details", "show", "job", long.handle).stdout
    [gpu] = re.findall(r"GRES=gpu:1\(IDX:(\d+)\)", job_gpus)
    assert any(t.startswith(f"retiming in step ") and t.endswith(f"of job {long.handle} on ngtnode, GPUs {gpu}")
               for t in texts), texts  # on the job's own GPU
    # Paused: the agent wrote nothing while the step retimed (the pause step stopped its tree on the node).
    assert len(frozen) >= 4 and len(set(frozen[1:-1])) == 1, frozen  # the last may follow the resume
    size = log.stat().st_size
    time.sleep(2)
    assert log.stat().st_size > size  # and works again once resumed
    verdict = json.loads((d / L.VALIDATOR / P.VERDICTS / json.loads(
        next((d / L.VALIDATOR / P.RESPONSES).glob("*.json")).read_text())["verdict_file"]).read_text())
    assert ran and verdict["runs"][0]["status"] == "ok" and verdict["runs"][0]["val_loss"] > 0, texts

    # The short session: its retiming is cut before its deadline, the agent resumed, and the session ends at its
    # deadline (its own watchdog), not a retiming later.
    slow_out = slow.communicate(timeout=120)[0]
    ds = manager.session_dir(short.id)
    stext = " ".join(e["text"] for e in _progress(ds))
    assert "stopped at the session's deadline" in stext, slow_out
    resumed = next(e for e in _progress(ds) if e["type"] == "resumed")
    assert (parse_iso(resumed["ts"]) - parse_iso(manager.get(short.id).deadline)).total_seconds() < 5
    ended, _ = wait_for(manager, short.id, "out-of-budget", timeout_s=60)
    late = (parse_iso(ended.finished_at) - parse_iso(ended.deadline)).total_seconds()
    assert late < 15, (ended.deadline, ended.finished_at)
    assert read_runner_exit(ds / L.WORKSPACE / "logs").reason == ExitReason.DEADLINE
    # Its GPU-hours are Slurm's accounting: sacct's elapsed x allocated GPUs, in the budget and shown.
    elapsed, tres = slurm.run("sacct", "--noheader", "--parsable2", "--allocations", f"--jobs={short.handle}",
                              "--format=ElapsedRaw,AllocTRES").stdout.split()[0].split("|")
    assert "gres/gpu=1" in tres.split(",")
    assert ended.accounted_gpu_hours == int(elapsed) / 3600
    assert 0 <= ended.budget().used_gpu_hours() - ended.accounted_gpu_hours < 2 / 3600  # ours within a second or two
    assert ended.facts["gpu-hours"] == f"{int(elapsed) / 3600:.4f} (sacct)"
    assert main(["--config", str(validating_config), "sessions", "show", short.id]) == 0
    assert "GPU-hours used (sacct)" in capsys.readouterr().out
    assert manager.kill(long.id, grace_s=10).status == "killed"


def test_api_keys_reach_the_job_through_a_step_and_are_in_no_slurm_state_spool_or_file(slurm, config_path,
                                                                                       monkeypatch):
    from nanogpt_tui.agents import credentials

    key = "sk-ant-" + "handover-" + os.urandom(8).hex()
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # no secret, though it says TOKEN: the job keeps it
    # The replayed agent calls no API; here it is given the Anthropic API's variables as Claude Code would be, so
    # its session carries a key (in this process only: a host process without it is refused by the job).
    monkeypatch.setitem(credentials.AGENT_API, "replay", credentials.AGENT_API["claude"])
    manager = SessionManager(load_config(config_path))
    session = launch(manager, gpus=1, seconds=600)
    session, _ = wait_for(manager, session.id, "running")
    d = manager.session_dir(session.id)
    start = time.monotonic()
    while "starting the agent" not in (d / L.CONTAINER_LOG).read_text(errors="replace"):
        manager.refresh(manager.get(session.id))  # a look at the running job hands its keys over
        assert time.monotonic() - start < 60, (d / L.SLURM_DIR / L.SLURM_OUTPUT).read_text()
        time.sleep(0.2)
    job_out = (d / L.SLURM_DIR / L.SLURM_OUTPUT).read_text()
    assert "waiting for the control room to hand over ANTHROPIC_API_KEY" in job_out
    assert "the API keys were handed over" in job_out
    assert not (d / L.SLURM_DIR / L.SLURM_HANDOVER).exists()
    # It reached the session's runner through its environment...
    runner = int(json.loads((d / L.SLURM_DIR / L.SLURM_NODE).read_text())["handle"].split(":")[0])
    environ = dict(line.split("=", 1) for line in
                   Path(f"/proc/{runner}/environ").read_bytes().decode().split("\0") if "=" in line)
    assert environ.get("ANTHROPIC_API_KEY") == key
    assert environ.get("TOKENIZERS_PARALLELISM") == "false"
    # Slurm pinned the session's GPU: the runner sees the one the job holds.
    assert environ.get("CUDA_VISIBLE_DEVICES") == environ.get("SLURM_JOB_GPUS") and \
        environ["SLURM_JOB_GPUS"] in ("0", "1", "2", "3"), {k: v for k, v in environ.items() if "GPU" in k}
    # ...and is nowhere Slurm keeps a job (its state, its spool, what scontrol shows), nor in any file of the session.
    shown = slurm.run("scontrol", "--details", "show", "job", session.handle).stdout
    assert session.handle in shown and key not in shown
    script = slurm.run("scontrol", "write", "batch_script", session.handle, "-").stdout
    assert "slurm_job" in script and key not in script
    for folder in (slurm.root / "state", slurm.root / "spool", d):
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert key.encode() not in path.read_bytes(), path
    assert manager.kill(session.id, grace_s=10).status == "killed"
