"""The backend protocol is complete and the manager never asks which backend it holds; Slurm's answers are read
right; a Slurm job's launch file keeps no secret."""

from __future__ import annotations

import ast
import datetime as dt
import inspect
import json
import stat
from pathlib import Path

import pytest

from nanogpt_tui.backends import BACKEND_KINDS, FACTORIES, create_backend
from nanogpt_tui.backends.base import EXITED, QUEUED, RUNNING, Backend, LaunchSpec, PlaceRequest, SessionRef
from nanogpt_tui.backends.local import LocalBackend
from nanogpt_tui.backends.pool import DockerPool
from nanogpt_tui.backends.slurm import SlurmBackend, _exit_code, allocated_gpus, parse_squeue, parse_time_limit
from nanogpt_tui.config import load_config
from nanogpt_tui.contract import layout
from nanogpt_tui.errors import UserError
from nanogpt_tui.sessions.model import Session

REPO = Path(__file__).resolve().parents[2]


def _protocol_members() -> set[str]:
    return {name for name, _ in inspect.getmembers(Backend) if not name.startswith("_")} | {"kind", "default_gpus"}


@pytest.mark.parametrize("cls", [LocalBackend, DockerPool, SlurmBackend])
def test_every_backend_implements_the_whole_protocol(cls):
    missing = {name for name in _protocol_members() if not hasattr(cls, name)}
    assert missing == set()
    for name in _protocol_members() - {"kind", "default_gpus"}:
        ours = inspect.signature(getattr(Backend, name)).parameters
        theirs = inspect.signature(getattr(cls, name)).parameters
        assert list(ours) == list(theirs), f"{cls.__name__}.{name}{tuple(theirs)} differs from the protocol"
    assert cls.kind in BACKEND_KINDS


def test_the_manager_never_names_a_backend_or_reaches_around_the_protocol():
    tree = ast.parse((REPO / "nanogpt_tui" / "sessions" / "manager.py").read_text(encoding="utf-8"))
    names = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in BACKEND_KINDS]
    calls = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
             and n.func.id in ("getattr", "hasattr")]
    imports = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
               and n.module.startswith("nanogpt_tui.backends.") and n.module != "nanogpt_tui.backends.base"]
    assert (names, calls, imports) == ([], [], [])


def test_an_unknown_backend_is_one_sentence(tmp_path):
    with pytest.raises(UserError, match="Unknown backend 'kubernetes'; use one of docker, local, slurm"):
        create_backend("kubernetes", load_config(None), tmp_path)
    assert set(FACTORIES) == set(BACKEND_KINDS)


def test_a_session_file_from_before_handles_reads_its_handle(tmp_path):
    base = Session(id="s1", agent="replay", strategy="default", strategy_hash="h", anchor="smoke", target=None,
                   backend="local", host="local", image=None, gpus=1, budget_gpu_hours=1.0,
                   created_at="2026-12-01T00:00:00Z").to_dict()
    base.pop("handle"), base.pop("facts")
    assert Session.from_dict({**base, "pid": 4242, "pid_start_ticks": 77}).handle == "4242:77"
    assert Session.from_dict({**base, "container_id": "abc123"}).handle == "abc123"
    assert Session.from_dict(base).handle is None


# --- Slurm's answers ---------------------------------------------------------------------------------------------

def test_squeue_lines():
    queued = parse_squeue("12|PENDING|Resources|gpu|(null)|N/A|1:00:00")
    assert (queued.status, queued.detail) == (QUEUED, "PENDING (Resources)")
    assert queued.facts == {"job": "12", "state": "PENDING", "partition": "gpu", "time_limit": "1:00:00",
                            "queue": "PENDING (Resources)"}
    running = parse_squeue("13|RUNNING|None|gpu|node7|2026-12-03T11:43:58|UNLIMITED")
    assert running.status == RUNNING and running.facts["node"] == "node7" and running.detail == "RUNNING"
    assert running.started_at == dt.datetime(2026, 12, 3, 11, 43, 58).astimezone(dt.timezone.utc)
    assert parse_squeue("14|TIMEOUT|None|gpu|node7|2026-12-03T11:43:58|1:00").status == EXITED


@pytest.mark.parametrize("text, minutes", [("1:00", 1), ("0:30", 1), ("10", 10), ("2:00:00", 120),
                                           ("1-00:00:00", 1440), ("1-02", 1560), ("UNLIMITED", None),
                                           ("INVALID", None)])
def test_time_limits(text, minutes):
    assert parse_time_limit(text) == minutes


def test_exit_codes_and_gpus():
    assert (_exit_code("0:0"), _exit_code("3:0"), _exit_code("0:9"), _exit_code("?")) == (0, 3, 137, None)
    assert allocated_gpus({"SLURM_JOB_GPUS": "2,3"}) == [2, 3]
    assert allocated_gpus({"CUDA_VISIBLE_DEVICES": "1"}) == [1]
    assert allocated_gpus({}) == []


# --- the job Slurm is given --------------------------------------------------------------------------------------

def _slurm(tmp_path, section: str) -> SlurmBackend:
    path = tmp_path / "nanogpt-tui.toml"
    path.write_text(f'schema_version = 1\n[paths]\nsessions_dir = "sessions"\n[slurm]\n{section}\n')
    config = load_config(path)
    return SlurmBackend(config, config.paths.sessions_dir)


def _spec(tmp_path) -> tuple[SessionRef, LaunchSpec]:
    d = tmp_path / "sessions" / "s1"
    ref = SessionRef("s1", d, host="")
    spec = LaunchSpec(session_id="s1", image="img", command=["python3", "-m", "x"],
                      env={"BENCHMARK_RUN_ID": "s1", "ANTHROPIC_API_KEY": "sk-ant-" + "not-a-real-key"},
                      workspace_dir=d / "workspace", runner_dir=d / "runner", control_dir=d / "control",
                      log_path=d / "container.log", gpus=8, time_limit_s=3600.0)
    return ref, spec


def test_sbatch_arguments_follow_the_config(tmp_path):
    backend = _slurm(tmp_path, 'partition = "h100"\naccount = "lab"\nqos = "long"\nconstraint = "nvlink"\n')
    ref, spec = _spec(tmp_path)
    args = backend.sbatch_args(ref, spec)
    for expected in ("--job-name=ngt-s1", "--comment=s1", "--no-requeue", "--gres=gpu:8", "--time=62",
                     "--partition=h100", "--account=lab", "--qos=long", "--constraint=nvlink"):
        assert expected in args
    capped = _slurm(tmp_path, "time_limit_minutes = 2880\n").sbatch_args(ref, spec)
    assert "--time=2880" in capped and not any(a.startswith("--partition") for a in capped)


def test_the_launch_file_keeps_no_secret(tmp_path):
    backend = _slurm(tmp_path, 'node_runtime = "docker"\n')
    ref, spec = _spec(tmp_path)
    script = backend.write_launch(ref, spec)
    launch_path = ref.session_dir / layout.SLURM_DIR / layout.SLURM_LAUNCH
    text = launch_path.read_text()
    assert "not-a-real-key" not in text
    launch = json.loads(text)
    assert launch["hand_over"] == {"env": ["ANTHROPIC_API_KEY"], "gateway": []}  # names only: handed over later
    assert launch["env"] == {"BENCHMARK_RUN_ID": "s1"}
    assert stat.S_IMODE(launch_path.stat().st_mode) == 0o600
    assert "nanogpt_tui.backends.slurm_job" in script.read_text()


def test_gpu_hours_from_slurm_accounting_are_the_budget_once_known():
    from nanogpt_tui.backends.slurm import parse_accounting
    from nanogpt_tui.sessions.model import Budget

    assert parse_accounting("5400", "billing=1,cpu=8,gres/gpu=8,gres/gpu:h100=8,node=1\n") == 12.0
    assert parse_accounting("60", "billing=1,cpu=1,node=1") is None  # GPUs not counted as a TRES: not guessed
    assert parse_accounting("", "") is None
    start = dt.datetime(2026, 12, 3, 12, tzinfo=dt.timezone.utc)
    hour = dt.timedelta(hours=1)
    # The scheduler's count where it allocated more GPUs than the session asked for (a whole node)...
    assert Budget(10.0, 1, start, start + hour, accounted_gpu_hours=8.0).used_gpu_hours() == 8.0
    # ...but never less than GPUs x wall-clock (its count may be from a little before now, or before the end).
    assert Budget(10.0, 2, start, None, accounted_gpu_hours=8.0).used_gpu_hours(start + hour) == 8.0
    assert Budget(10.0, 2, start, None, accounted_gpu_hours=1.0).used_gpu_hours(start + hour) == 2.0
    assert Budget(10.0, 2, start, start + hour, accounted_gpu_hours=1.5).used_gpu_hours() == 2.0
    assert Budget(10.0, 2, start, None).used_gpu_hours(start + hour) == 2.0


class SlurmCommands:
    """Stands in for Slurm's client commands (the backend's run_command): answers by command, records each call."""

    def __init__(self, answers: dict[str, object]) -> None:
        self.answers, self.calls = answers, []

    def __call__(self, argv, **_kwargs) -> str:
        self.calls.append(argv[0])
        answer = self.answers[argv[0]]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_an_ended_job_costs_one_sacct_query_and_accounting_that_is_off_is_not_asked_again(tmp_path, monkeypatch):
    from nanogpt_tui.backends import slurm

    ref = SessionRef("s1", tmp_path / "s1", handle="42")
    commands = SlurmCommands({"squeue": "", "sacct": "COMPLETED|0:0|gpu|node1|2026-12-03T12:00:00|5400|"
                                                     "billing=1,cpu=8,gres/gpu=8\n"})
    monkeypatch.setattr(slurm, "run_command", commands)
    state = _slurm(tmp_path, "").state(ref)
    assert (state.status, state.exit_code, state.gpu_hours, state.facts["node"]) == (EXITED, 0, 12.0, "node1")
    assert commands.calls == ["squeue", "sacct"]  # how it ended and its GPU-hours in one query
    # No accounting storage: sacct says so once, then only the controller is asked until the back-off ends.
    commands = SlurmCommands({"squeue": "", "sacct": UserError("`sacct --noheader` failed: Slurm accounting "
                                                               "storage is disabled"),
                              "scontrol": "JobId=42 JobState=FAILED ExitCode=3:0 Partition=gpu NodeList=node1"})
    monkeypatch.setattr(slurm, "run_command", commands)
    backend = _slurm(tmp_path, "")
    states = [backend.state(ref) for _ in range(2)]
    assert [(s.status, s.exit_code, s.gpu_hours) for s in states] == [(EXITED, 3, None)] * 2
    assert commands.calls == ["squeue", "sacct", "scontrol", "squeue", "scontrol"]
    # A running job's accounting honours the same back-off.
    commands.answers["squeue"] = "42|RUNNING|None|gpu|node1|2026-12-03T12:00:00|1:00:00"
    assert backend.state(ref).status == RUNNING and commands.calls[-1] == "squeue"


def test_slurm_asks_its_controller_in_the_survey_and_places_without_asking(tmp_path, monkeypatch):
    from nanogpt_tui.backends import slurm

    commands = SlurmCommands({"sinfo": "gpu\ncpu\n"})
    monkeypatch.setattr(slurm, "run_command", commands)
    monkeypatch.setattr(slurm.shutil, "which", lambda name: f"/usr/bin/{name}")
    backend = _slurm(tmp_path, 'partition = "gpu"\nnode_runtime = "docker"\n')
    backend.survey()
    assert commands.calls == ["sinfo"]
    request = PlaceRequest("s1", 1, None, "img", "smoke")
    assert backend.place(request, []).host == "gpu"
    named = backend.place(PlaceRequest("s1", 1, "nope", "img", "smoke"), [])
    assert named.host is None and named.blocking and "no partition 'nope'" in named.reason
    assert commands.calls == ["sinfo"]  # placement (under the manager's lock) asked the controller nothing
    commands.answers["sinfo"] = slurm.SlurmUnreachable("The Slurm controller does not answer (Connection refused).")
    backend.survey()
    down = backend.place(request, [])
    assert down.host is None and down.blocking and "does not answer" in down.reason


def test_each_slurm_node_runtime_the_config_accepts_is_one_object_placement_asks(tmp_path):
    from nanogpt_tui.backends.slurm import NODE_RUNTIMES
    from nanogpt_tui.config import NODE_RUNTIMES as ACCEPTED

    assert set(NODE_RUNTIMES) == set(ACCEPTED)
    docker = _slurm(tmp_path, 'node_runtime = "docker"\n')
    assert (docker.sandboxed, docker.admit(None, None).image, docker.runtime.data()) == \
        (True, docker.config.docker.image, (docker.config.docker.data_volume, None))
    process = _slurm(tmp_path, 'node_runtime = "process"\n')
    data_dir = process.config.paths.local_data_dir
    assert (process.sandboxed, process.admit(None, "img").image) == (False, None)
    assert process.runtime.data() == (None, str(data_dir.resolve()))
    assert "No shards in" in process.runtime.missing()[0]  # the local backend's sentence: one shard placement
