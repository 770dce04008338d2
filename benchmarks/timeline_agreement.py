"""Agreement of the change classifier with our labelled set (human_baselines/timeline_labels.tsv): the confusion
matrix on the 10 held-aside records and on the rest, each record against the nearest earlier record with code.

Needs the records' code in human_baselines/NAME/ (`nanogpt-tui records fetch NAME`, or from a local snapshot of
KellerJordan/modded-nanogpt). Usage: python benchmarks/timeline_agreement.py [held|rest|both]
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

from nanogpt_tui.classify import classify_dirs
from nanogpt_tui.records import load_timeline

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ROOT / "human_baselines"
CATEGORIES = ("hyperparameter", "algorithmic", "systems", "mixed", "none")


def main(which: str = "both") -> int:
    timeline = load_timeline(BASELINES)
    with_code = [r for r in timeline if not r.is_retiming and r.code_present(BASELINES)]
    parent = {b.name: a for a, b in zip(with_code, with_code[1:])}
    with (BASELINES / "timeline_labels.tsv").open(encoding="utf-8") as f:
        labels = list(csv.DictReader(f, delimiter="\t"))
    sets = {"held": [r for r in labels if r["held_aside"] == "yes"],
            "rest": [r for r in labels if r["held_aside"] != "yes"]}
    for name in (["held", "rest"] if which == "both" else [which]):
        matrix: Counter[tuple[str, str]] = Counter()
        lines = []
        for row in sets[name]:
            if row["name"] not in parent:
                lines.append(f"   {row['name']}: no code (fetch it and its predecessor)")
                continue
            c = classify_dirs(parent[row["name"]].code_dir(BASELINES), timeline.get(row["name"]).code_dir(BASELINES))
            matrix[(row["label"], c.label)] += 1
            mark = "  " if row["label"] == c.label else "XX"
            lines.append(f"{mark} {row['number']:>3} {row['name']:<48} {row['label']:<15} {c.summary()}")
        agree = sum(v for (a, b), v in matrix.items() if a == b)
        total = sum(matrix.values())
        print(f"{name}: {agree}/{total} agree ({100 * agree / max(1, total):.0f}%)")
        print("label \\ classifier".ljust(18) + "".join(k[:7].rjust(9) for k in CATEGORIES))
        for a in CATEGORIES:
            print(a.ljust(18) + "".join(str(matrix[(a, b)]).rjust(9) for b in CATEGORIES))
        print("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
