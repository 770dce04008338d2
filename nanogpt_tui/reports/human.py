"""The change classifier applied to the human record timeline: each record against the record before it, for
consecutive records whose code is present in `human_baselines/<name>/`; headless."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nanogpt_tui.classify import ALGORITHMIC, KINDS, classify_dirs
from nanogpt_tui.records import Record, Timeline
from nanogpt_tui.reports.outcomes import HUMAN_ALGORITHMIC_SHARE

EVIDENCE_SHOWN = 10


def classify_timeline(timeline: Timeline, baselines_dir: Path, *, start: str | None = None,
                      end: str | None = None) -> dict[str, Any]:
    """Classify every record in `start`..`end` (new records only, re-timings left out) against its predecessor.

    With `start`, the first pair is (start, the record after it); without, the whole timeline. A pair is
    skipped, with the reason, when either record's code is missing (not fetched or imported).
    """
    records: list[Record]
    if start and end:
        records = [timeline.get(start), *timeline.between(start, end)]
    elif start:
        last = timeline.records[-1].name
        records = [timeline.get(start), *timeline.between(start, last)] if last != start else [timeline.get(start)]
    else:
        records = [r for r in timeline if not r.is_retiming]
        if end:
            names = [r.name for r in records]
            timeline.get(end)
            records = records[:names.index(end) + 1] if end in names else records
    pairs, skipped = [], []
    for parent, child in zip(records, records[1:]):
        if parent.track != child.track:
            continue  # the first record of a track has no predecessor on it
        missing = [r.name for r in (parent, child) if not r.code_present(baselines_dir)]
        if missing:
            skipped.append({"parent": parent.name, "child": child.name,
                            "reason": f"no code for {' and '.join(missing)} in {baselines_dir} (fetch it with "
                                      f"`nanogpt-tui records fetch NAME` or import it)"})
            continue
        c = classify_dirs(parent.code_dir(baselines_dir), child.code_dir(baselines_dir))
        pairs.append({"parent": parent.name, "child": child.name, "number": child.number,
                      "date": child.date.isoformat(),
                      "title": child.title, "kind": c.kind, "mixed": c.mixed,
                      "parts": {k: c.parts.get(k, 0) for k in KINDS}, "summary": c.summary(),
                      "evidence": [e.text() for e in c.evidence[:EVIDENCE_SHOWN]], "evidence_count": c.evidence_count})
    algorithmic = sum(1 for p in pairs if p["kind"] == ALGORITHMIC)
    by_kind = {k: sum(1 for p in pairs if p["kind"] == k) for k in (*KINDS, "none")}
    return {
        "from": records[0].name if records else None, "to": records[-1].name if records else None,
        "pairs": pairs, "skipped": skipped, "classified": len(pairs), "by_kind": by_kind,
        "algorithmic": algorithmic, "share_algorithmic": (algorithmic / len(pairs)) if pairs else None,
        "published_share_algorithmic": HUMAN_ALGORITHMIC_SHARE,
    }
