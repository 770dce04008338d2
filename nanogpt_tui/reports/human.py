"""The change classifier applied to the human record timeline: each record against the record with code before
it, for records whose code is present in `human_baselines/<name>/`; headless."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanogpt_tui.classify.timeline import TimelineEntry, classify_history
from nanogpt_tui.errors import UserError
from nanogpt_tui.records import TRACK_1, Record, Timeline
from nanogpt_tui.reports.outcomes import HUMAN_ALGORITHMIC_SHARE

if TYPE_CHECKING:
    from nanogpt_tui.reports.second_opinion import SecondOpinion


def _records(timeline: Timeline, start: str | None, end: str | None) -> list[Record]:
    """The new records from `start` to `end`, of one track (that of `start`, else `end`, else the speedrun's
    track 1): a record is compared only with records of its own track, never the smoke track with the 8xH100 one."""
    for name in (start, end):
        if name is not None:
            timeline.get(name)  # an unknown name is one clear error
    track = timeline.get(start or end).track if (start or end) else TRACK_1  # type: ignore[arg-type]
    records = [r for r in timeline if not r.is_retiming and r.track == track]
    names = [r.name for r in records]
    lo = names.index(start) if start in names else 0
    hi = names.index(end) + 1 if end in names else len(records)
    return records[lo:hi]


def timeline_entry(record: Record, baselines_dir: Path) -> TimelineEntry:
    """A record as the classifier's timeline sees it: its facts, and its code folder when its code is present."""
    return TimelineEntry(record.name, record.number, record.date.isoformat(), record.title,
                         record.code_dir(baselines_dir) if record.code_present(baselines_dir) else None)


def classify_timeline(timeline: Timeline, baselines_dir: Path, *, start: str | None = None,
                      end: str | None = None, second_opinion: SecondOpinion | None = None) -> dict[str, Any]:
    """Classify every record after `start` up to `end` (new records only, re-timings left out) against the
    nearest earlier record with code; without `start`, from the first record. Records without code are skipped,
    with the reason; the one after such a gap is compared with the last record that has code. With
    `second_opinion`, the judge's model reads each record too, and the result says how often it agrees."""
    records = _records(timeline, start, end)
    entries = [timeline_entry(r, baselines_dir) for r in records]
    out = classify_history(entries, second_opinion)
    if second_opinion is not None:
        out["second_opinion"] = second_opinion.summary(out["records"])
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


CLASSIFIED_TABLE = "timeline_classified.tsv"


class HumanKinds:
    """The human records' kinds of change from the classified table (`human_baselines/timeline_classified.tsv`,
    written by `timeline-classify --all --json`) and the timeline, read once (a report asks it for each of its
    sessions' anchor -> target ranges). Without the table or the timeline it has no answer (`over` gives None)."""

    def __init__(self, timeline: Timeline | None, labels: dict[str, str]) -> None:
        self.timeline = timeline
        self.labels = labels  # record name -> its label in the table

    @classmethod
    def load(cls, baselines_dir: Path | None) -> HumanKinds:
        import csv

        from nanogpt_tui.records import load_timeline

        if baselines_dir is None:
            return cls(None, {})
        try:
            timeline = load_timeline(Path(baselines_dir))
            with (Path(baselines_dir) / CLASSIFIED_TABLE).open(encoding="utf-8", newline="") as f:
                labels = {r["name"]: r["label"] for r in csv.DictReader(f, delimiter="\t")}
        except (OSError, ValueError, KeyError, csv.Error, UserError):
            return cls(None, {})  # a report without the human column, never a failed report
        return cls(timeline, labels)

    def over(self, anchor: str | None, target: str | None) -> dict[str, Any] | None:
        """The kinds of the records after `anchor` up to `target`; None when the range or the table is missing."""
        from nanogpt_tui.classify.timeline import LABELS

        if self.timeline is None or not anchor or not target:
            return None
        try:
            names = [r.name for r in _records(self.timeline, anchor, target)][1:]
        except (KeyError, ValueError, UserError):
            return None
        labels = [self.labels[n] for n in names if self.labels.get(n) in LABELS]
        if not labels:
            return None
        by_label = {k: labels.count(k) for k in LABELS}
        return {"from": anchor, "to": target, "records": len(labels), "by_label": by_label,
                "of_records": {k: v / len(labels) for k, v in by_label.items()}, "source": CLASSIFIED_TABLE}


def human_kinds(baselines_dir: Path | None, anchor: str | None, target: str | None) -> dict[str, Any] | None:
    """The human records' kinds over one anchor -> target range (`HumanKinds`, read for this one question)."""
    return HumanKinds.load(baselines_dir).over(anchor, target)
