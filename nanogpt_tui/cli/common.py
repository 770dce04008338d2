"""Helpers the command modules share: loading config and timeline, printing tables and JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from nanogpt_tui.config import Config, load_config
from nanogpt_tui.records import Timeline, load_timeline


def config_from(args: argparse.Namespace) -> Config:
    return load_config(getattr(args, "config", None))


def timeline_from(config: Config) -> Timeline:
    return load_timeline(config.paths.baselines_dir)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: set[int] | None = None) -> None:
    """A plain aligned text table (no colour: output is often piped)."""
    right = right or set()
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        line = "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row))
        print(line.rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
