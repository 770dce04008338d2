"""Agreement of the change classifier with our labelled set (human_baselines/timeline_labels.tsv): the confusion
matrix on the held-aside records and on the rest, each record against the nearest earlier record with code, with
a 95% Wilson interval for each agreement (25 held-aside records cannot pin a rate closer than about +-15 points).

Needs the records' code in human_baselines/NAME/ (`nanogpt-tui records fetch NAME`, or from a local snapshot of
KellerJordan/modded-nanogpt). Usage:

    python benchmarks/timeline_agreement.py [held|rest|both|all|medium --medium-root DIR|batch5 --root DIR]
        [--summary] [--why N] [--second-opinion]

(`--summary`: the counts and matrices only, not the records; `--why N`: under each disagreement, the N heaviest
changed places the classifier's reading rests on, with their kind, weight and why). `all` also splits the
held-aside records into those of batches 1-2 (held aside first, whose disagreements were reported in an earlier note)
and the fresh batch 3.

`--second-opinion` (with `held`, `rest`, `both` or `all`) also asks the judge's model of the config in effect
(`timeline-classify --second-opinion`'s reading: one request a record, its key from the environment) and prints its
agreement with the labels and its confusion matrix beside the classifier's.

`medium --medium-root DIR` measures batch 4 (human_baselines/timeline_labels_medium.tsv, the GPT-2 Medium track,
all held aside): DIR is upstream's `records/track_2_medium` folder from a checkout or snapshot of
KellerJordan/modded-nanogpt. Each row is classified against the predecessor its label names: a medium record's code
is read from DIR/NAME/<code_from> (the named `.py` file, or the top of the named training log, split into its files
as `records fetch` splits a log), a track-1 predecessor's from human_baselines/NAME/ (fetched). Only Python files
are compared on both sides: the medium logs carry no run.sh, and the one `records fetch` writes beside a track-1
record's code is ours, not the record's. The record's main file is named train_gpt.py on both sides whatever its
upstream name (train_gpt_medium.py), so the two versions of one file are compared as one file.

`batch5 --root DIR` measures batch 5 (human_baselines/timeline_labels_batch5.tsv: track-1 folders that are not
records of the timeline's code, or whose code the timeline lacks; held aside) the same way, DIR being upstream's
`records/track_1_short`; a predecessor that is neither a row nor a timeline record is read from DIR by the row's
`predecessor_code_from`.
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


def report(name: str, rows: list[dict], classify: Callable[[dict], Classification | str], summary: bool,
           why: int = 0, second: Callable[[dict, Classification], dict] | None = None) -> None:
    """Print one set's agreement (with its Wilson interval and per-batch counts), confusion matrix and, unless
    `summary`, each record: `classify(row)` is the classifier's reading, or a sentence saying why there is none;
    `second(row, reading)`, the judge model's reading (timeline-classify --second-opinion), measured the same way."""
    matrix: Counter[tuple[str, str]] = Counter()
    per_batch: Counter[tuple[str, bool]] = Counter()
    model: Counter[tuple[str, str]] = Counter()
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
        if second is not None:
            opinion = second(row, c)
            said = opinion.get("label") if opinion["status"] == "answered" else None
            if said is not None:
                model[(row["label"], said)] += 1
            lines.append(f"       the model: {said or opinion['status'] + ': ' + str(opinion.get('error'))}"[:220])
        if why and row["label"] != c.label:
            lines.extend(heaviest(c, why))
    print_matrix(name, matrix, per_batch)
    if second is not None:
        print_matrix(f"{name}, the judge's model (second opinion)", model, Counter())
    print(("" if summary else "\n".join(lines)) + "\n")


def print_matrix(name: str, matrix: Counter[tuple[str, str]], per_batch: Counter[tuple[str, bool]]) -> None:
    agree = sum(v for (a, b), v in matrix.items() if a == b)
    total = sum(matrix.values())
    low, high = wilson(agree, total)
    batches = ", ".join(f"batch {b}: {per_batch[(b, True)]}/{per_batch[(b, True)] + per_batch[(b, False)]}"
                        for b in sorted({b for b, _ in per_batch}))
    print(f"{name}: {agree}/{total} agree ({100 * agree / max(1, total):.0f}%, 95% interval "
          f"{100 * low:.0f}-{100 * high:.0f}%" + (f"; {batches})" if batches else ")"))
    print("label \\ reading".ljust(18) + "".join(k[:7].rjust(9) for k in CATEGORIES))
    for a in CATEGORIES:
        print(a.ljust(18) + "".join(str(matrix[(a, b)]).rjust(9) for b in CATEGORIES))


def heaviest(c: Classification, top: int) -> list[str]:
    """A disagreement's `top` heaviest changed places, each with its kind, weight, place and why: what the reading
    that differs from the label rests on."""
    return [f"        {e.kind:<14} {e.weight:6.1f}  {e.file}:{e.line or '-'} {e.scope}: {e.why}"[:220]
            for e in sorted(c.evidence, key=lambda e: -e.weight)[:top]]


def read_labels(filename: str) -> list[dict]:
    with (BASELINES / filename).open(encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def main(which: str = "both", summary: bool = False, why: int = 0, second_opinion: bool = False) -> int:
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

    second = None
    if second_opinion:
        from nanogpt_tui.config import load_config
        from nanogpt_tui.reports.human import timeline_entry
        from nanogpt_tui.reports.second_opinion import SecondOpinion

        reader = SecondOpinion(load_config().judge)
        said: dict[str, dict] = {}

        def second(row: dict, c: Classification) -> dict:
            if row["name"] not in said:
                said[row["name"]] = reader(timeline_entry(timeline.get(row["name"]), BASELINES),
                                           timeline_entry(parent[row["name"]], BASELINES), c)
            return said[row["name"]]

    for name in names:
        report(name, sets[name], classify, summary, why, second)
    return 0


def upstream_code(root: Path, name: str, source: str) -> dict[str, str]:
    """A record's Python files from its upstream folder root/name, as `source` (a row's `code_from`) names them."""
    log = source.removeprefix("log top of ").strip()
    text = (root / name / log).read_text(encoding="utf-8", errors="replace")
    if source.startswith("log top of "):
        files = split_code_section(code_section(text))
    else:
        files = {MAIN_FILE: text}
    return {name: body for name, body in files.items() if name.endswith(".py")}


def labelled_pairs(filename: str, root: Path, set_name: str, summary: bool = False, why: int = 0) -> int:
    """A batch labelled with its pairs (batch 4, the medium track; batch 5, track-1 folders off the timeline): each
    row against the predecessor it names, its code from root/NAME/<code_from>; a predecessor is another row, a
    track-1 record (fetched into human_baselines/), or an upstream folder under root read by the row's
    `predecessor_code_from`."""
    timeline = load_timeline(BASELINES)
    rows = read_labels(filename)
    by_name = {r["name"]: r for r in rows}
    track1 = {r.name for r in timeline}

    def code_of(name: str, source: str | None) -> dict[str, str] | str:
        if name in by_name or source:
            if not (root / name).is_dir():
                return f"{root / name} is missing (pass the upstream folder of these records as the root)"
            return upstream_code(root, name, source or by_name[name]["code_from"])
        if name in track1:
            folder = timeline.get(name).code_dir(BASELINES)
            if not timeline.get(name).code_present(BASELINES):
                return f"track-1 record {name} has no code here (`nanogpt-tui records fetch {name}`)"
            return {k: v for k, v in code_files(folder).items() if k.endswith(".py")}
        return f"predecessor {name} is neither a row, a track-1 record nor a folder named by predecessor_code_from"

    def classify(row: dict) -> Classification | str:
        old = code_of(row["predecessor"], (row.get("predecessor_code_from") or "").strip() or None)
        new = code_of(row["name"], row["code_from"])
        for side in (old, new):
            if isinstance(side, str):
                return side
        return classify_sources(old, new)

    report(set_name, rows, classify, summary, why)
    return 0


PAIR_SETS = {"medium": ("timeline_labels_medium.tsv", "held-batch-4-medium", "--medium-root",
                        "upstream's records/track_2_medium"),
             "batch5": ("timeline_labels_batch5.tsv", "held-batch-5", "--root", "upstream's records/track_1_short")}


if __name__ == "__main__":
    argv = sys.argv[1:]
    summary = "--summary" in argv
    why = 0
    if "--why" in argv:  # --why N: under each disagreement, its N heaviest changed places
        at = argv.index("--why")
        why = int(argv[at + 1])
        del argv[at:at + 2]
    argv = [a for a in argv if a != "--summary"]
    if argv[:1] and argv[0] in PAIR_SETS:
        filename, set_name, flag, what = PAIR_SETS[argv[0]]
        if len(argv) != 3 or argv[1] != flag:
            sys.exit(f"usage: python benchmarks/timeline_agreement.py {argv[0]} {flag} DIR [--summary] [--why N] "
                     f"(DIR: {what})")
        sys.exit(labelled_pairs(filename, Path(argv[2]), set_name, summary=summary, why=why))
    second_opinion = "--second-opinion" in argv
    argv = [a for a in argv if a != "--second-opinion"]
    sys.exit(main(*argv[:1], summary=summary, why=why, second_opinion=second_opinion))
