"""How long a Slurm session takes from `sbatch` to running, next to the local backend in the same run, and what a
running session sees while slurmctld restarts. Starts its own one-node Slurm (tests/integration/slurm_cluster.py;
needs Debian's slurm-wlm and munge: `bash tests/provision/40-slurm.sh`).

    .venv/bin/python benchmarks/slurm_latency.py [--runs 5]

Prints, per backend, the seconds from `launch` returning to (a) the session `running` and (b) the runner's
"starting the agent" line in container.log (the agent is really going), as median and max over the runs; then what
the validator pays to freeze and thaw a running agent around a retiming (`backend.pause` / `backend.resume`: on
Slurm a job step each, `srun --jobid --overlap`, on the local backend SIGSTOP/SIGCONT), median and max over
`--pause-rounds`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nanogpt_tui.config import load_config  # noqa: E402
from nanogpt_tui.contract import layout  # noqa: E402
from nanogpt_tui.sessions.manager import LaunchRequest, SessionManager  # noqa: E402
from tests.integration.slurm_cluster import PARTITION, SlurmCluster  # noqa: E402

REPLAY_ENV = (("BENCHMARK_REPLAY_SPEED", "50"), ("BENCHMARK_REPLAY_LOOP", "1"))


def manager_for(root: Path) -> SessionManager:
    shutil.copytree(REPO / "human_baselines" / "smoke", root / "baselines" / "smoke",
                    ignore=shutil.ignore_patterns("data", "logs"))
    (root / "nanogpt-tui.toml").write_text(
        'schema_version = 1\n[paths]\nsessions_dir = "sessions"\nbaselines_dir = "baselines"\n'
        f'[benchmark]\nanchor = "smoke"\n[slurm]\npartition = "{PARTITION}"\nnode_runtime = "process"\n')
    return SessionManager(load_config(root / "nanogpt-tui.toml"))


def one(manager: SessionManager, backend: str) -> tuple[float, float]:
    session = manager.launch(LaunchRequest(agent="replay", anchor="smoke", backend=backend, gpus=1,
                                           budget_gpu_hours=600 / 3600, extra_env=REPLAY_ENV))
    t0 = time.monotonic()
    log = manager.session_dir(session.id) / layout.CONTAINER_LOG
    running = agent = None
    while agent is None or running is None:
        if running is None and manager.refresh(manager.get(session.id)).status == "running":
            running = time.monotonic() - t0
        if agent is None and "starting the agent" in log.read_text(errors="replace"):
            agent = time.monotonic() - t0
        if time.monotonic() - t0 > 120:
            raise SystemExit(f"{backend}: the session did not start within 120 s")
        time.sleep(0.05)
    manager.kill(session.id, grace_s=5)
    return running, agent


def pause_resume(manager: SessionManager, backend: str, rounds: int) -> tuple[list[float], list[float], int]:
    """Seconds per pause and per resume of one running session, and the processes a pause froze."""
    session = manager.launch(LaunchRequest(agent="replay", anchor="smoke", backend=backend, gpus=1,
                                           budget_gpu_hours=600 / 3600, extra_env=REPLAY_ENV))
    log = manager.session_dir(session.id) / layout.CONTAINER_LOG
    t0 = time.monotonic()
    while "starting the agent" not in log.read_text(errors="replace"):
        manager.refresh(manager.get(session.id))
        if time.monotonic() - t0 > 120:
            raise SystemExit(f"{backend}: the session did not start within 120 s")
        time.sleep(0.05)
    driver = manager.backend(backend)
    ref = manager.ref(manager.get(session.id))
    pauses, resumes, frozen = [], [], 0
    for _ in range(rounds):
        t = time.monotonic()
        frozen = len(driver.pause(ref))
        pauses.append(time.monotonic() - t)
        t = time.monotonic()
        driver.resume(ref)
        resumes.append(time.monotonic() - t)
        time.sleep(0.2)
    manager.kill(session.id, grace_s=5)
    return pauses, resumes, frozen


def summary(name: str, rows: list[tuple[float, float]]) -> str:
    run, agent = [r for r, _ in rows], [a for _, a in rows]
    return (f"{name:<6} running: median {statistics.median(run):.2f} s, max {max(run):.2f} s · agent started: "
            f"median {statistics.median(agent):.2f} s, max {max(agent):.2f} s  ({len(rows)} runs)")


def restart(manager: SessionManager, cluster: SlurmCluster) -> None:
    session = manager.launch(LaunchRequest(agent="replay", anchor="smoke", backend="slurm", gpus=1,
                                           budget_gpu_hours=600 / 3600, extra_env=REPLAY_ENV))
    while manager.refresh(manager.get(session.id)).status != "running":
        time.sleep(0.1)
    log = manager.session_dir(session.id) / layout.CONTAINER_LOG
    time.sleep(2)
    t0 = time.monotonic()
    cluster.stop_slurmctld()
    stopped = time.monotonic() - t0
    lines = log.read_text().count("\n")
    seen = manager.refresh(manager.get(session.id))
    print(f"slurmctld stopped ({stopped:.1f} s); the session reads: {seen.status} ({seen.status_reason[:90]}...)")
    time.sleep(5)
    grew = log.read_text().count("\n") - lines
    print(f"while it was down the agent wrote {grew} more log lines in 5 s (the job runs on)")
    t1 = time.monotonic()
    cluster.start_slurmctld()
    up = time.monotonic() - t1
    while manager.refresh(manager.get(session.id)).status != "running":
        time.sleep(0.1)
    print(f"slurmctld answered {up:.1f} s after it was started; the session was running again "
          f"{time.monotonic() - t1:.1f} s after that start (outage {time.monotonic() - t0:.1f} s)")
    manager.kill(session.id, grace_s=5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pause-rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ngt-slurm-bench-") as tmp:
        root = Path(tmp)
        cluster = SlurmCluster(root / "slurm").start()
        os.environ["SLURM_CONF"] = str(cluster.conf)
        try:
            manager = manager_for(root)
            local = [one(manager, "local") for _ in range(args.runs)]
            slurm = [one(manager, "slurm") for _ in range(args.runs)]
            print(summary("local", local))
            print(summary("slurm", slurm))
            for backend in ("local", "slurm"):
                pauses, resumes, frozen = pause_resume(manager, backend, args.pause_rounds)
                print(f"{backend:<6} pause: median {statistics.median(pauses) * 1000:.0f} ms, max "
                      f"{max(pauses) * 1000:.0f} ms · resume: median {statistics.median(resumes) * 1000:.0f} ms, "
                      f"max {max(resumes) * 1000:.0f} ms ({frozen} processes frozen, {len(pauses)} rounds)")
            restart(manager, cluster)
        finally:
            cluster.run("scancel", "--full", "--user=root", check=False)
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
