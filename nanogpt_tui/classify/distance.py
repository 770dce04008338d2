"""A cheap distance between two sets of files, for choosing an experiment's nearest parent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping


def code_distance(a: Mapping[str, str], b: Mapping[str, str]) -> int:
    """How many lines differ between two sets of files (multiset symmetric difference): cheap, for choosing
    the nearest earlier code as an experiment's parent when nothing records it."""
    total = 0
    for name in set(a) | set(b):
        ca = Counter(line.strip() for line in (a.get(name) or "").splitlines() if line.strip())
        cb = Counter(line.strip() for line in (b.get(name) or "").splitlines() if line.strip())
        total += sum(((ca - cb) + (cb - ca)).values())
    return total


def nearest(code: Mapping[str, str], candidates: Iterable[tuple[str, Mapping[str, str]]]) -> str | None:
    """The label of the candidate whose code is closest to `code`; ties go to the latest candidate."""
    best, best_d = None, None
    for label, other in candidates:
        d = code_distance(code, other)
        if best_d is None or d <= best_d:
            best, best_d = label, d
    return best
