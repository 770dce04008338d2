"""GPU allocation: each Docker host's GPUs (from config, or NVML on this machine) given to sessions without overlap."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nanogpt_tui.config import HostConfig
from nanogpt_tui.sessions import model as M


def nvml_gpu_ids() -> tuple[int, ...] | None:
    """GPU indices on this machine from the NVIDIA management library, when it is installed and a driver answers."""
    try:
        import pynvml  # nvidia-ml-py: optional
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            return tuple(range(pynvml.nvmlDeviceGetCount()))
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # pynvml raises NVMLError subclasses for "no driver", "no GPU", ...  # noqa: BLE001
        return None


@dataclass(frozen=True)
class Allocation:
    gpu_ids: list[int] | None  # None: nothing fits, see reason
    reason: str


class GpuAllocator:
    """Knows which GPUs each host offers and which live sessions hold them."""

    def __init__(self, hosts: Sequence[HostConfig], sessions: Iterable[M.Session],
                 local_gpu_ids: tuple[int, ...] | None = None) -> None:
        self.hosts = {h.name: h for h in hosts}
        self.sessions = list(sessions)
        self._local = local_gpu_ids

    def host_gpus(self, host: str) -> tuple[int, ...] | None:
        cfg = self.hosts.get(host)
        if cfg is not None and cfg.gpus is not None:
            return cfg.gpus
        if cfg is not None and cfg.url.startswith("unix://"):
            # A local daemon: this machine's GPUs, if NVML can see them.
            return self._local if self._local is not None else nvml_gpu_ids()
        return None

    def held(self, host: str, exclude: str | None = None) -> dict[int, str]:
        """GPU id -> session id, for live sessions on `host`."""
        holding = {}
        for s in self.sessions:
            if s.host == host and s.backend == "docker" and s.id != exclude and s.status in (M.RUNNING, M.UNREACHABLE):
                for gpu in s.gpu_ids:
                    holding[gpu] = s.id
        return holding

    def free(self, host: str, exclude: str | None = None) -> list[int] | None:
        offered = self.host_gpus(host)
        if offered is None:
            return None
        held = self.held(host, exclude)
        return [g for g in offered if g not in held]

    def allocate(self, session: M.Session) -> Allocation:
        offered = self.host_gpus(session.host)
        if offered is None or not offered:
            # A host with no known GPUs (no NVIDIA runtime, or none listed): the session runs without pinned GPUs
            # and its budget counts the GPUs it asked for.
            return Allocation([], f"host {session.host} lists no GPUs, so none are pinned")
        free = self.free(session.host, exclude=session.id) or []
        if len(free) >= session.gpus:
            return Allocation(sorted(free)[: session.gpus], "allocated")
        holders = sorted(set(self.held(session.host, exclude=session.id).values()))
        return Allocation(None, f"waiting for {session.gpus} GPU(s) on {session.host}: {len(free)} of "
                                f"{len(offered)} free (held by {', '.join(holders) or 'nobody'})")
