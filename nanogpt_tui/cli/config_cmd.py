"""`nanogpt-tui config`: show the effective configuration as TOML that reads back, and check it."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from nanogpt_tui.cli.common import config_from, print_json
from nanogpt_tui.config import SCHEMA_VERSION, Config, config_as_dict
from nanogpt_tui.errors import UserError

# Environment variables holding the judge's key, per provider (their values are never read out, only their presence).
JUDGE_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="show or check the configuration",
                                   description="Show or check the effective configuration.")
    sub = parser.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("show", help="print the effective configuration",
                       description="Print the configuration in effect (file values over built-in defaults) as TOML "
                                   "that nanogpt-tui reads back; unset optional values appear as comments.")
    p.add_argument("--json", action="store_true", help="print it as JSON")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("check", help="check the configuration and what it points at",
                       description="Read the configuration (every field validated) and check what it refers to: "
                                   "the record manifest, the anchor and target on it, the anchor's code, the "
                                   "sessions folder and the judge's key. Exits 1 when anything needs fixing.")
    p.set_defaults(func=cmd_check)


def cmd_show(args: argparse.Namespace) -> int:
    config = config_from(args)
    data = config_as_dict(config)
    if args.json:
        print_json(data)
        return 0
    print(f"# from {config.source or 'built-in defaults'}")
    print(config_toml(data), end="")
    return 0


def config_toml(data: dict[str, Any]) -> str:
    """The configuration as TOML in the config file's own shape: tables for sections, `[agents.NAME]` tables,
    `[[hosts]]` entries; unset values (None, or an empty string) become comments, since TOML has no null."""
    out = [f"schema_version = {SCHEMA_VERSION}\n"]
    for section, values in data.items():
        if section in ("source", "schema_version") or values is None:
            continue
        if section == "hosts":
            for host in values:
                out.append(_table(["hosts"], host, array=True))
        elif section == "agents":
            for name, agent in values.items():
                out.append(_table(["agents", name], agent))
        elif isinstance(values, dict):
            out.append(_table([section], values))
        else:
            out.append(f"{section} = {_value(values)}\n")
    return "".join(out)


def _table(path: list[str], values: dict[str, Any], *, array: bool = False) -> str:
    name = ".".join(_key(p) for p in path)
    lines = [f"\n[[{name}]]\n" if array else f"\n[{name}]\n"]
    nested = []
    for key, value in values.items():
        if value is None or value == "":  # unset: TOML has no null, and the reader refuses empty strings
            lines.append(f"# {_key(key)} is not set\n")
        elif isinstance(value, dict):
            nested.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}\n")
    for key, value in nested:
        lines.append(_table([*path, key], value))
    return "".join(lines)


def _key(key: str) -> str:
    return key if key and all(c.isalnum() or c in "-_" for c in key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None) + "}"
    # A JSON string is a valid TOML basic string (same escapes), and never lets a value close the line early.
    return json.dumps(str(value), ensure_ascii=False)


def cmd_check(args: argparse.Namespace) -> int:
    try:
        config = config_from(args)
    except UserError as err:
        print(f"problem: {err}")
        return 1
    print(f"ok: the configuration reads ({config.source or 'built-in defaults, no file'})")
    problems = [line for line in check_config(config) if line.startswith("problem:")]
    return 1 if problems else 0


def check_config(config: Config, *, say=print) -> list[str]:
    """Each check as an `ok: ...` or `problem: ...` line (said as it is made); the lines are returned."""
    from nanogpt_tui.records import load_timeline

    lines: list[str] = []

    def report(ok: bool, text: str) -> None:
        line = ("ok: " if ok else "problem: ") + text
        lines.append(line)
        say(line)

    bench = config.benchmark
    try:
        timeline = load_timeline(config.paths.baselines_dir)
    except UserError as err:
        report(False, str(err))
        timeline = None
    if timeline is not None:
        report(True, f"the record manifest holds {len(timeline)} records ({timeline.source})")
        for role, name in (("anchor", bench.anchor), ("target", bench.target)):
            try:
                timeline.get(name)
                report(True, f"benchmark.{role} {name!r} is on the timeline")
            except UserError as err:
                report(False, f"benchmark.{role}: {err}")
        if bench.anchor in timeline and bench.target in timeline:
            try:
                gap = timeline.gap(bench.anchor, bench.target)
                report(True, f"the anchor-to-target gap is {gap:.2f} s (100% of human progress)")
            except UserError as err:
                report(False, str(err))
        anchor = timeline.get(bench.anchor) if bench.anchor in timeline else None
        if anchor is not None:
            report(anchor.code_present(config.paths.baselines_dir),
                   f"the anchor's code is in {anchor.code_dir(config.paths.baselines_dir)}"
                   if anchor.code_present(config.paths.baselines_dir) else
                   f"the anchor's code is not in {anchor.code_dir(config.paths.baselines_dir)}; fetch it with "
                   f"`nanogpt-tui records fetch {anchor.name}`")
    sessions = Path(config.paths.sessions_dir)
    existing = next((p for p in (sessions, *sessions.parents) if p.exists()), None)
    writable = existing is not None and existing.is_dir() and os.access(existing, os.W_OK)
    report(writable, f"sessions go to {sessions}" if writable else
           f"the sessions folder {sessions} cannot be created or written; set paths.sessions_dir to a writable folder")
    provider = config.judge.provider
    if provider == "none":
        report(True, "judge.provider is none: submissions are not judged, and verdicts say so")
    else:
        key = JUDGE_KEY_ENV[provider]
        report(bool(os.environ.get(key)), f"{key} is set for the {provider} judge ({config.judge.model})"
               if os.environ.get(key) else
               f"{key} is not set, so the {provider} judge cannot answer and submissions will not count; export it")
    return lines
