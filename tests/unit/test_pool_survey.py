"""The Docker pool's view of its hosts: a host that fails is not asked again until its back-off ends (and is asked
then, however often others survey), `--discover` asks every host, and a failed GPU discovery is not cached."""

from __future__ import annotations

import time

from nanogpt_tui.backends import pool as pool_module
from nanogpt_tui.backends.pool import DockerPool
from nanogpt_tui.config import load_config
from tests.fakes.docker_hosts import FakeHost


def pool(tmp_path, hosts: dict[str, FakeHost]) -> DockerPool:
    path = tmp_path / "nanogpt-tui.toml"
    path.write_text('schema_version = 1\n[paths]\nsessions_dir = "sessions"\n'
                    + "".join(f'[[hosts]]\nname = "{n}"\nurl = "tcp://{n}:2376"\n' for n in hosts))
    config = load_config(path)
    return DockerPool(config, config.paths.sessions_dir, drivers=dict(hosts))


def test_a_down_host_is_asked_again_when_its_back_off_ends(tmp_path, monkeypatch):
    monkeypatch.setattr(pool_module, "HOST_RETRY_S", 0.3)
    down = FakeHost("b", up=False)
    m = pool(tmp_path, {"a": FakeHost("a"), "b": down})
    views = {v.name: v for v in m.hosts()}
    assert views["a"].answers and not views["b"].answers and "Connection refused" in views["b"].problem
    assert down.calls["ping"] == 1
    m.hosts()
    assert down.calls["ping"] == 1  # backing off, with the last reason kept
    started = time.monotonic()
    while time.monotonic() - started < 1.0:  # surveys every 0.1 s, more often than the back-off
        m.hosts()
        time.sleep(0.1)
    assert 3 <= down.calls["ping"] <= 5
    down.up = True
    time.sleep(0.35)
    assert {v.name: v.answers for v in m.hosts()} == {"a": True, "b": True}


def test_discover_asks_every_host_even_one_backing_off(tmp_path):
    down = FakeHost("b", up=False)
    m = pool(tmp_path, {"b": down})
    m.hosts()
    down.up = True
    (view,) = m.hosts(rediscover=True)
    assert view.answers and down.calls["ping"] == 2 and down.calls["query_gpus"] == 1


def test_a_failed_gpu_discovery_is_not_cached_but_no_runtime_is(tmp_path):
    flaky = FakeHost("g", gpu_query=("failed", "nvidia-smi: timed out"))
    m = pool(tmp_path, {"g": flaky})
    (view,) = m.hosts()
    assert view.gpus.ids is None and view.gpus.detail == "nvidia-smi failed: nvidia-smi: timed out"
    flaky.gpu_query = ("ok", "0, GPU-a, NVIDIA H100 80GB HBM3, 81559\n1, GPU-b, NVIDIA H100 80GB HBM3, 81559\n")
    (view,) = m.hosts()
    assert view.gpus.ids == (0, 1) and view.gpus.source == "discovered"
    m.hosts()
    assert flaky.calls["query_gpus"] == 2  # the second answer was cached
    cpu = FakeHost("c")
    m = pool(tmp_path, {"c": cpu})
    m.hosts(), m.hosts()
    assert cpu.calls["query_gpus"] == 1  # "no NVIDIA runtime" is an answer: cached under the daemon id
