"""The labelled sets of human records (`human_baselines/timeline_labels.tsv`, track 1,
`timeline_labels_medium.tsv`, the GPT-2 Medium track, and `timeline_labels_batch5.tsv`, track-1 folders off the
timeline) are well formed and track 1's held-aside records are the ones
its stated rule draws."""

from __future__ import annotations

import csv
import random
import re
from collections.abc import Callable
from pathlib import Path

from nanogpt_tui.records import load_timeline

ROOT = Path(__file__).resolve().parents[2]
LABELS = ROOT / "human_baselines" / "timeline_labels.tsv"
KINDS = {"hyperparameter", "algorithmic", "systems", "none"}


def _rows() -> list[dict[str, str]]:
    with LABELS.open(encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_labels_are_well_formed_and_name_real_records() -> None:
    rows = _rows()
    assert len(rows) >= 30
    timeline = load_timeline(ROOT / "human_baselines")
    for row in rows:
        assert row["name"] in timeline, row["name"]
        assert row["label"] in KINDS | {"mixed"}, row
        shares = {k: float(v) for k, v in (part.split("=") for part in row["shares"].split())}
        assert set(shares) <= KINDS and abs(sum(shares.values()) - 1) < 1e-6, row
        top = max(shares, key=shares.get)
        # The label follows the shares: a kind holding at least 0.6 of the change, else mixed.
        assert row["label"] == (top if shares[top] >= 0.6 else "mixed"), row
        assert row["reason"].strip(), row


# Records drawn for the held-aside set in each batch of labels (each batch labelled before the classifier changed).
# Batch 3 (the records of late 2024, fetchable once their logs' code section was read) is held aside whole.
HELD_PER_BATCH = {"1": 10, "2": 15, "3": 14}


def test_held_aside_records_are_the_seeded_draw() -> None:
    rows = _rows()
    assert {r["batch"] for r in rows} == set(HELD_PER_BATCH)
    assert len({r["name"] for r in rows}) == len(rows)
    for batch, k in HELD_PER_BATCH.items():
        names = sorted(r["name"] for r in rows if r["batch"] == batch)
        drawn = set(random.Random(19).sample(names, k))
        assert {r["name"] for r in rows if r["batch"] == batch and r["held_aside"] == "yes"} == drawn, batch
    assert all(r["held_aside"] in ("yes", "no") for r in rows)


# Batch 4: the GPT-2 Medium track (track 2), a fresh set labelled before the classifier was changed again and never
# classified while labelling; held aside whole. Each row names the folder its code is diffed against.
MEDIUM_LABELS = ROOT / "human_baselines" / "timeline_labels_medium.tsv"
MEDIUM_COLUMNS = ["number", "name", "predecessor", "label", "shares", "batch", "held_aside", "code_from", "reason"]


def _medium_rows() -> tuple[list[str], list[dict[str, str]]]:
    with MEDIUM_LABELS.open(encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        return list(reader.fieldnames or []), list(reader)


def _source_problem(source: str) -> str | None:
    """What is wrong with a `code_from` (or `predecessor_code_from`): a `.py` file, or `log top of` a log."""
    path = source.removeprefix("log top of ").strip()
    if not path or path.startswith("/") or ".." in path.split("/"):
        return f"code source {source!r} is not a path inside the folder"
    if not (source.startswith("log top of ") or path.endswith(".py")):
        return f"code source {source!r} is neither a .py file nor 'log top of' a log"
    return None


def _pair_problems(rows: list[dict[str, str]], prefix: str, batch: str,
                   outside: Callable[[dict[str, str]], str | None]) -> list[str]:
    """What is wrong with the rows of a batch labelled with its pairs (numbered PREFIX1.., all in BATCH and held
    aside): empty when every row follows the schema. `outside(row)` says what is wrong with a predecessor that is not
    a row of the batch (None when it is fine). A row may be its own predecessor only through
    `predecessor_code_from` (its folder's baseline run); any other predecessor is earlier."""
    problems: list[str] = []
    names = [r.get("name", "") for r in rows]
    if len(set(names)) != len(names):
        problems.append("duplicate names")
    for i, row in enumerate(rows, start=1):
        name = row.get("name", "")
        if None in row or any(v is None for v in row.values()):
            problems.append(f"{name}: wrong number of fields")
            continue
        if row["number"] != f"{prefix}{i}":
            problems.append(f"{name}: number {row['number']!r}, expected {prefix}{i}")
        try:
            shares = {k: float(v) for k, v in (part.split("=") for part in row["shares"].split())}
        except ValueError:
            problems.append(f"{name}: shares do not parse: {row['shares']!r}")
            continue
        if not shares or not set(shares) <= KINDS:
            problems.append(f"{name}: unknown kinds in shares {sorted(shares)}")
            continue
        if abs(sum(shares.values()) - 1) > 0.01:
            problems.append(f"{name}: shares sum to {sum(shares.values())}")
        top = max(shares, key=shares.__getitem__)
        # A kind holding at least 0.6 of the change, else mixed.
        expected = top if shares[top] >= 0.6 else "mixed"
        if row["label"] not in KINDS | {"mixed"} or row["label"] != expected:
            problems.append(f"{name}: label {row['label']!r}, shares say {expected!r}")
        if row["batch"] != batch or row["held_aside"] != "yes":
            problems.append(f"{name}: batch {row['batch']!r}, held_aside {row['held_aside']!r}")
        predecessor = row["predecessor"]
        predecessor_source = (row.get("predecessor_code_from") or "").strip()
        if predecessor == name:
            if not predecessor_source:
                problems.append(f"{name}: its own predecessor")
        elif predecessor not in names and (problem := outside(row)):
            problems.append(f"{name}: {problem}")
        if predecessor != name and predecessor[:10] >= name[:10]:
            problems.append(f"{name}: predecessor {predecessor!r} is not earlier")
        if not row["code_from"].strip() or not row["reason"].strip():
            problems.append(f"{name}: empty code_from or reason")
            continue
        for source in filter(None, (row["code_from"], predecessor_source)):
            if problem := _source_problem(source):
                problems.append(f"{name}: {problem}")
    return problems


def _medium_problems(rows: list[dict[str, str]], track_1: set[str]) -> list[str]:
    """What is wrong with the medium rows: empty when every row follows the schema."""
    def outside(row: dict[str, str]) -> str | None:
        # A predecessor outside the medium rows must be a track-1 record the reason names.
        predecessor = row["predecessor"]
        if predecessor in track_1 and predecessor in row["reason"]:
            return None
        return f"predecessor {predecessor!r} is neither a row nor a track-1 record in the reason"
    return _pair_problems(rows, "M", "4", outside)


def test_medium_labels_follow_the_schema() -> None:
    columns, rows = _medium_rows()
    assert columns == MEDIUM_COLUMNS
    assert len(rows) == 16
    timeline = load_timeline(ROOT / "human_baselines")
    track_1 = {name for name in (r["predecessor"] for r in rows) if name in timeline}
    assert _medium_problems(rows, track_1) == []


def test_medium_schema_check_finds_bad_rows() -> None:
    _, rows = _medium_rows()
    timeline = load_timeline(ROOT / "human_baselines")
    track_1 = {name for name in (r["predecessor"] for r in rows) if name in timeline}
    breakages = {
        "label": {"label": "systems"},
        "kind": {"shares": "speed=1.0"},
        "sum": {"shares": "algorithmic=0.7 hyperparameter=0.2"},
        "batch": {"batch": "1"},
        "held": {"held_aside": "no"},
        "predecessor": {"predecessor": "2025-01-01_Nowhere"},
    }
    for what, change in breakages.items():
        broken = [dict(r) for r in rows]
        broken[3].update(change)
        assert _medium_problems(broken, track_1), what
    duplicated = [dict(r) for r in rows] + [dict(rows[0], number="M17")]
    assert any("duplicate" in p for p in _medium_problems(duplicated, track_1))


# Batch 5: track-1 folders upstream that are not labelled pairs of the timeline (experiments, re-timings, records
# whose pair the timeline lacks), labelled with their pairs and never classified while labelling; held aside whole.
# A predecessor outside the rows is a timeline record or an upstream folder read by `predecessor_code_from`.
BATCH5_LABELS = ROOT / "human_baselines" / "timeline_labels_batch5.tsv"
BATCH5_COLUMNS = MEDIUM_COLUMNS + ["predecessor_code_from"]
# An absolute path (a machine's folder) in a row: rows name upstream files relative to the record's folder.
ABSOLUTE_PATH = re.compile(r"(?:^|[\s('`])/\w+/")


def _batch5_rows() -> tuple[list[str], list[dict[str, str]]]:
    with BATCH5_LABELS.open(encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        return list(reader.fieldnames or []), list(reader)


def _batch5_problems(rows: list[dict[str, str]], timeline: set[str]) -> list[str]:
    """What is wrong with the batch-5 rows: empty when every row follows the schema."""
    def outside(row: dict[str, str]) -> str | None:
        if row["predecessor"] in timeline or (row.get("predecessor_code_from") or "").strip():
            return None
        return f"predecessor {row['predecessor']!r} is neither a row, a timeline record nor read by predecessor_code_from"
    problems = _pair_problems(rows, "B", "5", outside)
    for row in rows:
        if any(ABSOLUTE_PATH.search(v) for v in row.values() if isinstance(v, str)):
            problems.append(f"{row.get('name')}: a machine path")
    return problems


def test_batch5_labels_follow_the_schema() -> None:
    columns, rows = _batch5_rows()
    assert columns == BATCH5_COLUMNS
    assert len(rows) >= 10
    names = [r["name"] for r in rows]
    assert names == sorted(names, key=lambda n: n[:10])  # numbered by date
    timeline = {r.name for r in load_timeline(ROOT / "human_baselines")}
    assert _batch5_problems(rows, timeline) == []


def test_batch5_schema_check_finds_bad_rows() -> None:
    _, rows = _batch5_rows()
    timeline = {r.name for r in load_timeline(ROOT / "human_baselines")}
    own_baseline = next(i for i, r in enumerate(rows) if r["predecessor"] == r["name"])
    breakages = {
        "label": (2, {"label": "systems"}),
        "kind": (2, {"shares": "speed=1.0"}),
        "sum": (2, {"shares": "algorithmic=0.7 hyperparameter=0.2"}),
        "number": (2, {"number": "B9"}),
        "batch": (2, {"batch": "4"}),
        "held": (2, {"held_aside": "no"}),
        "predecessor": (2, {"predecessor": "2024-01-01_Nowhere"}),
        "later": (2, {"predecessor": "2026-07-17_FP8DownProjection"}),
        "source": (2, {"code_from": "notes.md"}),
        "path": (2, {"reason": "read from /srv/records/x.txt"}),
        "own": (own_baseline, {"predecessor_code_from": ""}),
        "fields": (2, {None: ["extra"]}),
    }
    for what, (index, change) in breakages.items():
        broken = [dict(r) for r in rows]
        broken[index].update(change)
        assert _batch5_problems(broken, timeline), what
    duplicated = [dict(r) for r in rows] + [dict(rows[0], number=f"B{len(rows) + 1}")]
    assert any("duplicate" in p for p in _batch5_problems(duplicated, timeline))
