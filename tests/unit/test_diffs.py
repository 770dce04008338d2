"""The diff between two versions of a session's code, hunk by hunk with the classifier's kinds (headless)."""

from __future__ import annotations

from pathlib import Path

from nanogpt_tui.tui.data.diffs import classified_hunks

SMOKE = Path(__file__).resolve().parents[2] / "human_baselines" / "smoke"


def version(folder: Path, train_gpt: str, **more: str) -> Path:
    folder.mkdir()
    (folder / "train_gpt.py").write_text(train_gpt)
    (folder / "run.sh").write_text((SMOKE / "run.sh").read_text())
    for name, text in more.items():
        (folder / name).write_text(text)
    return folder


def test_a_hunk_holding_two_kinds_of_change_names_both_heaviest_first(tmp_path):
    code = (SMOKE / "train_gpt.py").read_text()
    both = code.replace("    num_layers = 2\n", "    num_layers = 1\n").replace(
        "    num_iterations = 200  #", "    num_iterations = 150  #").replace("    lr = 0.01\n", "    lr = 0.02\n")
    anchor = version(tmp_path / "anchor", code, **{"record.toml": (SMOKE / "record.toml").read_text()})
    hunks = classified_hunks(anchor, version(tmp_path / "submission_1", both), "anchor", "submission_1")
    # One hunk (the three lines are within each other's context): a layer count (structure) and two tuned values.
    assert [(h.file, h.kind) for h in hunks] == [("train_gpt.py", "hyperparameter + algorithmic")]
    # The anchor's record.toml describes the record; a submission does not carry it, and it is no change.
    assert all(h.file != "record.toml" for h in hunks)
