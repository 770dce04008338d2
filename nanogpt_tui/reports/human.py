"""The change classifier applied to the human record timeline: each record against the record with code before
it, for records whose code is present in `human_baselines/<name>/`; headless."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nanogpt_tui.classify.timeline import TimelineEntry, classify_history
from nanogpt_tui.records import Record, Timeline
from nanogpt_tui.reports.outcomes import HUMAN_ALGORITHMIC_SHARE


def _records(timeline: Timeline, start: str | None, end: str | None) -> list[Record]:
    records = [r for r in timeline if not r.is_retiming]
    names = [r.name for r in records]
    for name in (start, end):
        if name is not None:
            timeline.get(name)  # an unknown name is one clear error
    lo = names.index(start) if start in names else 0
    hi = names.index(end) + 1 if end in names else len(records)
    return records[lo:hi]


def classify_timeline(timeline: Timeline, baselines_dir: Path, *, start: str | None = None,
                      end: str | None = None) -> dict[str, Any]:
    """Classify every record after `start` up to `end` (new records only, re-timings left out) against the
    nearest earlier record with code; without `start`, from the first record. Records without code are skipped,
    with the reason; the one after such a gap is compared with the last record that has code."""
    records = _records(timeline, start, end)
    entries = [TimelineEntry(r.name, r.number, r.date.isoformat(), r.title,
                             r.code_dir(baselines_dir) if r.code_present(baselines_dir) else None) for r in records]
    out = classify_history(entries)
    for s in out["skipped"]:
        if s["reason"].startswith("no code"):
            s["reason"] = (f"no code for {s['name']} in {baselines_dir} (fetch it with `nanogpt-tui records fetch "
                           f"{s['name']}` or import it)")
    share = out["share"]
    share["published_share_algorithmic"] = HUMAN_ALGORITHMIC_SHARE
    return {
        "from": records[0].name if records else None, "to": records[-1].name if records else None,
        **out,
        # The names reproduce and older readers use.
        "classified": share["records"], "by_kind": share["by_label"], "algorithmic": share["algorithmic_leading"],
        "share_algorithmic": share["share_algorithmic_leading"], "published_share_algorithmic": HUMAN_ALGORITHMIC_SHARE,
    }
