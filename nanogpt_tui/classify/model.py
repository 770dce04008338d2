"""The classifier's results: the kinds of change, one changed place (`Evidence`) and a change's `Classification`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


HYPERPARAMETER = "hyperparameter"


ALGORITHMIC = "algorithmic"


SYSTEMS = "systems"


NONE = "none"


NEUTRAL = "neutral"  # an evidence item that does not count (a log message, an ordinary import)


KINDS = (HYPERPARAMETER, ALGORITHMIC, SYSTEMS)


PRECEDENCE = (ALGORITHMIC, SYSTEMS, HYPERPARAMETER)  # strongest first


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

    def text(self) -> str:
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
        return f"{where}{scope}: {self.change} {what} [{self.kind}: {self.why}]"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "scope": self.scope, "change": self.change,
                "kind": self.kind, "nodes": list(self.nodes), "before": self.before, "after": self.after,
                "why": self.why, "text": self.text()}


@dataclass
class Classification:
    """A change's kind and the evidence for it."""

    kind: str
    evidence: list[Evidence] = field(default_factory=list)
    evidence_count: int = 0  # every changed place found, including those not kept in `evidence`
    parts: dict[str, int] = field(default_factory=dict)  # changed places per counted kind

    @property
    def mixed(self) -> bool:
        return len([k for k in KINDS if self.parts.get(k)]) > 1

    def summary(self) -> str:
        """`algorithmic (mixed: 2 algorithmic, 3 hyperparameter)`, `hyperparameter`, `none`."""
        if not self.mixed:
            return self.kind
        inner = ", ".join(f"{self.parts[k]} {k}" for k in PRECEDENCE if self.parts.get(k))
        return f"{self.kind} (mixed: {inner})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "mixed": self.mixed, "parts": {k: self.parts.get(k, 0) for k in KINDS},
                "summary": self.summary(), "evidence_count": self.evidence_count,
                "evidence": [e.to_dict() for e in self.evidence]}


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS - 1] + "…"
