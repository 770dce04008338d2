"""Static rule checks: compare a candidate record folder with its anchor through the AST, offline and deterministic.

Each check extracts *facts* from both folders (the flags passed to `torch.compile`, the
compiler settings, the validation constants, where the clock stops and starts, how the
warm-up ends, what `run.sh` installs and launches) and compares the candidate's facts
with the anchor's, instead of diffing code. Whatever the anchor does is allowed; a fact
the anchor lacks is never demanded of the candidate. Only the code that runs is read:
`train_gpt.py`, the Python scripts `run.sh` starts, and the local modules they import.

Timing and validation facts come from a *trace*: the entry script's statements in
order, with calls to functions defined in the analysed files inlined (depth-limited), so
renamed helpers, classes that wrap the optimizer, and code moved between files are
seen the same way as the anchor's inline code.

The package imports only the standard library (no torch, Textual or docker). Its modules:
`model` (the rule table, violations, the report), `names` (what the checks look for),
`shell` (run.sh as shell words), `pyast` (name resolution, constant evaluation),
`program` (loading a folder), `facts` (per-file facts), `trace` (the trace and the
timing facts drawn from it), `loop` (lexical checks on the timed loop), `checks` (the
comparison rules) and `compare` (`check_rules`, the entry point).
"""

from __future__ import annotations

# Each name is imported from its module when first used: a command that only names the rules (the CLI's help)
# does not load the checks.
_FROM = {
    **dict.fromkeys(('check_rules',), 'compare'),
    **dict.fromkeys(('Definition', 'FileFacts', 'Site', 'collect_file_facts'), 'facts'),
    **dict.fromkeys(('clock_tampering_violations', 'fixed_steps_violations'), 'loop'),
    **dict.fromkeys(('RULE_IDS', 'RULES', 'WHOLE_FILE', 'Rule', 'RuleReport', 'Violation'), 'model'),
    **dict.fromkeys(('CLOCKS', 'COMPILE_KWARGS', 'COMPILER_ENV_PREFIXES', 'CONFIG_MODULES', 'ENTRY_SCRIPT',
                     'MAX_EVENTS', 'MAX_INLINE_DEPTH', 'RECOMPILE_KEYS', 'RUN_SCRIPT', 'SKIP_DIRS',
                     'SUBPROCESS_CALLS', 'TIME_UNITS', 'TRACKED_NAMES', 'VAL_NAMES', 'WALL_CLOCKS'), 'names'),
    **dict.fromkeys(('Program', 'SourceFile', 'load_program'), 'program'),
    **dict.fromkeys(('Aliases', 'const_eval'), 'pyast'),
    **dict.fromkeys(('Launch', 'ShellCommand', 'install_command', 'parse_shell', 'torchrun_launch'), 'shell'),
    **dict.fromkeys(('Event', 'Span', 'TimingFacts', 'Tracer', 'trace_facts'), 'trace'),
}


def __getattr__(name: str):
    module = _FROM.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "CLOCKS", "COMPILER_ENV_PREFIXES", "COMPILE_KWARGS", "CONFIG_MODULES", "ENTRY_SCRIPT", "MAX_EVENTS",
    "MAX_INLINE_DEPTH", "RECOMPILE_KEYS", "RULES", "RULE_IDS", "RUN_SCRIPT", "SKIP_DIRS", "SUBPROCESS_CALLS",
    "TIME_UNITS", "TRACKED_NAMES", "VAL_NAMES", "WALL_CLOCKS", "WHOLE_FILE",
    "Aliases", "Definition", "Event", "FileFacts", "Launch", "Program", "Rule", "RuleReport", "ShellCommand",
    "Site", "SourceFile", "Span", "TimingFacts", "Tracer", "Violation",
    "check_rules", "clock_tampering_violations", "collect_file_facts", "const_eval", "fixed_steps_violations",
    "install_command", "load_program", "parse_shell", "torchrun_launch", "trace_facts",
]
