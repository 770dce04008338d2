"""`sessions transcript` and `sessions diff` through the real CLI entry point, on written session folders."""

from __future__ import annotations

import json

from nanogpt_tui.agents.events import event_line
from nanogpt_tui.cli import main
from nanogpt_tui.contract import layout as L
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
    root = sessions / written.session.id
    # As in a real session: the anchor folder holds the record's record.toml, which submissions do not carry.
    (root / L.RUNNER / "anchor" / "record.toml").write_text('name = "fake"\nval_loss_target = 3.28\n')
    with open(root / L.WORKSPACE / "logs" / L.EVENTS_FILE, "a") as handle:
        handle.write(event_line("tool_call", tool="bash", command="bash run.sh", call_id="c9")
                     + event_line("tool_result", call_id="c9", ok=True, text="step:0/10 val_loss:4.1\n"
                                  "    step:10/10 val_loss:3.2\n\x1b[31mdone\x1b[0m\n")
                     + event_line("submission_started", submission="submission_2"))
    code, out, _ = run(capsys, "--config", config, "sessions", "transcript", "s1", "--json")
    data = json.loads(out)
    assert code == 0 and data["session"] == written.session.id and data["turns"]
    items = [i for t in data["turns"] for i in t["items"]]
    # The fake Claude stream: two invocations, each a start and a result with the CLI's cost and usage.
    assert [i["kind"] for i in items].count("start") == 2
    turns = data["turns"][:2]  # then the turn of the lines added above
    assert [t["cost_usd"] for t in turns] == [12.5, 12.5] and all(t["usage"] for t in turns)
    code, out, _ = run(capsys, "--config", config, "sessions", "transcript", "s1")
    assert code == 0 and out.startswith(f"{written.session.id}: {len(data['turns'])} turns") and "\nturn 1" in out
    # A tool's output line by line, indentation kept and escapes gone; a submission named where its event is bare.
    assert "    | step:0/10 val_loss:4.1\n    |     step:10/10 val_loss:3.2\n    | done\n" in out
    assert "  submission: submission_2 (retiming starts)" in out

    # Anchor to a submission: a unified diff whose hunks carry their kind of change.
    code, out, _ = run(capsys, "--config", config, "sessions", "diff", "s1", "anchor", "submission_1")
    assert code == 0 and "--- anchor/train_gpt.py" in out and "+++ submission_1/train_gpt.py" in out
    assert "@@  [hyperparameter]" in out
    # A unified diff that `patch` reads: context lines keep their leading space and indentation, and only code the
    # validator freezes (.py, .sh) takes part, not the anchor's record.toml.
    body = [line for line in out.splitlines() if not line.startswith(("--- ", "+++ ", "@@ "))]
    assert body and all(line[:1] in (" ", "+", "-") for line in body), body
    assert any(line.startswith("     ") for line in body) and "record.toml" not in out
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
