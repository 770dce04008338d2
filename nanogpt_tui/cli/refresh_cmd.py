"""`nanogpt-tui refresh`: move the benchmark to a newer anchor (and target) in one command."""

from __future__ import annotations

import argparse
from pathlib import Path

from nanogpt_tui.cli.common import config_from, timeline_from
from nanogpt_tui.records import DEFAULT_BASE_URL

CONFIG_FILE = "nanogpt-tui.toml"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "refresh", help="move the benchmark to a newer anchor and target",
        description="Fetch the anchor and target records (or say which import is needed), check that the target "
                    "passes the static rules against the anchor (a human record must), print the gap in seconds "
                    "(re-timed or official) and the image plan, write benchmark.anchor and benchmark.target into "
                    "the config (keeping a backup), and say what is left to do.")
    p.add_argument("--anchor", required=True, metavar="NAME", help="the new anchor record")
    p.add_argument("--target", metavar="NAME", help="the 100%% target (default: the last record of the anchor's track)")
    p.add_argument("--budget-gpu-hours", type=float, metavar="H", help="also set benchmark.budget_gpu_hours")
    p.add_argument("--base-url", default=DEFAULT_BASE_URL, metavar="URL",
                   help=f"where raw upstream files are served (default {DEFAULT_BASE_URL})")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="network timeout in seconds")
    p.set_defaults(func=cmd_refresh)


def cmd_refresh(args: argparse.Namespace) -> int:
    from nanogpt_tui.cli.image_cmd import print_plan
    from nanogpt_tui.config import set_benchmark_choice
    from nanogpt_tui.errors import UserError
    from nanogpt_tui.records import ensure_record_code
    from nanogpt_tui.stack import plan_image
    from nanogpt_tui.validator.rules import check_rules

    config = config_from(args)
    timeline = timeline_from(config)
    baselines = config.paths.baselines_dir
    anchor = timeline.get(args.anchor)
    if args.target:
        target = timeline.get(args.target)
    else:
        target = timeline.last_of_track(anchor.name)
        if target is None:
            raise UserError(f"{anchor.name} is the last record of its track, so there is no later target; pick an "
                            "earlier anchor.")
    if args.budget_gpu_hours is not None and not args.budget_gpu_hours > 0:
        raise UserError("--budget-gpu-hours must be positive.")
    gap = timeline.gap(anchor.name, target.name)  # refuses a target that is not later and faster

    # 1. Both records' code (an import is named where no log holds it; nothing else is done then).
    missing = []
    folders = {}
    for record in (anchor, target):
        try:
            folders[record.name], fetched = ensure_record_code(timeline, record.name, baselines,
                                                               base_url=args.base_url, timeout_s=args.timeout)
        except UserError as err:
            missing.append(str(err))
            continue
        files = sorted(p.name for p in folders[record.name].iterdir() if p.suffix == ".py")
        print(f"{'fetched' if fetched else 'present'}: {record.name} ({', '.join(files)})")
    if missing:
        raise UserError(" ".join(missing))

    # 2. The human target must pass the static rules against the anchor.
    report = check_rules(folders[anchor.name], folders[target.name])
    judge = list(getattr(report, "needs_judge", []))
    if not report.ok:
        print(f"\nThe static rules reject {target.name} against {anchor.name}:")
        for v in report.violations:
            print(f"  {v.file}:{v.line} [{v.rule}] {v.message}")
        raise UserError(f"{target.name} is a human record, so it must pass the static rules against {anchor.name}; "
                        "the rules are wrong for this pair: nothing was written. Report it, or pick another pair.")
    print(f"\nstatic rules: {target.name} passes all against {anchor.name}"
          + (f"; {len(judge)} case(s) need the judge:" if judge else "."))
    for q in judge:
        print(f"  needs the judge: {q.file}:{q.line} [{q.rule}] {q.message}")

    # 3. The gap, saying where it comes from.
    retimed = anchor.retimed_seconds_faster_vs_fa3 is not None and target.retimed_seconds_faster_vs_fa3 is not None
    basis = ("re-timed on the same hardware (NanoGPT-Bench's figures)" if retimed else
             f"official record times ({anchor.record_time_s:.2f} s - {target.record_time_s:.2f} s); not re-timed")
    print(f"\ngap: {gap:.2f} s = 100% of human progress, {basis}.")

    # 4. The image plan.
    plan = None
    if anchor.stack.stated:
        plan = plan_image(anchor.name, anchor.stack)
        print()
        print_plan(plan)
    else:
        print(f"\nimage: {anchor.name}'s log states no stack, so there is no image plan; sessions use "
              f"docker.image ({config.docker.image}) unchecked.")

    # 5. The config.
    path = config.source or Path.cwd() / CONFIG_FILE
    backup = set_benchmark_choice(path, anchor=anchor.name, target=target.name,
                                  budget_gpu_hours=args.budget_gpu_hours)
    print(f"\nconfig: {path} now has benchmark.anchor = {anchor.name!r}, benchmark.target = {target.name!r}"
          + (f", benchmark.budget_gpu_hours = {args.budget_gpu_hours:g}" if args.budget_gpu_hours is not None else "")
          + (f" (previous file kept as {backup})." if backup else " (a new file)."))

    # 6. What is left.
    print("\nLeft to do:")
    step = 1
    if plan is not None:
        print(f"  {step}. Build the image on every GPU host (from the repository root), the command above; then set "
              f"docker.image = \"{plan.tag}\" or pass `run --image {plan.tag}` (sessions on an image of another "
              "stack are refused).")
        step += 1
    print(f"  {step}. Fill the data volume on each host if not done (image/README.md, \"The data volume\").")
    step += 1
    if not retimed:
        print(f"  {step}. Re-time both records on that image and hardware, for a same-hardware gap: "
              f"`nanogpt-tui submit --baseline --runs 10 {folders[anchor.name]}` and the same for "
              f"{folders[target.name]}.")
        step += 1
    print(f"  {step}. Start sessions: `nanogpt-tui run --agent claude` (the anchor and target now come from the "
          "config).")
    return 0
