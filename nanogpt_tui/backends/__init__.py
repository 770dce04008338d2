"""Where sessions run, all behind the protocol in `base`: local process trees (`local`), Docker Engine hosts as a
pool (`pool`, over `docker_backend`, the one module importing the docker SDK) and Slurm (`slurm`). `create_backend`
makes the one a session names; the session manager never asks which one it holds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nanogpt_tui.backends.base import Backend
    from nanogpt_tui.config import Config


def _local(config: "Config", root: Path) -> "Backend":
    from nanogpt_tui.backends.local import LocalBackend

    return LocalBackend(config.paths.local_data_dir)


def _docker(config: "Config", root: Path) -> "Backend":
    from nanogpt_tui.backends.pool import DockerPool

    return DockerPool(config, root)


DEFAULT_BACKEND = "docker"
LOCAL_BACKEND = "local"


def sandboxed_kind(kind: str) -> bool:
    """Whether sessions of `kind` run in the sandbox by default (all but local process trees)."""
    return kind != LOCAL_BACKEND

def _slurm(config: "Config", root: Path) -> "Backend":
    from nanogpt_tui.backends.slurm import SlurmBackend

    return SlurmBackend(config, root)


FACTORIES: dict[str, Callable[["Config", Path], "Backend"]] = {"docker": _docker, "local": _local, "slurm": _slurm}
BACKEND_KINDS = tuple(FACTORIES)


def create_backend(kind: str, config: "Config", sessions_root: Path) -> "Backend":
    """The backend for sessions whose `backend` is `kind`."""
    from nanogpt_tui.errors import UserError

    factory = FACTORIES.get(kind)
    if factory is None:
        raise UserError(f"Unknown backend {kind!r}; use one of {', '.join(BACKEND_KINDS)}.")
    return factory(config, Path(sessions_root))
