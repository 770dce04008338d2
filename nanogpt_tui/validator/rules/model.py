"""The rule table, one broken rule (`Violation`) and the outcome of a check (`RuleReport`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field



@dataclass(frozen=True)
class Rule:
    """One static rule: its stable id and a one-line description (docs and the judge prompt use both)."""

    id: str
    description: str


RULES: tuple[Rule, ...] = (
    Rule("syntax", "Every Python file that runs (train_gpt.py, scripts run.sh starts, local modules they import) parses."),
    Rule("compile-flags", "torch.compile is called only with keyword flags (and option values) the anchor already uses; "
                          "call sites may be added, moved or removed."),
    Rule("compiler-config", "No torch._inductor.config / torch._dynamo.config / torch._functorch.config setting, "
                            "config.patch, or TORCHINDUCTOR_/TORCHDYNAMO_ environment variable the anchor does not set."),
    Rule("recompile-limit", "torch._dynamo.config.recompile_limit (alias cache_size_limit) keeps the anchor's value."),
    Rule("coordinate-descent", "Inductor's coordinate_descent_tuning is never enabled (config, compile options, "
                               "environment or run.sh)."),
    Rule("val-constants", "val_tokens, val_batch_size and val_files keep the anchor's values wherever they are defined."),
    Rule("train-files", "train_files keeps the anchor's value: the training data stream is unchanged."),
    Rule("val-loader", "Each validation builds a fresh loader from val_files inside the training loop, "
                       "while the clock is stopped."),
    Rule("val-reduce", "Each validation averages its loss over the validation steps and over ranks "
                       "(dist.all_reduce or dist.reduce) inside the training loop."),
    Rule("warmup", "Warm-up runs before the timed loop with the anchor's step count (when a literal), the initial state "
                   "is saved before it and restored (load_state_dict) after it."),
    Rule("timing-clock", "The timed loop accumulates real elapsed wall-clock time, stopping (after a CUDA synchronize) "
                         "before validation and restarting after it; the accumulator and start time are not otherwise "
                         "altered."),
    Rule("fixed-steps", "The training loop runs a fixed number of steps: its bound is not reassigned in the loop and "
                        "no break/continue/return/exit depends on time or loss."),
    Rule("run-deps", "run.sh (and any subprocess the code starts) installs, removes or upgrades no packages."),
    Rule("launch-shape", "run.sh launches torchrun with the anchor's --nproc_per_node, --nnodes, --standalone and "
                         "CUDA_VISIBLE_DEVICES."),
)

RULE_IDS: frozenset[str] = frozenset(rule.id for rule in RULES)

# Violations about something missing from a file as a whole carry this line number.
WHOLE_FILE = 0


@dataclass(frozen=True)
class Violation:
    """One broken rule: where (file relative to the candidate folder, 1-based line or 0) and a one-sentence message."""

    rule: str
    file: str
    line: int
    message: str

    def to_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "file": self.file, "line": self.line, "message": self.message}

    def sort_key(self) -> tuple[str, int, str, str]:
        return (self.file, self.line, self.rule, self.message)


@dataclass
class RuleReport:
    """The outcome of `check_rules`: no violations means ok."""

    violations: list[Violation] = field(default_factory=list)
    # What the AST alone cannot decide (never a silent pass): questions for the LLM judge, in the same shape.
    needs_judge: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "violations": [v.to_dict() for v in self.violations],
                "needs_judge": [q.to_dict() for q in self.needs_judge]}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)
