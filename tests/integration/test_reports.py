"""Reports, `reproduce`, `compare` and `timeline-classify` through the real CLI, on sessions produced by the real
scripted agent and on generated session folders with known outcomes (tests/fakes/sessions.py)."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

from nanogpt_tui.cli import main
from nanogpt_tui.records import load_timeline
from nanogpt_tui.reports.writer import write_report
from nanogpt_tui.contract import layout as L
from nanogpt_tui.sessions import model as M
from tests.fakes.sessions import (
    ANCHOR_FIXTURE,
    EDITS,
    FA3,
    GAP_S,
    PUBLISHED_LIKE,
    FakeSession,
    FakeSubmission,
    T0,
    percent_to_seconds,
    run_scripted_session,
    write_autoresearch_history,
    write_session,
    write_sessions_folder,
)

REPO = Path(__file__).resolve().parents[2]


def make_config(folder: Path, sessions_dir: Path) -> Path:
    """A private baselines folder (the real records.tsv) and a config file pointing at it and at `sessions_dir`."""
    baselines = folder / "human_baselines"
    baselines.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "human_baselines" / "records.tsv", baselines / "records.tsv")
    path = folder / "nanogpt-tui.toml"
    path.write_text(f'schema_version = 1\n[paths]\nbaselines_dir = "{baselines}"\nsessions_dir = "{sessions_dir}"\n')
    return path


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR" and data[-8:-4] == b"IEND", "a PNG without its header or end chunk"
    return struct.unpack(">II", data[16:24])


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


# ------------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def scripted(tmp_path_factory) -> dict:
    """One session of the real scripted agent on the fast stand-in record (a hyperparameter change that misses,
    one that is kept and submitted, then an algorithmic change kept and submitted)."""
    root = tmp_path_factory.mktemp("scripted")
    sessions = root / "sessions"
    sessions.mkdir()
    config = make_config(root, sessions)
    session_dir = run_scripted_session(sessions, config_path=config)
    return {"root": root, "config": config, "dir": session_dir}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict:
    """Nine finished sessions like the published ones (three per agent, all under 10%), plus one extended, one
    still running and one on the smoke anchor (no % of progress)."""
    root = tmp_path_factory.mktemp("generated")
    sessions = root / "sessions"
    extended = FakeSession(
        agent="codex", strategy="default", started=T0.replace(month=11), session_id="20261101T000000Z-codex-extended",
        extensions=[(400.0, 64.0, "close to a new best")],
        submissions=[FakeSubmission(at_gpu_hours=100.0, seconds_faster=2.0),
                     FakeSubmission(at_gpu_hours=550.0, seconds_faster=4.0, edits=("steps", "cooldown"))])
    running = FakeSession(agent="claude", strategy="default", status=M.RUNNING, used_gpu_hours=100.0,
                          session_id="20261102T000000Z-claude-running",
                          submissions=[FakeSubmission(at_gpu_hours=50.0, seconds_faster=3.0)])
    smoke = FakeSession(agent="scripted", strategy="default", anchor="smoke", target=None, budget_gpu_hours=1.0,
                        gpus=1, session_id="20261103T000000Z-scripted-smoke",
                        submissions=[FakeSubmission(at_gpu_hours=0.5, seconds_faster=1.5, retime_gpu_hours=0.01)])
    written = write_sessions_folder(sessions)
    extras = {w.session.id: w for w in (write_session(sessions, s) for s in (extended, running, smoke))}
    config = make_config(root, sessions)
    return {"root": root, "sessions": sessions, "config": config, "written": written, "extras": extras,
            "timeline": load_timeline(root / "human_baselines")}


# ------------------------------------------------------------------------------------------------ report: scripted

def test_report_of_a_scripted_agent_session(scripted, capsys):
    d, config = scripted["dir"], str(scripted["config"])
    code, out, err = run_cli(capsys, "--config", config, "report", str(d))
    assert code == 0, err
    folder = d / "report"
    assert out.strip() == f"report written to {folder}: progress.png, report.md, report.html, report.json"
    assert sorted(p.name for p in folder.iterdir()) == ["progress.png", "report.html", "report.json", "report.md"]

    # The figure: a valid PNG of the documented size, and not a blank canvas.
    assert png_size(folder / "progress.png") == (1200, 720)
    assert (folder / "progress.png").stat().st_size > 20_000

    report = json.loads((folder / "report.json").read_text())
    assert (report["schema_version"], report["kind"]) == (1, "session-report")
    assert report["figure"] == report["figure"] | {"file": "progress.png", "width_px": 1200, "height_px": 720}
    (s,) = report["sessions"]
    assert (s["agent"], s["strategy"], s["status"]) == ("scripted", "default", "exited")

    # Every verdict the validator wrote for the agent's submits is a row, with the verdict's own numbers.
    verdicts = {p.stem: json.loads(p.read_text()) for p in (d / "validator" / "verdicts").glob("*.json")}
    assert {r["verdict_id"] for r in s["submissions"]} == set(verdicts)
    assert [(r["kind"], r["submission"]) for r in s["submissions"]] == [
        ("baseline", "anchor"), ("submission", "submission_1"), ("submission", "submission_2")]  # the pristine anchor
    for row in s["submissions"]:
        v = verdicts[row["verdict_id"]]
        assert row["counts"] is v["counts"] is True
        assert row["p_value"] == pytest.approx(v["stats"]["p_value"])
        assert row["mean_train_time_s"] == pytest.approx(v["stats"]["mean_train_time_ms"] / 1000)
        lo, hi = v["stats"]["ci95_train_time_ms"]
        assert row["ci95_half_width_s"] == pytest.approx((hi - lo) / 2000)
        assert row["percent_of_human_progress"] == pytest.approx(v["speedup"]["percent_of_human_progress"])
        assert row["judge"]["label"] == "skipped"
    # A baseline verdict is the anchor itself and carries no speedup; the best is the best submission's.
    assert [v["speedup"]["seconds_faster"] for v in verdicts.values() if v["kind"] == "baseline"] == [None]
    best = max((v for v in verdicts.values() if v["kind"] == "submission"), key=lambda v: v["speedup"]["seconds_faster"])
    assert s["progress"]["final_seconds_faster"] == pytest.approx(best["speedup"]["seconds_faster"], abs=1e-6)
    assert s["progress"]["final_percent"] == pytest.approx(100 * best["speedup"]["seconds_faster"] / GAP_S, abs=1e-5)
    assert [st["submission"] for st in s["progress"]["steps"]] == ["submission_1", "submission_2"]

    # The best submission's diff against the anchor: fewer steps and no attention.
    b = s["best_submission"]
    assert (b["submission"], b["diff_against"], b["files_changed"]) == ("submission_2", "runner/anchor", 1)
    assert "-        self.attn = CausalSelfAttention()" in b["diff"]
    assert "+    num_iterations: int = 1700" in b["diff"]

    # Changes: each experiment against the code it started from; the AST agrees with what the agent declared.
    items = {i["name"]: i for i in s["changes"]["items"]}
    assert [i["name"] for i in s["changes"]["items"] if i["source"] == "experiment"] == [
        "00_baseline", "01_halve-steps", "02_fewer-steps", "03_drop-attention"]
    assert items["00_baseline"]["kind"] == "none"
    for name in ("01_halve-steps", "02_fewer-steps", "03_drop-attention"):
        assert items[name]["kind"] == items[name]["declared_kind"], items[name]
    assert (items["01_halve-steps"]["parent"], items["02_fewer-steps"]["parent"],
            items["03_drop-attention"]["parent"]) == ("00_baseline", "00_baseline", "02_fewer-steps")
    assert (items["submission_1"]["kind"], items["submission_2"]["kind"]) == ("hyperparameter", "algorithmic")
    assert items["submission_2"]["parent"] == "submission_1"
    assert "Hyperparameters.num_iterations: literal 1750 -> 875" in items["01_halve-steps"]["evidence"][0]
    hours = s["changes"]["gpu_hours_by_kind"]
    assert hours["hyperparameter"] > 0 and hours["algorithmic"] > 0 and hours["systems"] == 0
    total = sum(hours.values()) + s["changes"]["unattributed_gpu_hours"]
    assert total == pytest.approx(s["budget"]["used_gpu_hours"], abs=1e-5)  # each figure rounded to 6 places
    shares = s["changes"]["share_of_changes"]
    assert shares["hyperparameter"] + shares["algorithmic"] == pytest.approx(1.0)

    # Budget, tokens, reproducibility.
    assert s["budget"]["ended_because"] == "the agent exited: the agent finished, exit status 0"
    assert s["budget"]["total_gpu_hours"] == 1.0 and 0 < s["budget"]["used_gpu_hours"] < 1.0
    assert s["usage"]["cost_usd"] == 0.0 and s["usage"]["invocations"] >= 1
    r = s["reproducibility"]
    assert r["strategy_hash"] == "0" * 64 and r["python_version"] != "unknown" and r["gpu_model"] == "unknown"
    assert set(r["anchor_code_sha256"]) == {"run.sh", "train_gpt.py"}

    md = (folder / "report.md").read_text()
    for text in ("![progress](progress.png)", "### Submissions and verdicts", "| submission_2 | validated (counts) |",
                 "### Budget", "### Where the GPU-hours went", "| 03_drop-attention | experiment | 02_fewer-steps |",
                 "### Tokens and cost", "```diff", "### Reproducibility", "<summary>Config snapshot"):
        assert text in md, text

    html = (folder / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    # Self-contained: the figure inlined, nothing linked or fetched.
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    encoded = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html).group(1)
    assert base64.b64decode(encoded) == (folder / "progress.png").read_bytes()
    assert '<span class="del">-        self.attn = CausalSelfAttention()</span>' in html


def test_an_existing_report_is_never_overwritten_without_force(scripted, capsys):
    d, config = scripted["dir"], str(scripted["config"])
    out_dir = scripted["root"] / "only-json"
    assert run_cli(capsys, "--config", config, "report", str(d), "--format", "json", "--out", str(out_dir))[0] == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["progress.png", "report.json"]
    before = (out_dir / "report.json").read_bytes(), (out_dir / "report.json").stat().st_mtime_ns
    code, _, err = run_cli(capsys, "--config", config, "report", str(d), "--format", "json", "--out", str(out_dir))
    assert code == 2
    assert f"{out_dir} already holds a report (progress.png, report.json); pass --force" in err
    assert ((out_dir / "report.json").read_bytes(), (out_dir / "report.json").stat().st_mtime_ns) == before
    # A format not yet there is still refused while the figure is: the folder holds a report.
    assert run_cli(capsys, "--config", config, "report", str(d), "--format", "md", "--out", str(out_dir))[0] == 2
    assert run_cli(capsys, "--config", config, "report", str(d), "--format", "json,md", "--out", str(out_dir),
                   "--force")[0] == 0
    assert (out_dir / "report.md").is_file()
    code, _, err = run_cli(capsys, "--config", config, "report", str(d), "--format", "pdf", "--out", str(out_dir))
    assert code == 2 and "Unknown report format(s) pdf" in err


# ------------------------------------------------------------------------------------------------ report: generated

def test_report_numbers_of_a_session_with_known_outcomes(generated, tmp_path):
    w = generated["written"][0]
    result = write_report([w.path], timeline=generated["timeline"], baselines_dir=generated["root"] / "human_baselines",
                          out_dir=tmp_path / "r")
    (s,) = result.report["sessions"]
    p = s["progress"]
    assert p["final_percent"] == pytest.approx(w.final_percent) == pytest.approx(9.0)
    # The curve: two validated steps in the budget; the rejected faster attempt is not a step; the verdict that
    # finished after the budget is a step outside it and does not count.
    assert [(st["gpu_hours"], st["within_budget"]) for st in p["steps"]] == [(60.0, True), (300.0, True),
                                                                               (515.0, False)]
    final = percent_to_seconds(9.0)
    assert p["area_seconds_gpu_hours"] == pytest.approx(0.4 * final * 240 + final * 212, rel=1e-6)
    assert p["mean_percent_over_budget"] == pytest.approx(100 * (0.4 * final * 240 + final * 212) / GAP_S / 512)

    rows = {r["submission"]: r for r in s["submissions"]}
    assert (rows["submission_2"]["outcome"], rows["submission_2"]["counts"], rows["submission_2"]["judge"]["label"]) \
        == ("rejected", False, "flagged")
    times = [(163.86 - final) * 1000 + o for o in (-135, -105, -75, -45, -15, 15, 45, 75, 105, 135)]
    half = stats.t.ppf(0.975, 9) * stats.tstd(times) / math.sqrt(10) / 1000
    assert rows["submission_3"]["ci95_half_width_s"] == pytest.approx(half)
    assert rows["submission_3"]["within_budget"] is True and rows["submission_5"]["within_budget"] is False

    assert {k: s["usage"][k] for k in w.usage} == w.usage
    r = s["reproducibility"]
    assert (r["gpu_model"], r["gpu_count"], r["driver_version"], r["cuda_version"], r["torch_version"]) == (
        "NVIDIA H100 80GB HBM3", 8, "560.35.03", "12.6", "2.9.0.dev20250713+cu126")
    assert r["image_id"].startswith("sha256:") and r["sources"]["image_id"] == "inspect.json"

    # GPU-hours per kind: the experiments by the time rule, the submissions by their verdicts' time.
    expected = dict(w.gpu_hours_by_kind)
    expected["hyperparameter"] += 2.5 * 4 + 0.05  # four retimed submissions and a rejected one, all retuning
    assert s["changes"]["gpu_hours_by_kind"] == pytest.approx(expected)
    assert s["changes"]["share_of_changes"]["hyperparameter"] == pytest.approx(
        expected["hyperparameter"] / (expected["hyperparameter"] + expected["algorithmic"] + expected["systems"]))


def test_report_of_an_extended_session(generated, tmp_path):
    w = generated["extras"]["20261101T000000Z-codex-extended"]
    result = write_report([w.path], timeline=generated["timeline"], out_dir=tmp_path / "r")
    (s,) = result.report["sessions"]
    b = s["budget"]
    assert (b["budget_gpu_hours"], b["extended_gpu_hours"], b["total_gpu_hours"]) == (512.0, 64.0, 576.0)
    assert b["extensions"] == [{"at": b["extensions"][0]["at"], "gpu_hours": 64.0, "reason": "close to a new best",
                                "gpu_hours_at": 400.0}]
    assert b["remaining_gpu_hours"] == 0 and b["ended_because"].startswith("out of budget")
    # The verdict at 550 GPU-hours is inside the extended budget, so it counts.
    assert s["progress"]["final_seconds_faster"] == pytest.approx(4.0)
    assert s["usage"]["cost_usd"] is None and s["usage"]["cost_complete"] is False  # Codex reports no cost
    assert s["usage"]["input_tokens"] == 3_000_000 and s["usage"]["output_tokens"] == 60_000
    assert "extended" in (tmp_path / "r" / "report.md").read_text()


def test_group_report_and_one_report_each(generated, capsys, tmp_path):
    config = str(generated["config"])
    ids = [w.session.id for w in generated["written"][:3]]
    code, out, err = run_cli(capsys, "--config", config, "report", *ids)
    assert code == 0, err
    folder = Path(out.split("report written to ", 1)[1].split(":", 1)[0])
    assert folder.parent == generated["sessions"] / "reports" and folder.name.startswith("group-3-")
    report = json.loads((folder / "report.json").read_text())
    assert report["kind"] == "group-report" and [r["id"] for r in report["summary"]] == ids
    assert [round(r["final_percent"], 6) for r in report["summary"]] == [9.0, 9.5, 9.4]
    assert png_size(folder / "progress.png") == (1200, 720)
    assert "## Summary" in (folder / "report.md").read_text()

    each = tmp_path / "each"
    assert run_cli(capsys, "--config", config, "report", *ids[:2], "--each", "--out", str(each))[0] == 0
    assert sorted(p.name for p in each.iterdir()) == sorted(ids[:2])
    assert json.loads((each / ids[0] / "report.json").read_text())["kind"] == "session-report"
    assert run_cli(capsys, "--config", config, "report", "no-such-session")[0] == 2


def test_report_of_a_session_off_the_human_timeline(generated, tmp_path):
    w = generated["extras"]["20261103T000000Z-scripted-smoke"]
    result = write_report([w.path], timeline=generated["timeline"], out_dir=tmp_path / "r")
    s = result.report["sessions"][0]
    assert s["progress"]["final_percent"] is None and s["progress"]["final_seconds_faster"] == pytest.approx(1.5)
    assert result.report["scale"]["gap_s"] is None and result.report["scale"]["human_lines"] == []
    assert "smoke is not on the human record timeline" in result.report["scale"]["note"]
    assert "no % of human progress" in (tmp_path / "r" / "report.md").read_text()
    assert png_size(tmp_path / "r" / "progress.png") == (1200, 720)


def test_autoresearch_commits_are_the_experiments(tmp_path):
    """The Autoresearch harness keeps no experiment folders: each experiment is a commit named in results.tsv,
    discarded ones reset away; each is classified against its git parent and costs the time to the next one."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    w = write_session(tmp_path / "sessions", FakeSession(
        agent="claude-autoresearch", strategy="autoresearch", session_id="ar", used_gpu_hours=512.0,
        submissions=[FakeSubmission(at_gpu_hours=300.0, seconds_faster=3.0, retime_gpu_hours=2.0)]))
    hashes = write_autoresearch_history(w, [("steps", "keep", 10.0, "fewer steps"),
                                            ("gelu", "discard", 100.0, "GELU instead of relu^2"),
                                            ("lr", "keep", 200.0, "higher Adam lr")])
    result = write_report([w.path], timeline=load_timeline(REPO / "human_baselines"), out_dir=tmp_path / "r")
    changes = result.report["sessions"][0]["changes"]
    assert changes["sources"] == ["results.tsv commits"]
    items = {i["name"]: i for i in changes["items"] if i["source"] == "commit"}
    steps, gelu, lr = (items[hashes[k]] for k in ("steps", "gelu", "lr"))
    assert (steps["kind"], gelu["kind"], lr["kind"]) == ("hyperparameter", "algorithmic", "hyperparameter")
    assert (steps["parent"], gelu["parent"], lr["parent"]) == ("anchor", hashes["steps"], hashes["steps"])
    assert {i["parent_basis"] for i in items.values()} == {"git parent"}
    assert gelu["status"] == "discard" and gelu["description"] == "GELU instead of relu^2"
    # From each commit to the next stamp: the next commit, the start of the verdict (298), the session's end.
    assert (steps["gpu_hours"], gelu["gpu_hours"], lr["gpu_hours"]) == pytest.approx((90.0, 100.0, 98.0))
    assert changes["gpu_hours_by_kind"]["algorithmic"] == pytest.approx(100.0)


# ------------------------------------------------------------------------------------------------ reproduce

def test_reproduce_prints_the_published_table_from_sessions(generated, capsys):
    config, folder = str(generated["config"]), str(generated["sessions"])
    code, out, err = run_cli(capsys, "--config", config, "reproduce", folder, "--json", "--force")
    assert code == 0, err
    table = json.loads(out)
    groups = {(g["agent"], g["strategy"]): g for g in table["groups"]}
    assert set(groups) == set(PUBLISHED_LIKE) | {("codex", "default")}
    for key, finals in PUBLISHED_LIKE.items():
        g = groups[key]
        values = list(finals) + ([100 * 4.0 / GAP_S] if key == ("codex", "default") else [])
        assert g["n"] == len(values)
        assert sorted(g["final_percent"]) == pytest.approx(sorted(values))
        assert g["mean_percent"] == pytest.approx(sum(values) / len(values))
        lo, hi = stats.t.interval(0.95, len(values) - 1, loc=sum(values) / len(values), scale=stats.sem(values))
        assert g["ci_percent"] == pytest.approx([lo, hi])
    assert groups[("claude-autoresearch", "autoresearch")]["published"] == {"label": "Autoresearch on Opus 4.6 Max",
                                                                            "percent": 9.3}
    assert groups[("claude", "default")]["published"]["percent"] == 8.2
    assert groups[("claude", "default")]["difference_percent"] == pytest.approx(0.0, abs=1e-9)
    assert all(p["matched"] for p in table["published"])
    findings = {f["claim"]: f for f in table["findings"]}
    assert findings["no agent recovered more than 10% of human progress"]["sentence"] == \
        "no agent recovered more than 10% of human progress: true"
    assert findings["no single session recovered more than 10% of human progress"]["holds"] is True
    hyper = findings["agents spent most of the compute that went into code changes on hyperparameter tuning"]
    assert hyper["holds"] is True and "hyperparameter" in hyper["detail"]
    human = next(f for f in table["findings"] if "human records" in f["claim"])
    assert human["holds"] is None and "not checked" in human["sentence"]
    skipped = {s["session"]: s["reason"] for s in table["skipped"]}
    assert skipped["20261102T000000Z-claude-running"] == "still running: its budget has not ended"
    assert skipped["20261103T000000Z-scripted-smoke"].startswith("no % of human progress: smoke")
    assert png_size(Path(table["figure"])) == (1200, 720)

    # The text table, with the published numbers beside it and the finding as a sentence.
    code, out, _ = run_cli(capsys, "--config", config, "reproduce", folder)
    assert code == 0
    assert "Codex on GPT-5.4 xhigh" in out and "Claude Code on Opus 4.6 Max" in out
    assert "no agent recovered more than 10% of human progress: true" in out
    assert re.search(r"claude-autoresearch / autoresearch\s+claude-opus-4-6\s+3\s+9\.30%\s+\[8\.64, 9\.96\]", out)
    assert "exists; not redrawn (pass --force to replace it)" in out


def test_reproduce_finding_is_false_when_a_group_recovers_more_than_10_percent(tmp_path, capsys):
    sessions = tmp_path / "sessions"
    write_sessions_folder(sessions, {("codex", "default"): [10.5, 11.0, 12.0], ("claude", "default"): [7.0, 8.0, 9.0],
                                     ("claude-autoresearch", "autoresearch"): [9.0, 9.5, 10.8]})
    config = make_config(tmp_path, sessions)
    code, out, _ = run_cli(capsys, "--config", str(config), "reproduce", "--json", "--no-figure")
    assert code == 0
    findings = {f["claim"]: f for f in json.loads(out)["findings"]}
    first = findings["no agent recovered more than 10% of human progress"]
    assert first["sentence"] == "no agent recovered more than 10% of human progress: false"
    assert first["detail"].startswith("highest group mean 11.17% (codex / default, n=3)")
    single = findings["no single session recovered more than 10% of human progress"]
    assert single["holds"] is False and "12.00%" in single["detail"]
    assert json.loads(out)["figure"] is None

    # A group whose mean stays at or under 10% while one of its sessions goes over: the first sentence holds.
    only = tmp_path / "only"
    write_sessions_folder(only, {("claude-autoresearch", "autoresearch"): [9.0, 9.5, 10.8]})
    code, out, _ = run_cli(capsys, "--config", str(config), "reproduce", str(only), "--json", "--no-figure")
    findings = {f["claim"]: f for f in json.loads(out)["findings"]}
    assert findings["no agent recovered more than 10% of human progress"]["holds"] is True
    assert findings["no single session recovered more than 10% of human progress"]["holds"] is False


def test_reproduce_with_one_session_per_group_gives_no_interval(tmp_path, capsys):
    sessions = tmp_path / "sessions"
    write_sessions_folder(sessions, {("codex", "default"): [8.6]})
    config = make_config(tmp_path, sessions)
    code, out, _ = run_cli(capsys, "--config", str(config), "reproduce", "--json", "--no-figure")
    (g,) = json.loads(out)["groups"]
    assert (g["n"], g["ci_percent"], g["ci_method"]) == (1, None, "one session: no interval")
    assert run_cli(capsys, "--config", str(config), "reproduce", str(tmp_path / "nowhere"))[0] == 2


def test_reproduce_on_sessions_off_the_human_timeline_reports_seconds(tmp_path, capsys):
    sessions = tmp_path / "sessions"
    for i, faster in enumerate((1.0, 2.0)):
        write_session(sessions, FakeSession(agent="scripted", strategy="default", anchor="smoke", target=None,
                                            budget_gpu_hours=1.0, gpus=1, session_id=f"smoke-{i}",
                                            submissions=[FakeSubmission(at_gpu_hours=0.5, seconds_faster=faster,
                                                                        retime_gpu_hours=0.01)]))
    config = make_config(tmp_path, sessions)
    code, out, _ = run_cli(capsys, "--config", str(config), "reproduce", "--json", "--force")
    table = json.loads(out)
    (g,) = table["groups"]
    assert table["unit"] == "seconds faster" and g["final_percent"] == [] and g["mean_seconds_faster"] == 1.5
    assert g["ci_seconds_faster"] == pytest.approx(list(stats.t.interval(0.95, 1, loc=1.5, scale=0.5)))
    assert table["findings"][0]["holds"] is None and "not checked" in table["findings"][0]["sentence"]
    assert png_size(Path(table["figure"])) == (1200, 720)
    code, out, _ = run_cli(capsys, "--config", str(config), "reproduce", "--no-figure")
    assert out.startswith("Seconds faster than the anchor at the end of the budget")


# ------------------------------------------------------------------------------------------------ compare

def test_compare_strategies_with_a_rank_test(generated, capsys):
    config, folder = str(generated["config"]), str(generated["sessions"])
    code, out, err = run_cli(capsys, "--config", config, "compare", folder, "--by", "strategy", "--json")
    assert code == 0, err
    result = json.loads(out)
    groups = {g["name"]: g for g in result["groups"]}
    auto = [9.0, 9.5, 9.4]
    # claude and codex with the default strategy, and the extended codex session; the running session and the
    # smoke session (no % of progress) are left out.
    default = [7.5, 8.2, 8.9, 8.0, 9.0, 8.8, 100 * 4.0 / GAP_S]
    assert groups["autoresearch"]["final"]["values"] == pytest.approx(auto)
    assert sorted(groups["default"]["final"]["values"]) == pytest.approx(sorted(default))
    expected = stats.mannwhitneyu(auto, default, alternative="two-sided")
    t = result["tests"]["final"]
    assert t["test"] == "Mann-Whitney U" and t["p_value"] == pytest.approx(expected.pvalue)
    assert t["min_attainable_p"] == pytest.approx(2 / math.comb(10, 3))
    skipped = {s["session"] for s in result["skipped"]}
    assert skipped == {"20261102T000000Z-claude-running", "20261103T000000Z-scripted-smoke"}
    assert result["tests"]["area"]["p_value"] is not None
    statement = " ".join(result["statement"])
    assert "different agents" in statement  # autoresearch ran only with claude-autoresearch
    assert result["min_detectable_difference"]["difference"] > 0

    code, out, _ = run_cli(capsys, "--config", config, "compare", folder)
    assert code == 0 and "final: Mann-Whitney U p = " in out and "autoresearch" in out


def test_compare_says_what_few_sessions_cannot_show(tmp_path, capsys):
    one = tmp_path / "one"
    write_sessions_folder(one, {("claude", "default"): [8.0], ("claude", "autoresearch"): [9.0]})
    config = make_config(tmp_path, one)
    code, out, _ = run_cli(capsys, "--config", str(config), "compare", "--json")
    result = json.loads(out)
    assert code == 0 and result["tests"]["final"]["p_value"] is None
    assert result["statement"][0].startswith("With 1 session per strategy no test is possible")

    three = tmp_path / "three"
    write_sessions_folder(three, {("claude", "default"): [7.5, 8.2, 8.9], ("claude", "autoresearch"): [9.0, 9.5, 9.4]})
    code, out, _ = run_cli(capsys, "--config", str(config), "compare", str(three), "--json")
    result = json.loads(out)
    t = result["tests"]["final"]
    assert t["p_value"] == pytest.approx(stats.mannwhitneyu([9.0, 9.5, 9.4], [7.5, 8.2, 8.9]).pvalue)
    assert t["min_attainable_p"] == pytest.approx(0.1) and t["significant"] is False
    statement = " ".join(result["statement"])
    assert ("With 3 and 3 sessions the smallest p-value an exact Mann-Whitney U test can give is 0.100, so no "
            "difference, however large, can be significant at 0.05; two groups need at least 4 sessions each.") \
        in statement
    assert "does not show that the strategies are equal" in statement
    assert "different agents" not in statement

    code, out, _ = run_cli(capsys, "--config", str(config), "compare", str(three), "--by", "agent", "--json")
    assert "Only one agent (claude)" in json.loads(out)["statement"][0]

    many = tmp_path / "many"
    finals = {("claude", "default"): [7.5, 8.2, 8.9], ("claude", "autoresearch"): [9.0, 9.5, 9.4],
              ("claude", "terse"): [6.0, 6.5, 7.0]}
    write_sessions_folder(many, finals)
    code, out, _ = run_cli(capsys, "--config", str(config), "compare", str(many), "--json")
    t = json.loads(out)["tests"]["final"]
    assert t["test"] == "Kruskal-Wallis"
    assert t["p_value"] == pytest.approx(stats.kruskal(*finals.values()).pvalue)
    assert t["min_attainable_p"] == pytest.approx(math.factorial(3) / (math.factorial(9) / math.factorial(3) ** 3))


# ------------------------------------------------------------------------------------------------ human timeline

def test_timeline_classify_on_records_with_code_and_skips_the_rest(tmp_path, capsys):
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    config = make_config(tmp_path, sessions)
    baselines = tmp_path / "human_baselines"
    anchor = (ANCHOR_FIXTURE / "train_gpt.py").read_text()
    skip_mlp = EDITS["gelu"](anchor)  # stands in for "Drop first MLP layer": a change of the model
    codes = {FA3: anchor, "2025-09-05_SkipMLPBlocks": skip_mlp,
             # 2025-09-10_Yarn: no code (not fetched)
             "2025-09-11_VectSigmoidBFloat16": EDITS["bf16-logits"](skip_mlp),
             "2025-09-15_AsyncDataLoadAttnFinalWindow": EDITS["steps"](EDITS["bf16-logits"](skip_mlp))}
    for name, code in codes.items():
        (baselines / name).mkdir()
        (baselines / name / "train_gpt.py").write_text(code)
        (baselines / name / "run.sh").write_text((ANCHOR_FIXTURE / "run.sh").read_text())
    code, out, err = run_cli(capsys, "--config", str(config), "timeline-classify", "--from", FA3, "--to",
                             "2025-09-15_AsyncDataLoadAttnFinalWindow", "--json")
    assert code == 0, err
    result = json.loads(out)
    # Each record with code against the nearest earlier record with code: Yarn has none, so VectSigmoid is
    # compared with SkipMLPBlocks.
    assert [(r["parent"], r["name"], r["kind"], r["mixed"]) for r in result["records"]] == [
        (FA3, "2025-09-05_SkipMLPBlocks", "algorithmic", False),
        ("2025-09-05_SkipMLPBlocks", "2025-09-11_VectSigmoidBFloat16", "systems", False),
        ("2025-09-11_VectSigmoidBFloat16", "2025-09-15_AsyncDataLoadAttnFinalWindow", "hyperparameter", False)]
    first = result["records"][0]
    assert first["shares"] == {"hyperparameter": 0.0, "algorithmic": 1.0, "systems": 0.0}
    assert first["parts"][0]["file"] == "train_gpt.py" and first["parts"][0]["line"] and first["parts"][0]["kind"] \
        == "algorithmic"
    assert [s["name"] for s in result["skipped"]] == ["2025-09-10_Yarn"]
    assert "no code for 2025-09-10_Yarn" in result["skipped"][0]["reason"]
    share = result["share"]
    assert (share["records"], share["algorithmic"], share["share_algorithmic"]) == (3, 1, pytest.approx(1 / 3))
    assert share["by_label"] == {"hyperparameter": 1, "algorithmic": 1, "systems": 1, "mixed": 0, "none": 0}

    code, out, _ = run_cli(capsys, "--config", str(config), "timeline-classify", "--from", FA3, "--to",
                           "2025-09-15_AsyncDataLoadAttnFinalWindow")
    assert "1 (33%) of 3 record(s) were mainly algorithmic" in out and "about 77%" in out
    assert "skipped 1 record(s):" in out and "2025-09-10_Yarn: no code" in out

    # reproduce checks the published 77% against the records whose code is present (here: far from it), and puts
    # the agents' GPU-hours per kind beside the human records' kinds in one table.
    write_sessions_folder(sessions, {("codex", "default"): [8.0, 9.0]})
    code, out, _ = run_cli(capsys, "--config", str(config), "reproduce", "--json", "--no-figure")
    table = json.loads(out)
    human = next(f for f in table["findings"] if "human records" in f["claim"])
    assert human["holds"] is False
    assert human["sentence"] == "about 77% of human records introduced algorithmic changes: false"
    assert human["detail"].startswith("measured 33% over 3 consecutive record pair(s) with code (30 pair(s) skipped")
    side = {r["kind"]: r for r in table["kinds_side_by_side"]}
    assert side["algorithmic"]["humans_records"] == 1 and side["algorithmic"]["humans_share_of_records"] \
        == pytest.approx(1 / 3)
    assert side["mixed"]["agents_share_of_gpu_hours"] is None
    shares = [r["agents_share_of_gpu_hours"] for r in table["kinds_side_by_side"][:3]]
    assert all(v is None for v in shares) or sum(shares) == pytest.approx(1.0)
    code, out, _ = run_cli(capsys, "--config", str(config), "reproduce", "--no-figure")
    assert "Kinds of change: agents' GPU-hours on code changes beside human records" in out
    assert "human share" in out


# ------------------------------------------------------------------------------------------------ headless

def test_reports_stay_headless():
    code = ("import json, sys\n"
            "import nanogpt_tui.reports.writer, nanogpt_tui.reports.outcomes, nanogpt_tui.reports.human\n"
            "import nanogpt_tui.classify, nanogpt_tui.cli.report_cmd\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                           text=True, cwd=REPO).stdout))
    assert not loaded & {"textual", "rich", "docker", "matplotlib", "anthropic", "openai", "torch"}


def test_reproduce_leaves_out_a_session_killed_before_its_agent_ran(tmp_path, capsys):
    sessions = tmp_path / "sessions"
    write_sessions_folder(sessions, {("codex", "default"): [8.6, 9.0]})
    never = write_session(sessions, FakeSession(agent="codex", strategy="default", status=M.KILLED,
                                                used_gpu_hours=0.01, session_id="killed-at-start"))
    (never.path / L.WORKSPACE / "logs" / L.EVENTS_FILE).write_text("")  # as the manager creates it
    config = make_config(tmp_path, sessions)
    code, out, _ = run_cli(capsys, "--config", str(config), "reproduce", "--json", "--no-figure")
    table = json.loads(out)
    (g,) = table["groups"]
    assert g["n"] == 2 and "killed-at-start" not in g["sessions"]
    assert {"session": "killed-at-start",
            "reason": "killed before its agent ran (no events, no verdicts), so it is no data point"} in table["skipped"]
    code, out, _ = run_cli(capsys, "--config", str(config), "reproduce", "--no-figure")
    assert "skipped killed-at-start: killed before its agent ran" in out


def test_a_submission_that_did_not_validate_shows_no_speedup_in_the_report(tmp_path):
    # Timed and faster on its face, but not significantly below the val_loss target: as in the control room's
    # verdict table, the report's shows no speedup and no % for it.
    from tests.fakes.sessions import FakeSession, FakeSubmission, write_session

    written = write_session(tmp_path / "sessions", FakeSession(
        agent="claude", strategy="default", session_id="ns",
        submissions=[FakeSubmission(at_gpu_hours=60.0, seconds_faster=3.0),
                     FakeSubmission(at_gpu_hours=120.0, seconds_faster=9.0, outcome="not-significant")]))
    result = write_report([written.path], timeline=load_timeline(REPO / "human_baselines"), out_dir=tmp_path / "r")
    rows = {r["submission"]: r for r in result.report["sessions"][0]["submissions"]}
    assert rows["submission_2"]["seconds_faster"] == pytest.approx(9.0)  # the JSON keeps what was measured
    text = (tmp_path / "r" / "report.md").read_text()
    table = text.split("### Submissions and verdicts", 1)[1].split("\n\n", 2)[1]
    cells = {line.split(" | ")[0]: line.split(" | ") for line in table.splitlines() if line.startswith("| submission_")}
    assert cells["| submission_2"][5:7] == ["\\-", "\\-"] and cells["| submission_1"][5] == "\\+3.00"
