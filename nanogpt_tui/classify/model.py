"""The classifier's results: the kinds of change, one changed place (`Evidence`) and a change's `Classification`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


HYPERPARAMETER = "hyperparameter"
ALGORITHMIC = "algorithmic"
SYSTEMS = "systems"
NONE = "none"
MIXED = "mixed"  # a change's label when no kind holds DOMINANT_SHARE of its weight
NEUTRAL = "neutral"  # an evidence item that does not count (a log message, an ordinary import, moved code)
# A structural change with no computation or systems work of its own (control flow, bookkeeping, reorganised
# code): it takes the kind of the rest of the change, and counts as algorithmic only where nothing else changed.
PLUMBING = "plumbing"
KINDS = (HYPERPARAMETER, ALGORITHMIC, SYSTEMS)
# The nature of a place, beside its kind: the decision weighs a place by its lines times its nature's factor, so a
# few lines of new computation in the model or optimizer are not outweighed by many lines of plumbing around it.
COMPUTATION = "computation"  # tensor maths changed (activations, norms, products, losses, optimizer updates)
PLACEMENT = "placement"  # only dtype, device, `.to(...)`, rank/world_size names changed: data movement, layout
NATURE_WEIGHT = {COMPUTATION: 2.0, PLACEMENT: 0.5}
PRECEDENCE = (ALGORITHMIC, SYSTEMS, HYPERPARAMETER)  # breaks ties between equal shares; orders evidence
DOMINANT_SHARE = 0.6  # a kind holding at least this share of a change's weight is its kind; otherwise it is mixed
# (the rule of our labels, human_baselines/timeline_labels.tsv)
MAX_EVIDENCE = 200  # evidence items kept per classification (the count says how many there were)
SNIPPET_CHARS = 120


@dataclass
class Evidence:
    """One changed place: where it is, what changed, and the kind it counts as (with why)."""

    file: str
    line: int | None
    scope: str  # e.g. "GPT.forward", "Hyperparameters", "<module>"
    change: str  # literal | structure | added | removed | renamed | file-added | file-removed | text
    kind: str  # hyperparameter | algorithmic | systems | neutral
    nodes: list[str]  # AST node types (before -> after) or ["line"] for shell scripts
    before: str | None
    after: str | None
    why: str
    weight: float = 1.0  # the size of the place: lines of code it changed (the larger side), 1 for a literal
    # The place's statements as text (old side, new side), to recognise code moved elsewhere; not reported.
    statements: tuple[tuple[str, ...], tuple[str, ...]] = field(default=((), ()), repr=False, compare=False)
    # The computation names the place uses (old side, new side), to recognise the same math re-implemented.
    math: tuple[tuple[str, ...], tuple[str, ...]] = field(default=((), ()), repr=False, compare=False)
    nature: str = ""  # COMPUTATION, PLACEMENT or "" (factor 1): see NATURE_WEIGHT
    # Judges the place again without some of its statements (old side, new side: statement texts as in
    # `statements`), returning the evidence of what is left: for a place partly made of code moved elsewhere.
    rejudge: Callable[[Counter[str], Counter[str]], list[Evidence]] | None = field(default=None, repr=False,
                                                                                 compare=False)

    @property
    def weighed(self) -> float:
        """The place's weight in the decision: its lines times its nature's factor."""
        return self.weight * NATURE_WEIGHT.get(self.nature, 1.0)

    def text(self) -> str:
        return f"{self.place()} [{self.kind}: {self.why}]"

    def place(self) -> str:
        """Where and what changed, without the kind it counts as (what a second reader is shown)."""
        where = f"{self.file}:{self.line}" if self.line else self.file
        scope = f" {self.scope}" if self.scope and self.scope != "<module>" else ""
        if self.change in ("literal", "structure", "renamed", "text") and self.before is not None \
                and self.after is not None:
            what = f"{self.before} -> {self.after}"
        elif self.change in ("added", "file-added"):
            what = f"+ {self.after}"
        elif self.change in ("removed", "file-removed"):
            what = f"- {self.before}"
        else:
            what = self.after or self.before or ""
        return f"{where}{scope}: {self.change} {what}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "scope": self.scope, "change": self.change,
                "kind": self.kind, "nodes": list(self.nodes), "before": self.before, "after": self.after,
                "why": self.why, "weight": round(self.weight, 2), "nature": self.nature or None,
                "weighed": round(self.weighed, 2), "text": self.text()}


@dataclass
class Classification:
    """A change's kind, the share of its weight each kind holds, and the evidence for it.

    `kind` is the kind holding the largest share (`none` when nothing that runs changed); the change is `mixed`
    when that share is below `DOMINANT_SHARE` (0.6), and its `label` is then `mixed`."""

    kind: str
    evidence: list[Evidence] = field(default_factory=list)
    evidence_count: int = 0  # every changed place found, including those not kept in `evidence`
    parts: dict[str, int] = field(default_factory=dict)  # changed places per counted kind
    weights: dict[str, float] = field(default_factory=dict)  # the places' weight per counted kind

    @property
    def shares(self) -> dict[str, float]:
        """Each counted kind's share of the change's weight (all zero when nothing counted)."""
        total = sum(self.weights.get(k, 0.0) for k in KINDS)
        return {k: (self.weights.get(k, 0.0) / total if total > 0 else 0.0) for k in KINDS}

    @property
    def mixed(self) -> bool:
        return self.kind in KINDS and self.shares[self.kind] < DOMINANT_SHARE

    @property
    def label(self) -> str:
        """The kind, or `mixed` when no kind dominates."""
        return MIXED if self.mixed else self.kind

    def summary(self) -> str:
        """`mixed (algorithmic 55%, hyperparameter 45%)`, `systems (90%; hyperparameter 10%)`, `none`."""
        if self.kind not in KINDS:
            return self.kind
        shares = self.shares
        ranked = [k for k in sorted(KINDS, key=lambda k: (-shares[k], PRECEDENCE.index(k))) if shares[k] > 0]
        text = ", ".join(f"{k} {100 * shares[k]:.0f}%" for k in ranked)
        if self.mixed:
            return f"mixed ({text})"
        rest = ", ".join(f"{k} {100 * shares[k]:.0f}%" for k in ranked[1:])
        return f"{self.kind} ({100 * shares[self.kind]:.0f}%" + (f"; {rest})" if rest else ")")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "mixed": self.mixed,
                "shares": {k: round(v, 4) for k, v in self.shares.items()},
                "parts": {k: self.parts.get(k, 0) for k in KINDS},
                "weights": {k: round(self.weights.get(k, 0.0), 2) for k in KINDS},
                "summary": self.summary(), "evidence_count": self.evidence_count,
                "evidence": [e.to_dict() for e in self.evidence]}


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS - 1] + "…"
