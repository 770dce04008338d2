"""`nanogpt-tui` (no command) opens the control room; `nanogpt-tui demo` opens it on three local demo sessions."""

from __future__ import annotations

import argparse
import sys

from nanogpt_tui.cli.common import config_from


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="open the control room on three demo sessions (no GPU, Docker or key needed)",
        description="Start three local sessions of the scripted agent on the smoke record (two prompting "
                    "strategies, budgets of a few minutes) under <sessions_dir>/demo/, and open the control room "
                    "on them. Quitting leaves them running; running the demo again re-attaches.")
    p.add_argument("--fresh", action="store_true", help="start three new demo sessions even if some still run")
    p.add_argument("--no-ui", action="store_true", help="only start the sessions and print their ids")
    p.set_defaults(func=cmd_demo)


def _needs_terminal() -> str | None:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return "The control room needs a terminal (stdin and stdout are not one)."
    return None


def cmd_open(args: argparse.Namespace) -> int:
    """The control room on the sessions folder of the config in effect (re-attaching to running sessions)."""
    problem = _needs_terminal()
    if problem:
        from nanogpt_tui.cli import build_parser

        parser = build_parser()
        commands = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        print(f"{problem} Headless commands (`nanogpt-tui COMMAND --help` tells more):", file=sys.stderr)
        print(parser.format_usage().rstrip() + "\ncommands: " + ", ".join(commands))
        return 0
    from nanogpt_tui.tui.app import create_app

    return run_app(create_app(config_from(args)))


def cmd_demo(args: argparse.Namespace) -> int:
    from nanogpt_tui.demo import demo_config, start_demo

    config = config_from(args)
    problem = None if args.no_ui else _needs_terminal()
    if args.no_ui or problem:
        cfg, sessions = start_demo(config, fresh=args.fresh, say=lambda text: print(text, file=sys.stderr))
        if args.no_ui:
            for session in sessions:
                print(session.id)
        else:
            print(f"{problem} The demo sessions keep running in {cfg.paths.sessions_dir}; run `nanogpt-tui demo` "
                  "in a terminal to watch them.", file=sys.stderr)
        return 0
    from nanogpt_tui.tui.app import create_app

    # The control room opens at once on the demo's folder; its sessions are started from there and appear as
    # their folders do (starting three takes seconds: synthetic shards, workspaces, processes).
    cfg = demo_config(config)
    print(f"The demo's sessions are in {cfg.paths.sessions_dir}; the CLI sees them with "
          f"`nanogpt-tui --sessions-dir {cfg.paths.sessions_dir} sessions list`.", file=sys.stderr)

    def start(say) -> None:
        say("Starting the demo's three sessions…")
        start_demo(config, fresh=args.fresh, say=say)

    app = create_app(cfg, startup=start)
    code = run_app(app)
    if app.startup_error:
        print(f"nanogpt-tui: error: {app.startup_error}", file=sys.stderr)
        return code or 2
    return code


def run_app(app, **options) -> int:
    """Run the control room; when an internal error ended it, print its one line and return non-zero."""
    app.run(**options)
    if app.crash:
        print(app.crash, file=sys.stderr)
    return app.return_code or 0
