"""`nanogpt-tui score`: seconds faster as % of human progress between an anchor and a target record."""

from __future__ import annotations

import argparse

from nanogpt_tui.cli.common import config_from, number, print_json, timeline_from
from nanogpt_tui.scoring import human_lines, percent_of_human_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "score", help="convert seconds faster into %% of human progress",
        description="Percent of human progress = seconds faster than the anchor / (anchor - target gap) x 100; "
                    "the gap comes from the record timeline (same-hardware re-timings where known).")
    p.add_argument("--anchor", help="anchor record (default: the config's benchmark.anchor)")
    p.add_argument("--target", help="100%% target record (default: the config's benchmark.target)")
    p.add_argument("--seconds-faster", type=number(minimum=-1e6, maximum=1e6), required=True, metavar="S",
                   help="the candidate's seconds faster than the anchor")
    p.add_argument("--lines", action="store_true", help="also list the human record lines between anchor and target")
    p.add_argument("--json", action="store_true", help='print {"percent": ..., "gap_s": ...}')
    p.set_defaults(func=cmd_score)


def cmd_score(args: argparse.Namespace) -> int:
    config = config_from(args)
    timeline = timeline_from(config)
    anchor = args.anchor or config.benchmark.anchor
    target = args.target or config.benchmark.target
    gap = timeline.gap(anchor, target)
    percent = percent_of_human_progress(args.seconds_faster, gap)
    lines = human_lines(timeline, anchor, target)
    if args.json:
        out = {"percent": round(percent, 4), "gap_s": round(gap, 4), "anchor": anchor, "target": target,
               "seconds_faster": args.seconds_faster}
        if args.lines:
            out["human_lines"] = [{"index": ln.index, "name": ln.name, "label": ln.label,
                                   "seconds_faster": round(ln.seconds_faster, 4), "percent": round(ln.percent, 4)}
                                  for ln in lines]
        print_json(out)
        return 0
    print(f"{args.seconds_faster:g} s faster than {anchor} is {percent:.2f}% of the human progress to {target} "
          f"(gap {gap:.4f} s).")
    if args.lines:
        for ln in lines:
            print(f"  {ln.label:<32} {ln.percent:6.1f}%  {ln.name}")
    return 0
