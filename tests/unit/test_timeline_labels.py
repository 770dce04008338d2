"""The labelled set of human records (`human_baselines/timeline_labels.tsv`) is well formed and its held-aside
records are the ones its stated rule draws."""

from __future__ import annotations

import csv
import random
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
