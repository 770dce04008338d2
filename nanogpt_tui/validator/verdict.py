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
from nanogpt_tui.fields import MAX_GPUS, BadField, Fields, finite
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
KINDS = ("submission", "baseline")
RUN_STATUSES = ("ok", "crashed", "no-final-line", "timeout")
MAX_VERDICT_BYTES = 32 * 1024 * 1024  # a verdict with every judge reason is well under 1 MB
# The numbers of `stats`, `stats.faster` and `speedup`: finite or null (NaN is written as null).
STATS_NUMBERS = ("n", "n_failed", "val_loss_target", "p_value_threshold", "p_value", "mean_val_loss",
                 "mean_train_time_ms", "std_train_time_ms", "cv_train_time", "min_detectable_speedup_ms")
FASTER_NUMBERS = ("baseline_mean_ms", "difference_ms", "p_value", "min_detectable_ms")
SPEEDUP_NUMBERS = ("seconds_faster", "anchor_time_ms", "gap_s", "percent_of_human_progress")


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
    request_id: str | None = None  # the submit request it answers; its frozen code is validator/frozen/<request_id>
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
    def from_dict(cls, data: Any) -> "Verdict":
        """A verdict from its JSON object, every field checked; `BadField` names the first bad one."""
        f = Fields(data)
        version = f.integer("schema_version")
        if version != VERDICT_SCHEMA_VERSION:
            raise BadField("schema_version", f"is {version}; this version reads {VERDICT_SCHEMA_VERSION}")
        return cls(
            submission=f.text("submission"), submission_dir=f.text("submission_dir"),
            verdict_id=f.text("verdict_id", non_empty=True), kind=f.text("kind", choices=KINDS),
            session_id=f.text("session_id", None, optional=True), anchor=f.text("anchor"),
            target=f.text("target", None, optional=True), started_at=f.timestamp("started_at"),
            finished_at=f.timestamp("finished_at", None, optional=True),
            code_sha256=_text_map(f, "code_sha256"), static=_static(f), judge=_judge(f),
            runs=f.items("runs", _run, []), runs_requested=f.integer("runs_requested", 0, minimum=0, maximum=10_000),
            early_stop=_early_stop(f), stats=_stats(f), speedup=_numbers(f, "speedup", SPEEDUP_NUMBERS),
            gpus=f.integer("gpus", 0, minimum=0, maximum=MAX_GPUS),
            gpu_seconds=f.number("gpu_seconds", 0.0, minimum=0), outcome=f.text("outcome", NOT_VALIDATED,
                                                                                  choices=OUTCOMES),
            valid=f.boolean("valid", False), significant=f.boolean("significant", False),
            comparable=f.boolean("comparable", False), new_best=f.boolean("new_best", False),
            reasons=f.values("reasons", _text, []), request_id=f.text("request_id", None, optional=True),
            schema_version=version,
        )


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise BadField(name, f"is {type(value).__name__}, not text")
    return value


def _maybe_number(value: Any, name: str) -> float | None:
    return None if value is None else finite(value, name)


def _text_map(f: Fields, key: str) -> dict[str, str]:
    value = f.mapping(key, {})
    for k, v in value.items():
        _text(v, f"{key}.{k}")
    return value


def _numbers(f: Fields, key: str, names: tuple[str, ...]) -> dict[str, Any]:
    """An object whose named numbers are finite or null (other keys are kept as they are)."""
    value = f.mapping(key, {})
    inner = Fields(value, f.name(key))
    for name in names:
        inner.number(name, None, optional=True)
    return value


def _stats(f: Fields) -> dict[str, Any]:
    stats = _numbers(f, "stats", STATS_NUMBERS)
    inner = Fields(stats, "stats")
    ci = stats.get("ci95_train_time_ms")
    if ci is not None:
        bounds = inner.values("ci95_train_time_ms", _maybe_number)
        if len(bounds) != 2:
            raise BadField("stats.ci95_train_time_ms", f"has {len(bounds)} values, not [low, high]")
    if stats.get("faster") is not None:
        _numbers(inner, "faster", FASTER_NUMBERS)
    return stats


def _static(f: Fields) -> dict[str, Any]:
    static = f.mapping("static", {})
    inner = Fields(static, "static")
    if "ok" in static:
        inner.boolean("ok")
    inner.items("violations", lambda v: {k: v.data[k] for k in v.data}, [])
    return static


def _judge(f: Fields) -> dict[str, Any]:
    judge = f.mapping("judge", {})
    inner = Fields(judge, "judge")
    inner.text("status", None, optional=True)
    if judge.get("usage") is not None:
        _numbers(inner, "usage", ("input_tokens", "output_tokens", "cached_input_tokens"))
    if judge.get("reasons") is not None:
        inner.items("reasons", lambda r: r.data)
    return judge


def _early_stop(f: Fields) -> dict[str, Any]:
    value = f.mapping("early_stop", {"stopped": False, "reason": None})
    inner = Fields(value, "early_stop")
    inner.boolean("stopped", False)
    inner.text("reason", None, optional=True)
    return value


def _run(f: Fields) -> RunOutcome:
    return RunOutcome(
        index=f.integer("index", minimum=0, maximum=10_000), status=f.text("status", choices=RUN_STATUSES),
        exit_code=f.integer("exit_code", None, optional=True, minimum=-(2 ** 31), maximum=2 ** 31),
        wall_s=f.number("wall_s", minimum=0), log=f.text("log"),
        val_loss=f.number("val_loss", None, optional=True),
        train_time_ms=f.number("train_time_ms", None, optional=True, minimum=0),
        final_step=f.integer("final_step", None, optional=True, minimum=0),
        total_steps=f.integer("total_steps", None, optional=True, minimum=0),
        error=f.text("error", None, optional=True))


def write_verdict(verdicts_dir: Path, verdict: Verdict) -> Path:
    path = Path(verdicts_dir) / f"{verdict.verdict_id}.json"
    atomic_write_json(path, verdict.to_dict(), mode=0o644)  # the agent's user reads it (read-only)
    return path


def read_verdict(path: Path) -> Verdict:
    """The verdict at `path`; a `UserError` naming the file, the field and what to do otherwise."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_VERDICT_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"The verdict {path} does not exist; check the path.") from None
    except OSError as err:
        raise UserError(f"The verdict {path} cannot be read ({err.strerror}); check its permissions.") from None
    redo = "re-run `submit` for that submission"
    if len(raw) > MAX_VERDICT_BYTES:
        raise UserError(f"The verdict {path} is larger than {MAX_VERDICT_BYTES // 2 ** 20} MB, far more than a "
                        f"verdict holds; {redo}.")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise UserError(f"The verdict {path} is not UTF-8 text; it may be damaged, {redo}.") from None
    except (ValueError, RecursionError) as err:
        raise UserError(f"The verdict {path} is not readable JSON ({err}); it may be damaged, {redo}.") from None
    try:
        return Verdict.from_dict(data)
    except BadField as err:
        raise UserError(f"The verdict {path} has a bad field: {err}; {redo}.") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (write null)")


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
