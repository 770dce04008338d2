"""The review's CLI fixes: `stats` refusing what it cannot say, `config show` as TOML that reads back, `config
check`, ended sessions without a countdown."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path

import pytest

from nanogpt_tui.cli import main
from nanogpt_tui.config import Config, parse_config
from nanogpt_tui.sessions import model as M
from nanogpt_tui.sessions.manager import session_summary
from nanogpt_tui.sessions.model import Session, iso

REPO = Path(__file__).resolve().parents[2]
SMOKE_CODE = (REPO / "human_baselines" / "smoke" / "train_gpt.py").read_text()


def run_log(path: Path, val_loss: float, train_ms: float, code: str | None = SMOKE_CODE) -> Path:
    """A run's log as records print it: the code (print adds a newline), a line of '=', then the output."""
    head = f"{code}\n{'=' * 100}\n" if code is not None else ""
    path.write_text(head + f"step:200/200 val_loss:{val_loss:.4f} train_time:{train_ms:.0f}ms step_avg:1.00ms\n")
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_stats_refuses_a_p_value_from_one_log(tmp_path, capsys):
    code, out, err = run(capsys, "stats", str(run_log(tmp_path / "a.txt", 1.96, 13000)))
    assert code != 0 and " nan" not in out + err and "[nan" not in out + err
    assert "need at least two runs" in err and "(val_loss 1.9600, train_time 13000 ms)" in err


def test_stats_takes_the_target_from_the_record_the_logs_ran(tmp_path, capsys):
    logs = [str(run_log(tmp_path / f"{i}.txt", 1.96 + i / 1000, 13000 + i)) for i in range(3)]
    code, out, _ = run(capsys, "stats", "--json", *logs)
    result = json.loads(out)
    assert code == 0 and result["val_loss_target"] == 2.0 and result["target_from"] == "smoke's record.toml"
    assert result["p_value"] < 0.01 and result["program"] == "record smoke"
    # Logs without their code fall back to the benchmark's target, and say so.
    bare = [str(run_log(tmp_path / f"b{i}.txt", 3.27 + i / 1000, 9000, code=None)) for i in range(2)]
    result = json.loads(run(capsys, "stats", "--json", *bare)[1])
    assert (result["val_loss_target"], result["target_from"]) == (3.28, "benchmark.val_loss_target")
    code, out, _ = run(capsys, "stats", "--val-loss-target", "1.9", *logs)
    assert code == 0 and "p val_loss (mean < 1.9, --val-loss-target)" in out
    # A submission's logs run the record's code with a change: held to that record's target, not the benchmark's.
    changed = SMOKE_CODE.replace("    num_iterations = 200  #", "    num_iterations = 150  #")
    assert changed != SMOKE_CODE
    derived = [str(run_log(tmp_path / f"d{i}.txt", 1.97 + i / 1000, 9000 + i, code=changed)) for i in range(3)]
    result = json.loads(run(capsys, "stats", "--json", *derived)[1])
    assert result["val_loss_target"] == 2.0 and result["program"].startswith("code ")
    assert result["target_from"] == "smoke's record.toml: the nearest record's code, 2 line(s) from the logs'"


def test_stats_refuses_logs_of_different_code_unless_grouped(tmp_path, capsys):
    smoke = [str(run_log(tmp_path / f"s{i}.txt", 1.96, 13000 + i)) for i in range(2)]
    other = [str(run_log(tmp_path / f"o{i}.txt", 1.95, 9000 + i, code=SMOKE_CODE + "# changed\n")) for i in range(2)]
    code, out, err = run(capsys, "stats", *smoke, *other)
    assert code != 0 and "come from 2 different programs" in err and "record smoke" in err
    code, out, _ = run(capsys, "stats", "--group", "--json", *smoke, *other)
    groups = json.loads(out)
    assert code == 0 and [g["n"] for g in groups] == [2, 2]
    assert groups[0]["program"] == "record smoke" and groups[1]["program"].startswith("code ")


def test_config_show_is_toml_that_reads_back(tmp_path, capsys, monkeypatch):
    cfg = tmp_path / "nanogpt-tui.toml"
    cfg.write_text('schema_version = 1\n[judge]\nprovider = "none"\n[[hosts]]\nname = "a \\"b\\""\n'
                   'url = "ssh://u@h"\ngpus = [0, 1]\n[hosts.tls]\nverify = false\n[agents.codex]\nmodel = "m"\n')
    code, out, _ = run(capsys, "--config", str(cfg), "config", "show")
    data = tomllib.loads(out)  # valid TOML: no `None`, no Python reprs
    assert code == 0 and "None" not in out
    again = parse_config(data, tmp_path / "shown.toml")
    assert again.judge.provider == "none" and again.hosts[0].name == 'a "b"' and again.hosts[0].gpus == (0, 1)
    assert again.hosts[0].tls.verify is False and again.agents["codex"].model == "m"
    assert again.benchmark == Config().benchmark and "# data_dir is not set" in out


def test_config_check_names_what_needs_fixing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    cfg = tmp_path / "nanogpt-tui.toml"
    cfg.write_text(f'schema_version = 1\n[benchmark]\nanchor = "2025-09-03_FA3"\ntarget = "no-such-record"\n'
                   f'[paths]\nbaselines_dir = "{REPO / "human_baselines"}"\nsessions_dir = "{tmp_path / "s"}"\n')
    code, out, _ = run(capsys, "--config", str(cfg), "config", "check")
    assert code == 1
    assert "ok: benchmark.anchor '2025-09-03_FA3' is on the timeline" in out
    assert "problem: benchmark.target: There is no record named 'no-such-record'" in out
    assert "problem: ANTHROPIC_API_KEY is not set" in out and "ok: sessions go to" in out
    cfg.write_text("schema_version = 1\n[judge]\nprovider = 'nobody'\n")
    code, out, _ = run(capsys, "--config", str(cfg), "config", "check")
    assert code == 1 and out.startswith("problem: ") and "judge.provider" in out


def test_an_ended_session_shows_its_end_not_a_countdown():
    start = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.timezone.utc)
    s = Session(id="s1", agent="scripted", strategy="default", strategy_hash="x", anchor="smoke", target=None,
                backend="local", host="local", image=None, gpus=1, budget_gpu_hours=0.1, created_at=iso(start))
    s.started_at = iso(start)
    s.deadline = iso(start + dt.timedelta(hours=0.1))
    later = start + dt.timedelta(hours=2)
    assert session_summary(s, now=later)["seconds_left"] < 0  # running past its deadline: being stopped
    s.transition(M.RUNNING, "started", at=start)
    s.transition(M.EXITED, "the agent finished", at=start + dt.timedelta(minutes=3))
    x = session_summary(s, now=later)
    assert x["seconds_left"] is None and x["ended_at"] == s.finished_at
