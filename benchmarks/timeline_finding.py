"""The published finding, "about 77% of human records introduced algorithmic changes", checked two ways over the
human timeline: by the change classifier (every record with code against the nearest earlier record with code)
and by our own labels (human_baselines/timeline_labels.tsv, which cover every record from FA3 to
BigramHashEmbedding), each with a 95% Wilson interval.

Ranges: FA3 -> BigramHashEmbedding (the 33 records the issue names), BigramHashEmbedding -> the last record, and
the whole history with code. Readings of "changed the algorithm": the algorithmic label (at least 0.6 of the
change), algorithmic as the leading kind (mixed records included), an algorithmic part of at least a quarter.

Needs the records' code in human_baselines/NAME/. Usage:
    python benchmarks/timeline_finding.py [--write-table]
(`--write-table` rewrites human_baselines/timeline_classified.tsv, the per-record table reports read.)
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from nanogpt_tui.classify.timeline import ALGORITHMIC_PART, shares_of
from nanogpt_tui.records import load_timeline
from nanogpt_tui.reports.human import CLASSIFIED_TABLE, classify_timeline

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timeline_agreement import wilson  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ROOT / "human_baselines"
# (first, last): each record after `first` up to `last`, against the record with code before it.
RANGES = (("2025-09-03_FA3", "2026-01-19_BigramHashEmbedding"),
          ("2026-01-19_BigramHashEmbedding", "2026-07-17_FP8DownProjection"), (None, None))
COLUMNS = ("number", "name", "compared_with", "label", "kind", "share_hyperparameter", "share_algorithmic",
           "share_systems", "places_hyperparameter", "places_algorithmic", "places_systems", "heaviest_places")


def _pct(k: int, n: int) -> str:
    low, high = wilson(k, n)
    return f"{k}/{n} ({100 * k / max(1, n):.0f}%, 95% interval {100 * low:.0f}-{100 * high:.0f}%)"


def write_table(records: list[dict]) -> None:
    with (BASELINES / CLASSIFIED_TABLE).open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(COLUMNS)
        for r in records:
            heaviest = "; ".join(f"{p['file']}:{p['line']} {p['scope']} {p['kind']} w{p['weight']:g}"
                                 for p in r["parts"][:3])
            w.writerow([r["number"], r["name"], r["parent"], r["label"], r["kind"],
                        *(f"{r['shares'][k]:.2f}" for k in ("hyperparameter", "algorithmic", "systems")),
                        *(r["counts"][k] for k in ("hyperparameter", "algorithmic", "systems")), heaviest])


def main(argv: list[str]) -> int:
    timeline = load_timeline(BASELINES)
    with (BASELINES / "timeline_labels.tsv").open(encoding="utf-8") as f:
        labels = {r["name"]: r for r in csv.DictReader(f, delimiter="\t")}
    whole = classify_timeline(timeline, BASELINES)
    if "--write-table" in argv:
        write_table(whole["records"])
        print(f"wrote {CLASSIFIED_TABLE}: {len(whole['records'])} records\n")
    names = [r["name"] for r in whole["records"]]
    for start, end in RANGES:
        # Every pair is the same pair in any range (a record against the record with code before it), so the
        # ranges are cut from the one classification of the whole track.
        lo = names.index(start) + 1 if start else 0
        hi = names.index(end) + 1 if end else len(names)
        records = whole["records"][lo:hi]
        share = shares_of(records)
        n = share["records"]
        print(f"{start or whole['from']} -> {end or whole['to']}: {n} records classified"
              + ("" if start else f", {len(whole['skipped'])} skipped (no code, or no earlier record with code)"))
        print(f"  classifier: label algorithmic {_pct(share['algorithmic'], n)}; leading kind algorithmic "
              f"{_pct(share['algorithmic_leading'], n)}; algorithmic part >= {ALGORITHMIC_PART:g} "
              f"{_pct(share['with_algorithmic_part'], n)}")
        print("  classifier labels by kind: " + ", ".join(f"{k} {v}" for k, v in share["by_label"].items() if v))
        ours = [labels[r["name"]] for r in records if r["name"] in labels]
        if ours:
            m = len(ours)
            shares = [dict((k, float(v)) for k, v in (p.split("=") for p in row["shares"].split())) for row in ours]
            print(f"  our labels ({m} of the {n}): label algorithmic "
                  f"{_pct(sum(r['label'] == 'algorithmic' for r in ours), m)}; leading kind algorithmic "
                  f"{_pct(sum(max(s, key=s.get) == 'algorithmic' for s in shares), m)}; algorithmic part >= "
                  f"{ALGORITHMIC_PART:g} {_pct(sum(s.get('algorithmic', 0) >= ALGORITHMIC_PART for s in shares), m)}; "
                  f"any algorithmic part {_pct(sum(s.get('algorithmic', 0) > 0 for s in shares), m)}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
