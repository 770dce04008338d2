"""A session on an image whose stack differs from its anchor's in a must-match field does not start, unless
allowed; the CPU test image and anchors with no stated stack are outside the check."""

from __future__ import annotations

from pathlib import Path

from nanogpt_tui.config import load_config
from nanogpt_tui.records import load_timeline
from nanogpt_tui.backends.base import PlaceRequest
from nanogpt_tui.backends.pool import DockerPool
from nanogpt_tui.stack import ENV_MATCH, ENV_MISMATCH, ENV_OUTSIDE, ENV_UNSTATED, check_image_stack, plan_image
from tests.fakes.docker_hosts import FakeHost

REPO = Path(__file__).resolve().parents[2]
FP8 = "2026-07-17_FP8DownProjection"
BIGRAM = "2026-01-19_BigramHashEmbedding"


def labels_for(anchor: str) -> dict[str, str]:
    """The labels an image built by `image plan --anchor` carries."""
    timeline = load_timeline(REPO / "human_baselines")
    return plan_image(anchor, timeline.get(anchor).stack).image_stack.labels()


def manager(tmp_path: Path, host: FakeHost) -> DockerPool:
    path = tmp_path / "nanogpt-tui.toml"
    path.write_text(f'schema_version = 1\n[paths]\nsessions_dir = "sessions"\nbaselines_dir = "{REPO / "human_baselines"}"\n'
                    '[[hosts]]\nname = "gpu1"\nurl = "tcp://gpu1:2376"\n')
    config = load_config(path)
    return DockerPool(config, config.paths.sessions_dir, drivers={"gpu1": host})


def session(anchor: str, allow: bool = False) -> PlaceRequest:
    return PlaceRequest(session_id="s1", gpus=8, host=None, image="nanogpt-bench:x", anchor=anchor,
                        allow_env_mismatch=allow)


def test_an_image_built_for_another_anchor_is_refused_with_the_fix(tmp_path):
    m = manager(tmp_path, FakeHost("gpu1", labels=labels_for("2025-09-03_FA3")))
    problems = m.checks(session(FP8), "gpu1")
    assert len(problems) == 1 and "torch: the anchor ran 2.10.0+cu128, the image has 2.9.0+cu126" in problems[0]
    assert f"nanogpt-tui image plan --anchor {FP8}" in problems[0] and "--allow-env-mismatch" in problems[0]
    # Allowed: no problem, and the check says what differed and that it was allowed.
    assert m.checks(session(FP8, allow=True), "gpu1") == []
    check = m.env_check(session(FP8, allow=True), "gpu1").to_dict()
    assert check["status"] == ENV_MISMATCH and check["allowed"] is True
    assert {d["field"] for d in check["differences"] if d["must_match"]} == {"torch", "triton", "attention", "kernel_repo"}
    assert {d["field"]: d["must_match"] for d in check["differences"]}["cuda"] is False  # 12.6 vs 12.8: may differ


def test_the_anchors_own_image_and_the_test_image_start(tmp_path):
    m = manager(tmp_path, FakeHost("gpu1", labels=labels_for(FP8)))
    assert m.checks(session(FP8), "gpu1") == []
    assert m.env_check(session(FP8), "gpu1").status == ENV_MATCH
    test_image = manager(tmp_path, FakeHost("gpu1"))
    assert test_image.checks(session(FP8), "gpu1") == []
    assert test_image.env_check(session(FP8), "gpu1").status == ENV_OUTSIDE
    # The smoke record is no timeline record with a log: outside the check, on any image.
    unlabelled = manager(tmp_path, FakeHost("gpu1", labels={}))
    assert unlabelled.env_check(session("smoke"), "gpu1").status == ENV_OUTSIDE


def test_an_image_stating_no_stack_is_refused():
    check = check_image_stack(BIGRAM, load_timeline(REPO / "human_baselines").get(BIGRAM).stack, "plain:latest", {})
    assert check.status == ENV_UNSTATED and check.refused and "states no stack" in check.reason


def test_reports_state_an_allowed_mismatch(tmp_path):
    from nanogpt_tui.reports.render import _env_check_text

    m = manager(tmp_path, FakeHost("gpu1", labels=labels_for("2025-09-03_FA3")))
    allowed = m.env_check(session(FP8, allow=True), "gpu1").to_dict()
    assert _env_check_text(allowed).startswith("MISMATCH ALLOWED (--allow-env-mismatch): mismatch: The image")
    assert _env_check_text(None).startswith("not checked")


def test_placement_checks_the_chosen_hosts_image_once_and_reads_the_timeline_once(tmp_path, monkeypatch):
    import nanogpt_tui.records as records

    reads = []
    monkeypatch.setattr(records, "load_timeline", lambda path: reads.append(path) or load_timeline(path))
    host = FakeHost("gpu1", labels=labels_for(FP8))
    placement = manager(tmp_path, host).place(session(FP8), [])
    assert placement.host == "gpu1" and placement.env_check["status"] == ENV_MATCH
    assert host.calls["image_labels"] == 1 and len(reads) == 1
