"""Broken session files through the real CLI: every consumer shows them as broken and goes on with the rest."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nanogpt_tui.contract import layout as L
from nanogpt_tui.validator.protocol import VERDICTS, Sealer, validator_dir
from tests.fakes.sessions import write_sessions_folder
from tests.integration.test_reports import make_config, run_cli

GROUPS = {("claude", "default"): [7.0, 8.0, 9.0], ("codex", "default"): [6.0, 8.5]}


@pytest.fixture(scope="module")
def broken_folder(tmp_path_factory) -> dict:
    """Five good sessions, then three of them broken the ways the issue saw, a bad verdict and two stray folders."""
    root = tmp_path_factory.mktemp("broken")
    sessions = root / "sessions"
    written = write_sessions_folder(sessions, GROUPS)
    ids = [w.session.id for w in written]
    edits = {ids[0]: ("started_at", '"yesterday"'), ids[1]: ("budget_gpu_hours", "NaN"), ids[3]: ("gpus", "-5")}
    for sid, (field, value) in edits.items():
        path = sessions / sid / L.SESSION_FILE
        text = path.read_text()
        text, n = re.subn(rf'"{field}": [^,\n]+', f'"{field}": {value}', text, count=1)
        assert n == 1
        path.write_text(text)
    verdict = next((validator_dir(sessions / ids[2]) / VERDICTS).glob("*.json"))
    data = json.loads(verdict.read_text())
    data["stats"] = "str"
    verdict.write_text(json.dumps(data))
    Sealer.for_sessions(sessions, create=False).seal_file(verdict)  # bad, yet the validator's (an older version's)
    (sessions / "20260101T000000Z-half-made" / L.WORKSPACE).mkdir(parents=True)
    (sessions / "notes").mkdir()
    return {"root": root, "sessions": sessions, "config": str(make_config(root, sessions)), "ids": ids,
            "broken": list(edits), "bad_verdict": verdict}


def test_sessions_list_shows_broken_sessions_as_broken(broken_folder, capsys):
    code, out, err = run_cli(capsys, "--config", broken_folder["config"], "sessions", "list", "--json")
    assert code == 0
    rows = {row["id"]: row for row in json.loads(out)}
    assert set(rows) == set(broken_folder["ids"])
    ids = broken_folder["ids"]
    assert set(rows[ids[0]]) == {"id", "broken"} and "`started_at` is 'yesterday'" in rows[ids[0]]["broken"]
    assert "NaN" in rows[ids[1]]["broken"]
    assert "`gpus` is -5" in rows[ids[3]]["broken"]
    assert rows[ids[2]]["status"] == "exited" or "status" in rows[ids[2]]
    assert "half-made holds a workspace but no session.json" in err and "rm -r" in err
    assert "notes is not a session" in err

    code, out, err = run_cli(capsys, "--config", broken_folder["config"], "sessions", "list")
    assert code == 0
    broken_lines = [line for line in out.splitlines() if " broken " in line]
    assert len(broken_lines) == 3 and any("bad field `gpus`" in line for line in broken_lines)


def test_sessions_show_of_a_broken_session_is_one_sentence(broken_folder, capsys):
    sid = broken_folder["ids"][0]
    code, out, err = run_cli(capsys, "--config", broken_folder["config"], "sessions", "show", sid)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "`started_at`" in err and str(broken_folder["sessions"] / sid) in err


def test_reproduce_and_compare_go_on_with_the_rest(broken_folder, capsys):
    config, folder = broken_folder["config"], str(broken_folder["sessions"])
    code, out, err = run_cli(capsys, "--config", config, "reproduce", folder, "--json", "--force")
    assert code == 0, err
    table = json.loads(out)
    assert sum(g["n"] for g in table["groups"]) == 2  # five sessions, three broken
    assert sum(p.endswith("reads it again") or "not readable JSON" in p for p in table["problems"]) == 3
    assert any("`stats` is 'str'" in p for p in table["problems"])  # the bad verdict, its session still counted
    code, out, err = run_cli(capsys, "--config", config, "compare", folder, "--json", "--by", "agent")
    assert code == 0, err
    assert sum(g["n"] for g in json.loads(out)["groups"]) == 2


def test_a_group_report_leaves_broken_sessions_out_and_says_so(broken_folder, capsys, tmp_path):
    ids = broken_folder["ids"]
    code, out, err = run_cli(capsys, "--config", broken_folder["config"], "report", *ids, "--out", str(tmp_path),
                             "--format", "json")
    assert code == 1
    assert err.count("broken, left out of the report") == 3
    report = json.loads((tmp_path / "report.json").read_text())
    assert [s["id"] for s in report["summary"]] == [ids[2], ids[4]]
    code, _, err = run_cli(capsys, "--config", broken_folder["config"], "report", ids[0], "--out",
                           str(tmp_path / "one"))
    assert code == 2 and "Every session named is broken" in err
