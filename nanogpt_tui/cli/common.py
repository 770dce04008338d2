"""Helpers the command modules share: loading config and timeline, printing tables and JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nanogpt_tui.config import Config, load_config
from nanogpt_tui.errors import UserError
from nanogpt_tui.fields import MAX_GPU_HOURS, MAX_GPUS, BadField, number_from_text

if TYPE_CHECKING:
    from nanogpt_tui.records import Timeline


def config_from(args: argparse.Namespace) -> Config:
    """The config in effect, with the global `--sessions-dir` (when given) in place of paths.sessions_dir."""
    config = load_config(getattr(args, "config", None))
    sessions_dir = getattr(args, "sessions_dir", None)
    if sessions_dir:
        import dataclasses
        from pathlib import Path

        folder = Path(sessions_dir).expanduser().absolute()
        if folder.exists() and not folder.is_dir():
            raise UserError(f"--sessions-dir {sessions_dir} is a file, not a folder; give the folder that holds "
                            "the session folders.")
        config = dataclasses.replace(config, paths=dataclasses.replace(config.paths, sessions_dir=folder))
    return config


def number(*, integer: bool = False, minimum: float | None = None, maximum: float | None = None,
           positive: bool = False):
    """An argparse `type` for a finite number in range: argparse refuses anything else in one sentence, before the
    command runs (so nothing is created from a bad number)."""
    def parse(text: str) -> float | int:
        try:
            return number_from_text(text, "value", integer=integer, minimum=minimum, maximum=maximum,
                                    positive=positive)
        except BadField as err:
            raise argparse.ArgumentTypeError(f"it {err.problem}") from None
    parse.__name__ = "whole number" if integer else "number"  # argparse names the type in its messages
    return parse


GPU_HOURS = number(positive=True, maximum=MAX_GPU_HOURS)
GPU_COUNT = number(integer=True, minimum=1, maximum=MAX_GPUS)
SECONDS = number(positive=True, maximum=365 * 24 * 3600.0)
DOLLARS = number(positive=True, maximum=1e9)


def timeline_from(config: Config) -> Timeline:
    from nanogpt_tui.records import load_timeline

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
