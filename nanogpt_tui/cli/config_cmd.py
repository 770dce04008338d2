"""`nanogpt-tui config`: show the effective configuration and where it came from."""

from __future__ import annotations

import argparse

from nanogpt_tui.cli.common import config_from, print_json
from nanogpt_tui.config import config_as_dict


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="show or check the configuration",
                                   description="Show or check the effective configuration.")
    sub = parser.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("show", help="print the effective configuration",
                       description="Print the configuration in effect (file values over built-in defaults).")
    p.add_argument("--json", action="store_true", help="print it as JSON")
    p.set_defaults(func=cmd_show)


def cmd_show(args: argparse.Namespace) -> int:
    config = config_from(args)
    data = config_as_dict(config)
    if args.json:
        print_json(data)
        return 0
    print(f"# from {config.source or 'built-in defaults'}")
    for section, values in data.items():
        if section == "source":
            continue
        if isinstance(values, dict):
            print(f"[{section}]")
            for key, value in values.items():
                print(f"{key} = {value!r}")
        else:
            print(f"{section} = {values!r}")
    return 0
