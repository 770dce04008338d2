"""Reports put the human records' kinds (from the classified table) beside the agent's GPU-hours per kind."""

from __future__ import annotations

import shutil
from pathlib import Path

from nanogpt_tui.reports.human import CLASSIFIED_TABLE, human_kinds
from nanogpt_tui.reports.render import change_blocks

REPO = Path(__file__).resolve().parents[2]
FA3, BIGRAM = "2025-09-03_FA3", "2026-01-19_BigramHashEmbedding"


def test_human_kinds_over_the_sessions_range_and_the_side_by_side_table(tmp_path):
    shutil.copy(REPO / "human_baselines" / "records.tsv", tmp_path / "records.tsv")
    rows = [("2025-09-05_SkipMLPBlocks", "algorithmic"), ("2025-09-10_Yarn", "algorithmic"),
            ("2025-09-11_VectSigmoidBFloat16", "mixed"), ("2026-01-10_FusedLinearReLUSquare", "systems"),
            ("2026-01-26-UntieValueEmbeddings", "algorithmic")]  # the last is after the target: left out
    (tmp_path / CLASSIFIED_TABLE).write_text("name\tlabel\n" + "".join(f"{n}\t{k}\n" for n, k in rows))
    human = human_kinds(tmp_path, FA3, BIGRAM)
    assert human["records"] == 4
    assert human["by_label"] == {"hyperparameter": 0, "algorithmic": 2, "systems": 1, "mixed": 1, "none": 0}
    assert human["of_records"]["algorithmic"] == 0.5
    assert human_kinds(tmp_path, FA3, None) is None and human_kinds(tmp_path / "missing", FA3, BIGRAM) is None

    item = {"name": "x", "source": "experiment", "parent": None, "summary": "hyperparameter", "declared_kind": None,
            "status": None, "gpu_hours": 3.0, "evidence": []}
    changes = {"items": [item], "gpu_hours_by_kind": {"hyperparameter": 3.0, "algorithmic": 1.0,
                                                                "systems": 0.0, "none": 0.0},
               "share_of_used": {}, "share_of_changes": {"hyperparameter": 0.75, "algorithmic": 0.25, "systems": 0.0},
               "counts_by_kind": {"experiments": {}, "submissions": {}}, "unattributed_gpu_hours": 0.0,
               "cost_rule": "", "parent_rule": ""}
    tables = [b for b in change_blocks(changes, human) if b.kind == "table" and "human share" in b.headers]
    (table,) = tables
    assert table.rows[0][:2] == ["hyperparameter", "75%"] and table.rows[1][2:] == ["2", "50%"]
    assert [r[0] for r in table.rows] == ["hyperparameter", "algorithmic", "systems", "mixed", "none"]
    assert all(b.kind != "table" or "human share" not in b.headers for b in change_blocks(changes, None))


def test_the_whole_timeline_stays_within_the_speedrun_track(tmp_path):
    # The manifest ends with our smoke track; `timeline-classify --all` must not compare its first record with the
    # last 8xH100 record (nor list the smoke records at all).
    from nanogpt_tui.records import load_timeline
    from nanogpt_tui.reports.human import _records

    shutil.copy(REPO / "human_baselines" / "records.tsv", tmp_path / "records.tsv")
    timeline = load_timeline(tmp_path)
    assert any(r.track != "track_1" for r in timeline)
    whole = _records(timeline, None, None)
    assert whole and {r.track for r in whole} == {"track_1"}
    assert {r.track for r in _records(timeline, "smoke", None)} == {"smoke"}


def test_a_group_report_reads_the_human_table_once_and_each_events_file_once(tmp_path, monkeypatch):
    """The timeline and the classified table are read once per report, not once per session; each session's events
    once (the usage and the cost sections share one read of the token meter)."""
    import nanogpt_tui.records as records
    from nanogpt_tui.contract import layout as L
    from nanogpt_tui.follow import LineFollower
    from nanogpt_tui.reports.build import build_report
    from tests.tui.sessions_data import NOW, build_fixed_sessions

    baselines = tmp_path / "baselines"
    baselines.mkdir()
    shutil.copy(REPO / "human_baselines" / "records.tsv", baselines / "records.tsv")
    (baselines / CLASSIFIED_TABLE).write_text("name\tlabel\n2025-09-05_SkipMLPBlocks\talgorithmic\n")
    root = tmp_path / "sessions"
    ids = build_fixed_sessions(root)
    timeline = records.load_timeline(baselines)
    loads, reads = [], []
    real_load, real_read = records.load_timeline, LineFollower.read_new
    monkeypatch.setattr(records, "load_timeline", lambda *a, **kw: loads.append(a) or real_load(*a, **kw))
    monkeypatch.setattr(LineFollower, "read_new", lambda self, **kw: reads.append(self.path) or real_read(self, **kw))
    report, _ = build_report([root / i for i in ids], timeline=timeline, baselines_dir=baselines, now=NOW)
    assert len(loads) == 1
    assert all(s["human_kinds"]["records"] == 1 for s in report["sessions"])
    for i in ids:
        assert reads.count(L.events_path(root / i)) == 1
