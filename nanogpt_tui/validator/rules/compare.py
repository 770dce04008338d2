"""The entry point: compare a candidate record folder with its anchor and report every broken rule."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nanogpt_tui.errors import UserError
from nanogpt_tui.validator.rules.checks import (
    Side,
    compile_flag_violations,
    compiler_config_violations,
    coordinate_descent_violations,
    definition_violations,
    launch_violations,
    recompile_limit_violations,
    run_deps_violations,
    syntax_violations,
    timing_violations,
    warmup_questions,
)
from nanogpt_tui.validator.rules.facts import collect_file_facts
from nanogpt_tui.validator.rules.model import WHOLE_FILE, RuleReport, Violation
from nanogpt_tui.validator.rules.names import ENTRY_SCRIPT, RUN_SCRIPT, VAL_NAMES
from nanogpt_tui.validator.rules.program import Program, load_program
from nanogpt_tui.validator.rules.trace import trace_facts


def check_rules(anchor_dir: Path | str, candidate_dir: Path | str) -> RuleReport:
    """Compare a candidate folder with its anchor; raises UserError on bad input (missing folders, broken anchor)."""
    return compare_analyses(analyse_anchor(anchor_dir), analyse_candidate(candidate_dir))


@dataclass
class Analysis:
    """One folder read for the rules: its program and, when it could be analysed, its facts (`side`)."""

    folder: Path
    program: Program
    side: Side | None  # None: nested too deeply to analyse


def analyse_anchor(anchor_dir: Path | str) -> Analysis:
    """The anchor read for the rules (it must parse); reusable against many candidates."""
    anchor = load_program(Path(anchor_dir), role="anchor")
    broken = [sf for sf in anchor.files if sf.error is not None]
    if broken:
        sf = broken[0]
        raise UserError(f"The anchor's {sf.rel} does not parse (line {sf.error.lineno}: "  # type: ignore[union-attr]
                        f"{sf.error.msg if sf.error else ''}); pass a valid anchor record folder.")
    try:
        return Analysis(Path(anchor_dir), anchor, Side(anchor, collect_file_facts(anchor), trace_facts(anchor)))
    except RecursionError:
        raise UserError(f"The anchor in {anchor_dir} is nested too deeply to analyse; pass a normal record "
                        "folder.") from None


def analyse_candidate(candidate_dir: Path | str) -> Analysis:
    """A candidate read for the rules (it may not parse: that is a violation, not an error)."""
    candidate = load_program(Path(candidate_dir), role="candidate")
    try:
        return Analysis(Path(candidate_dir), candidate,
                        Side(candidate, collect_file_facts(candidate), trace_facts(candidate)))
    except RecursionError:
        return Analysis(Path(candidate_dir), candidate, None)


def compare_analyses(anchor: Analysis, candidate_analysis: Analysis) -> RuleReport:
    """Every broken rule of the candidate against the anchor."""
    a = anchor.side
    assert a is not None
    candidate = candidate_analysis.program
    violations = syntax_violations(candidate)
    c = candidate_analysis.side
    if c is None:
        entry_rel = candidate.entry.rel if candidate.entry else ENTRY_SCRIPT
        violations.append(Violation("syntax", entry_rel, WHOLE_FILE,
                                    "The code is nested too deeply to analyse, so it cannot be checked; "
                                    "simplify the deeply nested expressions."))
        return RuleReport(sorted(violations, key=Violation.sort_key))
    questions: list[Violation] = []
    violations += run_deps_violations(a, c)
    violations += launch_violations(a, c)
    entry = candidate.entry
    if entry is not None and entry.tree is not None:
        violations += compile_flag_violations(a, c)
        violations += compiler_config_violations(a, c)
        violations += recompile_limit_violations(a, c)
        violations += coordinate_descent_violations(a, c)
        violations += definition_violations(a, c, VAL_NAMES, "val-constants",
                                            "validation must stay unchanged, so restore the anchor's value", questions)
        violations += definition_violations(a, c, ("train_files",), "train-files",
                                            "the training data stream must stay unchanged, so restore the anchor's "
                                            "value", questions)
        violations += timing_violations(a, c)
    else:
        # Only compiler settings coming from run.sh can be checked when the script does not parse.
        violations += [v for v in coordinate_descent_violations(a, c) if v.file == RUN_SCRIPT]
        violations += [v for v in compiler_config_violations(a, c) if v.file == RUN_SCRIPT]

    questions += warmup_questions(a, c) if entry is not None and entry.tree is not None else []
    unique = {(v.rule, v.file, v.line, v.message): v for v in violations}
    return RuleReport(sorted(unique.values(), key=Violation.sort_key), sorted(questions, key=Violation.sort_key))
