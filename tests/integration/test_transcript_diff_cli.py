"""`sessions transcript` and `sessions diff` through the real CLI entry point, on written session folders."""

from __future__ import annotations

import json

from nanogpt_tui.cli import main
from tests.fakes.sessions import FakeExperiment, FakeSession, FakeSubmission, write_session
from tests.integration.test_reports import make_config


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_transcript_and_diffs_of_a_session(tmp_path, capsys):
    sessions = tmp_path / "sessions"
    written = write_session(sessions, FakeSession(
        agent="claude", strategy="default", session_id="s1",
        experiments=[FakeExperiment("lr", "lr", 20.0), FakeExperiment("gelu", "gelu", 40.0)],
        submissions=[FakeSubmission(at_gpu_hours=60.0, seconds_faster=3.0, edits=("steps",)),
                     FakeSubmission(at_gpu_hours=120.0, seconds_faster=5.0, edits=("steps", "gelu"))]))
    config = str(make_config(tmp_path, sessions))
    code, out, _ = run(capsys, "--config", config, "sessions", "transcript", "s1", "--json")
    data = json.loads(out)
    assert code == 0 and data["session"] == written.session.id and data["turns"]
    items = [i for t in data["turns"] for i in t["items"]]
    # The fake Claude stream: two invocations, each a start and a result with the CLI's cost and usage.
    assert [i["kind"] for i in items].count("start") == 2
    assert [t["cost_usd"] for t in data["turns"]] == [12.5, 12.5] and all(t["usage"] for t in data["turns"])
    code, out, _ = run(capsys, "--config", config, "sessions", "transcript", "s1")
    assert code == 0 and out.startswith(f"{written.session.id}: {len(data['turns'])} turns") and "\nturn 1" in out

    # Anchor to a submission: a unified diff whose hunks carry their kind of change.
    code, out, _ = run(capsys, "--config", config, "sessions", "diff", "s1", "anchor", "submission_1")
    assert code == 0 and "--- anchor/train_gpt.py" in out and "+++ submission_1/train_gpt.py" in out
    assert "@@  [hyperparameter]" in out
    # Between two submissions: only what the second adds (the GELU change is algorithmic).
    code, out, _ = run(capsys, "--config", config, "sessions", "diff", "s1", "submission_1", "submission_2", "--json")
    hunks = json.loads(out)["hunks"]
    assert code == 0 and hunks and {h["kind"] for h in hunks} == {"algorithmic"}
    # Experiments by name or number, side by side.
    code, out, _ = run(capsys, "--config", config, "sessions", "diff", "s1", "00", "01_gelu", "--side-by-side",
                       "--width", "100")
    assert code == 0 and " | " in out and "[" in out
    code, _, err = run(capsys, "--config", config, "sessions", "diff", "s1", "anchor", "submission_9")
    assert code == 2 and "no code version named 'submission_9'" in err and "submission_2" in err
