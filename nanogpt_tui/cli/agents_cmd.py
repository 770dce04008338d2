"""`nanogpt-tui agents` (the agents and what each needs, an events file as readable lines) and
`nanogpt-tui strategies` (the prompting strategies and their prompts)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from nanogpt_tui.cli.common import number, print_json, print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("agents", help="the agents sessions can run, and their event streams",
                                   description="The agents a session can run (harness, needed CLI and keys, "
                                               "strategies) and a readable view of an agent's event stream.")
    sub = parser.add_subparsers(dest="agents_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("list", help="one row per agent: what it needs and which strategies suit it",
                       description="List the agents. 'CLI here' and 'keys here' say whether this machine has "
                                   "the agent's CLI on PATH and its keys in the environment (the session image "
                                   "needs the CLI; sessions get the keys from this environment).")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_agents_list)

    p = sub.add_parser("events", help="show an events file or container log as one readable line per event",
                       description="Parse an agent's event stream (Claude Code stream-json, Codex --json, or "
                                   "nanogpt-tui events; container.log lines that are not JSON are shown as they "
                                   "are) and print one line per event, sanitised, keys masked, long payloads "
                                   "folded.")
    p.add_argument("file", type=Path, metavar="FILE", help="events.jsonl or container.log")
    p.add_argument("--follow", "-f", action="store_true", help="keep reading as the file grows (Ctrl-C stops)")
    p.add_argument("--all", action="store_true", help="also show streaming deltas and per-message usage")
    p.add_argument("--width", type=number(integer=True, minimum=20, maximum=100_000), default=240, metavar="N", help="fold payloads longer than N characters")
    p.add_argument("--usage", action="store_true", help="end with the token and cost totals")
    p.set_defaults(func=cmd_agents_events)

    parser = subparsers.add_parser("strategies", help="the prompting strategies and their prompts",
                                   description="Prompting strategies: a folder of prompt files plus "
                                               "strategy.toml. Built-in ones ship with nanogpt-tui; add your "
                                               "own folder and select it by path, or by name from "
                                               "$NANOGPT_TUI_STRATEGIES or ~/.config/nanogpt-tui/strategies/.")
    sub = parser.add_subparsers(dest="strategies_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("list", help="one row per strategy: agents, source, content hash",
                       description="List the strategies found, with the agents each is written for and its "
                                   "content hash (recorded with every session).")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_strategies_list)

    p = sub.add_parser("show", help="print a strategy's first or resume prompt",
                       description="Print a strategy's composed prompt; placeholders such as {{anchor}} stay "
                                   "as they are (a session fills them in).")
    p.add_argument("strategy", metavar="NAME_OR_DIR")
    p.add_argument("--prompt", choices=("first", "resume"), default="first")
    p.set_defaults(func=cmd_strategies_show)


def _image_clis_label(config) -> tuple[str, str | None, str | None]:
    """(image, its agent-CLI label or None, why it could not be inspected or None) for the configured image on the
    first Docker host."""
    from nanogpt_tui.agents.pins import IMAGE_LABEL
    from nanogpt_tui.errors import UserError

    image = config.docker.image
    if not config.hosts:
        return image, None, "no Docker host is configured"
    host = config.hosts[0]
    try:
        from nanogpt_tui.backends.docker_backend import DockerBackend

        labels = DockerBackend(url=host.url, tls=host.tls, name=host.name, timeout=5.0).image_labels(image)
    except (UserError, ImportError) as err:
        return image, None, str(err)
    if labels is None:
        return image, None, f"{image} is not on {host.name}"
    return image, labels.get(IMAGE_LABEL, ""), None


def cmd_agents_list(args: argparse.Namespace) -> int:
    from nanogpt_tui.agents.catalog import AGENTS
    from nanogpt_tui.agents.credentials import endpoint
    from nanogpt_tui.agents.strategy import available_strategies
    from nanogpt_tui.config import load_config

    config = load_config(getattr(args, "config", None))
    strategies = [s for s, _, _ in available_strategies() if s is not None]
    image, label, why_not = _image_clis_label(config) if any(a.clis for a in AGENTS) else ("", None, None)
    rows = []
    for spec in AGENTS:
        fits = [s.name for s in strategies if s.supports(spec.name)] if spec.uses_prompts else []
        agent_cfg = config.agents.get(spec.name)
        where = endpoint(spec.name, agent_cfg.base_url if agent_cfg else "")
        versions = spec.cli_versions()
        rows.append({
            "cli_version": ", ".join(f"{cli} {v}" for cli, v in versions.items()) or None,
            "in_image": (None if label is None else spec.in_image(label)) if spec.clis else None,
            "image": image if spec.clis else None,
            "base_url": where.url or None, "base_url_source": where.source,
            "name": spec.name, "description": spec.description, "harness": str(spec.harness_dir),
            "harness_present": spec.harness_present(), "clis": list(spec.clis),
            "clis_here": spec.clis_on_path(), "keys": [list(g) for g in spec.key_options],
            "keys_here": spec.keys_available(), "default_strategy": spec.default_strategy,
            "strategies": fits, "settings": list(spec.config_env),
        })
    if args.json:
        print_json(rows)
        return 0

    def yes_no(value: bool) -> str:
        return "yes" if value else "no"

    def in_image(value: bool | None) -> str:
        return "?" if value is None else yes_no(value)

    print_table(
        ["agent", "CLI (pinned)", "in image", "endpoint", "needs keys", "keys here", "strategies", "harness"],
        [[r["name"], r["cli_version"] or "-", in_image(r["in_image"]) if r["clis"] else "-",
          (f"{r['base_url']} ({r['base_url_source']})" if r["base_url"] else r["base_url_source"])
          if r["clis"] else "-",
          " or ".join(" + ".join(g) for g in r["keys"]) or "-",
          yes_no(r["keys_here"]) if r["keys"] else "-",
          ", ".join(r["strategies"]) or ("(no prompts)" if r["default_strategy"] is None else "-"),
          "ok" if r["harness_present"] else "missing"] for r in rows],
    )
    note = f" ({why_not})" if why_not else ""
    print(f"\nThe CLIs are baked into the session image at their pins ('in image' is about {image}{note}); keys "
          "are passed from this environment. `nanogpt-tui strategies list` shows the strategies.")
    return 0


def cmd_agents_events(args: argparse.Namespace) -> int:
    from nanogpt_tui.agents.events import EventStream, summarize_usage
    from nanogpt_tui.agents.parsers import parse_log_line
    from nanogpt_tui.agents.render import env_secrets, is_shown, render_event, usage_text
    from nanogpt_tui.errors import UserError

    if not args.file.is_file():
        raise UserError(f"{args.file} does not exist; pass a session's events.jsonl or container.log.")
    stream = EventStream(args.file, parser=parse_log_line)
    secrets = env_secrets()
    seen = []

    def show(events) -> None:
        for ev in events:
            seen.append(ev)
            if is_shown(ev, partial=args.all, per_message_usage=args.all):
                print(render_event(ev, max_chars=args.width, secrets=secrets), flush=args.follow)

    show(stream.read_new(final=not args.follow))
    if args.follow:
        try:
            while True:
                time.sleep(0.5)
                show(stream.read_new())
        except KeyboardInterrupt:
            pass
    if args.usage:
        totals = summarize_usage(seen)
        text = usage_text(totals.to_dict(), totals.cost_usd) or "no usage reported"
        note = "" if totals.cost_complete else " (cost not reported for every invocation)"
        print(f"\ntotal: {text}{note}; {totals.invocations} invocation(s)")
    sys.stdout.flush()
    return 0


def cmd_strategies_list(args: argparse.Namespace) -> int:
    from nanogpt_tui.agents.strategy import available_strategies

    rows = []
    for strategy, folder, note in available_strategies():
        if strategy is None:
            rows.append({"name": folder.name, "path": str(folder), "source": "error", "note": note})
            continue
        rows.append({**strategy.describe(), "source": note})
    if args.json:
        print_json(rows)
        return 0
    print_table(
        ["strategy", "agents", "source", "sha256", "description"],
        [[r["name"], ", ".join(r.get("agents", [])), r["source"], r.get("sha256", "")[:12],
          r.get("description") or r.get("note", "")] for r in rows],
    )
    print("\nSelect one with --strategy NAME or --strategy PATH; `nanogpt-tui strategies show NAME` prints "
          "its prompt.")
    return 0


def cmd_strategies_show(args: argparse.Namespace) -> int:
    from nanogpt_tui.agents.strategy import resolve_strategy

    strategy = resolve_strategy(args.strategy)
    sys.stdout.write(strategy.compose(args.prompt, {}))
    return 0
