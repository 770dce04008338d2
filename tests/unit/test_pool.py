"""Placement across a pool of Docker hosts (pure), the nvidia-smi parser, the discovery cache and the fix-it
commands."""

from __future__ import annotations

import pytest

from nanogpt_tui.backends import pool as P
from nanogpt_tui.backends.base import Placement
from nanogpt_tui.config import HostConfig, TLSConfig
from nanogpt_tui.errors import UserError
from nanogpt_tui.sessions.manager import live_holdings
from nanogpt_tui.sessions.model import Session
from tests.conftest import REPO


def session(sid: str, host: str = "a", gpus: int = 4, status: str = "running", ids=()) -> Session:
    return Session(id=sid, agent="scripted", strategy="default", strategy_hash="x", anchor="smoke", target=None,
                   backend="docker", host=host, image="img", gpus=gpus, budget_gpu_hours=8, created_at="t",
                   gpu_ids=list(ids), status=status)


def view(name: str, gpus, sessions=(), answers: bool = True) -> P.HostView:
    known = P.HostGpus(tuple(gpus), "config") if gpus is not None else P.HostGpus(None, "unknown")
    held = live_holdings(list(sessions), "docker")
    return P.HostView(name, f"unix:///{name}.sock", answers, "" if answers else f"{name} is down", known,
                      P.holders(held, name), P.live_on(held, name))


def test_best_fit_keeps_whole_nodes_for_large_sessions():
    running = [session("s1", host="a", gpus=6, ids=range(6))]
    views = [view("a", range(8), running), view("b", range(8), running)]
    # 2 GPUs: host a is left with none idle, b would keep 6 idle: a wins, so b stays whole for an 8-GPU session.
    got = P.place(views, 2)
    assert (got.host, got.gpu_ids) == ("a", [6, 7])
    assert P.place(views, 8) == Placement("b", list(range(8)), "GPUs 0,1,2,3,4,5,6,7 on b")
    # Ties go to config order.
    assert P.place([view("x", range(4)), view("y", range(4))], 4).host == "x"


def test_gpus_never_overlap_and_unreachable_sessions_keep_theirs():
    running = [session("s1", ids=(0, 1, 2, 3)), session("s2", gpus=2, ids=(4, 5)),
               session("old", ids=(6, 7), status="killed"), session("lost", host="b", gpus=2, ids=(0, 1),
                                                                     status="unreachable")]
    views = [view("a", range(8), running), view("b", range(2), running)]
    assert views[0].free == [6, 7]
    assert P.place(views, 2).gpu_ids == [6, 7]
    waiting = P.place(views, 4)
    assert waiting.host is None and not waiting.blocking
    assert waiting.reason == "waiting for 4 GPU(s): a has 2 of 8 free (held by s1, s2); b has only 2"
    waiting = P.place(views, 2, forced="b")
    assert waiting.reason == "waiting for 2 GPU(s): b has 0 of 2 free (held by lost)"


def test_unanswering_hosts_are_passed_over_with_the_reason():
    views = [view("a", range(8), answers=False), view("b", range(8))]
    assert P.place(views, 8).host == "b"
    got = P.place(views, 8, forced="a")
    assert got.host is None and not got.blocking
    assert got.reason == "waiting for 8 GPU(s): a does not answer. a is down."


def test_forced_host_and_too_many_gpus():
    views = [view("a", range(8)), view("b", range(4))]
    assert P.place(views, 2, forced="a").gpu_ids == [0, 1]
    got = P.place(views, 8, forced="b")
    assert got.impossible and got.reason.startswith("No host in b has 8 GPUs (the largest has 4)")
    assert P.place(views, 16).impossible
    with pytest.raises(UserError, match="no Docker host named 'zz'"):
        P.place(views, 1, forced="zz")


def test_hosts_without_gpus_take_sessions_only_when_named_or_when_the_pool_has_none():
    mixed = [view("cpu", ()), view("gpu", range(2), [session("s", host="gpu", gpus=2, ids=(0, 1))])]
    assert P.place(mixed, 1).host is None  # wait for the GPU host rather than run unpinned on a CPU box
    forced = P.place(mixed, 1, forced="cpu")
    assert (forced.host, forced.gpu_ids) == ("cpu", []) and "no GPUs" in forced.reason
    # A pool without GPUs (CI, laptops): the least busy host, unpinned.
    busy = session("s", host="one", gpus=1)
    assert P.place([view("one", (), [busy]), view("two", ())], 1).host == "two"


def test_a_fitting_host_that_misses_the_image_is_passed_over_then_blocks():
    views = [view("a", range(8)), view("b", range(8))]
    missing = {"a": ["The image x is not on Docker host a: build it there."]}
    got = P.place(views, 8, preflight=lambda h: missing.get(h, []))
    assert got.host == "b"
    missing["b"] = ["The data volume v does not exist on Docker host b."]
    got = P.place(views, 8, preflight=lambda h: missing.get(h, []))
    assert got.host is None and got.blocking
    assert got.reason == "The image x is not on Docker host a: build it there. The data volume v does not exist on " \
                         "Docker host b."


def test_a_missing_image_on_a_free_host_waits_for_a_busy_host_that_has_it():
    busy = [session("s1", host="b", gpus=8, ids=range(8))]
    views = [view("a", range(8), busy), view("b", range(8), busy)]
    got = P.place(views, 8, preflight=lambda h: ["The image x is not on Docker host a."] if h == "a" else [])
    assert got.host is None and not got.blocking  # b will free its GPUs: waiting helps
    assert got.reason == "waiting for 8 GPU(s): b has 0 of 8 free (held by s1). The image x is not on Docker host a."


def test_a_host_whose_gpus_are_unknown_is_not_taken_for_a_cpu_box():
    unknown = P.HostView("gpu", "ssh://u@gpu", True, "", P.HostGpus(None, "unknown", "image x is missing"))
    got = P.place([unknown, view("cpu", ())], 8)
    assert got.host is None and "gpu's GPUs are unknown (image x is missing)" in got.reason
    assert P.place([unknown, view("cpu", ())], 1, forced="cpu").host == "cpu"  # named: it runs unpinned there


def test_parse_gpu_query_of_a_real_h200():
    text = (REPO / "tests" / "fixtures" / "nvidia" / "h200_gpu_query.csv").read_text()
    (gpu,) = P.parse_gpu_query(text)
    assert gpu == P.Gpu(0, "GPU-216f4a3d-3ebb-949c-0a7c-cc73521f70bb", "NVIDIA H200", 143771)


def test_parse_gpu_query():
    text = ("0, GPU-0f6b7c9e-1111-2222-3333-444455556666, NVIDIA H100 80GB HBM3, 81559\n"
            "1, GPU-1a2b3c4d-1111-2222-3333-444455556666, NVIDIA H100 80GB HBM3, 81559\n")
    gpus = P.parse_gpu_query(text)
    assert [g.index for g in gpus] == [0, 1] and gpus[0].name == "NVIDIA H100 80GB HBM3"
    assert gpus[1].memory_mib == 81559
    assert P.parse_gpu_query("") == ()
    with pytest.raises(ValueError, match="line 1"):
        P.parse_gpu_query("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")
    with pytest.raises(ValueError, match="twice"):
        P.parse_gpu_query("0, a, b, 1\n0, a, b, 1\n")


def test_discovery_cache_is_trusted_only_for_the_same_daemon(tmp_path):
    cache = P.DiscoveryCache(tmp_path)
    found = P.HostGpus((0, 1), "discovered", "", (P.Gpu(0, "u0", "H100", 80), P.Gpu(1, "u1", "H100", 80)))
    cache.save("node1", "DAEMON-A", found)
    assert cache.load("node1", "DAEMON-A") == found
    assert cache.load("node1", "DAEMON-B") is None  # reinstalled host: ask again
    (tmp_path / ".hosts" / "node1.json").write_text("{not json")
    assert cache.load("node1", "DAEMON-A") is None


def test_docker_command_for_the_fix_it_sentences():
    assert P.docker_command(HostConfig("local", "unix:///var/run/docker.sock")) == "docker"
    assert P.docker_command(HostConfig("n2", "ssh://me@node2")) == "docker -H ssh://me@node2"
    tls = TLSConfig(ca_cert="/c/ca.pem", client_cert="/c/cert.pem", client_key="/c/key.pem")
    assert P.docker_command(HostConfig("n3", "tcp://n3:2376", tls=tls)) == (
        "docker -H tcp://n3:2376 --tlsverify --tlscacert=/c/ca.pem --tlscert=/c/cert.pem --tlskey=/c/key.pem")
