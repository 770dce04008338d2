"""The decision: a change's kind from the evidence of its places."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from nanogpt_tui.classify.model import Classification, Evidence, KINDS, MAX_EVIDENCE, NEUTRAL, NONE, PRECEDENCE


def _combine(evidence: Sequence[Evidence]) -> Classification:
    counted = Counter(e.kind for e in evidence if e.kind in KINDS)
    kind = next((k for k in PRECEDENCE if counted.get(k)), NONE)
    # Counted kinds first, strongest first, so the kept evidence explains the label.
    order = {k: i for i, k in enumerate((*PRECEDENCE, NEUTRAL))}
    ranked = sorted(evidence, key=lambda e: (order.get(e.kind, 9), e.file, e.line or 0))
    return Classification(kind=kind, evidence=ranked[:MAX_EVIDENCE], evidence_count=len(evidence),
                          parts={k: counted[k] for k in KINDS if counted.get(k)})
