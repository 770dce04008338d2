"""Benchmark: what pausing the agent adds to a submit, and the GPU-memory check before it (not a timed test).

Measured, each N times (median and max, in ms):

- `local`: SIGSTOP / SIGCONT of an agent-like process tree (a shell with 4 busy children), as the local backend
  pauses a session;
- `docker` (where a daemon answers and the image exists): `docker pause` + `docker top` / `docker unpause` of a
  running container, as the Docker backend pauses a session (`--image`, default: the test image if built);
- `nvml`: one `nvidia-smi --query-compute-apps` (the GPU-memory check), and on a GPU node whether a process that
  holds GPU memory is found by its PID and refused (`holders`), and one that holds none is not.

    .venv/bin/python benchmarks/submit_pause.py [--repeat 20] [--image IMAGE] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nanogpt_tui.validator.gpumem import gpu_processes, holders, refusal  # noqa: E402


def stats(samples: list[float]) -> dict:
    return {"n": len(samples), "median_ms": round(statistics.median(samples), 2), "max_ms": round(max(samples), 2)}


def bench_local(repeat: int) -> dict:
    from nanogpt_tui.backends.local import ProcessTrees

    proc = subprocess.Popen(["bash", "-c", "for i in 1 2 3 4; do (while :; do :; done) & done; wait"],
                            start_new_session=True)
    time.sleep(0.3)
    backend = ProcessTrees()
    handle = f"{proc.pid}:0"
    pause, resume, pids = [], [], 0
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            pids = len(backend.pause(handle))
            pause.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            backend.resume(handle)
            resume.append((time.perf_counter() - t0) * 1000)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return {"processes": pids, "pause": stats(pause), "resume": stats(resume)}


def bench_docker(repeat: int, image: str | None) -> dict:
    try:
        import docker
    except ImportError:
        return {"skipped": "the docker SDK is not installed"}
    from nanogpt_tui.backends.docker_backend import DockerBackend

    try:
        client = docker.from_env()
        client.ping()
    except Exception as err:  # noqa: BLE001 - a benchmark: say why and go on
        return {"skipped": f"no Docker daemon answers ({err.__class__.__name__})"}
    if image is None:
        from nanogpt_tui.backends.testimage import plan

        image = plan().ref
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return {"skipped": f"the image {image} is not built"}
    container = client.containers.run(image, ["bash", "-c", "for i in 1 2 3 4; do (while :; do :; done) & done; "
                                              "wait"], detach=True, init=True, name=f"ngt-sandbox-bench-{os.getpid()}")
    backend = DockerBackend("unix:///var/run/docker.sock")
    pause, resume, pids = [], [], 0
    try:
        time.sleep(0.5)
        for _ in range(repeat):
            t0 = time.perf_counter()
            pids = len(backend.pause(container.id))
            pause.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            backend.resume(container.id)
            resume.append((time.perf_counter() - t0) * 1000)
    finally:
        container.remove(force=True)
        backend.close()
    return {"image": image, "processes": pids, "pause_and_top": stats(pause), "resume": stats(resume)}


def bench_nvml(repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        processes, why = gpu_processes()
        times.append((time.perf_counter() - t0) * 1000)
    out: dict = {"query": stats(times), "why_none": why or None, "processes_seen": len(processes)}
    if why:
        return out
    # A process that holds GPU memory is found by its PID and refused; this process (no CUDA context) is not.
    holder = subprocess.Popen([sys.executable, "-c", "import torch, time; x = torch.empty(256 << 20, "
                               "dtype=torch.uint8, device='cuda'); torch.cuda.synchronize(); print('ready', "
                               "flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        ready = holder.stdout.readline().strip() == "ready"
        found: list = []
        for _ in range(20):  # NVML lists a new context within a moment
            found = holders(gpu_processes()[0], [holder.pid])
            if found:
                break
            time.sleep(0.25)
        out["holder"] = {"started": ready, "pid": holder.pid, "found": bool(found),
                         "used_mib": found[0].used_mib if found else None,
                         "refusal": refusal(found) if found else None,
                         "this_process_found": bool(holders(gpu_processes()[0], [os.getpid()]))}
        argv = [sys.executable, "-m", "nanogpt_tui.validator.worker", "--candidate", "/nonexistent",
                "--result", f"/tmp/ngt-sandbox-worker-{os.getpid()}.json", "--logs", "/tmp", "--runs", "2",
                "--val-loss-target", "3.28", "--p-value-threshold", "0.01", "--timeout", "10",
                "--agent-pids", str(holder.pid)]
        t0 = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        out["worker_refuses"] = {"exit_code": done.returncode, "ms": round((time.perf_counter() - t0) * 1000, 1),
                                 "output": done.stdout.strip()[-300:]}
    finally:
        holder.kill()
        holder.wait()
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--image")
    p.add_argument("--json", action="store_true")
    p.add_argument("--only", choices=("local", "docker", "nvml"), action="append")
    args = p.parse_args()
    parts = args.only or ["local", "docker", "nvml"]
    result = {}
    if "local" in parts:
        result["local"] = bench_local(args.repeat)
    if "docker" in parts:
        result["docker"] = bench_docker(args.repeat, args.image)
    if "nvml" in parts:
        result["nvml"] = bench_nvml(min(args.repeat, 10))
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
