"""The verdict: one versioned JSON document per submission, written atomically where the host sees it.

Schema (docs/verdict.md describes every field): version 1.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nanogpt_tui.errors import UserError
from nanogpt_tui.fsutil import atomic_write_json
from nanogpt_tui.validator.retime import RunOutcome

VERDICT_SCHEMA_VERSION = 1
# Outcomes, strongest first.
VALIDATED = "validated"  # rules kept, judge cleared or explicitly skipped, every run finished, val_loss significant
REJECTED = "rejected"  # a static violation or the judge found the change incomparable
NOT_SIGNIFICANT = "not-significant"  # runs finished but val_loss is not significantly below the target
FAILED = "failed"  # a run crashed or printed no final line
NOT_VALIDATED = "not-validated"  # the judge could not run (no key, API failure): does not count
BASELINE = "baseline"  # a retiming of the anchor itself, the session's same-hardware reference
OUTCOMES = (VALIDATED, REJECTED, NOT_SIGNIFICANT, FAILED, NOT_VALIDATED, BASELINE)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


@dataclass
class Verdict:
    """Everything known about one submission's validation."""

    submission: str  # folder name, e.g. submission_3
    submission_dir: str
    verdict_id: str  # unique within the session: <submission>__<UTC timestamp>
    kind: str  # "submission" or "baseline"
    session_id: str | None
    anchor: str
    target: str | None
    started_at: str
    finished_at: str | None = None
    code_sha256: dict[str, str] = field(default_factory=dict)  # file -> sha256 of what was validated
    static: dict[str, Any] = field(default_factory=dict)  # {"ok", "violations": [...]} or {"skipped": reason}
    judge: dict[str, Any] = field(default_factory=dict)  # JudgeResult.to_dict()
    runs: list[RunOutcome] = field(default_factory=list)
    runs_requested: int = 0
    early_stop: dict[str, Any] = field(default_factory=lambda: {"stopped": False, "reason": None})
    stats: dict[str, Any] = field(default_factory=dict)
    speedup: dict[str, Any] = field(default_factory=dict)
    gpus: int = 0
    gpu_seconds: float = 0.0
    outcome: str = NOT_VALIDATED
    valid: bool = False  # counts toward the score: rules kept and the judge cleared (or explicitly skipped)
    significant: bool = False  # mean val_loss significantly below the target, every run finished
    comparable: bool = False  # no static violation and the judge did not flag it
    new_best: bool = False  # valid, significant and significantly faster than the session's best so far
    reasons: list[str] = field(default_factory=list)  # one sentence each, for people and agents
    schema_version: int = VERDICT_SCHEMA_VERSION

    @property
    def counts(self) -> bool:
        """A valid, significant, comparable submission: `submit` exits 0 only for these."""
        return self.valid and self.significant and self.comparable

    @property
    def mean_train_time_ms(self) -> float | None:
        return self.stats.get("mean_train_time_ms")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["runs"] = [r.to_dict() for r in self.runs]
        data["counts"] = self.counts
        return _finite(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Verdict":
        if not isinstance(data, dict):
            raise ValueError("a verdict is a JSON object")
        version = data.get("schema_version")
        if version != VERDICT_SCHEMA_VERSION:
            raise ValueError(f"schema_version is {version!r}, this version reads {VERDICT_SCHEMA_VERSION}")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        missing = [k for k in ("submission", "submission_dir", "verdict_id", "kind", "anchor", "started_at")
                   if k not in known]
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)}")
        known["runs"] = [RunOutcome.from_dict(r) for r in known.get("runs") or []]
        if known.get("outcome", NOT_VALIDATED) not in OUTCOMES:
            raise ValueError(f"unknown outcome {known.get('outcome')!r}")
        return cls(**known)


def write_verdict(verdicts_dir: Path, verdict: Verdict) -> Path:
    path = Path(verdicts_dir) / f"{verdict.verdict_id}.json"
    atomic_write_json(path, verdict.to_dict())
    return path


def read_verdict(path: Path) -> Verdict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"The verdict {path} does not exist; check the path.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"The verdict {path} is not readable JSON ({err}); it may be damaged, "
                        "re-run `submit` for that submission.") from None
    try:
        return Verdict.from_dict(data)
    except (ValueError, TypeError) as err:
        raise UserError(f"The verdict {path} does not follow the verdict schema ({err}); "
                        "re-run `submit` for that submission.") from None


def load_verdicts(verdicts_dir: Path) -> tuple[list[Verdict], list[str]]:
    """Every readable verdict in a folder, oldest first, and one sentence for each that could not be read."""
    verdicts, problems = [], []
    folder = Path(verdicts_dir)
    if not folder.is_dir():
        return [], []
    for path in sorted(folder.glob("*.json")):
        try:
            verdicts.append(read_verdict(path))
        except UserError as err:
            problems.append(str(err))
    verdicts.sort(key=lambda v: v.started_at)
    return verdicts, problems
