"""`nanogpt-tui report | reproduce | compare | classify | timeline-classify`: session reports, the published table
from session data, prompting strategies compared, and kinds of code change."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nanogpt_tui.cli.common import config_from, number, print_json, print_table, timeline_from
from nanogpt_tui.contract.layout import SESSION_FILE
from nanogpt_tui.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help="write a session (or group) report: figure, verdicts, budget, cost, diff, changes",
        description="Write a report of one session, or one report of several sessions together: the progress "
                    "figure (PNG), the submissions and verdicts, the budget timeline, token usage and cost, the best "
                    "submission's diff against the anchor, where the GPU-hours went by kind of change, and a "
                    "reproducibility block. HTML is one self-contained file; JSON follows docs/report-schema.md. "
                    "An existing report is never overwritten without --force.")
    p.add_argument("sessions", nargs="+", metavar="SESSION",
                   help="a session folder, or a session id (or unique prefix) in the sessions folder")
    p.add_argument("--format", default="md,html,json", metavar="md,html,json",
                   help="which files to write besides the figure (default: md,html,json)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="where to write (default: SESSION/report/ for one session, sessions/reports/group-.../ for "
                        "several)")
    p.add_argument("--each", action="store_true", help="with several sessions, one report per session instead")
    p.add_argument("--force", action="store_true", help="replace an existing report")
    p.set_defaults(func=cmd_report)

    p = subparsers.add_parser(
        "reproduce", help="the published NanoGPT-Bench table from your sessions, and its findings checked",
        description="Group finished sessions by agent and strategy and print %% of human progress recovered at the "
                    "end of the budget (mean, 95%% t-interval where a group has several sessions), the published "
                    "numbers beside it, and the published findings as checked sentences; draw the progress figure "
                    "of all groups.")
    p.add_argument("sessions_dir", nargs="?", type=Path, metavar="SESSIONS_DIR",
                   help="the folder of session folders (default: paths.sessions_dir)")
    p.add_argument("--json", action="store_true", help="print the result as JSON (docs/report-schema.md)")
    p.add_argument("--figure", type=Path, metavar="PNG",
                   help="where to draw the figure (default: SESSIONS_DIR/reports/reproduce.png)")
    p.add_argument("--no-figure", action="store_true", help="do not draw the figure")
    p.add_argument("--force", action="store_true", help="replace an existing figure")
    p.add_argument("--threshold", type=number(minimum=-1000.0, maximum=1000.0), default=10.0, metavar="PERCENT",
                   help="the finding's threshold (default: 10, as published)")
    p.set_defaults(func=cmd_reproduce)

    p = subparsers.add_parser(
        "compare", help="compare prompting strategies (or agents) across sessions, with a rank test",
        description="Per strategy: the distribution of final %% of human progress and of the area under the "
                    "progress curve; a Mann-Whitney U test (two groups) or Kruskal-Wallis (more) with its p-value; "
                    "and what this number of sessions can and cannot show.")
    p.add_argument("sessions_dir", nargs="?", type=Path, metavar="SESSIONS_DIR",
                   help="the folder of session folders (default: paths.sessions_dir)")
    p.add_argument("--by", default="strategy", choices=("strategy", "agent", "group", "model"),
                   help="what to compare (default: strategy; group = agent and strategy)")
    p.add_argument("--alpha", type=number(positive=True, maximum=0.5), default=0.05,
                   help="significance level (default: 0.05)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_compare)

    p = subparsers.add_parser(
        "classify", help="classify a code change: hyperparameter, algorithmic or systems",
        description="Compare the code (top-level .py and .sh files) of CHILD_DIR with PARENT_DIR through the AST "
                    "and label the change hyperparameter (only literal values changed), algorithmic (structure of "
                    "the model, optimizer, data handling or loss) or systems (kernels, compile, communication, "
                    "precision), with the evidence. A mixed change gets its strongest kind: algorithmic > systems > "
                    "hyperparameter, with mixed: true.")
    p.add_argument("parent", type=Path, metavar="PARENT_DIR")
    p.add_argument("child", type=Path, metavar="CHILD_DIR")
    p.add_argument("--json", action="store_true", help='print {"kind": ..., "evidence": [...], ...}')
    p.set_defaults(func=cmd_classify)

    p = subparsers.add_parser(
        "timeline-classify", help="classify each human record against the record before it",
        description="Apply the change classifier to consecutive human records whose code is in "
                    "human_baselines/NAME/ (fetch or import it first), and report the share of records that "
                    "changed the algorithm. Pairs with missing code are listed as skipped.")
    p.add_argument("--from", dest="start", metavar="NAME", help="first record (default: benchmark.anchor)")
    p.add_argument("--to", dest="end", metavar="NAME", help="last record (default: benchmark.target)")
    p.add_argument("--all", action="store_true", help="the whole timeline")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--second-opinion", action="store_true",
                   help="also ask the judge's model ([judge] provider and model, its API key from the environment) "
                        "for each record's kind, and say how often it agrees with the classifier (one request a "
                        "record; the classifier's kinds stay the ones every share uses)")
    p.set_defaults(func=cmd_timeline_classify)


# ------------------------------------------------------------------------------------------------ helpers

def _timeline_or_none(config):
    try:
        return timeline_from(config)
    except UserError:
        return None


def _resolve_session(config, text: str) -> Path:
    path = Path(text)
    if path.is_dir() and (path / SESSION_FILE).is_file():
        return path
    if path.is_dir():
        raise UserError(f"{path} holds no {SESSION_FILE}; pass a session folder or a session id.")
    from nanogpt_tui.sessions.manager import SessionManager

    manager = SessionManager(config)
    if (manager.session_dir(text) / SESSION_FILE).is_file():
        return manager.session_dir(text)  # by its exact id, read (or found broken) by the caller
    session = manager.get(text)
    return Path(config.paths.sessions_dir) / session.id


def _sessions_dir(args, config) -> Path:
    return Path(args.sessions_dir) if args.sessions_dir else Path(config.paths.sessions_dir)


def _pct(v, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}%"


# ------------------------------------------------------------------------------------------------ report

def cmd_report(args: argparse.Namespace) -> int:
    from nanogpt_tui.reports.writer import parse_formats, write_report

    from nanogpt_tui.sessions.model import BrokenSession, read_session

    config = config_from(args)
    formats = parse_formats(args.format)
    dirs, broken = [], []
    for d in [_resolve_session(config, s) for s in args.sessions]:
        read = read_session(d)
        (broken if isinstance(read, BrokenSession) else dirs).append(read if isinstance(read, BrokenSession) else d)
    for b in broken:
        print(f"broken, left out of the report: {b}", file=sys.stderr)
    if not dirs:
        raise UserError("Every session named is broken, so there is nothing to report on; fix them as said above.")
    timeline = _timeline_or_none(config)
    batches = [[d] for d in dirs] if args.each else [dirs]
    for batch in batches:
        out = args.out
        if out is not None and args.each and len(dirs) > 1:
            out = Path(out) / batch[0].name
        result = write_report(batch, timeline=timeline, baselines_dir=config.paths.baselines_dir, out_dir=out,
                              formats=formats, force=args.force)
        print(f"report written to {result.out_dir}: {', '.join(p.name for p in result.files)}")
    return 1 if broken else 0


# ------------------------------------------------------------------------------------------------ reproduce

def cmd_reproduce(args: argparse.Namespace) -> int:
    from nanogpt_tui.reports.human import classify_timeline
    from nanogpt_tui.reports.outcomes import GROUPINGS, load_outcomes, outcomes_figure, reproduce

    config = config_from(args)
    timeline = _timeline_or_none(config)
    root = _sessions_dir(args, config)
    result = load_outcomes(root, timeline, baselines_dir=config.paths.baselines_dir, require_percent=False)
    human = None
    if timeline is not None and config.benchmark.anchor in timeline and config.benchmark.target in timeline:
        human = classify_timeline(timeline, config.paths.baselines_dir, start=config.benchmark.anchor,
                                  end=config.benchmark.target)
    table = reproduce(result, threshold=args.threshold, human=human)
    table["human_records_later"] = None
    if human is not None and timeline is not None:
        later = [r.name for r in timeline if not r.is_retiming]
        if later and later[-1] != config.benchmark.target:
            table["human_records_later"] = classify_timeline(timeline, config.paths.baselines_dir,
                                                             start=config.benchmark.target, end=later[-1])
    figure_note = None
    table["figure"] = None
    if not args.no_figure and table["groups"]:
        path = args.figure or (root / "reports" / "reproduce.png")
        if path.exists() and not args.force:
            figure_note = f"{path} exists; not redrawn (pass --force to replace it)"
        else:
            from nanogpt_tui.reports.figure import render_progress_figure

            kept = {sid for g in table["groups"] for sid in g["sessions"]}
            spec = outcomes_figure([o for o in result.outcomes if o.session.id in kept], GROUPINGS["group"],
                                   timeline, "Progress by agent and strategy")
            render_progress_figure(spec, path)
            table["figure"] = str(path)
    elif not table["groups"]:
        figure_note = "no figure: no finished sessions"
    table["figure_note"] = figure_note
    if args.json:
        print_json(table)
        return 0
    print_reproduce(table)
    return 0


def print_reproduce(table: dict) -> None:
    rows = []
    percent = table["unit"].startswith("%")
    for g in table["groups"]:
        if percent:
            ci, mean, values = g["ci_percent"], _pct(g["mean_percent"]), g["final_percent"]
        else:
            ci, values = g["ci_seconds_faster"], g["final_seconds_faster"]
            mean = f"{g['mean_seconds_faster']:+.2f} s"
        rows.append([f"{g['agent']} / {g['strategy']}", ", ".join(g["models"]), g["n"], mean,
                     f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "-",
                     ", ".join(f"{v:.1f}" for v in values),
                     _pct(g["published"]["percent"], 1) if g["published"] else "-",
                     g["published"]["label"] if g["published"] else ""])
    for p in table["published"]:
        if not p["matched"]:
            rows.append([f"{p['agent']} / {p['strategy']}", "", 0, "-", "-", "(no sessions)", _pct(p["percent"], 1),
                         p["label"]])
    setup = table["published_setup"]
    if percent:
        print(f"% of human progress recovered at the end of the budget (published: {setup['anchor']} -> "
              f"{setup['target']}, {setup['budget_gpu_hours']:g} GPU-hours)")
    else:
        print("Seconds faster than the anchor at the end of the budget (no session's anchor and target are on the "
              "human timeline, so there is no % of human progress to set beside the published numbers)")
    print()
    print_table(["agent / strategy", "model", "n", "mean", "95% CI", "sessions", "published", ""], rows,
                right={2, 3, 6})
    notes = [f"{g['agent']} / {g['strategy']}: {n}" for g in table["groups"] for n in g["notes"]]
    if notes:
        print()
        for n in notes:
            print(f"note: {n}")
    print()
    print_kinds_side_by_side(table)
    print()
    for f in table["findings"]:
        print(f"{f['sentence']}" + (f"  ({f['detail']})" if f["detail"] else ""))
    for key in ("human_records", "human_records_later"):
        if table.get(key):
            print(human_share_sentence(table[key]))
    if table["skipped"]:
        print()
        for s in table["skipped"]:
            print(f"skipped {s['session']}: {s['reason']}")
    for p in table["problems"]:
        print(f"warning: {p}")
    if table.get("figure"):
        print(f"\nfigure: {table['figure']}")
    elif table.get("figure_note"):
        print(f"\n{table['figure_note']}")


# ------------------------------------------------------------------------------------------------ compare

def cmd_compare(args: argparse.Namespace) -> int:
    from nanogpt_tui.reports.outcomes import compare, load_outcomes

    if not 0 < args.alpha < 1:
        raise UserError("--alpha must be between 0 and 1, e.g. 0.05.")
    config = config_from(args)
    timeline = _timeline_or_none(config)
    result = load_outcomes(_sessions_dir(args, config), timeline, baselines_dir=config.paths.baselines_dir,
                           require_percent=False)
    out = compare(result, by=args.by, alpha=args.alpha)
    if args.json:
        print_json(out)
        return 0
    unit = out["unit"]
    short = "%" if unit.startswith("%") else " s"
    rows = []
    for g in out["groups"]:
        f, a = g["final"], g["area"]
        rows.append([g["name"], g["n"], f"{f['mean']:.2f}{short}", f"{f['median']:.2f}{short}",
                     "-" if f["sd"] is None else f"{f['sd']:.2f}", f"{f['min']:.2f} .. {f['max']:.2f}",
                     f"{a['mean']:.2f}{short}", ", ".join(g["agents"])])
    print(f"Final {unit} at the end of the budget, and its mean over the budget (the area), by {out['by']}")
    print()
    print_table([out["by"], "n", "mean", "median", "sd", "range", "area (mean over budget)", "agents"], rows,
                right={1, 2, 3, 4, 6})
    print()
    for name, t in out["tests"].items():
        label = "final" if name == "final" else "area"
        if t["p_value"] is None:
            print(f"{label}: no test ({t.get('note', 'too few sessions')})")
        else:
            print(f"{label}: {t['test']} p = {t['p_value']:.3g}" + (f" ({t['note']})" if t.get("note") else ""))
    print()
    for sentence in out["statement"]:
        print(sentence)
    for s in out["skipped"]:
        print(f"skipped {s['session']}: {s['reason']}")
    for p in out["problems"]:
        print(f"warning: {p}")
    return 0


# ------------------------------------------------------------------------------------------------ classify

def cmd_classify(args: argparse.Namespace) -> int:
    from nanogpt_tui.classify import classify_dirs

    for folder in (args.parent, args.child):
        if not Path(folder).is_dir():
            raise UserError(f"{folder} is not a folder; pass two record folders (each holding train_gpt.py).")
    result = classify_dirs(args.parent, args.child)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(result.summary())
    for e in result.evidence:
        print(f"  {e.text()}")
    if result.evidence_count > len(result.evidence):
        print(f"  ... {result.evidence_count - len(result.evidence)} more")
    return 0


def print_kinds_side_by_side(table: dict) -> None:
    """Agents' share of GPU-hours per kind of change next to the human records' share per kind, in one table."""
    def share(v):
        return "-" if v is None else f"{100 * v:.0f}%"

    human = table.get("human_records") or {}
    span = f"{human.get('from')} -> {human.get('to')}" if human else "no human records classified"
    rows = [[r["kind"], "-" if r["agents_gpu_hours"] is None else f"{r['agents_gpu_hours']:.1f}",
             share(r["agents_share_of_gpu_hours"]), "-" if r["humans_records"] is None else r["humans_records"],
             share(r["humans_share_of_records"])] for r in table["kinds_side_by_side"]]
    print(f"Kinds of change: agents' GPU-hours on code changes beside human records ({span})")
    print()
    print_table(["kind", "agents GPU-h", "agents share", "human records", "human share"], rows, right={1, 2, 3, 4})


def human_share_sentence(out: dict) -> str:
    """One sentence: how many records of a timeline range changed mainly the algorithm, next to the published 77%."""
    share = out["share"]
    n = share["records"]
    if not n:
        return (f"No record from {out['from']} to {out['to']} has its code and an earlier record's code present, so "
                "nothing was classified.")
    def part(count: str, key: str) -> str:
        return f"{share[count]} ({100 * share[key]:.0f}%)"

    return (f"{out['from']} -> {out['to']}: {part('algorithmic_leading', 'share_algorithmic_leading')} of {n} "
            "record(s) were mainly algorithmic (the kind holding the most weight); "
            f"{part('algorithmic', 'share_algorithmic')} hold at least 0.6 algorithmic work, "
            f"{part('with_algorithmic_part', 'share_with_algorithmic_part')} at least a quarter; the published "
            f"analysis found about {100 * share['published_share_algorithmic']:.0f}%.")


def _second_cell(opinion: dict) -> str:
    if opinion["status"] != "answered":
        return f"({opinion['status']})"
    return opinion["label"] + ("" if opinion["agrees"] else " (differs)")


def second_opinion_sentence(s: dict) -> str:
    """The second opinion in a sentence: how often the model agreed, or why it said nothing (an error may quote the
    provider's own words: shown as plain text)."""
    from nanogpt_tui.agents.render import sanitize

    if "unavailable" in s:
        return f"No second opinion: {sanitize(s['unavailable'])}"
    said = (f"The second opinion ({s['provider']} {s['model']}) read {s['answered']} of {s['records']} record(s) and "
            f"gave the classifier's label to {s['agree']}; its reasons are in --json.")
    if s["failed"]:
        said += f" {s['failed']} got no reading; the first: {sanitize(s['first_error'])}"
    return said


def cmd_timeline_classify(args: argparse.Namespace) -> int:
    from nanogpt_tui.reports.human import classify_timeline

    config = config_from(args)
    timeline = timeline_from(config)
    if args.all:
        start = end = None
    else:
        start = args.start or config.benchmark.anchor
        end = args.end or (config.benchmark.target if not args.start else None)
    second = None
    if args.second_opinion:
        from nanogpt_tui.reports.second_opinion import SecondOpinion

        if config.judge.provider not in ("anthropic", "openai"):
            raise UserError(f"--second-opinion asks the judge's model, and judge.provider is "
                            f"{config.judge.provider!r}; set it to anthropic or openai in the config.")
        second = SecondOpinion(config.judge)
    out = classify_timeline(timeline, config.paths.baselines_dir, start=start, end=end, second_opinion=second)
    if args.json:
        print_json(out)
        return 0
    rows = [[r["number"], r["name"], r["summary"], r["parent"], r["title"][:50]]
            + ([_second_cell(r["second_opinion"])] if second else []) for r in out["records"]]
    if rows:
        print_table(["#", "record", "kind (share of the change's weight)", "compared with", "title"]
                    + (["the model says"] if second else []), rows, right={0})
        print()
    print(human_share_sentence(out))
    if second:
        print(second_opinion_sentence(out["second_opinion"]))
    if out["skipped"]:
        print(f"\nskipped {len(out['skipped'])} record(s):")
        for s in out["skipped"]:
            print(f"  {s['name']}: {s['reason']}")
    return 0
