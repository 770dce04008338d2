"""Agreement of the change classifier with our labelled set (human_baselines/timeline_labels.tsv): the confusion
matrix on the held-aside records and on the rest, each record against the nearest earlier record with code, with
a 95% Wilson interval for each agreement (25 held-aside records cannot pin a rate closer than about +-15 points).

Needs the records' code in human_baselines/NAME/ (`nanogpt-tui records fetch NAME`, or from a local snapshot of
KellerJordan/modded-nanogpt). Usage: python benchmarks/timeline_agreement.py [held|rest|both|all] [--summary]
(`--summary`: the counts and matrices only, not the records). `all` also splits the held-aside records into those
of batches 1-2 (held aside first, whose disagreements were reported in an earlier note) and the fresh batch 3.
"""

from __future__ import annotations

import csv
import math
import sys
from collections import Counter
from pathlib import Path

from nanogpt_tui.classify import Classification, classify_dirs
from nanogpt_tui.records import load_timeline

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ROOT / "human_baselines"
CATEGORIES = ("hyperparameter", "algorithmic", "systems", "mixed", "none")


def wilson(agree: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion agree/total."""
    if total == 0:
        return 0.0, 1.0
    p = agree / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def main(which: str = "both", summary: bool = False) -> int:
    timeline = load_timeline(BASELINES)
    with_code = [r for r in timeline if not r.is_retiming and r.code_present(BASELINES)]
    parent = {b.name: a for a, b in zip(with_code, with_code[1:])}
    with (BASELINES / "timeline_labels.tsv").open(encoding="utf-8") as f:
        labels = list(csv.DictReader(f, delimiter="\t"))
    held = [r for r in labels if r["held_aside"] == "yes"]
    sets = {"held": held, "rest": [r for r in labels if r["held_aside"] != "yes"],
            "held-batches-1-2": [r for r in held if r["batch"] in ("1", "2")],
            "held-batch-3": [r for r in held if r["batch"] == "3"]}
    names = {"both": ["held", "rest"], "all": ["held-batches-1-2", "held-batch-3", "held", "rest"]}.get(which, [which])
    cache: dict[str, Classification] = {}  # each record classified once, whichever sets it is in
    for name in names:
        matrix: Counter[tuple[str, str]] = Counter()
        per_batch: Counter[tuple[str, bool]] = Counter()
        lines = []
        for row in sets[name]:
            if row["name"] not in parent:
                lines.append(f"   {row['name']}: no code (fetch it and its predecessor)")
                continue
            if row["name"] not in cache:
                cache[row["name"]] = classify_dirs(parent[row["name"]].code_dir(BASELINES),
                                                   timeline.get(row["name"]).code_dir(BASELINES))
            c = cache[row["name"]]
            matrix[(row["label"], c.label)] += 1
            per_batch[(row["batch"], row["label"] == c.label)] += 1
            mark = "  " if row["label"] == c.label else "XX"
            lines.append(f"{mark} {row['number']:>3} {row['name']:<48} {row['label']:<15} {c.summary()}")
        agree = sum(v for (a, b), v in matrix.items() if a == b)
        total = sum(matrix.values())
        low, high = wilson(agree, total)
        batches = ", ".join(f"batch {b}: {per_batch[(b, True)]}/{per_batch[(b, True)] + per_batch[(b, False)]}"
                            for b in sorted({b for b, _ in per_batch}))
        print(f"{name}: {agree}/{total} agree ({100 * agree / max(1, total):.0f}%, 95% interval "
              f"{100 * low:.0f}-{100 * high:.0f}%; {batches})")
        print("label \\ classifier".ljust(18) + "".join(k[:7].rjust(9) for k in CATEGORIES))
        for a in CATEGORIES:
            print(a.ljust(18) + "".join(str(matrix[(a, b)]).rjust(9) for b in CATEGORIES))
        print(("" if summary else "\n".join(lines)) + "\n")
    return 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--summary"]
    sys.exit(main(*args[:1], summary="--summary" in sys.argv[1:]))
