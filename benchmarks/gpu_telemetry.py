"""The GPU sampler for real, on a machine with NVIDIA GPUs: idle, then under a matmul load, then idle again.

    python benchmarks/gpu_telemetry.py [--out DIR] [--gpu 0] [--idle-s 15] [--busy-s 30] [--every 1]

Samples the GPU with the product's own sampler (NVML through nvidia-ml-py, and nvidia-smi for comparison) into
a session-style folder's gpu.jsonl, reads it back with the reader the control room uses, and prints per phase
the mean utilisation, memory and power, how long one sample takes with each source, and what the idle detector
says at the end. The gpu.jsonl is kept in --out (the recorded samples the tests replay come from such a run).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nanogpt_tui.contract import layout  # noqa: E402
from nanogpt_tui.telemetry.gpu import GpuFigures, GpuHistory  # noqa: E402
from nanogpt_tui.telemetry.sampler import NvidiaSmiSource, NvmlSource, sample_once  # noqa: E402


def load(gpu: int, seconds: float, stop: threading.Event) -> None:
    import torch

    a = torch.randn(8192, 8192, device=f"cuda:{gpu}", dtype=torch.bfloat16)
    end = time.monotonic() + seconds
    while time.monotonic() < end and not stop.is_set():
        for _ in range(20):
            a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize(gpu)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "gpu")
    ap.add_argument("--gpu", type=int, default=0)
    ap.add_argument("--idle-s", type=float, default=15.0)
    ap.add_argument("--busy-s", type=float, default=30.0)
    ap.add_argument("--every", type=float, default=1.0)
    args = ap.parse_args()
    session = args.out / "session"
    shutil.rmtree(session, ignore_errors=True)
    session.mkdir(parents=True)

    nvml = NvmlSource()
    print(f"NVML: {nvml.count} GPU(s); sampling GPU {args.gpu} every {args.every:g} s")
    smi_path = shutil.which("nvidia-smi")
    timings: dict[str, list[float]] = {"nvml": [], "nvidia-smi": []}
    smi_rows = []
    if smi_path:
        smi = NvidiaSmiSource(smi_path)
        for _ in range(5):
            t0 = time.perf_counter()
            smi_rows.append(smi.read([args.gpu])[0])
            timings["nvidia-smi"].append((time.perf_counter() - t0) * 1000)

    phases = [("idle before", args.idle_s, False), ("matmul load", args.busy_s, True), ("idle after", args.idle_s,
                                                                                         False)]
    marks = []
    for name, seconds, busy in phases:
        stop = threading.Event()
        worker = threading.Thread(target=load, args=(args.gpu, seconds, stop), daemon=True) if busy else None
        if worker:
            worker.start()
        start = time.time()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.perf_counter()
            sample_once(nvml, [(session, [args.gpu])])
            timings["nvml"].append((time.perf_counter() - t0) * 1000)
            time.sleep(max(0.0, args.every - (time.perf_counter() - t0)))
        stop.set()
        if worker:
            worker.join()
        marks.append((name, start, time.time()))
    nvml.close()

    history = GpuHistory(session / layout.GPU_FILE, kept=10_000)
    history.update()
    print(f"{len(history.samples)} samples read back ({history.rejected} lines rejected)")
    report = {"gpu": args.gpu, "phases": {}}
    for name, start, end in marks:
        got = [s for s in history.samples if start <= s.at <= end]
        util = [s.util_pct for s in got if s.util_pct is not None]
        power = [s.power_w for s in got if s.power_w is not None]
        mem = [s.mem_used_mib for s in got if s.mem_used_mib is not None]
        row = {"samples": len(got), "util_mean_pct": round(statistics.mean(util), 1) if util else None,
               "util_max_pct": max(util) if util else None,
               "power_mean_w": round(statistics.mean(power), 1) if power else None,
               "mem_used_max_mib": round(max(mem)) if mem else None}
        report["phases"][name] = row
        print(f"  {name:<12} {row}")
    figures = GpuFigures.of(history, time.time())
    report["idle_s_at_end"] = round(figures.idle_s, 1)
    report["card_line"] = figures.compact()
    for source, values in timings.items():
        if values:
            report[f"sample_ms_{source}"] = {"median": round(statistics.median(values), 2),
                                             "max": round(max(values), 2), "n": len(values)}
    if smi_rows:
        report["nvidia_smi_reading"] = smi_rows[-1].__dict__
    print(json.dumps(report, indent=2))
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
