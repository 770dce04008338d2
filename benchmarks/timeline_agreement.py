"""Agreement of the change classifier with our labelled set (human_baselines/timeline_labels.tsv): the confusion
matrix on the held-aside records and on the rest, each record against the nearest earlier record with code, with
a 95% Wilson interval for each agreement (25 held-aside records cannot pin a rate closer than about +-15 points).

Needs the records' code in human_baselines/NAME/ (`nanogpt-tui records fetch NAME`, or from a local snapshot of
KellerJordan/modded-nanogpt). Usage: python benchmarks/timeline_agreement.py [held|rest|both|all|medium --medium-root DIR] [--summary]
(`--summary`: the counts and matrices only, not the records). `all` also splits the held-aside records into those
of batches 1-2 (held aside first, whose disagreements were reported in an earlier note) and the fresh batch 3.

`medium --medium-root DIR` measures batch 4 (human_baselines/timeline_labels_medium.tsv, the GPT-2 Medium track,
all held aside): DIR is upstream's `records/track_2_medium` folder from a checkout or snapshot of
KellerJordan/modded-nanogpt. Each row is classified against the predecessor its label names: a medium record's code
is read from DIR/NAME/<code_from> (the named `.py` file, or the top of the named training log, split into its files
as `records fetch` splits a log), a track-1 predecessor's from human_baselines/NAME/ (fetched). Only Python files
are compared on both sides: the medium logs carry no run.sh, and the one `records fetch` writes beside a track-1
record's code is ours, not the record's. The record's main file is named train_gpt.py on both sides whatever its
upstream name (train_gpt_medium.py), so the two versions of one file are compared as one file.
"""

from __future__ import annotations

import csv
import math
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from nanogpt_tui.classify import Classification, classify_dirs, classify_sources, code_files
from nanogpt_tui.record_log import MAIN_FILE, code_section, split_code_section
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


def report(name: str, rows: list[dict], classify: Callable[[dict], Classification | str], summary: bool) -> None:
    """Print one set's agreement (with its Wilson interval and per-batch counts), confusion matrix and, unless
    `summary`, each record: `classify(row)` is the classifier's reading, or a sentence saying why there is none."""
    matrix: Counter[tuple[str, str]] = Counter()
    per_batch: Counter[tuple[str, bool]] = Counter()
    lines = []
    for row in rows:
        c = classify(row)
        if isinstance(c, str):
            lines.append(f"   {row['name']}: {c}")
            continue
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


def read_labels(filename: str) -> list[dict]:
    with (BASELINES / filename).open(encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def main(which: str = "both", summary: bool = False) -> int:
    timeline = load_timeline(BASELINES)
    with_code = [r for r in timeline if not r.is_retiming and r.code_present(BASELINES)]
    parent = {b.name: a for a, b in zip(with_code, with_code[1:])}
    labels = read_labels("timeline_labels.tsv")
    held = [r for r in labels if r["held_aside"] == "yes"]
    sets = {"held": held, "rest": [r for r in labels if r["held_aside"] != "yes"],
            "held-batches-1-2": [r for r in held if r["batch"] in ("1", "2")],
            "held-batch-3": [r for r in held if r["batch"] == "3"]}
    names = {"both": ["held", "rest"], "all": ["held-batches-1-2", "held-batch-3", "held", "rest"]}.get(which, [which])
    cache: dict[str, Classification] = {}  # each record classified once, whichever sets it is in

    def classify(row: dict) -> Classification | str:
        if row["name"] not in parent:
            return "no code (fetch it and its predecessor)"
        if row["name"] not in cache:
            cache[row["name"]] = classify_dirs(parent[row["name"]].code_dir(BASELINES),
                                               timeline.get(row["name"]).code_dir(BASELINES))
        return cache[row["name"]]

    for name in names:
        report(name, sets[name], classify, summary)
    return 0


def medium_code(root: Path, row: dict) -> dict[str, str]:
    """A medium record's Python files from its upstream folder, as its `code_from` names them."""
    source = row["code_from"]
    log = source.removeprefix("log top of ").strip()
    path = root / row["name"] / log
    text = path.read_text(encoding="utf-8", errors="replace")
    if source.startswith("log top of "):
        files = split_code_section(code_section(text))
    else:
        files = {MAIN_FILE: text}
    return {name: body for name, body in files.items() if name.endswith(".py")}


def medium(root: Path, summary: bool = False) -> int:
    """Batch 4: each medium record against the predecessor its label names."""
    timeline = load_timeline(BASELINES)
    rows = read_labels("timeline_labels_medium.tsv")
    by_name = {r["name"]: r for r in rows}
    track1 = {r.name for r in timeline}

    def code_of(name: str) -> dict[str, str] | str:
        if name in by_name:
            if not (root / name).is_dir():
                return f"{root / name} is missing (pass upstream's records/track_2_medium as --medium-root)"
            return medium_code(root, by_name[name])
        if name in track1:
            folder = timeline.get(name).code_dir(BASELINES)
            if not timeline.get(name).code_present(BASELINES):
                return f"track-1 record {name} has no code here (`nanogpt-tui records fetch {name}`)"
            return {k: v for k, v in code_files(folder).items() if k.endswith(".py")}
        return f"predecessor {name} is neither a medium row nor a track-1 record"

    def classify(row: dict) -> Classification | str:
        old, new = code_of(row["predecessor"]), code_of(row["name"])
        for side in (old, new):
            if isinstance(side, str):
                return side
        return classify_sources(old, new)

    report("held-batch-4-medium", rows, classify, summary)
    return 0


if __name__ == "__main__":
    argv = sys.argv[1:]
    summary = "--summary" in argv
    argv = [a for a in argv if a != "--summary"]
    if argv[:1] == ["medium"]:
        if len(argv) != 3 or argv[1] != "--medium-root":
            sys.exit("usage: python benchmarks/timeline_agreement.py medium --medium-root DIR [--summary]")
        sys.exit(medium(Path(argv[2]), summary=summary))
    sys.exit(main(*argv[:1], summary=summary))
