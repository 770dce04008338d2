"""The decision: a change's kind from the weight of the evidence of its places."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from nanogpt_tui.classify.model import ALGORITHMIC, KINDS, PLUMBING, MAX_EVIDENCE, NEUTRAL, NONE, PRECEDENCE, Classification, Evidence


def _combine(evidence: Sequence[Evidence]) -> Classification:
    """Weigh the places: each kind's weight is the lines its places changed, each times its nature's factor (new
    computation double, dtype/device/rank placement half: `NATURE_WEIGHT`); the kind with the most weight is the
    change's kind (ties go to the stronger kind), mixed when it holds less than `DOMINANT_SHARE` (0.6)."""
    counted = Counter(e.kind for e in evidence if e.kind in KINDS)
    weights: dict[str, float] = {}
    for e in evidence:
        if e.kind in KINDS and e.weight > 0:
            weights[e.kind] = weights.get(e.kind, 0.0) + e.weighed
    if not weights:
        # Only plumbing (control flow, bookkeeping) changed: something runs differently, with no sign of which
        # kind of work it is; the classifier says structure changed, i.e. algorithmic.
        for e in evidence:
            if e.kind == PLUMBING and e.weight > 0:
                weights[ALGORITHMIC] = weights.get(ALGORITHMIC, 0.0) + e.weight
                counted[ALGORITHMIC] += 1
    kind = max(weights, key=lambda k: (weights[k], -PRECEDENCE.index(k))) if weights else NONE
    # The heaviest places first, so the kept evidence explains the label.
    order = {k: i for i, k in enumerate((*PRECEDENCE, PLUMBING, NEUTRAL))}
    ranked = sorted(evidence, key=lambda e: (e.kind not in KINDS, -weights.get(e.kind, 0.0), order.get(e.kind, 9),
                                             -e.weighed, e.file, e.line or 0))
    return Classification(kind=kind, evidence=ranked[:MAX_EVIDENCE], evidence_count=len(evidence),
                          parts={k: counted[k] for k in KINDS if counted.get(k)}, weights=weights)
