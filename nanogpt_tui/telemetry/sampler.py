"""Host-side GPU sampling: each live session's pinned GPUs (utilisation, memory, power) through NVML, or
`nvidia-smi` where the NVML bindings cannot load, every few seconds into the session's `gpu.jsonl`.

It runs where the agent cannot write: in the control room or `nanogpt-tui gpus sample`, on the machine whose GPUs
the sessions hold. One sampler per sessions folder at a time (a lock file), however many control rooms are open.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from nanogpt_tui.agents.events import append_line
from nanogpt_tui.errors import UserError
from nanogpt_tui.telemetry.gpu import GpuReading, GpuSample

SAMPLE_EVERY_S = 5.0
LOCK_FILE = ".gpu-sampler.lock"


class NvmlSource:
    """GPU readings through NVML (the `nvidia-ml-py` bindings, `import pynvml`)."""

    name = "nvml"

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self.count = pynvml.nvmlDeviceGetCount()
        self._handles = {i: pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(self.count)}

    def read(self, indices: Iterable[int]) -> list[GpuReading]:
        nvml, out = self._nvml, []
        for i in indices:
            handle = self._handles.get(i)
            if handle is None:
                out.append(GpuReading(i, None, None, None, None))
                continue
            util = mem = power = None
            try:
                util = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except nvml.NVMLError:
                pass
            try:
                mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            except nvml.NVMLError:
                pass
            try:
                power = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0  # milliwatts
            except nvml.NVMLError:
                pass
            out.append(GpuReading(i, util, None if mem is None else mem.used / 2**20,
                                  None if mem is None else mem.total / 2**20, power))
        return out

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError:
            pass


class NvidiaSmiSource:
    """GPU readings from `nvidia-smi --query-gpu` (one process per sample), where NVML bindings cannot load."""

    name = "nvidia-smi"
    QUERY = "index,utilization.gpu,memory.used,memory.total,power.draw"

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def read(self, indices: Iterable[int]) -> list[GpuReading]:
        wanted = list(indices)
        done = subprocess.run([self.executable, f"--query-gpu={self.QUERY}", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=10, check=False)
        rows: dict[int, GpuReading] = {}
        for line in done.stdout.splitlines():
            cells = [c.strip() for c in line.split(",")]
            if len(cells) != 5 or not cells[0].isdigit():
                continue

            def number(text: str) -> float | None:
                try:
                    return float(text)
                except ValueError:
                    return None  # "[N/A]", "[Not Supported]"

            rows[int(cells[0])] = GpuReading(int(cells[0]), *(number(c) for c in cells[1:]))
        return [rows.get(i, GpuReading(i, None, None, None, None)) for i in wanted]

    def close(self) -> None:
        pass


def open_source():
    """NVML if its bindings load and find a driver, else nvidia-smi if it is on PATH; a UserError otherwise."""
    try:
        return NvmlSource()
    except Exception as err:  # noqa: BLE001  pynvml raises its own NVMLError kinds, or ImportError/OSError
        why = f"{type(err).__name__}: {err}"
    smi = shutil.which("nvidia-smi")
    if smi:
        return NvidiaSmiSource(smi)
    raise UserError(f"No GPU telemetry on this machine: NVML did not load ({why}) and nvidia-smi is not on PATH. "
                    "Run the sampler on the machine whose GPUs the sessions use.")


def sample_once(source, targets: list[tuple[Path, list[int]]], now: float | None = None) -> int:
    """Read every target's GPUs once (each GPU read once, however many sessions list it) and append a sample to
    each target's gpu.jsonl; returns the samples written."""
    from nanogpt_tui.contract import layout

    wanted = sorted({i for _, ids in targets for i in ids})
    if not wanted:
        return 0
    readings = {r.index: r for r in source.read(wanted)}
    at = time.time() if now is None else now
    written = 0
    for session_dir, ids in targets:
        sample = GpuSample(at, tuple(readings[i] for i in ids), source.name)
        try:
            append_line(session_dir / layout.GPU_FILE, sample.to_line().encode())
            written += 1
        except OSError:
            continue  # the session folder went away between listing and writing
    return written


class GpuSampler:
    """A daemon thread sampling the GPUs of `targets()` (session folder, GPU ids) every `every_s` seconds, while
    it holds the sessions folder's sampler lock (another process holding it samples instead)."""

    def __init__(self, root: Path, targets: Callable[[], list[tuple[Path, list[int]]]], *,
                 every_s: float = SAMPLE_EVERY_S, source=None, on_problem: Callable[[str], None] = lambda _: None
                 ) -> None:
        self.root = Path(root)
        self.targets = targets
        self.every_s = every_s
        self.source = source
        self.on_problem = on_problem
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        self.samples_written = 0

    def acquire(self) -> bool:
        """Take the sessions folder's sampler lock; False when another sampler holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def start(self) -> bool:
        """Start sampling if this process may (the lock is free); returns whether it started."""
        if not self.acquire():
            return False
        self._thread = threading.Thread(target=self._run, name="gpu-sampler", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                self.step()
                self._stop.wait(max(0.0, self.every_s - (time.monotonic() - began)))
        finally:
            self.release()

    def step(self) -> int:
        """One round: open the source if needed, sample every target once."""
        try:
            targets = self.targets()
            if not targets:
                return 0
            if self.source is None:
                self.source = open_source()
            written = sample_once(self.source, targets)
            self.samples_written += written
            return written
        except UserError as err:
            self.on_problem(str(err))
            self._stop.set()  # no GPUs to read here: say so once and stop
        except (OSError, subprocess.SubprocessError) as err:
            self.on_problem(f"GPU sampling failed ({type(err).__name__}: {err}); retrying in {self.every_s:g} s.")
        return 0

    def release(self) -> None:
        if self.source is not None:
            self.source.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def local_targets(sessions: Iterable, root: Path, local_hosts: set[str]) -> list[tuple[Path, list[int]]]:
    """The running sessions placed on this machine (`local_hosts`: host names whose GPUs are this machine's)
    with pinned GPUs, as sampler targets."""
    return [(root / s.id, list(s.gpu_ids)) for s in sessions
            if s.status == "running" and s.gpu_ids and (s.host in local_hosts or s.backend == "local")]
