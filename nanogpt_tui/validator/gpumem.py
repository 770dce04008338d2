"""Which processes hold GPU memory, from NVML through `nvidia-smi` (present wherever the NVIDIA driver or container
toolkit is), so the validator pauses an agent only when none of its processes holds any."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass

QUERY = ("nvidia-smi", "--query-compute-apps=pid,used_memory,gpu_uuid", "--format=csv,noheader,nounits")


@dataclass(frozen=True)
class GpuProcess:
    pid: int  # in the node's PID namespace (what NVML reports, and what `docker top` gives)
    used_mib: float
    gpu_uuid: str


def parse_compute_apps(text: str) -> list[GpuProcess]:
    """`nvidia-smi --query-compute-apps=pid,used_memory,gpu_uuid --format=csv,noheader,nounits` output."""
    found = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        try:
            used = float(parts[1])
        except ValueError:  # "[N/A]" where the driver cannot say: count it as held
            used = float("nan")
        found.append(GpuProcess(int(parts[0]), used, parts[2]))
    return found


def gpu_processes(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> tuple[list[GpuProcess], str]:
    """Every process holding GPU memory on this node, and "" or why NVML could not be asked (no driver: none)."""
    if shutil.which(QUERY[0]) is None:
        return [], "nvidia-smi is not installed (no NVIDIA driver here), so no process can hold GPU memory"
    try:
        done = run(list(QUERY), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return [], f"nvidia-smi failed ({err})"
    if done.returncode != 0:
        return [], f"nvidia-smi exited {done.returncode}: {(done.stderr or done.stdout).strip()[:200]}"
    return parse_compute_apps(done.stdout), ""


def holders(processes: Iterable[GpuProcess], pids: Iterable[int]) -> list[GpuProcess]:
    """The processes among `pids` that hold GPU memory."""
    wanted = set(pids)
    return [p for p in processes if p.pid in wanted and not p.used_mib == 0]


def refusal(held: list[GpuProcess]) -> str:
    """The one sentence `submit` prints when it is refused."""
    what = ", ".join(f"pid {p.pid} ({p.used_mib:.0f} MiB)" for p in held[:5])
    return (f"Submit refused: the agent's processes still hold GPU memory ({what}); stop your training runs "
            "before submitting, so the retiming has the GPUs to itself.")
