"""The record manifest and timeline: loading, validation, anchors and targets, seconds faster."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanogpt_tui.errors import UserError
from nanogpt_tui.record_log import code_section as code_from_log
from nanogpt_tui.record_log import join_code_files, split_code_section
from nanogpt_tui.records import FA3, MANIFEST_COLUMNS, OPTIONAL_COLUMNS, SMOKE_TRACK, TRACK_1, load_timeline

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def timeline():
    return load_timeline(REPO / "human_baselines")


def test_manifest_covers_fa3_through_newest(timeline):
    names = [r.name for r in timeline]
    assert FA3 in names and "2026-07-17_FP8DownProjection" in names
    numbers = {r.number for r in timeline}
    assert set(range(29, 90)) <= numbers
    fa3 = timeline.get(FA3)
    assert fa3.number == 29 and fa3.record_time_s == pytest.approx(163.86)
    assert fa3.commit == "f411b3d346aa52d3504324ca93c230fd84c6c07f" and len(fa3.code_sha256) == 64
    assert timeline.get("2026-01-19_BigramHashEmbedding").retimed_seconds_faster_vs_fa3 == pytest.approx(63.2192)
    # The one record between FA3 and the target with no re-timed figure.
    assert timeline.get("2025-12-11_NorMuonOptimsAndFixes").retimed_seconds_faster_vs_fa3 is None


def test_records_without_a_folder_get_a_stable_name(timeline):
    r = timeline.get("2026-01-31_record66")
    assert r.title == "Torch 2.10" and not r.can_fetch


def test_between_excludes_anchor_includes_target_and_skips_retimings(timeline):
    between = timeline.between(FA3, "2026-01-19_BigramHashEmbedding")
    assert between[0].name == "2025-09-05_SkipMLPBlocks" and between[-1].name == "2026-01-19_BigramHashEmbedding"
    assert len(between) == 33
    old = timeline.between("2025-01-16_Sub3Min", "2025-05-25_EvenFasterReduce") if "2025-01-16_Sub3Min" in timeline \
        else []
    assert not any(r.is_retiming for r in old)


def test_seconds_faster_uses_retimed_figures_when_both_known(timeline):
    assert timeline.seconds_faster("2025-09-15_AsyncDataLoadAttnFinalWindow", FA3) == pytest.approx(9.2920)
    # Relative to a newer anchor, still from the re-timed figures.
    assert timeline.seconds_faster("2026-01-19_BigramHashEmbedding", "2025-10-04_Backout") == \
        pytest.approx(63.2192 - 22.0642)


def test_seconds_faster_falls_back_to_official_times(timeline):
    # No re-timing beyond the published target: official times.
    assert timeline.seconds_faster("2026-07-17_FP8DownProjection", "2026-01-19_BigramHashEmbedding") == \
        pytest.approx(99.30 - 73.80)
    assert timeline.seconds_faster("2025-12-11_NorMuonOptimsAndFixes", FA3) == pytest.approx(163.86 - 130.20)


def test_gap_and_order_errors(timeline):
    assert timeline.gap(FA3, "2026-01-19_BigramHashEmbedding") == pytest.approx(63.2192)
    with pytest.raises(UserError, match="does not come after the anchor"):
        timeline.gap("2026-01-19_BigramHashEmbedding", FA3)
    with pytest.raises(UserError, match="did you mean '2025-09-03_FA3'"):
        timeline.get("FA3")


def _manifest(tmp_path: Path, rows: list[list[str]]) -> Path:
    lines = ["\t".join(MANIFEST_COLUMNS)] + ["\t".join(r) for r in rows]
    (tmp_path / "records.tsv").write_text("\n".join(lines) + "\n")
    return tmp_path


GOOD_ROW = ["1", "2099-01-01_X", "2099-01-01", "2099-01-01_X", "t", "100.0", "", "a.log", "c" * 40, "", "", "", "",
            ""] + [""] * 9  # code_files, then the stack columns (env_*)
assert len(GOOD_ROW) == len(MANIFEST_COLUMNS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({5: "fast"}, r"line 2: `record_time_s` is 'fast', not a number"),
        ({2: "01/01/2099"}, r"line 2: `date` is '01/01/2099', not an ISO date"),
        ({9: "abc"}, r"line 2: `code_sha256` 'abc' is not a sha256"),
        ({1: "../evil"}, r"line 2: `name` '../evil' is not a usable folder name"),
        ({5: "-1"}, r"`record_time_s` must be positive"),
        ({9: "a" * 64, 13: "triton_kernels.py:" + "b" * 64}, r"`code_files` must list train_gpt.py first"),
        ({9: "a" * 64, 13: "train_gpt.py:xyz"}, r"`code_files` entry 'train_gpt.py:xyz' is not NAME:SHA256"),
        ({9: "a" * 64, 13: "train_gpt.py:" + "b" * 64 + ";../x.py:" + "b" * 64}, r"is not NAME:SHA256"),
        ({13: "train_gpt.py:" + "b" * 64}, r"`code_files` is set but `code_sha256` is empty"),
    ],
)
def test_malformed_rows_are_reported_by_line(tmp_path, change, message):
    row = list(GOOD_ROW)
    for index, value in change.items():
        row[index] = value
    with pytest.raises(UserError, match=message):
        load_timeline(_manifest(tmp_path, [row]))


def test_malformed_manifest_shapes(tmp_path):
    with pytest.raises(UserError, match="wrong number of tab-separated fields"):
        load_timeline(_manifest(tmp_path, [GOOD_ROW[:-2]]))
    with pytest.raises(UserError, match="repeats the record name"):
        load_timeline(_manifest(tmp_path, [GOOD_ROW, GOOD_ROW]))
    (tmp_path / "records.tsv").write_text("number\tname\n1\tx\n")
    with pytest.raises(UserError, match="lacks the column"):
        load_timeline(tmp_path)
    with pytest.raises(UserError, match="is missing; restore it from git"):
        load_timeline(tmp_path / "nowhere")


def test_code_from_log_takes_everything_before_the_separator():
    log = "import torch\nprint('hi')\n" + "=" * 100 + "\nstep:1/1 val_loss:3.2 train_time:1ms step_avg:1.00ms\n"
    assert code_from_log(log) == "import torch\nprint('hi')\n"
    # A final code line without its newline still ends in one.
    assert code_from_log("x = 1\n" + "=" * 100) == "x = 1\n"
    with pytest.raises(ValueError, match="no line of '=' characters"):
        code_from_log("just output\n")
    with pytest.raises(ValueError, match="no code follows it"):
        code_from_log("=" * 100 + "\nout\n")
    # Late-2024 logs print a separator before the code too: the code is what lies between the first two.
    assert code_from_log("=" * 100 + "\nimport os\n" + "=" * 100 + "\nRunning pytorch\n" + "=" * 100 + "\n") \
        == "import os\n"
    with pytest.raises(ValueError, match="no code follows it"):
        code_from_log("=" * 100 + "\n" + "=" * 100 + "\nout\n")
    # A line that merely contains '=' is code, not the separator.
    assert code_from_log("a == b\n====\n") == "a == b\n"


def test_manifest_pins_every_file_of_multi_file_records(timeline):
    fp8 = timeline.get("2026-07-17_FP8DownProjection")
    assert [name for name, _ in fp8.code_files] == ["train_gpt.py", "triton_kernels.py"]
    assert [name for name, _ in timeline.get(FA3).code_files] == ["train_gpt.py"]
    assert all(r.code_files for r in timeline if r.can_fetch)


def test_split_code_section_undoes_the_file_headers():
    main = "import os\n\nprint('main')\n"
    kernels = "import triton\n# -----------------------------------------------------------------------------\n"
    section = main + f"\n\n{'-' * 40}\n# triton_kernels.py\n{'-' * 40}\n\n" + kernels + "\n"
    assert split_code_section(section) == {"train_gpt.py": main, "triton_kernels.py": kernels}
    assert join_code_files(split_code_section(section)) == section
    # One file: the section is that file and print()'s newline.
    assert split_code_section(main + "\n") == {"train_gpt.py": main}
    # A file without a final newline comes back without one.
    assert split_code_section("x = 1\n\n\n" + "-" * 40 + "\n# k.py\n" + "-" * 40 + "\n\ny = 2\n") == \
        {"train_gpt.py": "x = 1\n", "k.py": "y = 2"}


@pytest.mark.parametrize(("header", "message"), [("../up.py", "does not name a plain file"),
                                                 ("train_gpt.py", "names train_gpt.py twice"),
                                                 ("", "does not name a plain file")])
def test_split_code_section_refuses_bad_headers(header, message):
    section = "x = 1\n\n\n" + "-" * 40 + f"\n# {header}\n" + "-" * 40 + "\n\ny = 2\n\n"
    with pytest.raises(ValueError, match=message):
        split_code_section(section)


def _tracked_manifest(tmp_path: Path) -> Path:
    """Track-1 rows as the real manifest has them (no track or hardware field) and a second track after them."""
    header = "\t".join(MANIFEST_COLUMNS + OPTIONAL_COLUMNS)
    blank = [""] * (len(MANIFEST_COLUMNS) - 6)  # log, code and stack columns left empty

    def row(*first: str, track: tuple[str, ...] = ()) -> list[str]:
        return [*first, *blank, *track]

    rows = [row("1", "2099-01-01_A", "2099-01-01", "", "a", "100.0"),
            row("2", "2099-02-01_B", "2099-02-01", "", "b", "90.0"),
            row("0", "toy", "2099-01-05", "toy", "toy 0", "10.0", track=("toy", "CPU X")),
            row("1", "toy-1", "2099-01-06", "toy-1", "toy 1", "6.0", track=("toy", "CPU X")),
            row("2", "toy-2", "2099-01-07", "toy-2", "toy 2", "4.0", track=("toy", "CPU X"))]
    (tmp_path / "records.tsv").write_text("\n".join([header] + ["\t".join(r) for r in rows]) + "\n")
    return tmp_path


def test_tracks_keep_their_own_gaps_lines_and_predecessors(tmp_path):
    from nanogpt_tui.scoring import human_lines

    timeline = load_timeline(_tracked_manifest(tmp_path))
    assert timeline.get("2099-01-01_A").track == TRACK_1 and timeline.get("toy").hardware == "CPU X"
    assert [r.name for r in timeline.track("toy")] == ["toy", "toy-1", "toy-2"]
    assert [r.name for r in timeline.between("toy", "toy-2")] == ["toy-1", "toy-2"]
    assert [r.name for r in timeline.between("2099-01-01_A", "2099-02-01_B")] == ["2099-02-01_B"]
    assert timeline.gap("toy", "toy-2") == pytest.approx(6.0)
    assert timeline.last_of_track("toy").name == "toy-2" and timeline.last_of_track("toy-2") is None
    assert timeline.last_of_track("2099-01-01_A").name == "2099-02-01_B"
    lines = human_lines(timeline, "toy", "toy-2")
    assert [(ln.index, ln.percent) for ln in lines] == [(1, pytest.approx(400 / 6)), (2, pytest.approx(100.0))]
    with pytest.raises(UserError, match="on the toy track and the anchor '2099-01-01_A' on the track_1 track"):
        timeline.gap("2099-01-01_A", "toy-2")



def test_a_machine_that_times_the_anchor_far_from_its_record_says_so(tmp_path):
    # The toy track's anchor's record is 10.0 s; the sessions' baselines say how long it took here. Seconds faster
    # measured here over the record's gap read large on a slower machine, so the plot's and report's note says so.
    from nanogpt_tui.reports.conventions import anchor_here_note
    from nanogpt_tui.validator.verdict import Verdict

    timeline = load_timeline(_tracked_manifest(tmp_path))

    def verdict(kind: str, mean_ms) -> Verdict:
        return Verdict(submission="anchor" if kind == "baseline" else "submission_1", submission_dir="x",
                       verdict_id="v", kind=kind, session_id="s", anchor="toy", target="toy-2", started_at="t",
                       stats={"mean_train_time_ms": mean_ms})

    slow = [verdict("baseline", 21_000.0), verdict("baseline", 23_000.0), verdict("submission", 5_000.0)]
    assert anchor_here_note(slow, timeline, "toy") == (
        "here the anchor took 22.00 s (median of 2 baselines), its record 10.00 s: 2.2x, so % reads high")
    assert "(its baseline), its record 10.00 s: 0.5x, so % reads low" in anchor_here_note([verdict("baseline", 5_000.0)],
                                                                                 timeline, "toy")
    assert anchor_here_note([verdict("baseline", 11_500.0)], timeline, "toy") == ""  # within 20%: nothing to say
    assert anchor_here_note([verdict("submission", 30_000.0)], timeline, "toy") == ""  # no baseline, no claim
    assert anchor_here_note([verdict("baseline", float("nan")), verdict("baseline", -1.0)], timeline, "toy") == ""
    assert anchor_here_note(slow, timeline, "not-a-record") == "" and anchor_here_note(slow, None, "toy") == ""


def test_anchor_choices_offer_every_record_with_code(timeline, tmp_path):
    from nanogpt_tui.records import anchor_choices

    (tmp_path / "smoke").mkdir()
    (tmp_path / "smoke" / "train_gpt.py").write_text("x = 1\n")
    choices = anchor_choices(timeline, tmp_path)
    assert choices[0] == "smoke" and "2026-07-17_FP8DownProjection" in choices and FA3 in choices
    assert "2024-10-04_record3" not in choices  # no log holds its code
    assert len(choices) == 1 + sum(r.can_fetch for r in timeline)


@pytest.fixture(scope="module")
def our_records(tmp_path_factory):
    """A baselines folder holding what git tracks of the smoke track (the manifest, the smoke record, our records'
    edits), with every smoke record's folder written from them as `records fetch` writes it."""
    import shutil

    from nanogpt_tui.records import OUR_RECORDS_NAME, ensure_record_code

    root = tmp_path_factory.mktemp("baselines")
    for name in ("records.tsv", OUR_RECORDS_NAME):
        shutil.copy2(REPO / "human_baselines" / name, root / name)
    shutil.copytree(REPO / "human_baselines" / "smoke", root / "smoke", ignore=shutil.ignore_patterns("data", "logs"))
    timeline = load_timeline(root)
    for record in timeline.track(SMOKE_TRACK)[1:]:
        ensure_record_code(timeline, record.name, root)
    return root, timeline


def test_the_smoke_track_is_in_the_manifest_with_its_hardware(timeline, our_records):
    smoke = timeline.track(SMOKE_TRACK)
    assert [r.name for r in smoke][0] == "smoke" and len(smoke) >= 6
    times = [r.record_time_s for r in smoke]
    assert times == sorted(times, reverse=True), "each smoke record is faster than the one before it"
    root, _ = our_records
    assert all(r.hardware and r.code_present(root) for r in smoke)
    # Only the smoke record's code is committed; the others are written from our_records.toml, pinned by sha256.
    assert all(r.derivation is not None and r.can_fetch and not r.from_log for r in smoke[1:])
    assert {r.derivation.kind for r in smoke[1:]} >= {"schedule", "architecture", "optimizer", "systems"}
    assert not any(_tracked(r.name) for r in smoke[1:])
    assert timeline.last_of_track("smoke").name == smoke[-1].name
    # Track 1 is untouched by the second track.
    assert len(timeline.between(FA3, "2026-01-19_BigramHashEmbedding")) == 33


def _tracked(name: str) -> bool:
    import subprocess

    out = subprocess.run(["git", "ls-files", f"human_baselines/{name}"], cwd=REPO, capture_output=True, text=True)
    return bool(out.stdout.strip())


def test_each_smoke_record_passes_the_static_rules_against_its_predecessor(our_records):
    from nanogpt_tui.validator.rules import check_rules

    root, timeline = our_records
    smoke = timeline.track(SMOKE_TRACK)
    for parent, child in zip(smoke, smoke[1:]):
        report = check_rules(parent.code_dir(root), child.code_dir(root))
        assert report.ok, f"{child.name} against {parent.name}: {report}"


def test_our_record_is_refused_when_its_edits_no_longer_give_the_timed_code(our_records, tmp_path):
    import shutil

    from nanogpt_tui.records import OUR_RECORDS_NAME, ensure_record_code, fetch_record

    root, timeline = our_records
    shutil.copy2(root / "records.tsv", tmp_path / "records.tsv")
    shutil.copytree(root / "smoke", tmp_path / "smoke")
    first = timeline.track(SMOKE_TRACK)[1]
    # A stale folder (other code under the record's name) is written again from the edits.
    shutil.copytree(root / first.name, tmp_path / first.name)
    (tmp_path / first.name / "train_gpt.py").write_text("x = 1\n")
    shutil.copy2(root / OUR_RECORDS_NAME, tmp_path / OUR_RECORDS_NAME)
    folder, written = ensure_record_code(load_timeline(tmp_path), first.name, tmp_path)
    assert written and (folder / "train_gpt.py").read_bytes() == (root / first.name / "train_gpt.py").read_bytes()
    # The smoke record changed since the track was timed: the times belong to other code, so nothing is written.
    (tmp_path / "smoke" / "train_gpt.py").write_text((root / "smoke" / "train_gpt.py").read_text() + "# changed\n")
    with pytest.raises(UserError, match=f"Our record '{first.name}' .* not the manifest's .* re-time the track"):
        fetch_record(load_timeline(tmp_path), first.name, tmp_path, force=True)
    assert (folder / "train_gpt.py").read_bytes() == (root / first.name / "train_gpt.py").read_bytes()
