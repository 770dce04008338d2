"""`nanogpt-tui check-rules`: the static rule checks of a candidate folder against its anchor record."""

from __future__ import annotations

import argparse
from pathlib import Path

from nanogpt_tui.cli.common import print_json
from nanogpt_tui.validator.rules.model import RULES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "check-rules", help="statically check a candidate against the anchor record's rules (no API, no GPU)",
        description="Compare a candidate folder (train_gpt.py, run.sh, local modules) with the anchor record's code "
                    "through the AST and list each rule violation. Exit status: 0 ok, 1 violations, 2 bad input. "
                    "Rules: " + "; ".join(f"{r.id}" for r in RULES) + ".")
    p.add_argument("--anchor", required=True, metavar="DIR", help="the anchor record folder (holds train_gpt.py)")
    p.add_argument("candidate", metavar="CANDIDATE_DIR", help="the candidate folder to check")
    p.add_argument("--json", action="store_true",
                   help='print {"ok": bool, "violations": [{"rule", "file", "line", "message"}], "needs_judge": [...]}')
    p.set_defaults(func=cmd_check_rules)


def cmd_check_rules(args: argparse.Namespace) -> int:
    from nanogpt_tui.validator.rules import check_rules

    report = check_rules(Path(args.anchor), Path(args.candidate))
    if args.json:
        print_json(report.to_dict())
        return 0 if report.ok else 1
    for q in report.needs_judge:
        print(f"{q.file}:{q.line}: [{q.rule}, needs the judge] {q.message}")
    if report.ok:
        print(f"ok: {args.candidate} breaks none of the {len(RULES)} static rules against {args.anchor}"
              + (f"; {len(report.needs_judge)} case(s) above need the judge." if report.needs_judge else "."))
        return 0
    for v in report.violations:
        print(f"{v.file}:{v.line}: [{v.rule}] {v.message}")
    count = len(report.violations)
    print(f"{count} violation{'s' if count != 1 else ''} of the static rules.")
    return 1
