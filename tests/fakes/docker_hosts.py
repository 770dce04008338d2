"""A stand-in for DockerBackend's pool-facing calls (ping, daemon id, nvidia-smi query, pre-start check), for
testing the manager's survey, back-off and discovery cache without daemons. Counts every call."""

from __future__ import annotations

from collections import Counter

from nanogpt_tui.errors import UserError


class FakeHost:
    def __init__(self, name: str, *, up: bool = True, gpu_query: tuple[str, str] = ("no-runtime", ""),
                 labels: dict[str, str] | None = None) -> None:
        self.name = name
        # The image's labels: by default the CPU test image's, which is outside the stack check.
        self.labels = {"nanogpt-tui.test-image": "1"} if labels is None else labels
        self.up = up
        self.gpu_query = gpu_query
        self.calls: Counter[str] = Counter()

    def _answer(self, what: str) -> None:
        self.calls[what] += 1
        if not self.up:
            raise UserError(f"Cannot reach the Docker daemon at fake://{self.name} (Connection refused); start it.")

    def ping(self) -> bool:
        self._answer("ping")
        return True

    def daemon_id(self) -> str:
        self._answer("daemon_id")
        return f"ID-{self.name}"

    def query_gpus(self, image: str, command) -> tuple[str, str]:
        self._answer("query_gpus")
        return self.gpu_query

    def missing(self, image, data_volume, docker_cmd, shared_dir=None) -> list[str]:
        self._answer("missing")
        return []

    def image_labels(self, image: str) -> dict[str, str]:
        self._answer("image_labels")
        return dict(self.labels)
    def close(self) -> None:
        self.calls["close"] += 1
