"""The human timeline classified: each record with code against the record with code before it, and the shares."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanogpt_tui.classify.model import ALGORITHMIC, KINDS, MIXED, NONE, Classification
from nanogpt_tui.classify.sources import classify_dirs

LABELS = (*KINDS, MIXED, NONE)
ALGORITHMIC_PART = 0.25  # a record "has an algorithmic part" when algorithmic work holds at least this share
PARTS_SHOWN = 12  # evidence items kept per record in the timeline (the count says how many there were)


@dataclass(frozen=True)
class TimelineEntry:
    """One record of the timeline as the classifier sees it: its name, facts to show, and its code folder (None
    when its code is not present)."""

    name: str
    number: int | None
    date: str
    title: str
    code_dir: Path | None


# A second reader of each record (entry, parent, the classifier's reading) -> what it says, kept as the record's
# "second_opinion" (reports/second_opinion.py asks the judge's model).
SecondReader = Callable[[TimelineEntry, TimelineEntry, Classification], dict[str, Any]]


def classify_history(entries: Sequence[TimelineEntry], second: SecondReader | None = None) -> dict[str, Any]:
    """Classify every entry after the first against the nearest earlier entry with code. Entries without code
    are listed as skipped (with why); a record right after one is compared with the record before that. With
    `second`, each record also gets its reading."""
    records: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    parent: TimelineEntry | None = entries[0] if entries and entries[0].code_dir is not None else None
    for entry in entries[1:]:
        if entry.code_dir is None:
            skipped.append({"name": entry.name, "reason": "no code (not fetched or imported, or the record has none)"})
            continue
        if parent is None:
            skipped.append({"name": entry.name, "reason": "no earlier record with code to compare with"})
            parent = entry
            continue
        c = classify_dirs(parent.code_dir, entry.code_dir)  # type: ignore[arg-type]
        records.append({
            "name": entry.name, "number": entry.number, "date": entry.date, "title": entry.title,
            "parent": parent.name, "kind": c.kind, "label": c.label, "mixed": c.mixed,
            "shares": {k: round(v, 4) for k, v in c.shares.items()}, "summary": c.summary(),
            "counts": {k: c.parts.get(k, 0) for k in KINDS}, "evidence_count": c.evidence_count,
            "parts": [{"file": e.file, "line": e.line, "scope": e.scope, "change": e.change, "kind": e.kind,
                       "weight": round(e.weight, 2), "why": e.why, "text": e.text()}
                      for e in c.evidence[:PARTS_SHOWN]],
        })
        if second is not None:
            records[-1]["second_opinion"] = second(entry, parent, c)
        parent = entry
    return {"records": records, "skipped": skipped, "share": shares_of(records)}


def shares_of(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The share of records per label, and three readings of "changed the algorithm": algorithmic as the label
    (at least 0.6 of the weight), as the leading kind (mixed records included), as a part of at least a quarter."""
    records = list(records)
    n = len(records)
    by_label = {k: sum(1 for r in records if r["label"] == k) for k in LABELS}
    leading = sum(1 for r in records if r["kind"] == ALGORITHMIC)
    with_part = sum(1 for r in records if r["shares"].get(ALGORITHMIC, 0) >= ALGORITHMIC_PART)
    mean = {k: (sum(r["shares"].get(k, 0) for r in records) / n if n else None) for k in KINDS}
    return {
        "records": n, "by_label": by_label,
        "of_records": {k: (v / n if n else None) for k, v in by_label.items()},
        "algorithmic": by_label[ALGORITHMIC], "share_algorithmic": by_label[ALGORITHMIC] / n if n else None,
        "algorithmic_leading": leading, "share_algorithmic_leading": leading / n if n else None,
        "with_algorithmic_part": with_part, "share_with_algorithmic_part": with_part / n if n else None,
        "mean_share_of_change": mean,
    }
