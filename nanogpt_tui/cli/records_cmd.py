"""`nanogpt-tui records`: list the human record timeline, fetch a record's code, import a local record."""

from __future__ import annotations

import argparse
from pathlib import Path

from nanogpt_tui.cli.common import SECONDS, config_from, print_json, print_table, timeline_from
from nanogpt_tui.records import DEFAULT_BASE_URL, FA3, fetch_record, import_record


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("records", help="the human world-record timeline and record code",
                                   description="The human world-record timeline (human_baselines/records.tsv) "
                                               "and the code of records.")
    sub = parser.add_subparsers(dest="records_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("list", help="one row per record", description="List every record in the timeline.")
    p.add_argument("--json", action="store_true", help="print a JSON list of records")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("fetch", help="download a record's code from its upstream training log",
                       description="Download NAME's training log from BASE_URL/<commit>/<log_path>, split its "
                                   "code section into the record's files (train_gpt.py, triton_kernels.py, ...), "
                                   "check each sha256 against the manifest and write human_baselines/NAME/ "
                                   "(those files and run.sh).")
    p.add_argument("name", metavar="NAME", help="record name, as `records list` shows it")
    p.add_argument("--base-url", default=DEFAULT_BASE_URL, metavar="URL",
                   help=f"where raw upstream files are served (default {DEFAULT_BASE_URL})")
    p.add_argument("--timeout", type=SECONDS, default=60.0, metavar="S", help="network timeout in seconds")
    p.add_argument("--force", action="store_true", help="replace the record's folder if it exists")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("env", help="the software stack a record's log states",
                       description="The stack NAME ran with, as its training log states it (Python, PyTorch, CUDA, "
                                   "Triton, GPU) and how its code loads FlashAttention, with which fields an "
                                   "image must share with it as an anchor.")
    p.add_argument("name", metavar="NAME", help="record name, as `records list` shows it")
    p.add_argument("--json", action="store_true", help="print the stack as JSON")
    p.set_defaults(func=cmd_env)

    p = sub.add_parser("import", help="adopt a local record folder",
                       description="Copy a local record folder (train_gpt.py, and optionally run.sh, "
                                   "triton_kernels.py and other .py/.sh files) into human_baselines/NAME/.")
    p.add_argument("dir", metavar="DIR", type=Path, help="folder holding train_gpt.py")
    p.add_argument("--name", required=True, help="name to file it under (a manifest name must match its sha256)")
    p.add_argument("--force", action="store_true", help="replace the record's folder if it exists")
    p.set_defaults(func=cmd_import)


def cmd_list(args: argparse.Namespace) -> int:
    config = config_from(args)
    timeline = timeline_from(config)
    baselines = config.paths.baselines_dir
    rows = []
    for r in timeline:
        faster = r.retimed_seconds_faster_vs_fa3
        rows.append({
            "name": r.name, "number": r.number, "date": r.date.isoformat(), "title": r.title,
            "record_time_s": r.record_time_s, "seconds_faster_vs_fa3": faster,
            "code": "present" if r.code_present(baselines) else "missing",
            "fetchable": r.can_fetch, "retiming": r.is_retiming, "track": r.track, "hardware": r.hardware or None,
        })
    if args.json:
        print_json(rows)
        return 0
    print_table(
        ["track", "#", "name", "date", "time s", "faster vs FA3 s", "code", "title"],
        [[r["track"], r["number"], r["name"], r["date"], f"{r['record_time_s']:.2f}",
          "" if r["seconds_faster_vs_fa3"] is None else f"{r['seconds_faster_vs_fa3']:.2f}",
          r["code"] if r["fetchable"] or r["code"] == "present" else "n/a", r["title"][:60]] for r in rows],
        right={1, 4, 5},
    )
    print(f"\n{len(rows)} records; 'faster vs FA3' is the NanoGPT-Bench same-hardware re-timing ({FA3} = 0). "
          "Fetch code with `nanogpt-tui records fetch NAME`.")
    for track in sorted({r["track"] for r in rows if r["hardware"]}):
        hardware = sorted({r["hardware"] for r in rows if r["track"] == track and r["hardware"]})
        print(f"The {track} track's times are our own, measured on {'; '.join(hardware)}.")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    config = config_from(args)
    dest = fetch_record(timeline_from(config), args.name, config.paths.baselines_dir, base_url=args.base_url,
                        timeout_s=args.timeout, force=args.force)
    code = sorted(p.name for p in dest.iterdir() if p.suffix == ".py")
    print(f"Fetched {args.name} into {dest}: {len(code)} file{'s' if len(code) != 1 else ''} "
          f"({', '.join(code)}), each sha256-verified; run.sh written.")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    from nanogpt_tui.stack import FIELD_RULES

    record = timeline_from(config_from(args)).get(args.name)
    stack = record.stack
    if args.json:
        print_json({"name": record.name, "stack": stack.to_dict(), "stated": stack.stated,
                    "must_match": [r.field for r in FIELD_RULES if r.must_match],
                    "may_differ": [r.field for r in FIELD_RULES if not r.must_match]})
        return 0
    if not stack.stated:
        print(f"{record.name}: the manifest has no stack for this record (no training log with its environment).")
        return 0
    rules = {r.field: r for r in FIELD_RULES}
    labels = {"python": "Python", "torch": "PyTorch", "cuda": "CUDA", "triton": "Triton", "gpu": "GPU",
              "attention": "FlashAttention", "kernel_repo": "kernel repo", "kernel_version": "kernel version",
              "tiktoken": "tiktoken"}
    print(f"{record.name} (#{record.number}, {record.date.isoformat()}), as its log states:")
    print_table(["field", "value", "an image must"],
                [[labels[f], getattr(stack, f) or "-",
                  "match" if rules[f].must_match else "-"] for f in labels])
    print("\nMust match: " + "; ".join(r.why for r in FIELD_RULES if r.must_match) + ".")
    print("May differ: " + "; ".join(r.why for r in FIELD_RULES if not r.must_match) + ".")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    config = config_from(args)
    dest = import_record(args.dir, args.name, config.paths.baselines_dir, timeline_from(config), force=args.force)
    print(f"Imported {args.dir} as {args.name} into {dest}.")
    return 0
